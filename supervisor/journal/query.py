"""`riskgate journal`: read the decision journal as a person or a tool would.

It opens the journal read-only, so it works while `riskgate run` is writing.
Times are UTC; `--since` / `--until` take ISO 8601 (a naive time is UTC) or a
span back from now (`90s`, `15m`, `2h`, `1d`).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from supervisor.core.checks import DECIDED_BY
from supervisor.core.reasons import ReasonCode
from supervisor.journal.store import DECISION_COLUMNS, JournalReader, Query, from_us, to_us

__all__ = [
    "SERIES_RANGES",
    "Source",
    "decision_json",
    "explain",
    "explanations",
    "list_decisions",
    "parse_when",
    "series",
    "stats",
]

#: The chart's time ranges: (seconds shown, seconds per bucket).
SERIES_RANGES = {"15m": (900, 10), "1h": (3600, 30), "24h": (86_400, 600)}
_TOP_CODES = 6  # block codes shown one by one; the rest are summed as "other"

#: Where the journal is read from: this instance's file, or a reader of every instance's
#: journal in the shared store (supervisor.shared.journal_reader), opened when asked.
Source = Path | Callable[[], Any]


def _open(source: Source) -> Any:
    return JournalReader(source) if isinstance(source, Path) else source()


_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_when(text: str, now: datetime) -> datetime:
    """ISO 8601 (naive = UTC) or a span back from `now` (`15m`). ValueError if neither."""
    m = _SPAN.match(text.strip())
    try:
        if m is not None:
            return now - timedelta(seconds=float(m.group(1)) * _UNIT[m.group(2)])
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except ValueError:
        raise ValueError(f"{text!r} is neither ISO 8601 nor a span like 15m, 2h, 1d") from None
    except OverflowError:
        raise ValueError(f"{text!r} is out of the range of dates") from None


def _time(us: int | None) -> str:
    if us is None:
        return ""
    if _iso_or_none(us) is None:
        return "?"  # a damaged row's time
    return from_us(us).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:,.8g}"


_TABLE: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("time (UTC)", lambda r: _time(r["ts_us"])),
    ("account", lambda r: r["account"] or ""),
    ("symbol", lambda r: r["symbol"] or ""),
    ("side", lambda r: r["side"] or ""),
    ("qty", lambda r: _num(r["quantity"])),
    ("price", lambda r: _num(r["price"])),
    ("decision", lambda r: r["decision"] or ""),
    ("code", lambda r: r["reason_code"] or ""),
    ("sent", lambda r: _num(r["adjusted_quantity"])),
    ("order_id", lambda r: r["order_id"] or ""),
    ("reason", lambda r: _cut(r["reason"] or "", 70)),
)


def _table(rows: list[dict[str, Any]], out: TextIO) -> None:
    table = _TABLE
    if rows and "instance" in rows[0]:  # every instance's journal: which one decided
        table = (table[0], ("instance", lambda r: r["instance"] or ""), *table[1:])
    cells = [[get(r) for _, get in table] for r in rows]
    heads = [name for name, _ in table]
    widths = [max([len(h), *(len(c[i]) for c in cells)]) for i, h in enumerate(heads)]
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip(), file=out)
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip(), file=out)


def _iso_or_none(us: Any) -> str | None:
    """A row's time as ISO 8601, or None when the row holds no readable time (a damaged file)."""
    if type(us) is not int:
        return None
    try:
        return from_us(us).isoformat()
    except (OverflowError, ValueError):
        return None


def _detail(text: Any) -> dict[str, Any]:
    try:
        detail = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {"detail_unreadable": True}
    return detail if isinstance(detail, dict) else {"detail": detail}


def decision_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in DECISION_COLUMNS}
    if "instance" in row:
        out["instance"] = row["instance"]
    out["time"] = _iso_or_none(row["ts_us"])
    out["signal_time"] = _iso_or_none(row["signal_ts_us"])
    out["reduce_only"] = None if row["reduce_only"] is None else bool(row["reduce_only"])
    out["ess_active"] = bool(row["ess_active"])
    return out


