"""The browser UI in web/static against the real API: the page, its security headers, and
the cookie + CSRF sign-in, search, thumbnail and video requests that app.js makes.

The search body is the one app.js builds: its keys are read out of app.js, so a renamed
field there fails here. The real guard stays on (``get_current_user`` is not overridden).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from indexer.daynight import DayPhase
from indexer.search.engine import MAX_K
from search_api.accounts import create_user
from search_api.app import WEB_DIR
from search_api.middleware import UI_CSP
from search_api.routes.search import SearchQuery
from search_api.security import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from search_api.state import AppState
from storage.models.access import Role
from tests.search_corpus import SearchCorpus, copy_corpus

PASSWORD = "correct horse battery"
APP_JS = (WEB_DIR / "app.js").read_text(encoding="utf-8")
INDEX_HTML = (WEB_DIR / "index.html").read_text(encoding="utf-8")

# What a user fills into the search form, keyed like the body app.js builds (values as
# app.js sends them: datetime-local strings without a zone, the select's values).
FORM_AS_SENT = {
    "text": "red car", "purpose": "case 2026/117: hit and run", "cameras": ["CAM-001"],
    "districts": ["Shevchenkivskyi"], "from": "2026-01-25T20:00", "to": "2026-01-25T23:59",
    "day_phase": "night", "k": 50,
}


def search_body_keys() -> set[str]:
    """The keys of the object literal app.js posts to /api/search."""
    match = re.search(r"const body = \{(.*?)\};", APP_JS, re.DOTALL)
    assert match is not None, "app.js no longer builds `const body = {...}` for the search"
    return set(re.findall(r"^\s*(\w+):", match.group(1), re.MULTILINE))


def js_string_constant(source: str, name: str) -> str:
    match = re.search(rf'const {name} = "([^"]+)";', source)
    assert match is not None, f"app.js has no constant {name}"
    return match.group(1)


@pytest.fixture
def state(search_corpus: SearchCorpus, tmp_path: Path) -> Iterator[AppState]:
    copy = copy_corpus(search_corpus, tmp_path / "oko-home")
    with Session(copy.engine) as session:
        create_user(session, username="ivan", password=PASSWORD, agency="police",
                    role=Role.INVESTIGATOR, full_name="Ivan Petrenko")
        session.commit()
    yield copy
    copy.engine.dispose()


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as client:  # Secure cookies need https
        yield client


def sign_in(browser: TestClient) -> dict[str, str]:
    """app.js's onLogin: JSON credentials, then every unsafe request echoes the CSRF cookie."""
    login = browser.post("/api/auth/login", json={"username": "ivan", "password": PASSWORD},
                         headers={"Accept": "application/json"})
    assert login.status_code == 200, login.text
    csrf = browser.cookies[js_string_constant(APP_JS, "CSRF_COOKIE")]
    return {"Accept": "application/json", "Content-Type": "application/json",
            CSRF_HEADER: csrf}


def test_the_page_loads_its_script_under_a_strict_csp(browser: TestClient) -> None:
    page = browser.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="app.js" defer></script>' in page.text
    assert '<link rel="stylesheet" href="style.css">' in page.text
    assert page.headers["content-security-policy"] == UI_CSP
    assert "script-src 'self';" in UI_CSP and "style-src 'self';" in UI_CSP
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    for asset, kind in (("/app.js", "javascript"), ("/style.css", "text/css")):
        response = browser.get(asset)
        assert response.status_code == 200 and kind in response.headers["content-type"]


def test_the_page_has_nothing_the_csp_would_block() -> None:
    # the CSP allows no inline script, inline style or event-handler attributes
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", INDEX_HTML) is None
    assert re.search(r"<style\b|\sstyle=|\son[a-z]+=", INDEX_HTML) is None
    assert re.search(r"\beval\(|new Function\(|\.innerHTML\b|\.setAttribute\(\"on",
                     APP_JS) is None


def test_the_form_offers_only_what_the_api_accepts() -> None:
    phases = set(re.findall(r'<option value="(\w*)">',
                            INDEX_HTML.split('name="day_phase"')[1].split("</select>")[0]))
    assert phases == {""} | {phase.value for phase in DayPhase}
    k_max = re.search(r'<input name="k"[^>]*\bmax="(\d+)"', INDEX_HTML)
    assert k_max is not None and 1 <= int(k_max.group(1)) <= MAX_K


def test_app_js_uses_the_servers_cookie_and_header_names() -> None:
    assert js_string_constant(APP_JS, "CSRF_COOKIE") == CSRF_COOKIE
    assert f'headers["{CSRF_HEADER}"]' in APP_JS
    assert 'credentials: "same-origin"' in APP_JS
    fields = {info.alias or name for name, info in SearchQuery.model_fields.items()}
    assert search_body_keys() <= fields
    assert search_body_keys() == set(FORM_AS_SENT)  # the test below sends exactly these


def test_sign_in_search_thumbnail_and_video_as_the_browser_does(browser: TestClient) -> None:
    headers = sign_in(browser)
    cookies = browser.cookies
    assert cookies.get(SESSION_COOKIE) and cookies.get(CSRF_COOKIE)
    me = browser.get("/api/auth/me").json()
    assert (me["full_name"], me["role"], me["agency"]) == ("Ivan Petrenko", "investigator",
                                                           "police")
    assert "search" in me["permissions"]
    cameras = browser.get("/api/cameras")
    assert cameras.status_code == 200
    assert {"id", "name"} <= set(cameras.json()[0])

    without_csrf = browser.post("/api/search", json=FORM_AS_SENT)
    assert without_csrf.status_code == 403
    response = browser.post("/api/search", json=FORM_AS_SENT, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["moments"] and isinstance(body["provenance"]["truncated"], bool)
    moment = body["moments"][0]
    for field in ("camera_name", "district", "start_local", "score", "offset_in_segment_s"):
        assert field in moment
    assert moment["camera_id"] == "CAM-001" and moment["start_local"][11:13] in {"21", "22", "23"}

    thumbnail = browser.get(moment["thumbnail_url"])  # an <img src>: cookie, no CSRF header
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.content[:2] == b"\xff\xd8"
    video = browser.get(moment["video_url"], headers={"Range": "bytes=0-"})  # <video src>
    assert video.status_code == 206
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["accept-ranges"] == "bytes"
    assert video.content[4:8] == b"ftyp"

    assert browser.post("/api/auth/logout", headers=headers).status_code == 200
    assert browser.get("/api/auth/me").status_code == 401
    assert browser.get(moment["thumbnail_url"]).status_code == 401


def test_search_without_a_purpose_shows_one_sentence(browser: TestClient) -> None:
    headers = sign_in(browser)
    response = browser.post("/api/search", json={**FORM_AS_SENT, "purpose": ""},
                            headers=headers)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)  # app.js shows a string detail as is
    assert response.json()["detail"].startswith("Every search must state its purpose")
