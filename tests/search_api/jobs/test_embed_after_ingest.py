"""After ingest, a worker embeds the new frames when a model is installed; else they wait."""

from __future__ import annotations

from pathlib import Path

import torch
from sqlmodel import Session, select

from indexer.embeddings import build_unsafe_random_embedder
from indexer.ingest import ingest_file
from indexer.model_store import import_model
from indexer.reindex import ReindexSettings
from search_api.state import AppState
from search_api.usecases.ingest import embed_pending, ingest_options
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry
from tests.search_api.jobs.conftest import make_clip


def test_frames_wait_without_a_model_and_are_embedded_and_indexed_once_one_is_imported(
    state: AppState, camera: str, short_clip: Path, tmp_path: Path,
) -> None:
    ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                path=short_clip, camera_id=camera, start=None,
                options=ingest_options(state.settings))

    waiting = embed_pending(state)
    assert waiting.startswith("Frames wait for embedding:") and "oko models import" in waiting
    with Session(state.engine) as session:
        frame_ids = set(session.exec(select(Frame.id)).all())
        assert frame_ids and not session.exec(select(FrameEmbedding)).all()

    checkpoint = tmp_path / "tiny.pt"
    torch.save(build_unsafe_random_embedder("test-tiny", seed=0).model.state_dict(), checkpoint)
    with Session(state.engine) as session:
        import_model(source_file=checkpoint, preset="test-tiny",
                     models_dir=state.settings.models_dir, session=session)
        session.commit()
    state.settings.clip_preset = "test-tiny"

    done = embed_pending(state)
    assert done.startswith("Embedded ") and "index synced" in done
    with Session(state.engine) as session:
        embedded = set(session.exec(select(FrameEmbedding.frame_id)).all())
        indexed = session.exec(select(FrameIndexEntry)).all()
    assert embedded == frame_ids
    assert {entry.frame_id for entry in indexed} == frame_ids
    assert all(entry.shard_key for entry in indexed)


def test_a_worker_keeps_its_model_across_embed_tasks_and_reloads_it_when_the_weights_change(
    state: AppState, camera: str, tmp_path: Path,
) -> None:
    def install(seed: int) -> None:
        checkpoint = tmp_path / f"tiny-{seed}.pt"
        torch.save(build_unsafe_random_embedder("test-tiny", seed=seed).model.state_dict(),
                   checkpoint)
        with Session(state.engine) as session:
            import_model(source_file=checkpoint, preset="test-tiny",
                         models_dir=state.settings.models_dir, session=session)
            session.commit()

    def ingest(hour: int) -> None:  # a clip of its own length: new bytes, new frames
        clip = make_clip(tmp_path / f"CAM-001_20260125T{hour:02d}0000.mp4", seconds=2 + hour)
        ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                    path=clip, camera_id=camera, start=None,
                    options=ingest_options(state.settings))

    state.settings.clip_preset = "test-tiny"
    install(seed=0)
    ingest(1)
    assert embed_pending(state).startswith("Embedded ")
    first = state.image_embedder().get(engine=state.engine,
                                       config=_reindex_settings(state))
    ingest(2)
    assert embed_pending(state).startswith("Embedded ")
    assert state.image_embedder().loads == 1
    assert state.image_embedder().get(engine=state.engine,
                                      config=_reindex_settings(state)) is first

    install(seed=1)  # a newer model: the next task loads it, and every vector is its own
    ingest(3)
    assert embed_pending(state).startswith("Embedded ")
    assert state.image_embedder().loads == 2
    second = state.image_embedder().get(engine=state.engine, config=_reindex_settings(state))
    assert second.weights_sha256 != first.weights_sha256
    with Session(state.engine) as session:
        hashes = set(session.exec(select(FrameEmbedding.weights_sha256)).all())
    assert hashes == {second.weights_sha256}


def _reindex_settings(state: AppState) -> ReindexSettings:
    return ReindexSettings.from_settings(state.settings)
