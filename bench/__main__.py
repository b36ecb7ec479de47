"""`python -m bench`: every benchmark side by side in one run; writes docs/benchmarks.md.

Never part of the test suite. Figures are this machine's, in this run.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    compiled,
    gate_latency,
    http_api,
    journal,
    memory,
    nautilus,
    original_design,
    prices,
    propagation,
    replay,
    scale,
    shared,
    throughput,
)
from bench.common import cpu_model, machine, pct
from supervisor.logs import configure_logging

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="samples per latency figure")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    ap.add_argument("--replay-n", type=int, default=1_000_000, help="decisions recorded and replayed (section 13)")
    args = ap.parse_args()
    configure_logging("console", level=logging.ERROR, stream=sys.stderr)
    gc.freeze()
    rows: list[tuple[str, str, str, str]] = []  # (measure, figure, target, verdict)

    def row(measure: str, figure: str, target: str = "", ok: bool | None = None) -> None:
        rows.append((measure, figure, target, "" if ok is None else ("met" if ok else "MISSED")))
        print(f"{measure:58} {figure:44} {target:28} {rows[-1][3]}", flush=True)

    print(f"machine: {machine()}\n")
    # 1. pure evaluation
    gate_latency.bench_pure(2_000)
    pure = gate_latency.bench_pure(args.n)
    row(
        "1. pure evaluation, 100 accounts",
        f"p50 {pct(pure, 0.5):.2f} µs, p99 {pct(pure, 0.99):.2f} µs",
        "p50 <= 15 µs",
        pct(pure, 0.5) <= 15,
    )
    # 2. evaluate vs bare ask, per regime
    for key, samples in gate_latency.pinned_regimes(args.n):
        name = gate_latency.REGIMES[key]
        bare, mine = samples["bare pykka ask (trivial handler)"], samples["RiskSupervisor.evaluate"]
        ratio = pct(mine, 0.5) / pct(bare, 0.5)
        row(
            f"2. evaluate vs bare pykka ask, {name}",
            f"{pct(mine, 0.5):.1f} / {pct(bare, 0.5):.1f} µs p50 = {ratio:.2f}x",
            "<= 1.3x",
            ratio <= 1.3,
        )
        row(
            "   evaluate p50 / p99 / p99.9", f"{pct(mine, 0.5):.1f} / {pct(mine, 0.99):.1f} / {pct(mine, 0.999):.1f} µs"
        )
        row(
            "   bare ask p50 / p99 / p99.9", f"{pct(bare, 0.5):.1f} / {pct(bare, 0.99):.1f} / {pct(bare, 0.999):.1f} µs"
        )
    # 3. throughput
    rates = throughput.run()
    for n, (rate, backlog) in rates.items():
        row(
            f"3. throughput, {n} caller thread{'s' if n > 1 else ''}",
            f"{rate:,.0f} decisions/s (journal backlog at the end {backlog:,})",
            ">= 25,000" if n == 4 else "",
            rate >= 25_000 if n == 4 else None,
        )
    sixteen, one = rates[16][0], rates[1][0]
    row(
        "3. throughput, 16 callers vs 1 (no collapse)",
        f"{sixteen:,.0f} vs {one:,.0f}/s = {sixteen / one:.2f}x",
        ">= 0.9x",
        sixteen / one >= 0.9,
    )
    # 4. original design
    cpus = sorted(os.sched_getaffinity(0))
    for name, pin in (("threads free", None), ("caller and gate on one core", {cpus[0]})):
        if pin:
            os.sched_setaffinity(0, pin)
        r = original_design.run()
        os.sched_setaffinity(0, set(cpus))
        row(
            f"4. per-order HTTP (original) vs riskgate, {name}",
            f"{r['original_p50']:.0f} vs {r['riskgate_p50']:.1f} µs p50 = {r['ratio_p50']:.1f}x",
            ">= 10x faster",
            r["ratio_p50"] >= 10,
        )
    # 5. ESS propagation
    p = propagation.run(trials=10)
    interval_ms = float(p["ess_poll_interval_s"]) * 1000  # type: ignore[arg-type]
    for key, label in (("kill_switch_ms", "kill-switch file"), ("http_ms", "ESS HTTP flipped")):
        v = p[key]  # type: ignore[index]
        row(
            f"5. ESS propagation: {label} -> first block",
            f"mean {sum(v) / len(v):.0f} ms, max {max(v):.0f} ms (poll {interval_ms:.0f} ms)",
            f"max <= {interval_ms + 5:.0f} ms",
            max(v) <= interval_ms + 5,
        )
    # 6. scale
    small, large = scale.run()
    ratio = large["p50_us"] / small["p50_us"]
    row(
        "6. evaluate p50, 10,000 vs 10 accounts (one core)",
        f"{large['p50_us']:.1f} vs {small['p50_us']:.1f} µs = {ratio:.2f}x",
        "<= 1.2x",
        ratio <= 1.2,
    )
    row(
        "   process RSS, 10,000 / 10 accounts",
        f"{large['rss_mb']:.0f} / {small['rss_mb']:.0f} MB",
        "< 150 MB",
        large["rss_mb"] < 150,
    )
    # 8. the journal
    bva = journal.block_vs_allow(args.n)
    ratio = bva["block_p50"] / bva["allow_p50"]
    row(
        "8. evaluate p50, blocked vs allowed order (one core)",
        f"{bva['block_p50']:.1f} vs {bva['allow_p50']:.1f} µs = {ratio:.2f}x",
        "<= 1.1x",
        ratio <= 1.1,
    )
    oo = journal.on_vs_off(args.n)
    ratio = oo["on_p50"] / oo["off_p50"]
    row(
        "8. evaluate p50, journal on vs off (one core)",
        f"{oo['on_p50']:.1f} vs {oo['off_p50']:.1f} µs = {ratio:.2f}x",
        "<= 1.1x",
        ratio <= 1.1,
    )
    for callers in (1, 4):
        d = journal.durability(3.0, callers)
        b, c = d["batch"], d["commit"]
        row(
            f"8. durability batch vs commit, approved orders, {callers} caller(s)",
            f"p50 {b['p50']:.0f} vs {c['p50']:.0f} µs, p99 {b['p99']:.0f} vs {c['p99']:.0f} µs;"
            f" {b['rate']:,.0f} vs {c['rate']:,.0f}/s",
        )
    s = journal.sustained(60.0)
    keeps_up = s["backlog_second_half_max"] <= max(2 * s["backlog_first_half_max"], 5_000) and s["dropped"] == 0
    row(
        "8. journal at full speed for 60 s, 4 callers",
        f"{s['rate']:,.0f} decisions/s; backlog max {s['backlog_max']:,.0f}"
        f" (1st half {s['backlog_first_half_max']:,.0f}, 2nd {s['backlog_second_half_max']:,.0f});"
        f" {s['written']:,.0f} written, {s['dropped']:,.0f} dropped",
        "no growing backlog",
        keeps_up,
    )
    row(
        "   process RSS at 0 / 30 / 60 s (30 s of reservations held)",
        f"{s['rss_start']:.0f} / {s['rss_half']:.0f} / {s['rss_end']:.0f} MB",
        "flat after 30 s (within 10%)",
        s["rss_end"] <= s["rss_half"] * 1.1,
    )
    # 9. the HTTP API, and metrics
    h = http_api.http_vs_original()
    row(
        "9. POST /v1/evaluate (API) vs per-order GET, stdlib simulator",
        f"{h['http_p50']:.0f} vs {h['original_p50']:.0f} µs p50 = {h['ratio_p50']:.2f}x; "
        f"p99 {h['http_p99']:.0f} vs {h['original_p99']:.0f} µs",
        ">= 2x faster",
        h["ratio_p50"] >= 2,
    )
    row(
        "9. POST /v1/evaluate (API) vs per-order GET, FastAPI Risk v3",
        f"{h['http_p50']:.0f} vs {h['original_fastapi_p50']:.0f} µs p50 = {h['ratio_fastapi_p50']:.2f}x; "
        f"p99 {h['http_p99']:.0f} vs {h['original_fastapi_p99']:.0f} µs",
        ">= 2x faster",
        h["ratio_fastapi_p50"] >= 2,
    )
    row(
        "9. POST /v1/evaluate vs GET /healthz (the listener's floor)",
        f"{h['http_p50']:.0f} vs {h['floor_p50']:.0f} µs p50 = {h['ratio_floor_p50']:.2f}x",
        "<= 1.5x",
        h["ratio_floor_p50"] <= 1.5,
    )
    row(
        "9. the order socket (Unix, persistent) vs per-order GET, FastAPI Risk v3",
        f"{h['socket_p50']:.0f} vs {h['original_fastapi_p50']:.0f} µs p50 = {h['socket_fastapi_p50']:.2f}x; "
        f"p99 {h['socket_p99']:.0f} µs; vs GET /healthz {h['socket_floor_p50']:.2f}x",
        ">= 2x faster",
        h["socket_fastapi_p50"] >= 2,
    )
    row(
        f"9. POST /v1/evaluate pipelined ({http_api.PIPELINE_DEPTH} per write, one connection) vs per-order GET,"
        " FastAPI Risk v3",
        f"{h['pipelined_p50']:.0f} µs per order vs {h['original_fastapi_p50']:.0f} µs p50 ="
        f" {h['pipelined_fastapi_p50']:.2f}x (one at a time: {h['http_p50']:.0f} µs)",
        "(an alternative, measured)",
    )
    m = http_api.metrics_on_vs_off(args.n)
    ratio = m["on_p50"] / m["off_p50"]
    row(
        "9. evaluate p50, metrics on vs off (one core)",
        f"{m['on_p50']:.1f} vs {m['off_p50']:.1f} µs = {ratio:.3f}x",
        "<= 1.05x",
        ratio <= 1.05,
    )
    # 10. several instances on one PostgreSQL (docs/scale-out.md)
    several = shared.run(args.n)
    if isinstance(several, str):
        row("10. several instances (PostgreSQL)", f"skipped: {several}")
    else:
        lat = several["latency"]
        ratio = lat["postgresql_p50"] / lat["sqlite_p50"]
        row(
            "10. evaluate p50, postgresql vs sqlite backend (one core)",
            f"{lat['postgresql_p50']:.1f} vs {lat['sqlite_p50']:.1f} µs = {ratio:.2f}x; p99 "
            f"{lat['postgresql_p99']:.1f} vs {lat['sqlite_p99']:.1f} µs",
            "<= 1.1x",
            ratio <= 1.1,
        )
        tp = several["throughput"]
        ratio = tp["two"] / tp["one"]
        row(
            "10. decisions/s, 2 instances (processes) on one cap vs 1",
            f"{tp['two']:,.0f} vs {tp['one']:,.0f}/s = {ratio:.2f}x (allowed: {tp['two_allowed']:,.0f} vs "
            f"{tp['one_allowed']:,.0f}/s)",
            ">= 1.7x",
            ratio >= 1.7,
        )
        tp = several["throughput_no_journal"]
        ratio = tp["two"] / tp["one"]
        row(
            "10. the same without the journal's writer process (one process per instance)",
            f"{tp['two']:,.0f} vs {tp['one']:,.0f}/s = {ratio:.2f}x",
            ">= 1.7x",
            ratio >= 1.7,
        )
        halt = several["halt_ms"]
        row(
            "10. halt through instance A -> first block on B (50 tries)",
            f"mean {sum(halt) / len(halt):.0f} ms, max {max(halt):.0f} ms",
            "max <= 1000 ms",
            max(halt) <= 1000,
        )
        b = several["budget"]
        row(
            "10. instance killed holding the cap -> survivor uses it",
            f"{b['seconds']:.2f} s (lease TTL {b['ttl_s']:g} s, rounds every {b['renewal_s']:g} s)",
            "<= TTL + one round",
            b["seconds"] <= b["ttl_s"] + b["renewal_s"] + 0.05,
        )
    # 11. the price reference (docs/prices.md): pure evaluation with a prices source vs without
    prices.run(2_000)
    with_and_without = prices.run(args.n)
    off, on = with_and_without["no prices source"], with_and_without["with a prices source"]
    added = pct(on, 0.5) - pct(off, 0.5)
    row(
        "11. pure evaluation p50, with a prices source vs without",
        f"{pct(on, 0.5):.2f} vs {pct(off, 0.5):.2f} µs = {added:+.2f} µs"
        f" (p99 {pct(on, 0.99):.1f} vs {pct(off, 0.99):.1f})",
        "<= +0.5 µs",
        added <= 0.5,
    )
    # 12. memory per reservation held, and after they expire (two waves, each in a process of its own)
    for r in memory.run((100_000,)):
        for w in (1, 2):
            row(
                f"12. {int(r['n']):,} reservations held, wave {w}",
                f"{r[f'w{w}_py_per']:.0f} B each (Python), {r[f'w{w}_rss_per']:.0f} B (RSS); after expiry "
                f"{r[f'w{w}_py_after_kb'] / 1024:.1f} MB (Python), {r[f'w{w}_rss_after_kb'] / 1024:.0f} MB (RSS)",
            )
    # 13. what-if replay (docs/replay.md): a recorded journal decided again, 1,000,000 decisions
    kept = Path(tempfile.mkdtemp(prefix="riskgate-bench-replay-"))  # the (2, 2) journal, for the compiled core
    for exchanges, workers in ((1, 1), (2, 2)):
        # Each in a process of its own, as `riskgate replay` runs (replay.run_alone says why).
        rp = replay.run_alone(args.replay_n, exchanges, workers, keep=kept if workers == 2 else None)
        row(
            f"13. replay {rp['n']:,} decisions, {exchanges} exchange(s), {workers} process(es)",
            f"{rp['same_s']:.1f} s under the live config ({rp['same_changed']} changed), {rp['strict_s']:.1f} s "
            f"under a stricter one ({rp['strict_changed']:,} changed); recorded in {rp['recorded_s']:.0f} s, "
            f"journal {rp['journal_mb']:.0f} MB",
            "<= 60 s, 0 changed",
            rp["same_s"] <= 60 and rp["same_changed"] == 0,
        )
    # 14. the shadow config: evaluate p50 with a shadow on vs off, interleaved rounds
    sh = replay.shadow_on_vs_off(args.n)
    ratio = sh["on_p50"] / sh["off_p50"]
    row(
        "14. evaluate p50, shadow config on vs off",
        f"{sh['on_p50']:.1f} vs {sh['off_p50']:.1f} µs = {ratio:.2f}x (the shadow decided "
        f"{sh['shadow_decided']:,}, {sh['shadow_disagreements']:,} otherwise)",
        "<= 1.05x",
        ratio <= 1.05,
    )
    # 7. NautilusTrader, our pure core (allowed and blocked) and the optional compiled one
    blocked = gate_latency.bench_pure(args.n, blocked=True)
    row("7. our pure evaluation, allowed order", f"p50 {pct(pure, 0.5):.2f} µs, p99 {pct(pure, 0.99):.2f} µs")
    row("7. our pure evaluation, blocked order", f"p50 {pct(blocked, 0.5):.2f} µs, p99 {pct(blocked, 0.99):.2f} µs")
    built = compiled.run(args.n, replay=(kept, 2, 2))
    shutil.rmtree(kept, ignore_errors=True)
    if isinstance(built, str):
        print(f"7. compiled core: skipped ({built})")
        row("7. compiled core (mypyc, RISKGATE_COMPILE=1)", f"skipped: {built}")
    else:
        for kind in ("allowed", "blocked"):
            row(
                f"7. compiled core (mypyc), {kind} order",
                f"p50 {built[kind + '_p50']:.2f} µs, p99 {built[kind + '_p99']:.2f} µs",
            )
        if "replay_s" in built:
            row(
                f"13. (compiled core) replay {int(built['replay_total']):,} decisions, 2 exchanges, 2 processes",
                f"{built['replay_s']:.1f} s under the live config ({int(built['replay_changed'])} changed; "
                "the same journal as section 13's)",
                "<= 60 s, 0 changed",
                built["replay_s"] <= 60 and built["replay_changed"] == 0,
            )
        for key, name in gate_latency.REGIMES.items():
            if key + "_evaluate_p50" in built:
                mine, bare = built[key + "_evaluate_p50"], built[key + "_ask_p50"]
                row(
                    f"2. (compiled core) evaluate vs bare pykka ask, {name}",
                    f"{mine:.1f} / {bare:.1f} µs p50 = {mine / bare:.2f}x",
                    "<= 1.3x",
                    mine / bare <= 1.3,
                )
        row(
            "3. (compiled core) throughput, 4 caller threads",
            f"{built['throughput_4']:,.0f} decisions/s (journal backlog at the end {built['backlog_4']:,.0f})",
            ">= 25,000",
            built["throughput_4"] >= 25_000,
        )
    if nautilus.available():
        nt = nautilus.run()
        row(
            "7. NautilusTrader RiskEngine.execute(SubmitOrder)", f"p50 {nt['p50_us']:.2f} µs, p99 {nt['p99_us']:.2f} µs"
        )
        target = nt["p50_us"]
        row(
            "   our pure core, allowed / blocked",
            f"{pct(pure, 0.5) / target:.2f}x / {pct(blocked, 0.5) / target:.2f}x its p50",
            "<= 1x",
            max(pct(pure, 0.5), pct(blocked, 0.5)) <= target,
        )
        if not isinstance(built, str):
            worst = max(built["allowed_p50"], built["blocked_p50"])
            row(
                "   compiled core, allowed / blocked",
                f"{built['allowed_p50'] / target:.2f}x / {built['blocked_p50'] / target:.2f}x its p50",
                "<= 1x",
                worst <= target,
            )
    else:
        print("7. NautilusTrader: skipped (nautilus_trader is not installed; pip install nautilus_trader)")
        row("7. NautilusTrader RiskEngine", "skipped: nautilus_trader not installed")
    if not args.no_write:
        write(rows)
    return 0


def write(rows: list[tuple[str, str, str, str]]) -> None:
    """docs/benchmarks.md: this run's table, the latest run of every other CPU kind seen (each kept
    in docs/benchmark-runs/, this one's replaced), then bench/NOTES.md."""
    cpu = cpu_model()
    when = f"Run: `.venv/bin/python -m bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    table = [
        "| measure | figure | target | |",
        "|---|---|---|---|",
        *(f"| {m.strip()} | {f} | {t} | {v} |" for m, f, t, v in rows),
    ]
    runs = ROOT / "docs" / "benchmark-runs"
    runs.mkdir(parents=True, exist_ok=True)
    mine = runs / f"{_slug(cpu)}.md"
    mine.write_text("\n".join([f"# The latest run on {cpu}", "", when, f"Machine: {machine()}.", "", *table, ""]))
    others = sorted(p for p in runs.glob("*.md") if p != mine)
    lines = [
        "# Benchmarks",
        "",
        when,
        f"Machine: {machine()}. **Every figure in this table is from this CPU ({cpu}).**",
        "",
        "All figures come from one run of that command; comparisons are measured side by side in it",
        "(interleaved rounds where both sides are latencies). Never part of the test suite.",
        "",
        *table,
        "",
        "## The latest run on each CPU kind",
        "",
        "Times differ between CPU kinds (compare ratios, not times); each kind keeps its latest full run:",
        "",
        f"- {cpu}: the table above ([its copy](benchmark-runs/{mine.name}))",
        *(f"- {_title(p)}: [benchmark-runs/{p.name}](benchmark-runs/{p.name})" for p in others),
        "",
    ]
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text().strip(), ""]
    (ROOT / "docs" / "benchmarks.md").write_text("\n".join(lines))
    print(f"\nwrote {ROOT / 'docs' / 'benchmarks.md'}")


def _slug(cpu: str) -> str:
    """A file name for a CPU model: "Intel(R) Xeon(R) Processor" -> "intel-xeon-processor"."""
    words = cpu.replace("(R)", " ").replace("(TM)", " ").replace("(tm)", " ").lower().split()
    return "-".join("".join(c for c in w if c.isalnum()) for w in words if any(c.isalnum() for c in w)) or "unknown"


def _title(run: Path) -> str:
    """A kept run's CPU and date, from its first lines."""
    head = run.read_text().splitlines()[:3]
    cpu = head[0].removeprefix("# The latest run on ") if head else run.stem
    date = head[2].split(" on ", 1)[-1].rstrip(".") if len(head) > 2 else "?"
    return f"{cpu} ({date})"


if __name__ == "__main__":
    sys.exit(main())
