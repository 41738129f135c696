"""Day phase from the sun at the camera plus an infrared (monochrome) check."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlmodel import Session, col, select

from indexer.daynight import DayPhase, classify
from storage.models.media import Frame, Original
from storage.models.search_index import FrameIndexEntry

KYIV = ZoneInfo("Europe/Kyiv")
LAT, LON = 50.4501, 30.5234


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 36), color).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(("local", "phase"), [
    (datetime(2026, 1, 25, 12, 0), DayPhase.DAY),
    (datetime(2026, 1, 25, 16, 50), DayPhase.DUSK),  # sunset ~16:35 in Kyiv in late January
    (datetime(2026, 1, 25, 21, 0), DayPhase.NIGHT),
    (datetime(2026, 6, 21, 21, 30), DayPhase.DUSK),  # long midsummer twilight
    (datetime(2026, 6, 21, 5, 0), DayPhase.DAY),
])
def test_phase_follows_the_sun_at_the_camera(local: datetime, phase: DayPhase) -> None:
    verdict = classify(latitude=LAT, longitude=LON, at=local.replace(tzinfo=KYIV))
    assert verdict.phase == phase


def test_same_instant_differs_by_camera_longitude() -> None:
    at = datetime(2026, 1, 25, 16, 0, tzinfo=ZoneInfo("UTC"))  # 18:00 in Kyiv: dark
    assert classify(latitude=LAT, longitude=LON, at=at).phase == DayPhase.NIGHT
    assert classify(latitude=LAT, longitude=-73.9, at=at).phase == DayPhase.DAY  # New York


def test_monochrome_frame_in_low_sun_is_infrared_night() -> None:
    at = datetime(2026, 1, 25, 16, 20, tzinfo=KYIV)  # sun just above the horizon
    colour = classify(latitude=LAT, longitude=LON, at=at, image_bytes=_jpeg((200, 40, 30)))
    grey = classify(latitude=LAT, longitude=LON, at=at, image_bytes=_jpeg((90, 90, 90)))
    assert colour.phase == DayPhase.DAY and not colour.monochrome
    assert grey.phase == DayPhase.NIGHT and grey.monochrome


def test_monochrome_frame_at_noon_stays_day() -> None:
    at = datetime(2026, 6, 21, 13, 0, tzinfo=KYIV)
    assert classify(latitude=LAT, longitude=LON, at=at,
                    image_bytes=_jpeg((90, 90, 90))).phase == DayPhase.DAY


def test_unreadable_thumbnail_falls_back_to_the_sun() -> None:
    at = datetime(2026, 1, 25, 12, 0, tzinfo=KYIV)
    verdict = classify(latitude=LAT, longitude=LON, at=at, image_bytes=b"not an image")
    assert verdict.phase == DayPhase.DAY and not verdict.monochrome


def test_sync_stores_a_phase_for_every_frame_of_the_samples(session: Session) -> None:
    rows = session.exec(select(Original.filename, FrameIndexEntry.day_phase,
                               FrameIndexEntry.monochrome)
                        .join(Frame, col(Frame.original_id) == col(Original.id))
                        .join(FrameIndexEntry, col(FrameIndexEntry.frame_id) == col(Frame.id))
                        ).all()
    frames = session.exec(select(Frame)).all()
    assert len(rows) == len(frames)
    for filename, phase, monochrome in rows:
        local_hour = int(filename.split("T")[1][:2])
        assert phase == ("night" if local_hour >= 21 else "day"), filename
        if phase == "day":
            assert not monochrome
