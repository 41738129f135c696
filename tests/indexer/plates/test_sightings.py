"""The plate queue on real footage with the real PP-OCRv4 models: reads become sightings."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from sqlmodel import Session, col, select

from indexer.plates.reader import PlateReader
from indexer.plates.sightings import pending_plate_frames, read_pending_plates
from search_api.state import AppState
from search_api.usecases.plate_watch import crop_expiry_auditor
from storage.models.media import Frame
from storage.models.plates import PlateFrameScan, PlateSighting
from tests.indexer.plates.conftest import add_camera, ingest_clip


def test_reads_of_one_plate_over_frames_become_one_sighting(
        state: AppState, reader: PlateReader, plate_clip: Path) -> None:
    add_camera(state)
    frames = ingest_clip(state, plate_clip)
    assert frames == 6
    with Session(state.engine) as session:
        assert pending_plate_frames(session=session, reader_key=reader.key) == 6

    report = read_pending_plates(engine=state.engine, derived=state.derived, reader=reader,
                                 motion_threshold=state.settings.motion_threshold,
                                 on_crops_expired=crop_expiry_auditor(state))

    assert report.frames == 6
    with Session(state.engine) as session:
        sightings = session.exec(select(PlateSighting).order_by(
            col(PlateSighting.first_seen_utc))).all()
        assert [s.plate for s in sightings] == ["AE1234KX", "BC0815AA"]
        first = sightings[0]
        # frames at 0, 2, 4 s show the first car (0.5-5.5 s): seen in the 2 and 4 s frames
        assert first.frames >= 2 and first.votes >= 2
        assert first.last_seen_utc > first.first_seen_utc
        assert 0.5 < first.confidence <= 1.0
        assert first.plate_format == "national"
        assert [max(pos, key=pos.get) for pos in first.alternatives] == list("AE1234KX")
        best = session.get(Frame, first.best_frame_id)
        assert best is not None and best.camera_id == "CAM-P01"
        assert first.segment_id == best.segment_id
        # the crop is a derived blob whose provenance names frame, models and parameters
        prov = first.crop_provenance
        assert prov["source_frame_id"] == best.id
        assert prov["source_frame_sha256"] == best.thumbnail_sha256
        assert prov["models"]["recogniser"]["sha256"] == reader.identity["recogniser"]["sha256"]
        assert prov["parameters"]["det_max_side"] == reader.config.det_max_side
        with state.derived.open(first.crop_sha256) as handle:
            crop = Image.open(io.BytesIO(handle.read()))
            assert crop.height >= reader.config.rec_height
        assert pending_plate_frames(session=session, reader_key=reader.key) == 0
        assert len(session.exec(select(PlateFrameScan)).all()) == 6

    # a rerun finds nothing pending and writes nothing
    again = read_pending_plates(engine=state.engine, derived=state.derived, reader=reader,
                                motion_threshold=state.settings.motion_threshold,
                                on_crops_expired=crop_expiry_auditor(state))
    assert again.frames == 0 and again.touched == []
    with Session(state.engine) as session:
        assert len(session.exec(select(PlateSighting)).all()) == 2


def test_candidates_are_cut_from_the_original_at_full_resolution(
        state: AppState, reader: PlateReader, tmp_path: Path) -> None:
    """With the originals, crops come from the frame decoded from the recording (twice
    the stored copy's size here); the same sightings, crops from more pixels."""
    from indexer.plates.footage import PlatePass, write_plate_clip
    from indexer.plates.source import decode_frame_at
    from storage.models.media import Original

    add_camera(state)
    ingest_clip(state, write_plate_clip(
        tmp_path / "CAM-P01_20260125T120000.mp4", seconds=12, width=896, height=504,
        passes=[PlatePass("AE1234KX", 0.5, 5.5, plate_width=240),
                PlatePass("BC0815AA", 6.5, 11.5, plate_width=200)]))
    report = read_pending_plates(engine=state.engine, derived=state.derived, reader=reader,
                                 originals=state.originals,
                                 motion_threshold=state.settings.motion_threshold,
                                 on_crops_expired=crop_expiry_auditor(state))
    assert report.stats.full_resolution > 0
    with Session(state.engine) as session:
        sightings = session.exec(select(PlateSighting).order_by(
            col(PlateSighting.first_seen_utc))).all()
        assert [s.plate for s in sightings] == ["AE1234KX", "BC0815AA"]
        best = session.get(Frame, sightings[0].best_frame_id)
        assert best is not None
        original = session.get(Original, best.original_id)
        assert original is not None
        full = decode_frame_at(state.originals.path_for(original.sha256), best.offset_s)
    assert full is not None and full.width > best.width  # the original is larger
    box = sightings[0].crop_provenance["box"]
    with state.derived.open(sightings[0].crop_sha256) as handle:
        crop = Image.open(io.BytesIO(handle.read()))
        assert crop.height > box[3]  # cut from more pixels than the stored copy's box
    # a missing original falls back to the stored copy
    assert decode_frame_at(state.originals.root / "missing.mp4", 1.0) is None


def test_a_camera_another_worker_is_reading_is_left_to_it(
        state: AppState, reader: PlateReader, plate_clip: Path) -> None:
    from storage.claims import CameraClaims

    add_camera(state)
    ingest_clip(state, plate_clip)
    with CameraClaims(state.engine, f"plates:{reader.key}") as other:
        assert other.try_claim("CAM-P01")
        busy = read_pending_plates(engine=state.engine, derived=state.derived, reader=reader,
                                   motion_threshold=state.settings.motion_threshold,
                                   on_crops_expired=crop_expiry_auditor(state))
    assert busy.frames == 0 and busy.cameras_busy == ["CAM-P01"]
    with Session(state.engine) as session:
        assert pending_plate_frames(session=session, reader_key=reader.key) == 6
        assert session.exec(select(PlateSighting)).all() == []

    free = read_pending_plates(engine=state.engine, derived=state.derived, reader=reader,
                               motion_threshold=state.settings.motion_threshold,
                               on_crops_expired=crop_expiry_auditor(state))
    assert free.frames == 6 and free.cameras_busy == []
