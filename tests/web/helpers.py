"""What the browser tests do on every page: sign in, check with axe-core, screenshot."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.web.conftest import PASSWORD, SCREENSHOTS


def sign_in(page: Page, username: str) -> None:
    page.goto("/#/signin")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("input[name=password]").press("Enter")
    expect(page.locator("#signout")).to_be_visible()


def wait_until(page: Page, expression: str, *, timeout_s: float = 60) -> None:
    """Poll a JS expression until true (wait_for_function evaluates strings with eval,
    which the app's CSP forbids)."""
    for _ in range(int(timeout_s * 10)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"never true: {expression}")


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    # new_page() adds axe-core as an init script: the app's CSP (script-src 'self') blocks
    # the inline <script> page.add_script_tag would insert, and the tests keep the CSP on
    assert page.evaluate("typeof window.axe !== 'undefined'"), "axe-core is not loaded"
    result: dict[str, Any] = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def check_page(page: Page, name: str) -> None:
    """No serious or critical axe violation; a 1366x768 screenshot in docs/screenshots."""
    page.wait_for_load_state("networkidle")
    violations = serious_violations(page)
    assert violations == [], f"{name}: {violations}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
