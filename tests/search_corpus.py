"""A searchable data dir built once per test session: the sample footage ingested, embedded
with the random tiny model and indexed. Tests that change it work on a copy."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session, col, select

from indexer.embed_queue import embed_pending_frames
from indexer.embeddings import ClipEmbedder, build_unsafe_random_embedder
from indexer.ingest import IngestOptions, ingest_file
from indexer.samples import SampleSet, generate_sample_footage
from indexer.shards import sync_shards
from search_api.state import AppState, build_state
from storage.cameras import import_cameras_csv
from storage.models.media import Frame, Original
from storage.settings import Settings

NIGHT_RED_CLIP = "CAM-001_20260125T210000.mp4"
RED_FRAME_OFFSET_S = 4.0  # the red car is mid-frame by then


@dataclass
class SearchCorpus:
    settings: Settings
    state: AppState
    embedder: ClipEmbedder
    samples: SampleSet


def build_search_corpus(root: Path) -> SearchCorpus:
    settings = Settings(home=root / "home", environment="test",
                        key_passphrase="test-passphrase")
    state = build_state(settings)
    samples = generate_sample_footage(root / "samples")
    assert samples.cameras_csv is not None
    with Session(state.engine) as session:
        import_cameras_csv(session, path=samples.cameras_csv)
        session.commit()
    options = IngestOptions(segment_seconds=4.0, sample_interval_seconds=1.0)
    for clip in samples.clips:
        ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                    path=clip.path, camera_id=clip.camera_id, start=None, options=options)
    embedder = build_unsafe_random_embedder(seed=0)
    embed_pending_frames(engine=state.engine, derived=state.derived, embedder=embedder,
                         batch_size=32, motion_threshold=settings.motion_threshold)
    sync_shards(engine=state.engine, index_dir=settings.index_dir, derived=state.derived)
    state.embedder = embedder
    return SearchCorpus(settings=settings, state=state, embedder=embedder, samples=samples)


def copy_corpus(corpus: SearchCorpus, home: Path) -> AppState:
    """A private, writable copy of the corpus data dir (blobs shared read-only by symlink)."""
    home.mkdir(parents=True)
    source = corpus.settings
    settings = source.model_copy(update={"home": home.resolve()})
    for name in ("blobs", "derived", "models", "keys"):
        (home / name).symlink_to(source.home / name)
    shutil.copytree(source.index_dir, settings.index_dir)
    db_path = source.home / "oko.db"
    with sqlite3.connect(db_path) as src, sqlite3.connect(home / "oko.db") as dst:
        src.backup(dst)
    state = build_state(settings, run_migrations=False)  # the copied schema is current
    state.embedder = corpus.embedder
    return state


def red_frame_id(session: Session) -> int:
    """A night frame of CAM-001 showing the moving red car."""
    original = session.exec(select(Original).where(Original.filename == NIGHT_RED_CLIP)).one()
    frame = session.exec(select(Frame).where(Frame.original_id == original.id)
                         .order_by(col(Frame.offset_s))
                         .where(col(Frame.offset_s) >= RED_FRAME_OFFSET_S)).first()
    assert frame is not None and frame.id is not None
    return frame.id
