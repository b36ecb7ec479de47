"""Probe 8: exposure at the mark (one sum per (symbol, exchange), docs/prices.md).

Each test fails on a problem seen. No sleeps: FakeClock. The gate itself (`Gate`) is driven
where its message handlers matter (_on_prices, _on_account, _on_config); the GateState otherwise.
"""

from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from supervisor.channels.ess_board import EssBoard
from supervisor.clock import FakeClock
from supervisor.core.gate_state import UNITS_PER_USD as USD
from supervisor.core.gate_state import GateState, to_units
from supervisor.core.messages import (
    AccountState,
    ConfigChanged,
    EssSourceStatus,
    EssState,
    EvaluateOrder,
    Position,
    PriceSnapshot,
)
from supervisor.core.orders import validate_order
from supervisor.gate import Gate
from tests.helpers import account_state, make_config, order, signal

RICH = 1e9
PRICES = {"url": "http://127.0.0.1:9", "max_age_s": 5.0}
# No account cap; the exchange binance is capped at 200,000 USD (tests/helpers.BASE).
CFG = make_config(accounts={"main": {"exchange": "binance", "capital_profile": "aggressive"}}, prices=PRICES)


def _gate(clock: FakeClock, cfg=CFG) -> Gate:
    board = EssBoard()
    board.publish(EssState.combine((EssSourceStatus("t", False, "clear"),)), clock.monotonic())
    gate = Gate(cfg, clock, board)
    gate.open("t")
    gate._board_for_tests = board  # type: ignore[attr-defined]
    return gate


def _refresh_sources(gate: Gate, clock: FakeClock) -> None:
    """ESS and Risk v3 fresh now (their max ages are 3 s and 10 s)."""
    gate._board_for_tests.publish(  # type: ignore[attr-defined]
        EssState.combine((EssSourceStatus("t", False, "clear"),)), clock.monotonic()
    )
    gate.post(signal("INFO", clock.now()), clock.monotonic())


def _prices(gate: Gate, clock: FakeClock, age_s: float = 0.0, dropped: tuple[str, ...] = (), **prices: float) -> None:
    gate.post(PriceSnapshot(clock.now() - timedelta(seconds=age_s), prices, dropped), clock.monotonic())


def _decide(gate: Gate, cfg, **fields):
    valid = validate_order(order(**fields), cfg)
    assert not isinstance(valid, str), valid
    return gate.decide(EvaluateOrder(valid, config=cfg), wait=1.0)


def _exchange_usd(gate: Gate, clock: FakeClock, exchange: str = "binance") -> float:
    gate.tick()
    return gate._state.exchange_units_at_mark(exchange, clock.monotonic()) / USD


def _book_usd(gate: Gate, clock: FakeClock, account: str = "main") -> float:
    st = gate._state
    return st.book_units_at_mark(st.books[account], clock.monotonic()) / USD


HELD = (Position("SOLUSDT", "binance", 1_000.0, 100.0), Position("BTCUSDT", "binance", 1.0, 60_000.0))


# 1. The exchange's uplift is kept with ONE validity, the first of its prices to age
#    (GateState.revalue: until = min over symbols). When that price ages, every other fresh
#    symbol's uplift on the exchange goes too: the exchange falls back to the snapshots' marks
#    for all its symbols until the next price or position change. With the source silent that
#    lasts up to max_age_s. The account's own valuation (book_units_at_mark) keeps it.


def test_one_price_ageing_does_not_drop_another_fresh_symbols_uplift_on_the_exchange():
    clock = FakeClock()
    gate = _gate(clock)
    gate.post(account_state(equity=RICH, positions=HELD), clock.monotonic())
    _prices(gate, clock, BTCUSDT=66_000.0)  # fresh until t=5
    clock.advance(3.0)
    _prices(gate, clock, SOLUSDT=150.0)  # fresh until t=8; the source then says nothing
    clock.advance(3.0)  # t=6: BTC stale (counts at its snapshot mark 60,000), SOL fresh at 150
    _refresh_sources(gate, clock)
    # SOL 1,000 x 150 + BTC 1 x 60,000 = 210,000 (the account's own valuation says so).
    assert _book_usd(gate, clock) == 210_000.0
    assert _exchange_usd(gate, clock) == 210_000.0, "the exchange lost SOL's uplift when BTC's price aged"


def test_an_order_beyond_the_exchange_cap_is_allowed_once_another_symbols_price_ages():
    clock = FakeClock()
    gate = _gate(clock)
    gate.post(account_state(equity=RICH, positions=HELD), clock.monotonic())
    _prices(gate, clock, BTCUSDT=66_000.0)
    clock.advance(3.0)
    _prices(gate, clock, SOLUSDT=150.0)
    clock.advance(3.0)
    _refresh_sources(gate, clock)
    # Already 210,000 at the mark on binance (cap 200,000): 10 SOL more (1,500) must not pass.
    r = _decide(gate, CFG, symbol="SOLUSDT", quantity=10.0, price=150.0, order_id="over")
    assert r.decision == "block", (
        f"beyond the exchange cap of 200,000 (210,000 held at the mark): {r.decision} ({r.reason})"
    )


