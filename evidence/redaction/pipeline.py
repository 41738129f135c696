"""Proposing a redaction (detect on every frame, track) and rendering it.

1. ``build_detectors``: the detectors the targets need, their model files hashed.
2. ``propose``: decode the clip once; run the face detector on every decoded frame
   (never a sample) and the plate detector on every ``PLATE_EVERY``-th frame and the
   last (plates move slowly and are large; the tracks interpolate between those
   frames, and hold a plate's box ``PLATE_EVERY - 1`` frames before its first and after
   its last detection, so a plate between two scanned frames stays masked), each
   through a ``ChangeGate`` (``evidence.redaction.gating``: full resolution, on the
   regions that changed since the detector last looked, a full-frame pass on the first
   frame, every ``REFRESH_EVERY``-th scanned frame and when most of the frame changed;
   ``gated=False`` runs every scan on the whole frame), then link each kind's
   detections into tracks. When both detectors scan a frame they run at the same time,
   the plate detector on a second thread.
3. ``render_clip`` / ``preview_jpeg``: mask the final boxes of every frame, in its
   decoded yuv420p planes (``evidence.redaction.render.redact_picture``), the preview
   exactly as the rendered copy.

Frames are decoded to yuv420p on a read-ahead thread (``evidence.redaction.video.
pictures``): the gate reads their luma plane, the detectors get RGB only for the crops
they run on.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
from evidence.redaction.gating import ChangeGate, GateParameters
from evidence.redaction.picture import Picture, check_even_size
from evidence.redaction.render import redact_picture
from evidence.redaction.tracking import HOLD_FRAMES, LEAD_FRAMES, Box, Track, build_tracks
from evidence.redaction.video import (
    VideoFacts,
    frame_at,
    picture_at,
    pictures,
    stream_facts,
    write_redacted,
)

STILL_JPEG_QUALITY = 90
KIND_OF_TARGET = {"faces": "face", "plates": "plate"}
Progress = Callable[[int, int], None]
PLATE_EVERY = 5
DETECTOR_THREADS = 1
"""onnxruntime intra-op threads per detector. One: the detector runs on small crops,
where a second thread saves little and costs CPU (1.3x the CPU-seconds on the street
clip), while the read-ahead thread decodes the next frames on the other core."""
INPUT_RECORD: dict[str, str | int] = {
    "decoded_as": "yuv420p planes; the gate reads the luma plane, the detector RGB "
                  "(BT.601) of the regions it runs on",
    "onnxruntime_intra_op_threads": DETECTOR_THREADS}


@dataclass(frozen=True)
class Proposal:
    facts: VideoFacts
    tracks: list[Track]
    detectors: list[Detector]
    detections_per_kind: dict[str, int]
    detection: dict[str, Any] = field(default_factory=dict)
    """Per kind, how the detector was applied (the gate's parameters and counts)."""


def build_detectors(targets: list[str], *, face_model: Path | None = None,
                    plate_model: Path | None = None) -> list[Detector]:
    """Raises ``RedactionModelError`` when a needed model file is missing or corrupt."""
    result: list[Detector] = []
    if "faces" in targets:
        result.append(FaceDetector(face_model, threads=DETECTOR_THREADS))
    if "plates" in targets:
        result.append(PlateDetector(plate_model, threads=DETECTOR_THREADS))
    return result


def check_model_files(targets: list[str], *, face_model: Path | None = None,
                      plate_model: Path | None = None) -> None:
    """Raises ``RedactionModelError`` when a needed model file is missing (cheap: hashes
    only, nothing loaded; a corrupt file is found when ``build_detectors`` loads it)."""
    if "faces" in targets:
        hash_model(face_model or default_face_model(), "face detector")
    if "plates" in targets:
        hash_model(plate_model or default_plate_model(), "plate detector")


def gate_parameters(detector: Detector) -> GateParameters:
    """The gate for a detector: crops snapped to its stride (32 px at its input scale)."""
    scale = float(getattr(detector, "scale", 1.0)) or 1.0
    return GateParameters(stride=round(32 / scale))


def propose(clip: Path, *, detectors: list[Detector], plate_every: int = PLATE_EVERY,
            progress: Progress | None = None, gated: bool = True) -> Proposal:
    """Detect faces on every frame of ``clip``, plates on every ``plate_every``-th (and
    the last), and track; raises ``InvalidInputError`` for a clip that cannot be
    decoded, or whose width or height is odd (nothing could be rendered from it)."""
    header = stream_facts(clip)
    check_even_size(header.width, header.height, clip.name)
    per_kind: dict[str, list[list[Detection]]] = {d.info.kind: [] for d in detectors}
    every = {"face": 1, "plate": max(1, plate_every)}
    gates = {d.info.kind: ChangeGate(d, gate_parameters(d)) for d in detectors}

    def look(detector: Detector, picture: Picture) -> list[Detection]:
        return gates[detector.info.kind].detect(picture) if gated \
            else detector.detect(picture.rgb())

    count, frame = 0, None
    with ThreadPoolExecutor(max_workers=max(1, len(detectors) - 1),
                            thread_name_prefix="detect") as pool:
        for index, frame in enumerate(pictures(clip)):
            count = index + 1
            scanned = _scan_at_once(pool, look, [
                d for d in detectors if index % every.get(d.info.kind, 1) == 0], frame)
            for detector in detectors:
                per_kind[detector.info.kind].append(scanned.get(detector.info.kind, []))
            if progress is not None:
                progress(count, max(count, header.frame_count))
        if frame is not None:  # the last frame is always scanned
            per_kind_last = _scan_at_once(pool, look, [
                d for d in detectors if (count - 1) % every.get(d.info.kind, 1)], frame)
            for kind, found in per_kind_last.items():
                per_kind[kind][-1] = found
    facts = replace(header, frame_count=count)
    tracks: list[Track] = []
    for kind, per_frame in per_kind.items():
        step = every.get(kind, 1)
        tracks += build_tracks(per_frame, kind=kind, width=facts.width, height=facts.height,
                               lead=max(LEAD_FRAMES, step - 1),
                               hold=max(HOLD_FRAMES, step - 1))
    detection = {kind: {**(gate.parameters.as_dict() if gated else
                           {"method": "full frame on every scanned frame"}),
                        **(gate.stats.as_dict() if gated else {}), **INPUT_RECORD}
                 for kind, gate in gates.items()}
    return Proposal(facts=facts, tracks=tracks, detectors=detectors,
                    detections_per_kind={k: sum(map(len, v)) for k, v in per_kind.items()},
                    detection=detection)


def _scan_at_once(pool: ThreadPoolExecutor,
                  look: Callable[[Detector, Picture], list[Detection]],
                  detectors: list[Detector], picture: Picture) -> dict[str, list[Detection]]:
    """Each detector's detections on ``picture``: the first on this thread, the others on
    ``pool`` at the same time (onnxruntime releases the GIL, and each detector's gate is
    only ever used by one thread at a time, since every frame waits for all of them)."""
    if not detectors:
        return {}
    others = {d.info.kind: pool.submit(look, d, picture) for d in detectors[1:]}
    first = look(detectors[0], picture)
    return {detectors[0].info.kind: first,
            **{kind: future.result() for kind, future in others.items()}}


def render_clip(clip: Path, out: Path, *, facts: VideoFacts, boxes: list[list[Box]],
                style: str, mute_audio: bool) -> None:
    """The redacted H.264 copy of ``clip`` at ``out``."""
    write_redacted(clip, out, facts=facts, mute_audio=mute_audio,
                   transform=lambda i, picture: redact_picture(
                       picture, boxes[i] if i < len(boxes) else [], style=style))


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
    picture = picture_at(clip, frame_index)
    masked = redact_picture(picture, boxes[frame_index] if frame_index < len(boxes)
                            else [], style=style)
    return jpeg(masked.rgb())


def first_frame_jpeg(redacted_clip: Path) -> bytes:
    """The still of a redacted clip: its first frame, decoded from the redacted file."""
    return jpeg(frame_at(redacted_clip, 0))


__all__ = [
    "PLATE_EVERY",
    "Proposal",
    "build_detectors",
    "check_model_files",
    "first_frame_jpeg",
    "gate_parameters",
    "preview_jpeg",
    "propose",
    "render_clip",
]
