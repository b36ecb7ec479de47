"""Issue 22, item 3 (and the fill-price reference): the collar trusted the caller.

An account holding no ETH could sell ETH at 30 with `reference_price: 30` while
the gate held a mark of 3,000 from another account on the same exchange; and
any client's fill price became the collar reference for every account, for
ever. Now every account's fresh mark is a reference (marks that disagree hold
an order to the stricter side), a fill's price counts only near the marks and
expires like other state, and a price the fill itself brought in (a new
position's "mark") is not a reference.
"""

from __future__ import annotations

from supervisor import AccountSnapshot, Fill, Position
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import order, signal

ETH = {"symbol": "ETHUSDT", "quantity": 1.0}


def feed(sup, *, tiny_eth_mark: float | None = 3_000.0) -> None:
    sup.report_ess_active(False)
    sup.report_risk_signal(signal("INFO", sup.clock.now()))
    sup.report_account_snapshot(AccountSnapshot("main", 100_000.0))
    sup.report_account_snapshot(AccountSnapshot("bold", 100_000.0))
    positions = () if tiny_eth_mark is None else (Position("ETHUSDT", "binance", 0.5, tiny_eth_mark),)
    sup.report_account_snapshot(AccountSnapshot("tiny", 100_000.0, positions))


def test_another_accounts_mark_is_the_reference_and_a_far_claim_is_refused(sup_plain):
    feed(sup_plain)
    r = sup_plain.evaluate(order(side="sell", price=30.0, reference_price=30.0, **ETH))
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR and "3000" in r.reason
    r = sup_plain.evaluate(order(side="sell", price=30.0, **ETH))  # no claim: the mark alone
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR
    assert sup_plain.evaluate(order(side="sell", price=2_990.0, reference_price=3_000.0, **ETH)).allowed


def test_a_mark_on_another_exchange_is_not_this_exchanges_reference(sup_plain):
    feed(sup_plain)
    r = sup_plain.evaluate(order(account="bold", exchange="bybit", side="sell", price=30.0, reference_price=30.0,
                                 **ETH))  # fmt: skip
    assert r.reason_code is not RC.PRICE_OUT_OF_COLLAR


def test_marks_that_disagree_hold_an_order_to_the_stricter_side(sup_plain, clock):
    feed(sup_plain)
    clock.advance(5.0)
    sup_plain.report_ess_active(False)
    sup_plain.report_risk_signal(signal("INFO", sup_plain.clock.now()))
    sup_plain.report_account_snapshot(
        AccountSnapshot("main", 100_000.0, (Position("ETHUSDT", "binance", 0.1, 2_000.0),))
    )
    assert sup_plain.evaluate(order(price=2_100.0, **ETH)).allowed  # a buy: within 10% above the lowest (2,000)
    assert sup_plain.evaluate(order(price=2_300.0, **ETH)).reason_code is RC.PRICE_OUT_OF_COLLAR
    sell = sup_plain.evaluate(order(side="sell", price=2_500.0, **ETH))  # a sell: within 10% below the highest
    assert sell.reason_code is RC.PRICE_OUT_OF_COLLAR and "3000" in sell.reason


def test_a_fill_price_far_from_the_mark_never_becomes_anyones_reference(sup_plain, clock):
    feed(sup_plain)
    clock.advance(50.0)
    sup_plain.report_fill(Fill("main", "binance", "ETHUSDT", "sell", 0.01, 30.0))  # a client's word
    sup_plain.health()
    clock.advance(11.0)  # tiny's mark is now past accounts.max_age_s (60 s); refresh the others
    sup_plain.report_ess_active(False)
    sup_plain.report_risk_signal(signal("INFO", sup_plain.clock.now()))
    sup_plain.report_account_snapshot(AccountSnapshot("main", 100_000.0))
    r = sup_plain.evaluate(order(price=3_000.0, **ETH))
    assert r.reason_code is not RC.PRICE_OUT_OF_COLLAR, r.reason  # 30 was never a reference


