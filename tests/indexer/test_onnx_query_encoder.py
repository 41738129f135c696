"""The API process's query encoder: ONNX text tower, cache, warm-up, and GET /api/models.

A data dir with the tiny random model's checkpoint as OKO_CLIP_WEIGHTS, so the
encoder is loaded exactly as real weights would be (resolve, record, load, export).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sqlmodel import Session

from indexer.embeddings import ClipEmbedder, build_unsafe_random_embedder, load_embedder
from indexer.model_store import find_checkpoint
from indexer.onnx_towers import tower_paths
from search_api.app import create_app
from search_api.deps import get_current_user
from search_api.state import AppState, build_state
from storage.models.access import Role, User
from storage.settings import Settings

QUERIES = ["a red car at night", "червоний автомобіль уночі", "білий фургон", "bus stop"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    torch.save(build_unsafe_random_embedder("test-tiny", seed=0, threads=2).model.state_dict(),
               path)
    return path


@pytest.fixture(scope="module")
def reference(checkpoint: Path) -> ClipEmbedder:
    """open_clip's own towers for the checkpoint (torch, no cache)."""
    from indexer.model_store import WeightsSource

    return load_embedder(preset="test-tiny", weights=WeightsSource(
        preset="test-tiny", architecture="oko-test-tiny", pretrained_tag="",
        path=find_checkpoint(checkpoint), sha256="0" * 64, source="env"), threads=2)


def make_state(tmp_path: Path, **overrides: Any) -> Iterator[AppState]:
    settings = Settings(home=tmp_path / "oko-home", environment="test",
                        key_passphrase="test-passphrase", clip_preset="test-tiny", **overrides)
    state = build_state(settings)
    yield state
    state.engine.dispose()


@pytest.fixture
def state(tmp_path: Path, checkpoint: Path) -> Iterator[AppState]:
    yield from make_state(tmp_path, clip_weights=checkpoint, onnx_threads=1)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_query_encoder_runs_text_on_onnx_behind_the_cache(
        state: AppState, reference: ClipEmbedder) -> None:
    assert state.encoder_status().warm is False
    encoder = state.query_embedder()
    status = state.encoder_status()
    assert status.warm and status.text_backend == "onnx-fp32" and status.note == ""
    assert status.image_backend == "torch"
    graph, record = tower_paths(state.settings.onnx_dir, status.weights_sha256, "text")
    assert graph.is_file() and record.is_file()
    assert cosines(reference.encode_text(QUERIES), encoder.encode_text(QUERIES)).min() >= 0.999
    assert isinstance(state.embedder, ClipEmbedder) and state.embedder.torch_text_released
    encoder.encode_text(["  A RED car at night "])
    status = state.encoder_status()
    assert (status.cache_entries, status.cache_hits, status.cache_misses) == (4, 1, 4)
    assert state.query_embedder() is encoder  # one cache for the life of the embedder


def test_torch_setting_keeps_open_clip(tmp_path: Path, checkpoint: Path,
                                       reference: ClipEmbedder) -> None:
    for state in make_state(tmp_path, clip_weights=checkpoint, text_encoder="torch",
                            query_cache_size=0):
        encoder = state.query_embedder()
        np.testing.assert_allclose(encoder.encode_text(QUERIES), reference.encode_text(QUERIES),
                                   atol=1e-6)
        status = state.encoder_status()
        assert status.text_backend == "torch" and status.cache_entries == 0
        assert not state.settings.onnx_dir.exists() or not any(state.settings.onnx_dir.iterdir())


def test_failed_export_falls_back_to_torch_with_the_reason(
        state: AppState, reference: ClipEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no exporter here")

    monkeypatch.setattr(torch.onnx, "export", broken)
    encoder = state.query_embedder()
    status = state.encoder_status()
    assert status.warm and status.text_backend == "torch"
    assert status.note == ("The test-tiny text tower could not be exported to ONNX "
                           "(RuntimeError: no exporter here).")
    np.testing.assert_allclose(encoder.encode_text(QUERIES), reference.encode_text(QUERIES),
                               atol=1e-6)


def test_warm_up_loads_the_encoder_in_the_background(state: AppState) -> None:
    thread = state.warm_encoder_in_background()
    thread.join(timeout=300)
    status = state.encoder_status()
    assert not thread.is_alive() and status.warm and not status.loading
    assert status.text_backend == "onnx-fp32"
    assert status.cache_entries == 0  # the warm-up query bypasses the cache


def test_warm_up_without_weights_says_why(tmp_path: Path) -> None:
    for state in make_state(tmp_path):
        state.warm_encoder_in_background().join(timeout=60)
        status = state.encoder_status()
        assert not status.warm and not status.loading and status.text_backend == ""
        assert status.note.startswith("No CLIP weights are installed for preset test-tiny")


def test_models_route_shows_the_encoder(state: AppState) -> None:
    app = create_app(state.settings, state=state)
    with Session(state.engine, expire_on_commit=False) as session:
        admin = User(username="admin-city", agency="city", role=Role.ADMIN, password_hash="!")
        session.add(admin)
        session.commit()
        session.refresh(admin)
    app.dependency_overrides[get_current_user] = lambda: admin
    with TestClient(app) as client:
        cold = client.get("/api/models").json()["encoder"]
        assert cold["warm"] is False and cold["text_backend"] == ""
        state.query_embedder().encode_text(["bus"])
        warm = client.get("/api/models").json()["encoder"]
    assert warm["warm"] is True and warm["text_backend"] == "onnx-fp32"
    assert warm["cache_entries"] == 1 and warm["cache_max_entries"] == 1024
    assert warm["preset"] == "test-tiny" and len(warm["weights_sha256"]) == 64


def test_image_encoder_onnx_embeds_frames_through_onnx_runtime(
        tmp_path: Path, checkpoint: Path, reference: ClipEmbedder) -> None:
    from indexer.reindex import ReindexSettings, load_installed_embedder
    from tests.indexer.test_onnx_towers import street_frames

    for state in make_state(tmp_path, clip_weights=checkpoint, image_encoder="onnx",
                            onnx_threads=1):
        embedder = load_installed_embedder(
            engine=state.engine, config=ReindexSettings.from_settings(state.settings))
        assert embedder.image_backend == "onnx-fp32" and embedder.text_backend == "torch"
        frames = street_frames(5)
        assert cosines(reference.encode_images(frames),
                       embedder.encode_images(frames)).min() >= 0.999
        graph, _ = tower_paths(state.settings.onnx_dir, embedder.weights_sha256, "image")
        assert graph.is_file()
        state.query_embedder()
        assert state.encoder_status().image_backend == "onnx-fp32"
