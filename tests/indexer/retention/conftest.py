"""Retention tests: real footage ingested into a data dir on SQLite or PostgreSQL, with
embeddings, shards, a plate sighting and its crop derived from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session, col, func, select

from indexer.ingest import IngestOptions, ingest_file
from indexer.samples import H264, day_scene, encode_scene
from indexer.shards import sync_shards
from search_api.state import AppState
from storage.cameras import add_camera, validate_camera
from storage.db import session_scope
from storage.models.evidence import Case, CaseClip
from storage.models.media import Frame, Original, Segment
from storage.models.plates import PlateSighting
from storage.models.search import FrameEmbedding
from storage.settings import Settings
from tests.services import DATABASE_BACKENDS, database_url_for

CAMERA = "CAM-RET"
OTHER = "CAM-KEEP"
WEIGHTS = "ab" * 32
NOW = datetime.now(UTC)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four different 4 s 160x90 H.264 files (different lengths give different hashes)."""
    folder = tmp_path_factory.mktemp("retention-footage")
    paths = []
    for n in range(4):
        path = folder / f"clip{n}.mp4"
        encode_scene(out=path, graph=day_scene(160, 90, 4 + n * 0.4), codec_args=H264)
        paths.append(path)
    return paths


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url_for(request, tmp_path, migrated=True)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "oko-home", database_url=database_url, environment="test",
                    key_passphrase="test-passphrase")


@dataclass
class World:
    state: AppState
    clips: list[Path]

    def ingest(self, n: int, *, camera: str = CAMERA, days_ago: float) -> Original:
        start = NOW - timedelta(days=days_ago)
        outcome = ingest_file(engine=self.state.engine, originals=self.state.originals,
                              derived=self.state.derived, path=self.clips[n], camera_id=camera,
                              start=start, options=IngestOptions(segment_seconds=2.0,
                                                                 sample_interval_seconds=1.0))
        assert outcome.frame_count > 0 and not outcome.duplicate
        with Session(self.state.engine) as session:
            original = session.get(Original, outcome.original_id)
            assert original is not None
            return original

    def embed_all(self) -> None:
        """Random unit vectors for every frame; the last frame of each original links to
        the first frame of the next one's original when ``link`` rows are asked for."""
        rng = np.random.default_rng(7)
        with session_scope(self.state.engine) as session:
            done = set(session.exec(select(FrameEmbedding.frame_id)).all())
            for frame in session.exec(select(Frame).order_by(col(Frame.id))).all():
                if frame.id in done:
                    continue
                vector = rng.standard_normal(512).astype("<f4")
                vector /= np.linalg.norm(vector)
                session.add(FrameEmbedding(frame_id=frame.id, weights_sha256=WEIGHTS,
                                           preset="test", status="embedded",
                                           vector=vector.tobytes(), motion_score=1.0))

    def link(self, frame_id: int, to_frame_id: int) -> None:
        with session_scope(self.state.engine) as session:
            row = session.get(FrameEmbedding, frame_id)
            assert row is not None
            row.status, row.vector, row.linked_frame_id = "linked", None, to_frame_id
            session.add(row)

    def sync(self) -> list[str]:
        return sync_shards(engine=self.state.engine, index_dir=self.state.settings.index_dir,
                           derived=self.state.derived).shards_written

    def sighting(self, original: Original) -> PlateSighting:
        crop = self.state.derived.put_bytes(f"crop of {original.sha256}".encode())
        with session_scope(self.state.engine) as session:
            frames = session.exec(select(Frame).where(Frame.original_id == original.id)
                                  .order_by(col(Frame.id))).all()
            row = PlateSighting(
                camera_id=original.camera_id, plate="AA1234BB", plate_format="ua",
                confidence=0.9, votes=3, best_confidence=0.9, offset_in_segment_s=0.0,
                frames=len(frames), first_seen_utc=frames[0].captured_at_utc,
                last_seen_utc=frames[-1].captured_at_utc, first_frame_id=frames[0].id,
                last_frame_id=frames[-1].id, best_frame_id=frames[0].id,
                segment_id=frames[0].segment_id, day_phase="day", crop_sha256=crop.sha256,
                reader_key="test")
            session.add(row)
            session.flush()
            session.expunge(row)
            return row

    def lock(self, original: Original) -> None:
        """Put the original under evidence lock: a clip of it in a case."""
        with session_scope(self.state.engine) as session:
            case = Case(number=f"2026/{original.id}", title="Robbery", legal_basis="CPC 234",
                        investigator_id=1, agency="police")
            session.add(case)
            session.flush()
            assert case.id is not None and original.id is not None
            session.add(CaseClip(case_id=case.id, camera_id=original.camera_id,
                                 original_id=original.id,
                                 start_utc=original.recording_start_utc,
                                 end_utc=original.recording_start_utc + timedelta(seconds=1)))

    def derived_of(self, original_id: int) -> set[str]:
        with Session(self.state.engine) as session:
            hashes = set(session.exec(select(Segment.sha256)
                                      .where(Segment.original_id == original_id)).all())
            hashes |= set(session.exec(select(Frame.thumbnail_sha256)
                                       .where(Frame.original_id == original_id)).all())
        return hashes

    def count(self, model: type, **where: object) -> int:
        with Session(self.state.engine) as session:
            query = select(func.count()).select_from(model)
            for name, value in where.items():
                query = query.where(getattr(model, name) == value)
            return session.exec(query).one()


@pytest.fixture
def world(state: AppState, clips: list[Path]) -> World:
    with session_scope(state.engine) as session:
        for camera in (CAMERA, OTHER):
            add_camera(session, camera=validate_camera(
                id=camera, name=camera, latitude=50.45, longitude=30.52, agency="police"))
    return World(state=state, clips=clips)


Reload = Callable[[int], Original]
