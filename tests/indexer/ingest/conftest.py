"""Ingest tests: real sample footage, a data dir on SQLite or a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from indexer.ingest import IngestOptions, IngestOutcome, ingest_file
from indexer.samples import SampleSet, generate_sample_footage
from search_api.state import AppState
from storage.cameras import import_cameras_csv
from storage.db import session_scope
from storage.models.media import Frame, Original, Segment
from storage.settings import Settings
from tests.services import DATABASE_BACKENDS, database_url_for


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    return generate_sample_footage(tmp_path_factory.mktemp("samples"), profile="test")


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url_for(request, tmp_path, migrated=True)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "oko-home", database_url=database_url, environment="test",
                    key_passphrase="test-passphrase")


@pytest.fixture
def registered(state: AppState, samples: SampleSet) -> AppState:
    """A data dir with the sample cameras registered."""
    assert samples.cameras_csv is not None
    with session_scope(state.engine) as session:
        import_cameras_csv(session, path=samples.cameras_csv)
    return state


Ingest = Callable[..., IngestOutcome]


@pytest.fixture
def ingest(registered: AppState) -> Ingest:
    def _ingest(path: Path, camera_id: str | None = None, start: datetime | None = None,
                **options: float) -> IngestOutcome:
        return ingest_file(engine=registered.engine, originals=registered.originals,
                           derived=registered.derived, path=path,
                           camera_id=camera_id or path.name.split("_")[0], start=start,
                           options=IngestOptions(**options))  # type: ignore[arg-type]
    return _ingest


@dataclass(frozen=True)
class Written:
    """Everything ingest can write: rows, blobs and temp files."""

    originals: int
    segments: int
    frames: int
    original_blobs: int
    derived_blobs: int
    temp_files: list[str]


def written(state: AppState) -> Written:
    with Session(state.engine) as session:
        def count(model: type) -> int:
            return session.exec(select(func.count()).select_from(model)).one()
        counts = (count(Original), count(Segment), count(Frame))
    tmp = state.settings.tmp_dir
    temp_files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*")) if tmp.exists() else []
    return Written(*counts, original_blobs=len(list(state.originals.iter_hashes())),
                   derived_blobs=len(list(state.derived.iter_hashes())), temp_files=temp_files)


NOTHING = Written(0, 0, 0, 0, 0, [])