# 2. A reload of prices.max_age_s: PriceBook.reconfigure moves every held price's fresh_until
#    (and the version, so the account valuation follows), but Gate._on_config never revalues
#    the exchange sums: their uplift keeps the validity computed for the old max_age_s. Raised
#    from 5 s to 60 s, the exchange drops its uplift at the old 5 s while the price is fresh.


def test_a_reload_raising_prices_max_age_s_keeps_the_exchange_valued_at_the_fresh_mark():
    clock = FakeClock()
    gate = _gate(clock)
    gate.post(
        account_state(equity=RICH, positions=(Position("SOLUSDT", "binance", 1_000.0, 100.0),)), clock.monotonic()
    )
    _prices(gate, clock, SOLUSDT=250.0)
    longer = make_config(
        accounts={"main": {"exchange": "binance", "capital_profile": "aggressive"}},
        prices={**PRICES, "max_age_s": 60.0},
    )
    gate.post(ConfigChanged(longer), clock.monotonic())
    clock.advance(10.0)  # the price is fresh for 60 s now
    _refresh_sources(gate, clock)
    assert _book_usd(gate, clock) == 250_000.0
    held = _exchange_usd(gate, clock)
    # 250,000 held at the fresh mark on binance (cap 200,000): nothing more may open.
    r = _decide(gate, longer, symbol="SOLUSDT", quantity=10.0, price=250.0, order_id="after-reload")
    assert (held, r.decision) == (250_000.0, "block"), (
        f"the exchange kept the old max_age_s's validity: binance at {held:,.0f},"
        f" 10 SOL more: {r.decision} ({r.reason})"
    )


# 3. A fill-moved state (refreshed=False): GateState.put_account keeps the last snapshot's
#    `received` for the book and passes that OLD time to _take_part -> revalue as "now". Prices
#    that were fresh then and are stale now are counted, with their (past) validity as the
#    exchange's, so at the real now the whole uplift is dropped, the fresh symbols' included.


def test_a_fill_moved_state_revalues_the_exchange_at_the_time_it_arrives_not_at_the_last_snapshots():
    clock = FakeClock()
    gate = _gate(clock)
    gate.post(account_state(equity=RICH, positions=HELD), clock.monotonic())  # t=0
    _prices(gate, clock, BTCUSDT=66_000.0)  # fresh until t=5
    clock.advance(6.0)
    _prices(gate, clock, SOLUSDT=150.0)  # t=6: fresh until t=11; BTC stale
    _refresh_sources(gate, clock)
    assert _exchange_usd(gate, clock) == 210_000.0  # right here: SOL at 150, BTC at its snapshot's mark
    clock.advance(1.0)  # t=7: a fill adds 1 SOL (positions moved, equity not refreshed)
    moved = (Position("SOLUSDT", "binance", 1_001.0, 100.0), Position("BTCUSDT", "binance", 1.0, 60_000.0))
    gate.post(AccountState("main", RICH, moved, RICH, RICH, refreshed=False), clock.monotonic())
    assert _book_usd(gate, clock) == 210_150.0
    held = _exchange_usd(gate, clock)
    r = _decide(gate, CFG, symbol="SOLUSDT", quantity=10.0, price=150.0, order_id="after-fill")
    assert (held, r.decision) == (210_150.0, "block"), (
        f"revalued at the last snapshot's time (t=0, BTC fresh then, so the uplift's validity is t=5): binance at "
        f"{held:,.0f}, 10 SOL more: {r.decision} ({r.reason})"
    )


# 4. A prices answer that only drops symbols (every price unusable) is refused as a whole
#    (`why` not empty), and Gate._on_prices revalues only when something was taken: the exchange
#    keeps the dropped price's uplift until it would have aged, while the account's valuation
#    (PriceBook.version moved) drops it at once. Over-valued (false refusals), and the state API
#    shows an exchange figure no account adds up to.


def test_a_dropped_price_leaves_the_exchange_sum_at_once_as_it_leaves_the_account():
    clock = FakeClock()
    gate = _gate(clock)
    gate.post(
        account_state(equity=RICH, positions=(Position("SOLUSDT", "binance", 1_000.0, 100.0),)), clock.monotonic()
    )
    _prices(gate, clock, SOLUSDT=150.0)
    clock.advance(1.0)
    _prices(gate, clock, dropped=("SOLUSDT",))  # the source priced it unusably: no longer a reference
    assert _book_usd(gate, clock) == 100_000.0
    assert _exchange_usd(gate, clock) == 100_000.0, "the exchange still values SOL at its dropped price"


# 5. The exchange sum values each (symbol, exchange) at max(sum of snapshot notionals,
#    sum |q| x fresh mark): accounts holding one symbol at different snapshot marks net
#    against each other. The docs say each open position is valued at the higher of its
#    snapshot's mark and the fresh mark; the accounts' own valuations (book_units_at_mark,
#    /v1/state) do that, and the exchange comes out BELOW the sum of its accounts.
#    (Design-level: the one-sum-per-key aggregation cannot give the per-position max.)


