"""``oko models list | import`` and ``oko reindex`` end to end, through the real CLI main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import Session, select

from search_api.cli import main
from search_api.state import AppState
from storage.models.search import EmbeddingModel, FrameEmbedding
from tests.indexer.embeddings.conftest import IngestedClip


def _flat(text: str) -> str:
    """Rich wraps long lines; compare sentences with whitespace collapsed."""
    return " ".join(text.split())


@pytest.fixture
def oko_env(state: AppState, monkeypatch: pytest.MonkeyPatch) -> AppState:
    """Point the CLI's settings at the test data dir (the CLI reads only OKO_* variables)."""
    monkeypatch.setenv("OKO_HOME", str(state.settings.home))
    monkeypatch.setenv("OKO_ENVIRONMENT", "test")
    monkeypatch.setenv("OKO_KEY_PASSPHRASE", "test-passphrase")
    monkeypatch.delenv("OKO_CLIP_WEIGHTS", raising=False)
    monkeypatch.delenv("OKO_CLIP_PRESET", raising=False)
    return state


def test_without_a_model_list_explains_and_reindex_fails_with_the_install_sentence(
    oko_env: AppState, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["installed"] == []
    assert listing["active"]["installed"] is False
    assert "`oko models import FILE --preset ViT-B-32`" in listing["active"]["message"]

    assert main(["models", "list"]) == 0
    assert "No model installed. No CLIP weights are installed for preset ViT-B-32" in _flat(
        capsys.readouterr().out)

    assert main(["reindex"]) == 4
    err = _flat(capsys.readouterr().err)
    assert err.startswith("error: No CLIP weights are installed for preset ViT-B-32")
    assert "or set OKO_CLIP_WEIGHTS to a checkpoint file" in err


def test_import_then_reindex_embeds_waiting_frames_and_indexes_them(
    oko_env: AppState, ingested: IngestedClip, tiny_checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OKO_CLIP_PRESET", "test-tiny")
    assert main(["models", "import", str(tiny_checkpoint), "--preset", "test-tiny"]) == 0
    assert "Imported tiny.pt for preset test-tiny" in _flat(capsys.readouterr().out)

    assert main(["models", "list", "--json"]) == 0
    active = json.loads(capsys.readouterr().out)["active"]
    assert (active["source"], active["pending_frames"]) == ("imported", len(ingested.frame_ids))

    assert main(["reindex", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["embedded"] + report["linked"] == len(ingested.frame_ids)
    assert report["frames_indexed"] == len(ingested.frame_ids)
    assert 0 < report["skipped_fraction"] < 1

    with Session(oko_env.engine) as session:
        rows = session.exec(select(FrameEmbedding)).all()
        assert {r.weights_sha256 for r in rows} == {report["weights_sha256"]}
    assert main(["reindex", "--json"]) == 0  # nothing left to do
    again = json.loads(capsys.readouterr().out)
    assert (again["embedded"], again["linked"]) == (0, 0)


def test_cli_import_of_wrong_architecture_exits_2_and_leaves_nothing(
    oko_env: AppState, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "import", str(tiny_checkpoint), "--preset", "ViT-B-32"]) == 2
    err = _flat(capsys.readouterr().err)
    assert err.startswith("error: tiny.pt does not load into the ViT-B-32 architecture")
    assert not [p for p in oko_env.settings.models_dir.rglob("*") if p.is_file()]
    with Session(oko_env.engine) as session:
        assert session.exec(select(EmbeddingModel)).all() == []
