"""The web app as the server hands it out (web/static, web/i18n) and the routes added for
it: a case's exports, the model status and the camera CSV import. The pages themselves
run in Chromium in tests/web; this checks what they rely on without a browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from search_api.middleware import UI_CSP
from search_api.security import CSRF_COOKIE, CSRF_HEADER
from search_api.state import AppState
from search_api.web_ui import WEB_DIR
from storage.models.access import Role
from storage.models.media import Camera

API_JS = (WEB_DIR / "api.js").read_text(encoding="utf-8")
CSV_HEADER = "id,name,district,latitude,longitude,agency,timezone\n"


def test_the_app_shell_loads_its_module_under_the_strict_csp(app: FastAPI) -> None:
    with TestClient(app) as client:
        page = client.get("/")
        assert page.status_code == 200 and '<script type="module" src="/app.js">' in page.text
        assert page.headers["content-security-policy"] == UI_CSP
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>|\sstyle=|\son[a-z]+=", page.text) is None
        for path, kind in (("/app.js", "javascript"), ("/pages/search.js", "javascript"),
                           ("/style.css", "text/css"), ("/i18n/uk.json", "json")):
            response = client.get(path)
            assert response.status_code == 200 and kind in response.headers["content-type"], path
        assert client.get("/i18n/uk.json").json()["app.name"] == "Око"


def test_no_module_uses_what_the_csp_forbids_or_a_cdn() -> None:
    for path in WEB_DIR.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        forbidden = r"\beval\(|new Function\(|\.innerHTML\b|https?://(?!www\.w3\.org/2000/svg)"
        assert re.search(forbidden, text) is None, path


def test_the_api_client_uses_the_servers_cookie_and_header_names() -> None:
    assert f'export const CSRF_COOKIE = "{CSRF_COOKIE}";' in API_JS
    assert f'export const CSRF_HEADER = "{CSRF_HEADER}";' in API_JS


def test_a_cases_exports_are_listed_to_who_sees_the_case_only(
        client_as: Callable[..., TestClient]) -> None:
    owner = client_as(Role.INVESTIGATOR, agency="dsns")
    hidden = owner.post("/api/cases", json={"number": "WEB-1", "title": "t",
                                            "legal_basis": "b"}).json()["id"]
    assert owner.get(f"/api/cases/{hidden}/exports").json() == []
    stranger = client_as(Role.INVESTIGATOR, agency="police")
    answer = stranger.get(f"/api/cases/{hidden}/exports")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"


def test_model_status_says_what_to_do_when_nothing_is_installed(
        client_as: Callable[..., TestClient]) -> None:
    status = client_as(Role.ADMIN).get("/api/models").json()
    assert status["installed"] is False and status["message"] and status["models"] == []
    assert client_as(Role.INVESTIGATOR).get("/api/models").status_code == 403


def test_camera_csv_import_registers_all_or_none(
        state: AppState, client_as: Callable[..., TestClient]) -> None:
    admin = client_as(Role.ADMIN)
    good = CSV_HEADER + "WEB-1,Один,Podil,50.46,30.51,police,Europe/Kyiv\n"
    added = admin.post("/api/cameras/import",
                       files={"file": ("cameras.csv", good.encode(), "text/csv")})
    assert added.status_code == 201 and [c["id"] for c in added.json()] == ["WEB-1"]
    bad = CSV_HEADER + ("WEB-2,Два,Podil,50.46,30.51,police,Europe/Kyiv\n"
                        "WEB-3,Три,Podil,95,30.51,police,Europe/Kyiv\n")
    refused = admin.post("/api/cameras/import",
                         files={"file": ("cameras.csv", bad.encode(), "text/csv")})
    assert refused.status_code == 422 and "Row 3" in refused.json()["detail"]
    with Session(state.engine) as session:
        assert set(session.exec(select(Camera.id)).all()) == {"WEB-1"}
