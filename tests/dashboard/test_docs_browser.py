"""The API's documentation page in a real browser (headless Chromium, Playwright):
it renders the schema with nothing fetched from another origin and no CSP refusal."""

from __future__ import annotations

import pytest

from supervisor import RiskSupervisor
from tests.dashboard.test_dashboard_browser import CHROMIUM, FLAGS, _browser_or_skip
from tests.helpers import make_config


@pytest.fixture
def api_url(clock):
    with RiskSupervisor(make_config(), clock=clock, poll_upstreams=False) as sup:
        yield sup.serve_api(port=0).url


def test_docs_render_offline_from_the_package_under_the_csp(api_url, tmp_path):
    sync_playwright = _browser_or_skip()
    foreign: list[str] = []
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))

            def route(r):
                if r.request.url.startswith(api_url):
                    r.continue_()
                else:  # as on a machine with no network: nothing from elsewhere may be needed
                    foreign.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(f"{api_url}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            page.locator(".opblock-summary-path", has_text="/v1/halt").first.click()
            page.wait_for_selector(".opblock.is-open", timeout=10_000)
            page.screenshot(path=tmp_path / "docs.png", full_page=False)
            assert page.locator(".opblock").count() >= 10
        finally:
            browser.close()
    assert foreign == []
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
