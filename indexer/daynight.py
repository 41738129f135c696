"""Day, dusk or night for a frame: the sun's elevation at the camera, plus an infrared check.

The sun decides first: above the horizon is day, civil twilight (0° to -6°) is dusk, and
lower is night. A recorder in infrared mode produces monochrome frames; such a frame while
the sun is low (below ``IR_MAX_SUN_ELEVATION``) is night whatever the clock says, because the
camera itself judged the scene too dark for colour.

The shard writer stores a phase per frame and search filters by it, so this module sits
beside both and imports neither.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import numpy as np
from astral import Observer
from astral.sun import elevation
from PIL import Image, UnidentifiedImageError

DUSK_MIN_SUN_ELEVATION = -6.0  # civil twilight
IR_MAX_SUN_ELEVATION = 10.0
MONOCHROME_MAX_SATURATION = 0.08  # mean HSV saturation, 0..1
CHECK_SIDE = 64


class DayPhase(StrEnum):
    DAY = "day"
    DUSK = "dusk"
    NIGHT = "night"


@dataclass(frozen=True)
class PhaseVerdict:
    phase: DayPhase
    sun_elevation_deg: float
    monochrome: bool


def sun_elevation_deg(*, latitude: float, longitude: float, at: datetime) -> float:
    """The sun's elevation above the horizon in degrees (refraction included)."""
    return float(elevation(Observer(latitude=latitude, longitude=longitude), at))


def mean_saturation(image: Image.Image) -> float:
    """Mean HSV saturation in 0..1 of a downscaled copy of ``image``."""
    small = image.convert("RGB")
    small.thumbnail((CHECK_SIDE, CHECK_SIDE))
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32)
    return float(hsv[..., 1].mean() / 255.0)


def is_monochrome(image_bytes: bytes | None) -> bool:
    """True when the image is (nearly) grey, like infrared night footage; False if unreadable."""
    if not image_bytes:
        return False
    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            return mean_saturation(image) < MONOCHROME_MAX_SATURATION
    except (UnidentifiedImageError, OSError):
        return False


def classify(*, latitude: float, longitude: float, at: datetime,
             image_bytes: bytes | None = None) -> PhaseVerdict:
    """The day phase of a frame captured at ``at`` by a camera at the given coordinates."""
    sun = sun_elevation_deg(latitude=latitude, longitude=longitude, at=at)
    monochrome = is_monochrome(image_bytes)
    if sun >= 0.0:
        phase = DayPhase.DAY
    elif sun >= DUSK_MIN_SUN_ELEVATION:
        phase = DayPhase.DUSK
    else:
        phase = DayPhase.NIGHT
    if monochrome and sun < IR_MAX_SUN_ELEVATION:
        phase = DayPhase.NIGHT
    return PhaseVerdict(phase=phase, sun_elevation_deg=sun, monochrome=monochrome)


__all__ = ["DayPhase", "PhaseVerdict", "classify", "is_monochrome", "sun_elevation_deg"]
