"""``oko search`` and ``oko index rebuild`` on a copy of the indexed sample corpus."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from search_api.cli import main
from search_api.state import AppState
from storage.models.access import AuditEvent, Role
from tests.search_corpus import SearchCorpus, copy_corpus, red_frame_id

WHY = ["--purpose", "case 2026/117"]  # every search states its purpose


@pytest.fixture
def cli_home(search_corpus: SearchCorpus, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[AppState]:
    state = copy_corpus(search_corpus, tmp_path / "oko-home")
    for name in ("OKO_CLIP_WEIGHTS", "OKO_DATABASE_URL", "OKO_CLIP_PRESET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OKO_HOME", str(state.settings.home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    yield state
    state.engine.dispose()


@pytest.fixture
def with_model(cli_home: AppState, search_corpus: SearchCorpus,
               monkeypatch: pytest.MonkeyPatch) -> AppState:
    """The CLI's query embedder is the corpus's random test model (no weights can be installed)."""
    monkeypatch.setattr(AppState, "query_embedder", lambda _state: search_corpus.embedder)
    return cli_home


@pytest.fixture
def state(with_model: AppState) -> AppState:
    """The API fixtures (``client_as``) serve the same corpus copy as the CLI."""
    return with_model


def _search_entries(state: AppState) -> list[dict[str, Any]]:
    with Session(state.engine) as session:
        return [e.details for e in session.exec(
            select(AuditEvent).where(AuditEvent.action == "search")
            .order_by(col(AuditEvent.seq))).all()]


def test_api_and_cli_search_audit_entries_have_the_same_shape(
        state: AppState, client_as: Callable[..., TestClient]) -> None:
    """An auditor can filter searches alike whether they came through the API or the CLI."""
    investigator = client_as(Role.INVESTIGATOR, agency="police")
    response = investigator.post("/api/search", json={
        "text": "red car", "purpose": "case 2026/117", "cameras": ["CAM-001"],
        "day_phase": "night", "k": 5})
    assert response.status_code == 200, response.text
    assert main(["search", "red car", *WHY, "--camera", "CAM-001",
                 "--night", "--limit", "5", "--json"]) == 0
    api, cli = _search_entries(state)
    assert set(api) == set(cli) - {"image_sha256"}
    assert api["filters"] == cli["filters"]


def test_search_json_applies_the_night_phrase(with_model: AppState,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", *WHY, "red car at night", "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["provenance"]["clip_text"] == "red car"
    assert body["provenance"]["filters"][0]["value"] == "night"
    assert {m["camera_id"] for m in body["moments"]} == {"CAM-001", "CAM-002"}


def test_search_similar_prints_a_table(with_model: AppState,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    with Session(with_model.engine) as session:
        frame_id = red_frame_id(session)
    code = main(["search", *WHY, "--similar", str(frame_id), "--night", "--camera", "CAM-001",
                 "--limit", "5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "CAM-001" in out and "2026-01-25" in out and "21:00:0" in out
    assert "day_phase=night (request)" in out and "k=5" in out


def test_search_without_a_model_says_how_to_install_one(cli_home: AppState,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["search", *WHY, "red car"]) == 4
    err = capsys.readouterr().err
    assert "No CLIP weights are installed" in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "code", "sentence"), [
    (["search", *WHY], 2, "the query is empty"),
    (["search", *WHY, "car", "--limit", "0"], 2, "k must be between 1 and 500; got 0."),
    (["search", *WHY, "car", "--limit", "501"], 2, "got 501"),
    (["search", *WHY, "car", "--camera", "CAM-999"], 1, "Camera 'CAM-999' does not exist."),
    (["search", *WHY, "car", "--from", "2026-01-26T00:00", "--to", "2026-01-25T00:00"], 2,
     "is later than 'to'"),
    (["search", *WHY, "car", "--from", "yesterday"], 2, "is not an ISO 8601 time"),
    (["search", *WHY, "car", "--night", "--day"], 2, "at most one of --night, --day and --dusk"),
    (["search", *WHY, "--similar", "999999"], 1, "Frame 999999 does not exist."),
])
def test_bad_input_exits_non_zero_with_one_sentence(
        cli_home: AppState, capsys: pytest.CaptureFixture[str], args: list[str], code: int,
        sentence: str) -> None:
    assert main(args) == code
    err = capsys.readouterr().err
    assert sentence in " ".join(err.split()) and "Traceback" not in err


def test_image_that_is_not_an_image(cli_home: AppState, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "photo.jpg"
    fake.write_text("not a photo")
    assert main(["search", *WHY, "--image", str(fake)]) == 2
    assert "not an image Oko can read" in " ".join(capsys.readouterr().err.split())
    assert main(["search", *WHY, "--image", str(tmp_path / "missing.jpg")]) == 1


def test_index_rebuild(cli_home: AppState, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "rebuild"]) == 0
    assert "Rebuilt 3 shard(s)" in capsys.readouterr().out
    assert main(["index", "sync"]) == 0
    assert "Wrote 0 shard(s)" in capsys.readouterr().out
