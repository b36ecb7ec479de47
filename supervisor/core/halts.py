"""Who halts trading, in words for people.

An ESS halt comes from one of its sources: the ESS service (`http`, or the
name a host pushes under), the kill-switch file, or an operator's halt. Each
is named the way an operator on call reads it ("ESS (http)", "kill switch
file", "operator alice"), with its reason once, never the source's name twice
("operator_halt: operator halt by alice ...").

The operator halt's reading says "operator halt by BY since ISO: REASON" (one
per operator, joined by "; "): `operator_halt_detail` writes it and
`operator_halts` reads it back, so both ends stay in one place.

Pure: strings in, strings out.
"""

from __future__ import annotations

import re

__all__ = [
    "KILL_SWITCH_SOURCE",
    "OPERATOR_HALT_SOURCE",
    "halt_cause",
    "halt_source",
    "operator_halt_detail",
    "operator_halts",
]

OPERATOR_HALT_SOURCE = "operator_halt"
KILL_SWITCH_SOURCE = "kill_switch_file"

_ONE_HALT = re.compile(
    r"operator halt by (?P<by>.+?) since (?P<since>\S+): (?P<reason>.*?)(?=; operator halt by |$)", re.DOTALL
)


def halt_source(source: str) -> str:
    """An ESS source's name for people: "ESS (http)", "kill switch file", "operator"."""
    if source == OPERATOR_HALT_SOURCE:
        return "operator"
    if source == KILL_SWITCH_SOURCE:
        return "kill switch file"
    return f"ESS ({source})"


def operator_halt_detail(by: str, since: str | None, reason: str) -> str:
    """The operator halt reading's detail for one operator's halt of every order."""
    return f"operator halt by {by} since {since}: {reason}"


def operator_halts(detail: str) -> list[tuple[str, str, str]]:
    """(by, since, reason) of each operator halt in a reading's detail (empty: not that form)."""
    return [(m["by"], m["since"], m["reason"]) for m in _ONE_HALT.finditer(detail)]


def halt_cause(source: str, detail: str) -> str:
    """One halting source and its reason, the source named once: "ESS (http): drill",
    "kill switch file /srv/riskgate/KILL_SWITCH: desk halt", "operator alice: drill"
    (several operators' halts: each of them, joined by "; ")."""
    if source == KILL_SWITCH_SOURCE:
        return f"kill switch file {detail.removeprefix('kill switch ')}".rstrip()
    if source == OPERATOR_HALT_SOURCE:
        halts = operator_halts(detail)
        if halts:
            return "; ".join(f"operator {by}: {reason}" for by, _, reason in halts)
    return f"{halt_source(source)}: {detail}" if detail else halt_source(source)
