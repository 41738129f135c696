"""Embeddings equal open_clip's own computation, are normalised, and load strictly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image, ImageDraw
from sqlmodel import Session, select

from indexer.clip_presets import PRESETS, preset_dim
from indexer.embed_queue import embed_pending_frames
from indexer.embeddings import (
    ClipEmbedder,
    ModelImportError,
    build_unsafe_random_embedder,
    load_embedder,
    resolve_weights,
    state_dict_sha256,
)
from indexer.vectors import vector_from_bytes
from search_api.state import AppState
from storage.blobstore import sha256_file
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from tests.indexer.embeddings.conftest import IngestedClip, frame_image


def _loaded(tiny_checkpoint: Path, state: AppState) -> ClipEmbedder:
    with Session(state.engine) as session:
        weights = resolve_weights(preset="test-tiny", env_weights=tiny_checkpoint,
                                  models_dir=state.settings.models_dir, session=session)
    return load_embedder(preset="test-tiny", weights=weights, threads=2)


def test_vectors_are_l2_normalised_float32(tiny_embedder: ClipEmbedder) -> None:
    images = [Image.new("RGB", (160, 90), color) for color in ("red", "navy", "white")]
    image_vectors = tiny_embedder.encode_images(images)
    text_vectors = tiny_embedder.encode_text(["a red car at night", "a person", "вночі"])

    for vectors in (image_vectors, text_vectors):
        assert vectors.dtype == np.float32
        assert vectors.shape == (3, tiny_embedder.dim)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert tiny_embedder.encode_images([]).shape == (0, tiny_embedder.dim)


def test_batching_does_not_change_vectors(tiny_embedder: ClipEmbedder) -> None:
    images = [Image.new("RGB", (64 + i, 48), (i * 20, 100, 200 - i * 20)) for i in range(10)]
    batched = tiny_embedder.encode_images(images)  # batch_size 8: two batches
    one_by_one = np.concatenate([tiny_embedder.encode_images([image]) for image in images])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_an_object_at_the_frame_edge_changes_the_embedding(tiny_embedder: ClipEmbedder) -> None:
    """The whole 16:9 frame is embedded, not a centre crop that would drop its sides."""
    street = Image.new("RGB", (448, 252), (90, 95, 100))
    car_entering = street.copy()
    ImageDraw.Draw(car_entering).rectangle((0, 120, 60, 160), fill=(200, 20, 20))
    assert not torch.equal(tiny_embedder.preprocess(street),
                           tiny_embedder.preprocess(car_entering))
    plain, with_car = tiny_embedder.encode_images([street, car_entering])
    assert np.abs(plain - with_car).max() > 1e-4


def test_random_embedder_hash_covers_its_weights(tiny_embedder: ClipEmbedder) -> None:
    other = build_unsafe_random_embedder("test-tiny", seed=1, threads=2)
    same = build_unsafe_random_embedder("test-tiny", seed=0, threads=2)
    assert tiny_embedder.weights_sha256 == state_dict_sha256(tiny_embedder.model)
    assert same.weights_sha256 == tiny_embedder.weights_sha256
    assert other.weights_sha256 != tiny_embedder.weights_sha256


def test_query_vectors_equal_open_clip_encode_text(
    tiny_checkpoint: Path, state: AppState, reference_model: tuple
) -> None:
    model, _, tokenizer = reference_model
    texts = ["red car at night", "a pedestrian crossing the street", "помаранчевий фургон"]
    with torch.no_grad():
        expected = model.encode_text(tokenizer(texts))
        expected = (expected / expected.norm(dim=-1, keepdim=True)).numpy()

    embedder = _loaded(tiny_checkpoint, state)
    got = embedder.encode_text(texts)

    assert embedder.weights_sha256 == sha256_file(tiny_checkpoint)
    cosines = (got * expected).sum(axis=1)
    assert cosines.min() >= 0.999


def test_stored_frame_embedding_equals_open_clip_on_decoded_frame(
    tiny_checkpoint: Path, state: AppState, ingested: IngestedClip, reference_model: tuple
) -> None:
    """Parity: the DB vector equals preprocess + encode_image + normalise on the same JPEG."""
    model, preprocess, _ = reference_model
    embedder = _loaded(tiny_checkpoint, state)
    embed_pending_frames(engine=state.engine, derived=state.derived, embedder=embedder,
                         batch_size=4, motion_threshold=0.02)

    with Session(state.engine) as session:
        rows = session.exec(select(FrameEmbedding, Frame)
                            .join(Frame, FrameEmbedding.frame_id == Frame.id)  # type: ignore[arg-type]
                            .where(FrameEmbedding.status == "embedded")).all()
        assert len(rows) >= 3
        for row, frame in rows:
            image = frame_image(state, frame).convert("RGB")
            with torch.no_grad():
                expected = model.encode_image(preprocess(image).unsqueeze(0))[0]
                expected = (expected / expected.norm()).numpy()
            stored = vector_from_bytes(row.vector)
            assert row.weights_sha256 == sha256_file(tiny_checkpoint)
            assert abs(float(np.linalg.norm(stored)) - 1.0) < 1e-5
            assert float(stored @ expected) >= 0.999


def test_weights_that_do_not_fit_the_preset_fail_to_load(
    other_architecture_checkpoint: Path, state: AppState
) -> None:
    with Session(state.engine) as session:
        weights = resolve_weights(preset="test-tiny", env_weights=other_architecture_checkpoint,
                                  models_dir=state.settings.models_dir, session=session)
    with pytest.raises(ModelImportError, match=r"do not load into the test-tiny architecture "
                                               r"\(oko-test-tiny\): .*wrong shape"):
        load_embedder(preset="test-tiny", weights=weights, threads=2)


def test_test_preset_is_registered_with_open_clip() -> None:
    assert "oko-test-tiny" in open_clip.list_models()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_dim_matches_the_open_clip_config(preset: str) -> None:
    config = open_clip.get_model_config(PRESETS[preset].architecture)
    assert config is not None
    assert preset_dim(PRESETS[preset]) == config["embed_dim"]
