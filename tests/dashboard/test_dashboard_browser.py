"""The dashboard in a real browser: headless Chromium (Debian's package) driven
by Playwright, against `riskgate run` and the upstream simulator on loopback.

Each state the page can show is reached for real (the simulator halts, goes
down, loses money) and photographed under the test's tmp dir.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from supervisor.sim.simulator import UpstreamSimulator
from tests.supervisor.test_cli_run import DESK, riskgate_run, write_config

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ALICE = "alice-operator-token-for-the-dashboard-0123"
BOB = "bob-operator-token-for-the-dashboard-01234"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        pytest.skip(f"playwright is not installed ({exc}): pip install -e '.[dev]'")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does it as root)")
    return sync_playwright


def _config(path: Path, sim_url: str) -> None:
    write_config(path, sim_url)
    text = path.read_text()
    text = text.replace("poll_interval_s = 2.0", "poll_interval_s = 0.3", 1)  # [risk_v3]
    text = text.replace("max_age_s = 10.0 ", "max_age_s = 2.0 ", 1)  # [risk_v3]: stale 2 s after it goes down
    text = text.replace("poll_interval_s = 0.5", "poll_interval_s = 0.2", 1)  # [ess]
    text = text.replace("poll_interval_s = 5.0", "poll_interval_s = 0.3", 1)  # [accounts]
    for name, token in (("alice", ALICE), ("bob", BOB)):
        text += f'\n[api.operators.{name}]\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
    # A shadow config: the same with the normal profile's leverage at 2x (the live one allows 3x).
    (path.parent / "candidate.toml").write_text(text.replace("allowed_leverage = 3.0", "allowed_leverage = 2.0", 1))
    assert "# [shadow]\n" in text and '# config = "candidate.toml"' in text
    text = text.replace("# [shadow]\n", "[shadow]\n").replace(
        '# config = "candidate.toml"', 'config = "candidate.toml"'
    )
    path.write_text(text)


def _act(page, button: str, reason: str, token: str) -> None:
    """An operator's action from the page: the button, then the form's reason and token."""
    page.locator(button).click()
    page.locator("#auth-reason").fill(reason)
    page.locator("#auth-token").fill(token)
    page.locator("#auth-submit").click()


def _post(port: int, path: str, body: dict, token: str = DESK) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 - loopback
        return json.loads(answer.read())


@pytest.fixture
def served(tmp_path):
    """The simulator and `riskgate run` on loopback: (sim, port)."""
    with UpstreamSimulator() as sim:
        sim.set_risk("info")
        sim.set_ess(False)
        btc = {"symbol": "BTCUSDT", "exchange": "binance", "quantity": 0.1, "mark_price": 65_000.0}
        sim.set_account("main_binance", 10_000.0, [btc])
        sim.set_account("alt_bybit", 5_000.0, [])
        cfg = tmp_path / "config.toml"
        _config(cfg, sim.url)
        with riskgate_run(cfg) as (_, _, url):
            yield sim, int(url.rsplit(":", 1)[1])


def test_dashboard_shows_each_state_in_a_real_browser(served, tmp_path):
    sync_playwright = _browser_or_skip()
    from playwright.sync_api import expect

    sim, port = served
    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        banner = page.locator("#banner")

        # Loads clean and says TRADING.
        page.goto(f"http://127.0.0.1:{port}/")
        expect(banner).to_have_attribute("data-state", "TRADING", timeout=10_000)
        expect(page.locator("#sources tr[data-source='risk_v3']")).to_contain_text("INFO")
        expect(page.locator("[data-account='main_binance']")).to_contain_text("$10,000")
        expect(page.locator("#alerts-line")).to_have_text("alerting is off ([alerts] enabled = false)")
        expect(page.locator("#chart canvas").first).to_be_visible(timeout=8_000)  # uPlot, from the package
        expect(page.locator("#resume-button")).to_be_hidden()  # nothing to resume
        # The shadow config's panel: a 3x order the live config allows, the candidate would block.
        levered = {"account": "main_binance", "exchange": "binance", "strategy_id": "trend_v2", "symbol": "BTCUSDT",
                   "side": "buy", "quantity": 0.01, "price": 65_000.0, "leverage": 3.0,
                   "order_id": "dash-3x"}  # fmt: skip
        assert _post(port, "/v1/evaluate", levered)["decision"] != "block"  # allowed (maybe scaled) live
        expect(page.locator("#shadow-summary")).to_contain_text("candidate.toml: running", timeout=5_000)
        expect(page.locator("#shadow")).to_contain_text("block LEVERAGE_EXCEEDS_LIMIT", timeout=10_000)
        expect(page.locator("#shadow-latest")).to_contain_text("dash-3x")
        page.screenshot(path=shots / "1-trading.png", full_page=True)
        assert errors == [], errors

        # ESS halts: HALTED within 2 s, naming the source; an order blocked meanwhile
        # is listed and opens its journal entry.
        sim.set_ess(True, "exchange incident")
        flipped = time.monotonic()
        expect(banner).to_have_attribute("data-state", "HALTED", timeout=2_000)
        assert time.monotonic() - flipped < 2.0
        expect(page.locator("#banner-causes")).to_contain_text("ESS http: exchange incident")
        order = {
            "account": "main_binance",
            "exchange": "binance",
            "strategy_id": "trend_v2",
            "symbol": "BTCUSDT",
            "side": "buy",
            "quantity": 0.01,
            "price": 65_000.0,
            "order_id": "dash-blocked-1",
        }
        assert _post(port, "/v1/evaluate", order)["reason_code"] == "ESS_HALT_ACTIVE"
        row = page.locator("#blocks tr[data-order='dash-blocked-1']")
        expect(row).to_contain_text("ESS_HALT_ACTIVE", timeout=5_000)
        page.screenshot(path=shots / "2-halted-by-ess.png", full_page=True)
        row.get_by_role("button").press("Enter")  # keyboard: the time is a button
        expect(page.locator("#entry")).to_be_visible()
        fields = page.locator("#entry-fields")
        expect(fields.locator(".decided-by")).to_have_text("2. no ESS halt", timeout=5_000)  # the deciding check
        expect(fields.locator(".events-before")).to_contain_text("ess changed")  # what came before it
        expect(fields).to_contain_text("ESS age")  # fields named for people, not ess_age_s
        expect(fields).not_to_contain_text("ess_age_s")
        page.screenshot(path=shots / "3-journal-entry.png")
        page.keyboard.press("Escape")
        # The chart, from the journal: the blocked order counted, the halt marked.
        summary = page.locator("#chart-summary")
        page.locator("#ranges button[data-range='15m']").click()  # a range chosen is fetched at once
        expect(summary).to_contain_text("blocked 1", timeout=8_000)
        expect(page.locator("#chart-marks li[data-kind='halt']").first).to_contain_text("ESS halted")
        page.locator("#ranges button[data-range='1h']").click()
        expect(page.locator("#ranges button[data-range='1h']")).to_have_attribute("aria-pressed", "true")
        expect(summary).to_contain_text("last hour: allowed", timeout=8_000)
        sim.set_ess(False)
        expect(banner).to_have_attribute("data-state", "TRADING", timeout=3_000)

        # Halt from the page: a wrong token is refused, saying so; the right one halts.
        page.locator("#halt-button").click()
        page.locator("#auth-reason").fill("drill")
        page.locator("#auth-token").fill("not-a-token-anyone-has")
        page.locator("#auth-submit").click()
        expect(page.locator("#auth-error")).to_contain_text("this gate knows no such token")
        page.screenshot(path=shots / "4-halt-wrong-token.png")
        assert banner.get_attribute("data-state") == "TRADING"
        page.locator("#auth-token").fill(ALICE)
        page.locator("#auth-submit").click()
        expect(page.locator("#auth")).to_be_hidden()
        expect(banner).to_have_attribute("data-state", "HALTED", timeout=3_000)
        expect(page.locator("#banner-causes")).to_contain_text("operator halt by alice")
        expect(page.locator("#operator-halt")).to_contain_text("drill")
        # The operator named once (not "operator halt: operator halt by alice"), times local with UTC on hover.
        ess_row = page.locator("#sources tr[data-source='ess']")
        expect(ess_row).to_contain_text("HALT: operator halt by alice since ")
        assert _post(port, "/v1/evaluate", {**order, "order_id": "dash-halted-2"})["reason_code"] == "ESS_HALT_ACTIVE"
        halted_row = page.locator("#blocks tr[data-order='dash-halted-2'] td.reason")
        expect(halted_row).to_contain_text("ESS halt active: operator halt by alice since ", timeout=5_000)
        for said in (ess_row, halted_row, page.locator("#operator-halt")):
            text = said.inner_text()
            assert "operator halt: operator" not in text and "UTC" not in text and "T0" not in text, text
        assert "UTC" in (page.locator("#operator-halt").get_attribute("title") or "")
        page.screenshot(path=shots / "5-halted-by-operator.png", full_page=True)
        _act(page, "#resume-button", "drill over", ALICE)
        expect(banner).to_have_attribute("data-state", "TRADING", timeout=3_000)

        # Reduce-only from the page: the banner says so, Resume is offered, Reduce-only is not again.
        _act(page, "#reduce-button", "thin book", ALICE)
        expect(banner).to_have_attribute("data-state", "REDUCE-ONLY", timeout=3_000)
        expect(page.locator("#banner-causes")).to_contain_text("thin book")
        expect(page.locator("#reduce-button")).to_be_hidden()
        expect(page.locator("#resume-button")).to_be_visible()
        page.screenshot(path=shots / "5b-reduce-only.png", full_page=True)
        _act(page, "#resume-button", "book is back", ALICE)
        expect(banner).to_have_attribute("data-state", "TRADING", timeout=3_000)

        # A fat finger outside the collar: its figures with thousands separators.
        fat = {**order, "order_id": "dash-collar-1", "price": 650_000.0}
        assert _post(port, "/v1/evaluate", fat)["reason_code"] == "PRICE_OUT_OF_COLLAR"
        collar = page.locator("#blocks tr[data-order='dash-collar-1'] td.reason")
        expect(collar).to_contain_text("buy at 650,000 > 71,500 (10% above 65,000)", timeout=5_000)

        # Bob proposes an override; Alice approves it from the page.
        proposal = _post(port, "/v1/overrides", {"account": "alt_bybit", "reason": "close out", "ttl_s": 60}, BOB)
        row = page.locator(f"#overrides tr[data-override='{proposal['id']}']")
        expect(row).to_contain_text("proposed", timeout=3_000)
        row.get_by_role("button", name="Approve…").click()
        page.locator("#auth-token").fill(ALICE)
        page.keyboard.press("Enter")  # submits the form
        expect(row).to_contain_text("active", timeout=3_000)
        expect(row).to_contain_text("bob, alice")
        expect(page.locator("[data-account='alt_bybit']")).to_contain_text(f"override {proposal['id']} active")
        page.screenshot(path=shots / "6-override-approved.png", full_page=True)

        # An account 10 % down on a 2 % daily limit: its day bar is over the limit.
        sim.set_account("main_binance", 9_000.0, [])
        day = page.locator("[data-account='main_binance'] [data-meter='day']")
        expect(day).to_have_attribute("data-over", "true", timeout=5_000)
        expect(day).to_contain_text("-10.00 %")
        expect(page.locator("#banner-causes")).to_contain_text("1 account locked (new risk blocked): main_binance")
        card = page.locator("[data-account='main_binance']")
        expect(card).to_have_attribute("data-locked", "true")
        expect(card.locator("h3 .pill")).to_have_text("locked")  # the card, the banner and /v1/state agree
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/state", timeout=5) as answer:
            row = json.loads(answer.read())["accounts"]["main_binance"]
        assert (row["blocked_kind"], row["new_risk_allowed"]) == ("lockout", False), row
        assert row["blocked_by"] in {lk["code"] for lk in row["lockouts"]}, row
        expect(card.locator(".lockout[data-code='DAILY_LOSS_LIMIT']")).to_contain_text("daily loss -10.0 % of -2 %")
        expect(card.locator(".lockout[data-code='DAILY_LOSS_LIMIT']")).to_contain_text("new risk blocked until")
        page.screenshot(path=shots / "7-daily-limit.png", full_page=True)

        # Risk v3 goes down: FAIL-CLOSED, naming it, once its last state is older than 2 s.
        sim.set_fault("risk", "down")
        expect(banner).to_have_attribute("data-state", "FAIL-CLOSED", timeout=6_000)
        expect(page.locator("#banner-causes")).to_contain_text("risk_v3: stale for")
        page.screenshot(path=shots / "8-fail-closed.png", full_page=True)

        # A phone, 390 px wide: nothing scrolls sideways, the locked card and the banner still read.
        phone = browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(f"http://127.0.0.1:{port}/")
        expect(phone.locator("#banner")).to_have_attribute("data-state", "FAIL-CLOSED", timeout=10_000)
        expect(phone.locator("[data-account='main_binance'] .lockout").first).to_be_visible()
        expect(phone.locator("#chart canvas").first).to_be_visible(timeout=8_000)
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        # Every table fits its panel: a row is a card, read without scrolling sideways.
        expect(phone.locator("#blocks tr[data-order='dash-collar-1']")).to_be_visible(timeout=5_000)
        widths = phone.evaluate(
            """() => [...document.querySelectorAll("main table")].filter((t) => t.offsetParent !== null).map((t) => {
                 const panel = t.closest("section"), box = t.parentElement;
                 return [t.id, t.scrollWidth, box.scrollWidth, box.clientWidth, panel.clientWidth];
               })"""
        )
        assert {w[0] for w in widths} >= {"sources", "overrides", "blocks"}, widths
        for name, table, box, box_visible, panel in widths:
            assert table <= panel and box <= box_visible, f"{name}: {table} px in a {panel} px panel ({widths})"
        phone.screenshot(path=shots / "9-phone-390px.png", full_page=True)
        browser.close()

    # The only console errors: the refused halt's 401 (Chromium logs a failed request).
    assert [e for e in errors if "401" not in e] == [], errors
    assert sorted(p.name for p in shots.iterdir()) == [
        "1-trading.png",
        "2-halted-by-ess.png",
        "3-journal-entry.png",
        "4-halt-wrong-token.png",
        "5-halted-by-operator.png",
        "5b-reduce-only.png",
        "6-override-approved.png",
        "7-daily-limit.png",
        "8-fail-closed.png",
        "9-phone-390px.png",
    ]
