"""Detection only where the frame changed, and sightings carried over unchanged plates."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import Session, col, select

from indexer.plates.footage import PlatePass, write_plate_clip
from indexer.plates.reader import DET_ALIGN, PlateReader, ReaderConfig, changed_regions
from indexer.plates.render import paste_plate, render_plate, street_frame
from indexer.plates.sightings import read_pending_plates
from search_api.state import AppState
from search_api.usecases.plate_watch import crop_expiry_auditor
from storage.models.plates import PlateSighting
from tests.indexer.plates.conftest import add_camera, ingest_clip

W, H = 448, 252


def _scene(*plates: tuple[str, int, int]) -> Image.Image:
    frame = street_frame(W, H, seed=3)
    for text, x, y in plates:
        frame = paste_plate(frame, render_plate(text, width=120), x=x, y=y)
    return frame


def test_regions_cover_only_what_changed_aligned_for_the_detector() -> None:
    config = ReaderConfig()
    before = _scene(("AE1234KX", 40, 170))
    after = _scene(("AE1234KX", 40, 170), ("BC0815AA", 290, 40))

    assert changed_regions(after, None, config) is None  # no previous frame: all of it
    assert changed_regions(after, after.copy(), config) == []
    assert changed_regions(after, before, ReaderConfig(regions=False)) is None
    regions = changed_regions(after, before, config)
    assert regions is not None and len(regions) == 1
    x, y, w, h = regions[0]
    assert w % DET_ALIGN == 0 and h % DET_ALIGN == 0
    assert x <= 290 and x + w >= 290 + 120 and y == 0  # the new car, whole
    assert y + h < 170  # not the parked car
    # a scene change: the whole frame is read
    assert changed_regions(after, street_frame(W, H, seed=9).rotate(180), config) is None


def test_the_detector_sees_only_the_regions(reader: PlateReader) -> None:
    before = _scene(("AE1234KX", 40, 170))
    after = _scene(("AE1234KX", 40, 170), ("BC0815AA", 290, 40))
    regions = reader.changed_regions(after, before)
    assert regions is not None
    assert sorted(r.text for r in reader.read(after)) == ["AE1234KX", "BC0815AA"]
    assert [r.text for r in reader.read(after, regions=regions)] == ["BC0815AA"]
    assert reader.read(after, regions=[]) == []


@pytest.fixture(scope="module")
def parked_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s: a parked car (its plate still) while another car crosses above it."""
    folder = tmp_path_factory.mktemp("parked")
    passes = [PlatePass("AE1234KX", 0.0, 1e6, plate_width=120, lane=0.72),
              PlatePass("BC0815AA", 0.5, 11.5, plate_width=100, lane=0.25)]
    return write_plate_clip(folder / "CAM-P01_20260125T120000.mp4", passes=passes,
                            seconds=12)


def test_a_parked_plate_is_carried_not_reread(state: AppState, reader: PlateReader,
                                              parked_clip: Path) -> None:
    add_camera(state)
    assert ingest_clip(state, parked_clip) == 6

    report = read_pending_plates(engine=state.engine, derived=state.derived, reader=reader,
                                 motion_threshold=state.settings.motion_threshold,
                                 on_crops_expired=crop_expiry_auditor(state))

    assert report.frames_read + report.frames_static == 6
    assert report.stats.region_frames >= 3 and report.carried >= 3
    with Session(state.engine) as session:
        rows = session.exec(select(PlateSighting).order_by(
            col(PlateSighting.first_seen_utc))).all()
        parked = [row for row in rows if row.plate == "AE1234KX"]
        assert len(parked) == 1  # one sighting over the whole clip, read once
        assert parked[0].votes == 1
        assert (parked[0].last_seen_utc - parked[0].first_seen_utc).total_seconds() >= 8
        assert "BC0815AA" in {row.plate for row in rows}