def test_an_exchange_is_valued_at_the_higher_of_its_two_totals_per_symbol():
    """The probe asked for the sum of the accounts' own valuations (220,000); one sum per symbol
    and exchange values them at the higher of the snapshots' total and the fresh mark's total
    (docs/prices.md): never below either, netting one account's mark against another's."""
    clock = FakeClock()
    st = GateState()
    now = clock.monotonic()
    st.put_account(account_state("a", RICH, (Position("SOLUSDT", "binance", 1_000.0, 120.0),)), now)
    st.put_account(account_state("b", RICH, (Position("SOLUSDT", "binance", 1_000.0, 80.0),)), now)
    st.prices.apply(PriceSnapshot(clock.now(), {"SOLUSDT": 100.0}), now, clock.now(), CFG.prices)
    st.revalue({"binance"}, now)
    accounts = sum(st.book_units_at_mark(b, now) for b in st.books.values()) / USD
    assert accounts == 220_000.0  # a: 120,000 (its snapshot's mark), b: 100,000 (the fresh mark)
    assert st.exchange_units_at_mark("binance", now) / USD == max(120_000.0 + 80_000.0, 2_000 * 100.0)


# 6. A random run against the brute force, aggregated as the implementation legitimately
#    aggregates: per exchange, every book's gross units at its snapshots' marks (an unusable
#    book keeps its previous exposure, without uplift) plus, per (symbol, exchange) of usable
#    books, max(0, to_units(sum |q| x fresh price) - sum of to_units(|q| x snapshot mark)).
#    The exchange must never be below that (over-valuation is tolerated here).

SYMS = ["SOLUSDT", "BTCUSDT", "ETHUSDT", "NOTCONFIGURED"]
EXS = ["binance", "bybit"]
MARKS = hs.sampled_from([50.0, 100.0, 150.0, 200.0])
POS = hs.builds(
    Position, hs.sampled_from(SYMS), hs.sampled_from(EXS), hs.sampled_from([-2.0, -1.0, 0.0, 0.5, 3.0]), MARKS
)
CFGS = {a: make_config(prices={**PRICES, "max_age_s": a}) for a in (2.0, 5.0, 20.0)}
OPS = hs.lists(
    hs.one_of(
        hs.tuples(hs.sampled_from(["snap", "fill", "bad"]), hs.sampled_from("abc"), hs.lists(POS, max_size=4)),
        hs.tuples(
            hs.just("prices"), hs.dictionaries(hs.sampled_from(SYMS), MARKS, max_size=3), hs.sampled_from([0.0, 3.0])
        ),
        hs.tuples(hs.just("wait"), hs.sampled_from([1.0, 2.5, 6.0]), hs.none()),
        hs.tuples(hs.just("reload"), hs.sampled_from([2.0, 5.0, 20.0]), hs.none()),
    ),
    max_size=25,
)


def _brute(st: GateState, now: float) -> dict[str, int]:
    out: dict[str, int] = {}
    agg: dict[tuple[str, str], tuple[float, int]] = {}
    for b in st.books.values():
        for ex, units in b.gross_units_by_exchange.items():
            out[ex] = out.get(ex, 0) + units
        if b.usable:
            for p in b.state.positions:
                if p.quantity:
                    q, u = agg.get((p.symbol, p.exchange), (0.0, 0))
                    agg[(p.symbol, p.exchange)] = (q + abs(p.quantity), u + to_units(abs(p.quantity) * p.mark_price))
    for (sym, ex), (q, u) in agg.items():
        ref = st.prices.symbols.get(sym)
        if ref is not None and now <= ref.fresh_until:
            out[ex] = out.get(ex, 0) + max(0, to_units(q * ref.price) - u)
    return out


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(OPS)
def test_the_exchange_sums_never_fall_below_the_books_valued_at_the_fresh_marks(ops):
    clock = FakeClock()
    cfg = CFGS[5.0]
    gate = Gate(cfg, clock, EssBoard())
    gate.open("t")
    for kind, a, b in ops:
        if kind in ("snap", "fill", "bad"):
            eq = math.nan if kind == "bad" else RICH
            gate.post(AccountState(a, eq, tuple(b), RICH, RICH, refreshed=kind != "fill"), clock.monotonic())
        elif kind == "prices":
            _prices(gate, clock, age_s=b, **a)
        elif kind == "wait":
            clock.advance(a)
        else:
            cfg = CFGS[a]
            gate.post(ConfigChanged(cfg), clock.monotonic())
        gate.tick()
        st, now = gate._state, clock.monotonic()
        want = _brute(st, now)
        for ex in EXS:
            got = st.exchange_units_at_mark(ex, now)
            assert got >= want.get(ex, 0) - 2, (ex, got / USD, want.get(ex, 0) / USD, "after", ops)
