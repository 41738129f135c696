"""Footage with cars carrying rendered plates, for tests, the demo and the benchmark.

Each ``PlatePass`` is a car crossing the street from left to right during its time
window, its plate drawn by ``indexer.plates.render``. The clip is H.264 in MP4 written
by PyAV, the same on every run for the same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from indexer.plates.render import (
    Degradation,
    degrade_frame,
    degrade_plate,
    paste_plate,
    render_plate,
    street_frame,
)


@dataclass(frozen=True)
class PlatePass:
    """A car with plate ``text`` (normalised) crossing between ``start_s`` and ``end_s``."""

    text: str
    start_s: float
    end_s: float
    plate_width: int = 110
    lane: float = 0.62  # plate's top edge, as a fraction of the frame height


def compose_frame(*, passes: list[PlatePass], at_s: float, width: int, height: int,
                  night: bool = False, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """The scene at ``at_s`` as RGB pixels, and the plates fully in view."""
    frame = street_frame(width, height, seed=seed)
    visible: list[str] = []
    how = Degradation(night=night, noise=3.0 if night else 0.0)
    for plate_pass in passes:
        if not plate_pass.start_s <= at_s <= plate_pass.end_s:
            continue
        plate = degrade_plate(render_plate(plate_pass.text, width=plate_pass.plate_width),
                              how)
        span = plate_pass.end_s - plate_pass.start_s or 1.0
        travel = width - plate.width
        x = int(travel * 0.1 + travel * 0.8 * (at_s - plate_pass.start_s) / span)
        frame = paste_plate(frame, plate, x=x, y=int(height * plate_pass.lane))
        visible.append(plate_pass.text)
    frame = degrade_frame(frame, how, seed=seed)
    return np.asarray(frame.convert("RGB")), visible


def write_plate_clip(path: Path, *, passes: list[PlatePass], seconds: float,
                     width: int = 448, height: int = 252, fps: int = 5,
                     night: bool = False) -> Path:
    """Write an MP4 of ``seconds`` in which each pass's car crosses the frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": str(fps * 2), "preset": "veryfast", "crf": "18",
                          "threads": "1", "bframes": "0"}
        for number in range(int(seconds * fps)):
            pixels, _ = compose_frame(passes=passes, at_s=number / fps, width=width,
                                      height=height, night=night, seed=0)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


DEMO_PLATES: dict[str, list[PlatePass]] = {
    # one car passes both cameras five minutes apart: its journey in `oko plates track`
    "CAM-001_20260125T130000.mp4": [PlatePass("AE1234KX", 1.0, 9.0, plate_width=150),
                                    PlatePass("BC0815AA", 12.0, 21.0, plate_width=140)],
    "CAM-002_20260125T130500.mp4": [PlatePass("AE1234KX", 1.0, 9.0, plate_width=160),
                                    PlatePass("KA7777MM", 12.0, 21.0, plate_width=150)],
}


def demo_plate_clips(folder: Path) -> list[tuple[str, Path]]:
    """The demo's plate clips (640x360, 24 s each), written once; (camera id, path)."""
    clips: list[tuple[str, Path]] = []
    for name, passes in DEMO_PLATES.items():
        path = folder / name
        if not path.is_file():
            write_plate_clip(path, passes=passes, seconds=24, width=640, height=360)
        clips.append((name.split("_")[0], path))
    return clips


__all__ = ["DEMO_PLATES", "PlatePass", "compose_frame", "demo_plate_clips", "write_plate_clip"]
