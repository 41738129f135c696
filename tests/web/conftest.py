"""A live ``oko serve`` on 127.0.0.1 with a prepared data dir, and one headless Chromium.

The data dir gets a signing key, two cameras with coordinates, 12 s of generated night
footage on one of them ingested and embedded with the tiny random test model (the same
steps as ``benchmarks/load.py``, with its footage helper), and one user per role. The
server runs as ``python -m search_api.cli serve``, which also starts its worker, so
exports really run in the worker. Playwright drives Debian's Chromium
(``/usr/bin/chromium``); its own browser download cannot work offline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from sqlmodel import Session

from benchmarks.evidence import make_footage
from benchmarks.load import index_with_test_model
from evidence.keys import ensure_signing_identity
from search_api.accounts import create_user
from search_api.state import build_state
from storage.cameras import add_camera, validate_camera
from storage.models.access import Role
from storage.settings import Settings
from tests.services import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).with_name("node_modules") / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "docs" / "screenshots"
PASSPHRASE = "web-test-passphrase"
PASSWORD = "web-test-password-1"
CAMERA = "CAM-NIGHT"
# 21:00 in Kyiv on a January evening: the sun is far below the horizon, so "night"
CAPTURE_START = datetime(2026, 1, 25, 19, 0, tzinfo=UTC)
USERS = {Role.INVESTIGATOR: "ivan", Role.SUPERVISOR: "olena", Role.PROSECUTOR: "petro",
         Role.AUDITOR: "anna", Role.ADMIN: "admin"}
VIEWPORT = {"width": 1366, "height": 768}
# the machine is small and shared: the first search loads the model, exports take a while
expect.set_options(timeout=30_000)


@dataclass
class LiveServer:
    url: str
    home: Path
    log: Path


def _prepare(home: Path) -> dict[str, str]:
    settings = Settings(home=home, environment="test", key_passphrase=PASSPHRASE)
    state = build_state(settings)
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation="Oko web tests",
                            passphrase=PASSPHRASE)
    with Session(state.engine) as session:
        add_camera(session, camera=validate_camera(
            id=CAMERA, name="Хрещатик, 22", district="Шевченківський", latitude=50.4475,
            longitude=30.5230, agency="police"))
        add_camera(session, camera=validate_camera(
            id="CAM-PODIL", name="Контрактова площа", district="Подільський",
            latitude=50.4650, longitude=30.5150, agency="police"))
        for role, username in USERS.items():
            agency = "prosecutor-office" if role is Role.PROSECUTOR else "police"
            create_user(session, username=username, password=PASSWORD, agency=agency,
                        role=role, full_name=username.capitalize())
        session.commit()
    footage = make_footage(home.parent / f"{CAMERA}.mp4", seconds=12, size="640x360")
    index_with_test_model(state, footage=footage, camera_id=CAMERA, start=CAPTURE_START)
    state.engine.dispose()
    env = {key: value for key, value in os.environ.items() if not key.startswith("OKO_")}
    return env | {"OKO_HOME": str(home), "OKO_ENVIRONMENT": "test",
                  "OKO_CLIP_PRESET": "test-tiny", "OKO_KEY_PASSPHRASE": PASSPHRASE,
                  "OKO_MAX_UPLOAD_BYTES": str(200 * 1024**2)}


@contextmanager
def running_server(home: Path) -> Iterator[LiveServer]:
    """A prepared data dir at ``home`` served by ``oko serve`` until the block ends."""
    env = _prepare(home)
    port = free_port()
    log = home.parent / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "search_api.cli", "serve", "--host", "127.0.0.1",
             "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/api/auth/me", timeout=2).status_code == 401:
                break
        except httpx.TransportError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail(f"oko serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
    try:
        yield LiveServer(url=url, home=home, log=log)
    finally:
        server.terminate()  # oko serve stops its worker on the way out
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait(timeout=10)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The workflow's server; modules that add their own data use their own server."""
    with running_server(tmp_path_factory.mktemp("web") / "oko-home") as server:
        yield server


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert AXE.is_file(), "run `make web-deps` (npm ci in tests/web) for axe-core"
    chromium = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--autoplay-policy=no-user-gesture-required"])
    yield chromium
    chromium.close()


def new_page(browser: Browser, server: LiveServer, *, lang: str = "uk") -> Page:
    """A fresh browser context (own cookies and storage) at 1366x768, in ``lang``."""
    context = browser.new_context(viewport=VIEWPORT, base_url=server.url,
                                  accept_downloads=True)
    context.add_init_script(  # the first visit's language; a choice made later persists
        f"if (!localStorage.getItem('oko.lang')) localStorage.setItem('oko.lang', '{lang}')")
    context.add_init_script(path=AXE)
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page