def list_decisions(path: Source, query: Query, fmt: str, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # looked up now: sys.stdout may have been replaced since import
    reader = _open(path)
    try:
        rows = reader.decisions(query)
    finally:
        reader.close()
    if fmt == "json":
        for row in rows:
            print(json.dumps(decision_json(row)), file=out)
    elif fmt == "csv":
        extra = ["instance"] if rows and "instance" in rows[0] else []  # every instance's journal
        writer = csv.DictWriter(out, fieldnames=["time", *extra, *DECISION_COLUMNS, "signal_time"])
        writer.writeheader()
        for row in rows:
            writer.writerow(decision_json(row))
    else:
        _table(rows, out)
        print(f"{len(rows)} decision(s){' (limit reached)' if len(rows) == query.limit else ''}", file=out)
    return len(rows)


def explain(path: Source, order_id: str, fmt: str, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # looked up now: sys.stdout may have been replaced since import
    """Every decision on `order_id` with all its inputs, the check that decided
    it, and the events of the minute before that explain it (its account's own,
    and those of every account: a halt, a source). Returns how many decisions.
    In words, figures are rounded (ages to the millisecond, percentages to two
    decimals) and fields with no value left out."""
    rows = explanations(path, order_id)
    for data in rows:
        code = data["reason_code"]
        if fmt == "json":
            print(json.dumps(data), file=out)
            continue
        through = f" by instance {data['instance']}" if "instance" in data else ""
        print(f"order {order_id}: {data['decision']} {code} at {data['time']}{through}", file=out)
        print(f"  decided by: {data['decided_by']}", file=out)
        print(f"  reason: {data['reason']}", file=out)
        for key in _EXPLAINED:
            if data.get(key) is not None:
                print(f"  {key}: {_shown(data[key], key)}", file=out)
        if data.get("signal_time") is not None:
            print(f"  signal_time: {data['signal_time']}", file=out)
        for e in data["events_in_the_minute_before"]:
            detail = " ".join(
                f"{k}={_shown(v, k)}"
                for k, v in e.items()
                if k not in ("time", "kind", "source", "account") and v is not None
            )
            source = "" if e["source"] == e["kind"] else f" ({e['source']})"
            print(f"  event {e['time']} {e['kind']}{source} {e['account'] or ''} {detail}".rstrip(), file=out)
    if not rows:
        where = path if isinstance(path, Path) else "the shared store"
        print(f"riskgate journal: no decision on order {order_id!r} in {where}", file=sys.stderr)
    return len(rows)


#: The decision's fields `explain` prints in words, in this order: not the ones its first lines
#: say, nor the instants for machines (`*_us`, the gate's monotonic `mono_us`).
_EXPLAINED = tuple(
    key
    for key in (*DECISION_COLUMNS[1:9], "reference_price", *DECISION_COLUMNS[9:])
    if key not in ("order_id", "reason", "decision", "reason_code") and not key.endswith("_us")
)

#: Events of no account that can explain a decision: sources failing and recovering, ESS and
#: halts, the risk level, fail-closed moments, overrides, the journal, actors, config reloads.
#: (Deliveries of alerts, price marks, the config loaded at start, ... explain none.)
_EXPLAINING = frozenset({
    "source_failed", "source_recovered", "risk_v3_clock_skew", "risk_level_changed",
    "ess_changed", "ess_source_changed", "operator_halt", "operator_resume",
    "gate_fail_closed", "gate_recovered", "gate_state_resynced",
    "override_proposed", "override_approved", "override_revoked", "override_expired", "override_shared",
    "loss_limit_tripped", "lockout_clear_requested", "lockout_cleared",
    "baseline_store_lost", "baseline_from_future", "store_lost", "snapshot_unusable",
    "journal_failed", "journal_recovered", "journal_file_lost",
    "shared_store_failed", "shared_store_recovered", "shared_baselines_unavailable", "shared_baselines_recovered",
    "actor_died", "actor_restarted", "config_reload",
})  # fmt: skip
_CONTEXT_EVENTS = 10  # the events shown before each decision, the latest
_CONTEXT_SCAN = 2_000  # the events of the minute read to find them (price marks come by the hundred)


def _explains(event: dict[str, Any], row: dict[str, Any]) -> bool:
    """Whether a journal event helps explain `row`: the account's own, or one of no account that
    concerns every order (a halt, a source), its symbol (a spike pause) or this very order."""
    if event["account"] is not None:
        return bool(event["account"] == row["account"])  # another account's events explain nothing here
    kind = event["kind"]
    if kind == "price_spike_pause":
        return _detail(event["detail"]).get("symbol") in (None, row["symbol"])
    if kind == "reservations_expired":
        listed = _detail(event["detail"]).get("reservations")
        return isinstance(listed, list) and any(
            isinstance(r, dict) and r.get("order_id") == row["order_id"] for r in listed
        )
    return kind in _EXPLAINING


def explanations(path: Source, order_id: str) -> list[dict[str, Any]]:
    """Every decision on `order_id`, oldest first, each with all its inputs (`reference_price`
    where the row has it), the check that decided it (`decided_by`) and the latest events of the
    minute before that explain it (`events_in_the_minute_before`: see `_explains`)."""
    reader = _open(path)
    try:
        rows = reader.decisions(Query(order_id=order_id, limit=20))
        context = {
            id(row): reader.events(
                since_us=row["ts_us"] - 60_000_000,
                until_us=row["ts_us"] + 1,
                limit=_CONTEXT_SCAN,
                account=row["account"],
            )
            for row in rows
            if type(row["ts_us"]) is int
        }
    finally:
        reader.close()
    out = []
    for row in reversed(rows):  # oldest first
        if type(row["ts_us"]) is not int:  # a damaged row: no time to explain it from
            continue
        data = decision_json(row)
        if row.get("reference_price") is not None:
            data["reference_price"] = row["reference_price"]
        code = row["reason_code"]
        data["decided_by"] = DECIDED_BY.get(ReasonCode(code), "?") if code in ReasonCode.__members__ else "?"
        found = [e for e in context[id(row)] if _explains(e, row)][:_CONTEXT_EVENTS]  # newest first
        data["events_in_the_minute_before"] = [
            {"time": _iso_or_none(e["ts_us"]), "kind": e["kind"], "source": e["source"],
             "account": e["account"], **_detail(e["detail"])}
            for e in reversed(found)
        ]  # fmt: skip
        out.append(data)
    return out


def _shown(value: object, key: str = "") -> object:
    """A figure for people: ages in seconds to the millisecond (0.395), percentages to two
    decimals, anything else to 8 significant digits (0.30000000000000004 is 0.3); yes or no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, float):
        return value
    if key.endswith("_s"):
        return _trimmed(f"{value:.3f}")
    if key.endswith("_pct"):
        return _trimmed(f"{value:.2f}")
    return f"{value:.8g}"


def _trimmed(fixed: str) -> str:
    """'0.390' is 0.39, '-3.00' is -3 (and '-0.00' is 0)."""
    text = fixed.rstrip("0").rstrip(".") if "." in fixed else fixed
    return "0" if text in ("-0", "") else text


def _cut(text: str, width: int) -> str:
    """`text` within `width` characters, saying so when it was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def stats(path: Source, since: datetime | None, until: datetime | None, fmt: str, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # looked up now: sys.stdout may have been replaced since import
    reader = _open(path)
    try:
        rows = reader.stats(to_us(since) if since else None, to_us(until) if until else None)
    finally:
        reader.close()
    if fmt == "json":
        for row in rows:
            print(json.dumps(row), file=out)
        return len(rows)
    width = max([7, *(len(r["account"] or "") for r in rows)])
    print(f"{'account':<{width}}  {'decision':<10}  {'reason code':<28}  {'count':>7}", file=out)
    for r in rows:
        print(f"{(r['account'] or '-'):<{width}}  {r['decision']:<10}  {r['reason_code']:<28}  {r['n']:>7,}", file=out)
    print(f"{sum(r['n'] for r in rows):,} decision(s)", file=out)
    return len(rows)


def series(path: Path, now: datetime, span: str) -> dict[str, Any]:
    """Decisions per second in each bucket of `span` (a key of SERIES_RANGES) up to `now` (the
    gate's clock: the demo's simulated one too), from the journal: a restart keeps the history.
    `allow`, `scale_down`, `block` and the top block codes, and the halts begun or ended as marks.
    FileNotFoundError: no journal yet."""
    seconds, bucket = SERIES_RANGES[span]
    until_us = to_us(now) + 1
    since_us = until_us - seconds * 1_000_000
    reader = JournalReader(path)
    try:
        got = reader.series(since_us, until_us, bucket * 1_000_000)
    finally:
        reader.close()
    n = seconds // bucket
    per = {"allow": [0.0] * n, "scale_down": [0.0] * n, "block": [0.0] * n}
    codes: dict[str, list[float]] = {}
    totals: dict[str, int] = {}
    for b, decision, raw_code, count in got["counts"]:
        # The journal's columns take any value: a damaged row (a real time, no code) is counted
        # where it can be, never a crash.
        if type(b) is not int or not 0 <= b < n or decision not in per or type(count) is not int:
            continue
        code = raw_code if isinstance(raw_code, str) else "?"
        per[decision][b] += count / bucket
        if decision == "block":
            codes.setdefault(code, [0.0] * n)[b] += count / bucket
            totals[code] = totals.get(code, 0) + count
    top = sorted(totals, key=lambda c: (-totals[c], c))[:_TOP_CODES]
    blocks = {c: [round(v, 4) for v in codes[c]] for c in top}
    rest = [sum(codes[c][i] for c in totals if c not in top) for i in range(n)] if len(totals) > len(top) else None
    if rest is not None:
        blocks["other"] = [round(v, 4) for v in rest]
    return {
        "range": span,
        "bucket_s": bucket,
        "times": [(since_us + i * bucket * 1_000_000) / 1_000_000 for i in range(n)],
        "per_s": {k: [round(v, 4) for v in vs] for k, vs in per.items()},
        "blocks_by_code": blocks,
        "totals": {**{k: round(sum(v) * bucket) for k, v in per.items()}, "blocks_by_code": totals},
        "marks": _marks(got["marks"]),
    }


def _marks(events: list[tuple[int, str, str | None]]) -> list[dict[str, Any]]:
    """The halts begun and ended, once each: an ESS change that only the operator halt made (and
    the clear that ends it) is marked by the operator's halt and resume already; the first reading
    after a start is no change at all."""
    out = []
    operator_only = False
    for ts, kind, detail in events:
        if kind == "ess_changed":
            d = _detail(detail)
            if d.get("previous") is None:
                continue
            if d.get("active") is True:
                operator_only = str(d.get("reason") or "").startswith("operator_halt:")
                if operator_only:
                    continue
            elif operator_only:
                operator_only = False
                continue
        out.append(_mark(ts, kind, detail))
    return out


def _mark(ts_us: int, kind: str, detail: str | None) -> dict[str, Any]:
    """A halt begun or ended, for the chart: when, which, and a line for people."""
    d = _detail(detail)
    if kind == "ess_changed":
        active = d.get("active")
        what = "halt" if active is True else "clear" if active is False else "unknown"
        text = (
            f"ESS {'halted' if active is True else 'clear' if active is False else 'unknown'}: {d.get('reason') or ''}"
        )
    elif kind == "operator_halt":
        what = "reduce_only" if d.get("mode") == "reduce_only" else "halt"
        text = f"{'reduce-only' if what == 'reduce_only' else 'operator halt'} by {d.get('by')}: {d.get('reason')}"
    else:
        what = "clear"
        text = f"resumed by {d.get('by')}: {d.get('reason')}"
    return {"at": ts_us / 1_000_000, "kind": what, "text": text.strip().rstrip(":")[:300]}
