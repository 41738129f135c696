"""The docs pages load Swagger UI and ReDoc from a CDN, so they are served only in
development and test (issue 10, finding 10); the schema is always at /openapi.json."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from search_api.app import create_app
from search_api.docs_page import install_docs
from search_api.state import AppState

PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")


def _oko_app(state: AppState, environment: str) -> FastAPI:
    app = create_app(state.settings, state=state)
    install_docs(app, environment=environment)
    return app


@pytest.mark.parametrize("environment", ["production", "staging", ""])
def test_no_docs_pages_outside_development(state: AppState, environment: str) -> None:
    app = _oko_app(state, environment)
    with TestClient(app) as client:
        for page in PAGES:
            response = client.get(page)
            assert response.status_code == 404, page
            assert "cdn.jsdelivr.net" not in response.text
        schema = client.get("/openapi.json")
        assert schema.status_code == 200
        assert "/api/search" in schema.json()["paths"]
    assert app.docs_url is None and app.redoc_url is None


@pytest.mark.parametrize("environment", ["development", "test", "Development"])
def test_docs_pages_in_development_and_test(state: AppState, environment: str) -> None:
    app = _oko_app(state, environment)
    with TestClient(app) as client:  # ahead of the web UI's static mount at /
        docs = client.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text
        assert "/openapi.json" in docs.text
        redoc = client.get("/redoc")
        assert redoc.status_code == 200 and "redoc" in redoc.text
        assert client.get("/docs/oauth2-redirect").status_code == 200
        assert client.get("/openapi.json").status_code == 200
    assert app.docs_url == "/docs"


@pytest.mark.parametrize(("environment", "status"), [("production", 404), ("test", 200)])
def test_the_same_with_fastapis_own_pages_switched_off(environment: str, status: int) -> None:
    app = FastAPI(docs_url=None, redoc_url=None)
    install_docs(app, environment=environment)
    with TestClient(app) as client:
        assert client.get("/docs").status_code == status
        assert client.get("/redoc").status_code == status
        assert client.get("/openapi.json").status_code == 200


def test_installing_twice_leaves_one_set_of_pages() -> None:
    app = FastAPI()
    install_docs(app, environment="development")
    install_docs(app, environment="development")
    paths = [getattr(route, "path", None) for route in app.router.routes]
    assert all(paths.count(page) == 1 for page in PAGES)
    install_docs(app, environment="production")
    paths = [getattr(route, "path", None) for route in app.router.routes]
    assert not set(PAGES) & set(paths)
