"""A search is audited with the same detail keys whether it came through the API or
``oko search``, so an auditor can filter both alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

import search_api.cli.search as search_cli
from search_api.cli import main
from search_api.state import AppState
from storage.models.access import AuditEvent, Role
from tests.search_corpus import SearchCorpus, copy_corpus


@pytest.fixture
def state(search_corpus: SearchCorpus, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[AppState]:
    copy = copy_corpus(search_corpus, tmp_path / "oko-home")
    for name in ("OKO_CLIP_WEIGHTS", "OKO_DATABASE_URL", "OKO_CLIP_PRESET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OKO_HOME", str(copy.settings.home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    monkeypatch.setattr(search_cli, "query_embedder", lambda _state: search_corpus.embedder)
    yield copy
    copy.engine.dispose()


def _search_entries(state: AppState) -> list[dict[str, Any]]:
    with Session(state.engine) as session:
        return [e.details for e in session.exec(
            select(AuditEvent).where(AuditEvent.action == "search")
            .order_by(col(AuditEvent.seq))).all()]


def test_api_and_cli_search_entries_have_the_same_shape(
        state: AppState, client_as: Callable[..., TestClient]) -> None:
    investigator = client_as(Role.INVESTIGATOR, agency="police")
    response = investigator.post("/api/search", json={
        "text": "red car", "purpose": "case 2026/117", "cameras": ["CAM-001"],
        "day_phase": "night", "k": 5})
    assert response.status_code == 200, response.text
    assert main(["search", "red car", "--purpose", "case 2026/117", "--camera", "CAM-001",
                 "--night", "--limit", "5", "--json"]) == 0
    api, cli = _search_entries(state)
    assert set(api) == set(cli) - {"image_sha256"}
    assert api["filters"] == cli["filters"]
