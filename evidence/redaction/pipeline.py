"""Proposing a redaction (detect on every frame, track) and rendering it.

1. ``build_detectors``: the detectors the targets need, their model files hashed.
2. ``propose``: run the face detector on every decoded frame of the clip (never a
   sample) and the plate detector on every ``PLATE_EVERY``-th frame (plates move
   slowly and are large; the tracks interpolate between those frames, and hold a
   plate's box ``PLATE_EVERY - 1`` frames before its first and after its last
   detection, so a plate between two scanned frames stays masked), then link each
   kind's detections into tracks.
3. ``render_clip`` / ``preview_jpeg``: mask the final boxes of every frame.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from evidence.redaction.detect import (
    Detection,
    Detector,
    FaceDetector,
    Frame,
    PlateDetector,
    default_face_model,
    default_plate_model,
    hash_model,
)
from evidence.redaction.render import redact_frame
from evidence.redaction.tracking import HOLD_FRAMES, LEAD_FRAMES, Box, Track, build_tracks
from evidence.redaction.video import VideoFacts, frame_at, frames, video_facts, write_redacted

STILL_JPEG_QUALITY = 90
KIND_OF_TARGET = {"faces": "face", "plates": "plate"}
Progress = Callable[[int, int], None]
PLATE_EVERY = 5


@dataclass(frozen=True)
class Proposal:
    facts: VideoFacts
    tracks: list[Track]
    detectors: list[Detector]
    detections_per_kind: dict[str, int]


def build_detectors(targets: list[str], *, face_model: Path | None = None,
                    plate_model: Path | None = None) -> list[Detector]:
    """Raises ``RedactionModelError`` when a needed model file is missing or corrupt."""
    result: list[Detector] = []
    if "faces" in targets:
        result.append(FaceDetector(face_model))
    if "plates" in targets:
        result.append(PlateDetector(plate_model))
    return result


def check_model_files(targets: list[str], *, face_model: Path | None = None,
                      plate_model: Path | None = None) -> None:
    """Raises ``RedactionModelError`` when a needed model file is missing (cheap: hashes
    only, nothing loaded; a corrupt file is found when ``build_detectors`` loads it)."""
    if "faces" in targets:
        hash_model(face_model or default_face_model(), "face detector")
    if "plates" in targets:
        hash_model(plate_model or default_plate_model(), "plate detector")


def propose(clip: Path, *, detectors: list[Detector], plate_every: int = PLATE_EVERY,
            progress: Progress | None = None) -> Proposal:
    """Detect faces on every frame of ``clip``, plates on every ``plate_every``-th (and
    the last), and track; raises ``InvalidInputError`` for a clip that cannot be
    decoded."""
    facts = video_facts(clip)
    per_kind: dict[str, list[list[Detection]]] = {d.info.kind: [] for d in detectors}
    every = {"face": 1, "plate": max(1, plate_every)}
    last = facts.frame_count - 1
    for index, frame in enumerate(frames(clip)):
        for detector in detectors:
            step = every.get(detector.info.kind, 1)
            scan = index % step == 0 or index == last
            per_kind[detector.info.kind].append(detector.detect(frame) if scan else [])
        if progress is not None:
            progress(index + 1, facts.frame_count)
    tracks: list[Track] = []
    for kind, per_frame in per_kind.items():
        step = every.get(kind, 1)
        tracks += build_tracks(per_frame, kind=kind, width=facts.width, height=facts.height,
                               lead=max(LEAD_FRAMES, step - 1),
                               hold=max(HOLD_FRAMES, step - 1))
    return Proposal(facts=facts, tracks=tracks, detectors=detectors,
                    detections_per_kind={k: sum(map(len, v)) for k, v in per_kind.items()})


def render_clip(clip: Path, out: Path, *, facts: VideoFacts, boxes: list[list[Box]],
                style: str, mute_audio: bool) -> None:
    """The redacted H.264 copy of ``clip`` at ``out``."""
    write_redacted(clip, out, facts=facts, mute_audio=mute_audio,
                   transform=lambda i, frame: redact_frame(
                       frame, boxes[i] if i < len(boxes) else [], style=style))


def jpeg(frame_rgb: Frame) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame_rgb).save(
        buffer, format="JPEG", quality=STILL_JPEG_QUALITY, optimize=False,
        progressive=False)
    return buffer.getvalue()


def preview_jpeg(clip: Path, *, frame_index: int, boxes: list[list[Box]],
                 style: str) -> bytes:
    """Frame ``frame_index`` of ``clip`` with its boxes masked, as a JPEG."""
    frame = frame_at(clip, frame_index)
    masked = redact_frame(frame, boxes[frame_index] if frame_index < len(boxes) else [],
                          style=style)
    return jpeg(masked)


def first_frame_jpeg(redacted_clip: Path) -> bytes:
    """The still of a redacted clip: its first frame, decoded from the redacted file."""
    return jpeg(frame_at(redacted_clip, 0))


__all__ = ["PLATE_EVERY", "Proposal", "build_detectors", "check_model_files",
           "first_frame_jpeg", "preview_jpeg", "propose", "render_clip"]
