"""Found by a third probe: a snapshot of dust positions (symbols no order can name) could
evict every fresh mark riskgate held, and the collar then took an order's own
reference_price: a sell at 1% of the market passed. Only configured symbols' marks are kept."""

from __future__ import annotations

from supervisor import AccountSnapshot, Position
from supervisor.core.gate_state import _MAX_MARKS
from supervisor.core.reasons import ReasonCode as RC
from tests.helpers import order, signal


def test_a_fresh_mark_survives_a_snapshot_of_dust(sup_plain, clock):
    s = sup_plain
    s.report_ess_active(False)
    s.report_risk_signal(signal("INFO", s.clock.now()))
    s.report_account_snapshot(AccountSnapshot("main", 100_000.0))
    s.report_account_snapshot(AccountSnapshot("tiny", 100_000.0, (Position("ETHUSDT", "binance", 0.5, 3_000.0),)))
    fat_finger = order(side="sell", price=30.0, reference_price=30.0, symbol="ETHUSDT", quantity=1.0)
    assert s.evaluate(fat_finger).reason_code is RC.PRICE_OUT_OF_COLLAR  # tiny's 3,000 is the reference
    clock.advance(1.0)
    dust = tuple(Position(f"D{i}USDT", "bybit", 1e-6, 1.0) for i in range(_MAX_MARKS + 1))
    s.report_account_snapshot(AccountSnapshot("bold", 100_000.0, dust))  # a bybit account, a second later
    fat_finger = order(side="sell", price=30.0, reference_price=30.0, symbol="ETHUSDT", quantity=1.0)
    r = s.evaluate(fat_finger)
    assert r.reason_code is RC.PRICE_OUT_OF_COLLAR, (r.decision, r.reason_code, r.reason)
