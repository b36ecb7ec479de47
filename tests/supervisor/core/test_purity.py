"""The core stays pure, and every layer imports only the layers below it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_importing_the_core_loads_no_framework_no_io_no_threads():
    # A fresh interpreter: what importing every core module drags in, transitively (the
    # package's public names load on first use: supervisor/__init__.py, supervisor/config).
    code = (
        "import sys, pkgutil, importlib, supervisor.core as core\n"
        "for m in pkgutil.iter_modules(core.__path__): importlib.import_module(f'supervisor.core.{m.name}')\n"
        "loaded = ('pykka', 'httpx', 'sqlite3', 'asyncio', 'threading', 'structlog', 'tomllib', 'actors',"
        " 'supervisor.facade')\n"
        "print(','.join(sorted(n for n in loaded if n in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


_BELOW_ACTORS = ("actors", "pykka", "supervisor.gate", "supervisor.runtime", "supervisor.facade", "supervisor.ops")

_OFF_THE_SYSTEM = (
    "pykka",
    "httpx",
    "actors",
    "supervisor.runtime",
    "supervisor.system",
    "supervisor.facade",
    "supervisor.ops",
    "supervisor.api",
    "supervisor.cli",
    "supervisor.sim",
    "supervisor.shared",
)
# Each layer, and what it must never import (directly, by name, anywhere in its files).
FORBIDDEN = {
    "supervisor/core": (
        "pykka",
        "httpx",
        "sqlite3",
        "psycopg",
        "supervisor.shared",
        "actors",
        "supervisor.channels",
        "supervisor.sources",
        "supervisor.runtime",
        "supervisor.facade",
        "supervisor.ops",
        "supervisor.cli",
        "supervisor.sim",
        "supervisor.integrations",
    ),
    "supervisor/config": ("supervisor.core", "supervisor.channels", "supervisor.sources", "actors", "pykka"),
    "supervisor/channels": ("supervisor.sources", "actors", "supervisor.runtime", "supervisor.facade", "httpx"),
    "supervisor/sources": ("supervisor.channels", "actors", "supervisor.runtime", "supervisor.facade", "pykka"),
    # The one gate: state, decision and lock, below every actor and above the channels.
    "supervisor/gate.py": (
        "pykka",
        "httpx",
        "sqlite3",
        "actors",
        "supervisor.sources",
        "supervisor.journal",
        "supervisor.alerts",
        "supervisor.runtime",
        "supervisor.facade",
        "supervisor.ops",
        "supervisor.api",
    ),
    # What answers orders: the gate's decision, below the runtime and everything that uses it.
    "supervisor/deciding.py": (
        "actors",
        "supervisor.runtime",
        "supervisor.system",
        "supervisor.facade",
        "supervisor.ops",
        "supervisor.api",
    ),
    # What-if replay and the shadow's process: a Gate fed the journal, beside the actors, below every
    # part of the running system (the shadow's keeper in ops starts it as a process, never imports it).
    "supervisor/replay.py": _OFF_THE_SYSTEM,
    "supervisor/shadow.py": _OFF_THE_SYSTEM,
    # The journal on disk and the alert rules: below the actors that run them.
    "supervisor/journal": (*_BELOW_ACTORS, "supervisor.shared", "psycopg"),
    "supervisor/alerts": _BELOW_ACTORS,
    # Several instances' shared store: below the actors that run its rounds and the parts that use it.
    "supervisor/shared": (*_BELOW_ACTORS, "supervisor.api", "supervisor.system", "supervisor.cli", "fastapi"),
    "actors": (
        "supervisor.runtime",
        "supervisor.facade",
        "supervisor.cli",
        "supervisor.ops",
        "supervisor.sim",
        "supervisor.api",
    ),
    "supervisor/runtime": ("supervisor.facade", "supervisor.cli", "supervisor.ops", "supervisor.sim"),
    "supervisor/integrations": ("actors", "supervisor.runtime", "supervisor.facade", "supervisor.cli"),
    "supervisor/ops": ("supervisor.facade", "supervisor.cli", "supervisor.api", "supervisor.sim", "fastapi", "uvicorn"),
    # The API sits below the facade: it names what it needs (GateService), never imports it.
    "supervisor/api": ("supervisor.facade", "supervisor.cli", "supervisor.sim", "actors", "supervisor.runtime"),
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_never_imports_from_above(layer):
    where = ROOT / layer
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in ([where] if where.is_file() else sorted(where.rglob("*.py")))
        for name in _imports(path)
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert offenders == []


def test_nothing_below_the_facade_imports_the_package_root():
    """`supervisor/__init__` names the facade (its public API): a module below the
    facade that imported it would climb back up (the version lives in supervisor.version)."""
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "supervisor").rglob("*.py"))
        if path.name != "__init__.py" and path.name not in ("cli.py", "facade.py")
        for name in _imports(path)
        if name == "supervisor"
    ]
    assert offenders == []


def test_every_actor_class_lives_under_actors():
    """The design card's place for them: a pykka actor anywhere else is a layer mixed up."""
    offenders = [
        f"{path.relative_to(ROOT)}: {node.name}"
        for path in sorted((ROOT / "supervisor").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base).endswith(("Actor", "ThreadingActor")) for base in node.bases)
    ]
    assert offenders == []


def test_every_package_folder_has_an_init():
    """setuptools' find (pyproject's packages.find) leaves out a folder without __init__.py: a
    built wheel would lack it and every import of it fail (supervisor/shared once had none)."""
    folders = {p.parent for pkg in ("supervisor", "actors") for p in (ROOT / pkg).rglob("*.py")}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists())
    assert missing == []
