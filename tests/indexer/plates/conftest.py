"""Plate tests: one real PP-OCRv4 reader per session, footage with rendered plates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session

from indexer.ingest import IngestOptions, ingest_file
from indexer.plates.footage import PlatePass, write_plate_clip
from indexer.plates.reader import PlateReader
from search_api.state import AppState
from storage.models.media import Camera

PASSES = [PlatePass("AE1234KX", 0.5, 5.5, plate_width=120),
          PlatePass("BC0815AA", 6.5, 11.5, plate_width=100)]


@pytest.fixture(scope="session")
def reader() -> PlateReader:
    return PlateReader()


@pytest.fixture(scope="session")
def plate_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of CAM-P01 footage: two cars, each plate in view for 5 s."""
    folder = tmp_path_factory.mktemp("plate-footage")
    return write_plate_clip(folder / "CAM-P01_20260125T120000.mp4", passes=PASSES, seconds=12)


def add_camera(state: AppState, camera_id: str = "CAM-P01", *, district: str = "Podilskyi",
               agency: str = "police") -> None:
    with Session(state.engine) as session:
        session.add(Camera(id=camera_id, name=f"{camera_id} gate", district=district,
                           latitude=50.46, longitude=30.51, agency=agency))
        session.commit()


IngestClip = Callable[[AppState, Path], int]


def ingest_clip(state: AppState, path: Path, camera_id: str = "CAM-P01") -> int:
    outcome = ingest_file(engine=state.engine, originals=state.originals,
                          derived=state.derived, path=path, camera_id=camera_id, start=None,
                          options=IngestOptions(sample_interval_seconds=2.0))
    return outcome.frame_count
