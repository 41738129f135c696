"""Web app speed: first paint of the sign-in page and of the search page after signing
in, in Debian's Chromium against a live ``oko serve`` on 127.0.0.1 with the browser
tests' data dir (``tests/web/conftest.py``: 12 s of night footage, the tiny test model).

Each round opens a fresh browser context (no cache, no storage) and reads the browser's
own ``first-contentful-paint`` and the time until the page's first heading is visible.
Also the JS + CSS the app ships, raw and gzip -9 compressed.

Prints JSON: medians over ``--runs`` rounds, in ms.
Run: ``.venv/bin/python benchmarks/web.py [--runs 5]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage.models.access import Role
from tests.services import free_port
from tests.web.conftest import CHROMIUM, PASSWORD, USERS, VIEWPORT, _prepare

REPO = Path(__file__).resolve().parent.parent
STATIC = REPO / "web" / "static"


def shipped_bytes() -> dict[str, int]:
    files = [p for p in STATIC.rglob("*") if p.suffix in (".js", ".css")]
    raw = sum(p.stat().st_size for p in files)
    packed = sum(len(gzip.compress(p.read_bytes(), compresslevel=9)) for p in files)
    return {"files": len(files), "raw_bytes": raw, "gzip_bytes": packed}


def _paint_ms(page: Any) -> float:
    entries = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)")
    return float(entries[0]) if entries else float("nan")


def one_round(browser: Browser, url: str) -> dict[str, float]:
    context = browser.new_context(viewport=VIEWPORT, base_url=url)
    page = context.new_page()
    started = time.perf_counter()
    page.goto("/")
    page.locator("h1, h2").first.wait_for(state="visible")
    signin_visible = (time.perf_counter() - started) * 1000
    signin_fcp = _paint_ms(page)
    page.locator("input[name=username]").fill(USERS[Role.INVESTIGATOR])
    page.locator("input[name=password]").fill(PASSWORD)
    started = time.perf_counter()
    page.locator("input[name=password]").press("Enter")
    page.locator("#signout").wait_for(state="visible")
    page.goto("/#/search")
    page.locator("#q").wait_for(state="visible")
    search_ready = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    page.reload()
    page.locator("#q").wait_for(state="visible")
    search_reload_visible = (time.perf_counter() - started) * 1000
    search_reload_fcp = _paint_ms(page)
    context.close()
    return {"signin_first_contentful_paint_ms": signin_fcp,
            "signin_heading_visible_ms": signin_visible,
            "search_page_after_sign_in_ms": search_ready,
            "search_page_reload_first_contentful_paint_ms": search_reload_fcp,
            "search_page_reload_visible_ms": search_reload_visible}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oko-web-bench-") as tmp:
        home = Path(tmp) / "oko-home"
        env = _prepare(home)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "search_api.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/api/auth/me", timeout=2).status_code == 401:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
                one_round(browser, url)  # warm the server (first imports, model load)
                rounds = [one_round(browser, url) for _ in range(args.runs)]
                browser.close()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
    medians = {key: round(statistics.median(r[key] for r in rounds), 1) for key in rounds[0]}
    print(json.dumps({"runs": args.runs, "median": medians, "shipped": shipped_bytes()},
                     indent=2))


if __name__ == "__main__":
    main()
