"""An asyncio execution service whose only way to the exchange is through the gate.

Run against the upstream simulator:

    .venv/bin/riskgate simulate-upstream --port 8001 --risk info &
    .venv/bin/python examples/execution_service.py --config config.toml

or self-contained (the simulator in-process, on a free port):

    .venv/bin/python examples/execution_service.py --self-contained

The "exchange" is an in-process paper exchange with ccxt's async create_order
signature that fills every order at its price; the service pushes its account
snapshot to the gate after every fill, as a real service would from its
exchange account stream.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import sys
import tempfile
from pathlib import Path

from supervisor import AccountSnapshot, AsyncGuardedExchange, OrderBlocked, Position, RiskSupervisor, load_config
from supervisor.logs import configure_logging
from supervisor.sim.simulator import UpstreamSimulator

ACCOUNT, EXCHANGE = "main_binance", "binance"
PRICES = {"BTC/USDT": 65_000.0, "ETH/USDT": 3_500.0, "SOL/USDT": 150.0}


class PaperExchange:
    """ccxt-style async client: fills everything at the asked price."""

    def __init__(self, equity: float) -> None:
        self.equity = equity
        self.positions: dict[str, float] = {}
        self.ids = itertools.count(1)

    async def create_order(self, symbol, type, side, amount, price=None, params=None):  # noqa: A002 - ccxt's signature
        await asyncio.sleep(0)  # an exchange round trip would be here
        fill_price = price or PRICES[symbol]
        self.positions[symbol] = self.positions.get(symbol, 0.0) + (amount if side == "buy" else -amount)
        return {
            "id": str(next(self.ids)),
            "symbol": symbol,
            "status": "closed",
            "amount": amount,
            "filled": amount,
            "average": fill_price,
        }

    def snapshot(self) -> AccountSnapshot:
        positions = tuple(Position(s.replace("/", ""), EXCHANGE, q, PRICES[s]) for s, q in self.positions.items() if q)
        return AccountSnapshot(ACCOUNT, self.equity, positions)


SIGNALS = [  # (symbol, side, quantity, strategy, protective stop)
    ("BTC/USDT", "buy", 0.02, "trend_v2", 63_000.0),
    ("ETH/USDT", "buy", 1.5, "mean_rev", 3_400.0),
    ("SOL/USDT", "buy", 120.0, "breakout", 140.0),  # 1.2% of equity at risk: scaled down
    ("ETH/USDT", "buy", 1.0, "martingale", 3_400.0),  # blacklisted: blocked
    ("BTC/USDT", "sell", 0.02, "trend_v2", None),
    ("SOL/USDT", "buy", 10.0, "breakout", 145.0),
]


async def run(config_path: Path, orders: int) -> int:
    config = load_config(config_path)
    paper = PaperExchange(equity=100_000.0)
    with RiskSupervisor(config) as sup:
        sup.report_account_snapshot(paper.snapshot())
        await asyncio.get_running_loop().run_in_executor(None, sup.poll_now)
        exchange = AsyncGuardedExchange(paper, sup, account=ACCOUNT, exchange=EXCHANGE)
        sent = blocked = 0
        for symbol, side, qty, strategy, stop in itertools.islice(itertools.cycle(SIGNALS), orders):
            try:
                order = await exchange.create_order(
                    symbol, "limit", side, qty, PRICES[symbol], strategy_id=strategy, stop_price=stop
                )
                sent += 1
                print(f"sent     {side:4} {order['amount']:>8g} {symbol:9} ({strategy}; asked {qty:g})")
            except OrderBlocked as exc:
                blocked += 1
                print(f"blocked  {side:4} {qty:>8g} {symbol:9} ({strategy}): {exc.result.reason_code}")
            sup.report_account_snapshot(paper.snapshot())
        print(f"{sent} sent, {blocked} blocked; positions: {paper.positions}")
    return 0


def self_contained_config(folder: Path, url: str) -> Path:
    shipped = Path(__file__).resolve().parents[1] / "config.toml"
    text = shipped.read_text().replace("http://127.0.0.1:8001", url)
    path = folder / "config.toml"
    path.write_text(text)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=Path("config.toml"))
    ap.add_argument("--orders", type=int, default=len(SIGNALS))
    ap.add_argument("--self-contained", action="store_true", help="start the upstream simulator in-process")
    args = ap.parse_args()
    configure_logging("console", level=logging.WARNING, stream=sys.stderr)  # the gate's warnings, not its chatter
    if not args.self_contained:
        return asyncio.run(run(args.config, args.orders))
    with tempfile.TemporaryDirectory() as tmp, UpstreamSimulator() as sim:
        sim.set_risk("info")
        return asyncio.run(run(self_contained_config(Path(tmp), sim.url), args.orders))


if __name__ == "__main__":
    raise SystemExit(main())