def test_a_fill_price_near_the_mark_is_a_reference_until_it_ages_out(sup_plain, clock):
    feed(sup_plain)
    clock.advance(50.0)
    sup_plain.report_fill(Fill("main", "binance", "ETHUSDT", "buy", 0.01, 3_100.0))
    sup_plain.health()  # an ask: the gate has taken the fill before the clock moves on
    clock.advance(11.0)
    sup_plain.report_ess_active(False)
    sup_plain.report_risk_signal(signal("INFO", sup_plain.clock.now()))
    sup_plain.report_account_snapshot(AccountSnapshot("main", 100_000.0))
    r = sup_plain.evaluate(order(account="main", price=3_500.0, reference_price=3_500.0, **ETH))
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR and "3100" in r.reason
    clock.advance(60.0)
    sup_plain.report_ess_active(False)
    sup_plain.report_risk_signal(signal("INFO", sup_plain.clock.now()))
    sup_plain.report_account_snapshot(AccountSnapshot("main", 100_000.0))
    r = sup_plain.evaluate(order(account="main", price=3_500.0, reference_price=3_500.0, **ETH))
    assert r.reason_code is not RC.PRICE_OUT_OF_COLLAR, r.reason  # the fill's price aged out


def test_a_position_a_fill_opened_does_not_make_the_fill_price_a_mark(sup_plain):
    feed(sup_plain, tiny_eth_mark=None)
    sup_plain.report_fill(Fill("main", "binance", "BTCUSDT", "buy", 0.001, 1.0))  # opens BTC "at 1 USD"
    r = sup_plain.evaluate(order(symbol="BTCUSDT", price=65_000.0, quantity=0.001))
    assert r.reason_code is not RC.PRICE_OUT_OF_COLLAR, r.reason


def test_one_accounts_snapshot_cannot_move_another_accounts_collar(sup_plain):
    """A second probe: a client pushing its own account's snapshot with a far mark let
    another account buy ETH at 29,000 with the market at 3,000."""
    feed(sup_plain)
    far = (Position("ETHUSDT", "binance", 0.0001, 30_000.0),)
    refused = sup_plain.report_account_snapshot(AccountSnapshot("bold", 100_000.0, far))  # bold trades on bybit
    assert refused is not None and "trades on 'bybit'" in (refused.problem or "")
    assert sup_plain.evaluate(order(price=29_000.0, **ETH)).reason_code is RC.PRICE_OUT_OF_COLLAR
    # On the same exchange (an account that takes pushes): the band widens, the stricter side holds.
    sup_plain.report_account_snapshot(AccountSnapshot("main", 100_000.0, far))
    assert sup_plain.evaluate(order(account="tiny", price=29_000.0, **ETH)).reason_code is RC.PRICE_OUT_OF_COLLAR


def test_an_unusable_snapshot_sets_no_mark_and_a_fill_price_never_becomes_one(clock, tmp_path):
    """A third probe: an unusable snapshot re-sent the account's last positions, one opened by a
    client's fill at 30 (market ~3,000), as fresh marks; with collar_missing_reference = "block",
    another account could then sell ETH at 28."""
    from supervisor import RiskSupervisor
    from tests.helpers import make_config

    cfg = make_config(gate={"collar_missing_reference": "block", "duplicate_window_s": 0.0})
    with RiskSupervisor(cfg, clock=clock, poll_upstreams=False) as sup:
        feed(sup, tiny_eth_mark=None)
        sell = order(side="sell", price=28.0, **{**ETH, "quantity": 100.0})
        assert sup.evaluate(sell).reason_code is RC.PRICE_OUT_OF_COLLAR
        sup.report_fill(Fill("tiny", "binance", "ETHUSDT", "buy", 0.01, 30.0))  # opens ETH "at 30"
        bad = sup.report_account_snapshot(AccountSnapshot("tiny", 1e6, (Position("ETHUSDT", "bybit", 1.0, 3000.0),)))
        assert bad is not None and bad.problem
        r = sup.evaluate(sell)
        assert r.reason_code is RC.PRICE_OUT_OF_COLLAR and "no reference" in r.reason
