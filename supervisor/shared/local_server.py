"""A throwaway PostgreSQL server from the machine's own binaries (Debian's postgresql).

For the tests, the benchmarks and trying several instances on one machine
(docs/scale-out.md): `initdb` into a folder, `pg_ctl start` listening only on
a Unix socket in that folder (and on 127.0.0.1 if asked), trust
authentication, no fsync. Never for production data: a real desk runs its own
server. initdb refuses to run as root, so as root the folder is given to the
`postgres` user and the binaries run as it (`runuser`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from supervisor.errors import RiskgateError

__all__ = ["LocalServer", "LocalServerError", "find_binaries", "missing_reason"]

_DEBIAN = Path("/usr/lib/postgresql")  # Debian: /usr/lib/postgresql/N/bin, off the PATH


class LocalServerError(RiskgateError):
    """The throwaway server could not be set up or started (named cause)."""


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).resolve().parent
    versions = sorted(_DEBIAN.glob("*/bin"), key=lambda p: p.parent.name.zfill(4), reverse=True)
    for folder in versions:  # the newest first
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def missing_reason() -> str | None:
    """Why no throwaway server can run here, or None when one can."""
    if find_binaries() is None:
        return "PostgreSQL's server binaries (initdb, pg_ctl) are not installed (Debian: apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root and runuser is missing"
    return None


@dataclass
class LocalServer:
    """One server in `folder` on `port`; `start()` then `dsn(database)`; `stop()`."""

    folder: Path
    port: int
    tcp: bool = False  # also listen on 127.0.0.1 (a TCP proxy in front of it, a client across hosts)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _run(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ("runuser", "-u", "postgres", "--", *argv)
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603 - our argv

    def _bin(self, name: str) -> str:
        folder = find_binaries()
        if folder is None:
            raise LocalServerError(missing_reason() or "no PostgreSQL binaries")
        return str(folder / name)

    def start(self) -> LocalServer:
        why = missing_reason()
        if why is not None:
            raise LocalServerError(why)
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            # Every folder above must be passable by the postgres user (pytest's tmp folders are 0700).
            for parent in self.folder.parents:
                if str(parent) in ("/", "/tmp"):  # noqa: S108 - never changed: those are passable already
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    parent.chmod(mode | 0o001)
        if not (self.data / "PG_VERSION").exists():
            done = self._run(self._bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                             "--no-sync", "-E", "UTF8")  # fmt: skip
            if done.returncode != 0:
                raise LocalServerError(f"initdb failed: {(done.stderr or done.stdout).strip()[-500:]}")
        listen = "127.0.0.1" if self.tcp else ""
        options = f"-k {self.folder} -c listen_addresses='{listen}' -p {self.port} -c fsync=off -c max_connections=200"
        done = self._run(self._bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "30", "-l",
                         str(self.folder / "server.log"), "-o", options, "start")  # fmt: skip
        if done.returncode != 0:
            server_log = self.folder / "server.log"
            log = server_log.read_text(errors="replace")[-800:] if server_log.exists() else ""
            raise LocalServerError(f"pg_ctl start failed: {(done.stderr or done.stdout).strip()[-300:]} {log}")
        return self

    def stop(self, mode: str = "fast") -> None:
        """`mode` "immediate" is a crash (no checkpoint): what a dead server looks like to clients."""
        self._run(self._bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def dsn(self, database: str = "postgres") -> str:
        return f"host={self.folder} port={self.port} user=postgres dbname={database}"

    def tcp_dsn(self, database: str = "postgres", port: int | None = None) -> str:
        return f"host=127.0.0.1 port={port or self.port} user=postgres dbname={database}"
