"""Change-gated face detection finds what full-frame detection finds, on generated
footage with sensor grain on every frame and real faces (skimage) composited in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evidence.redaction.detect import Detection, FaceDetector, Frame
from evidence.redaction.gating import ChangeGate, GateParameters, luma_blocks, merge_rects
from evidence.redaction.pipeline import propose
from evidence.redaction.tracking import Track
from tests.evidence.redaction.footage import astronaut_face, background, lfw_face, paste, write_clip

WIDTH, HEIGHT = 320, 192


@pytest.fixture(scope="module")
def faces() -> FaceDetector:
    return FaceDetector()


def _centred_in(detections: list[Detection], x: int, y: int, w: int, h: int) -> bool:
    return any(x <= (d.x1 + d.x2) / 2 <= x + w and y <= (d.y1 + d.y2) / 2 <= y + h
               for d in detections)


def walking_in(count: int, *, stop_at: int | None = None) -> tuple[list[Frame], list[int]]:
    """A static street (fresh sensor grain every frame) that a face walks into from the
    left edge, 12 px a frame, from frame 3; it stops at frame ``stop_at``. Also the
    face's left edge per frame (None before it enters)."""
    face = astronaut_face(48)
    result, lefts = [], []
    for n in range(count):
        frame = background(WIDTH, HEIGHT, seed=n)
        moved = min(n, stop_at) if stop_at is not None else n
        left = -face.shape[1] + 12 * (moved - 2)
        if n >= 3:
            visible = face[:, max(0, -left):]
            paste(frame, visible, max(0, left), 60)
        result.append(frame)
        lefts.append(left)
    return result, lefts


def test_a_face_walking_into_a_static_scene_is_found_on_the_same_frame_as_full_frame(
        faces: FaceDetector) -> None:
    frames, lefts = walking_in(12)
    gate = ChangeGate(faces, GateParameters(refresh_every=1000))
    gated = [gate.detect(f) for f in frames]
    full = [faces.detect(f) for f in frames]
    face_w, face_h = 48, round(48 * 1.2)

    def seen(per_frame: list[list[Detection]]) -> list[bool]:
        return [_centred_in(d, max(0, left), 60, face_w, face_h)
                for d, left in zip(per_frame, lefts, strict=True)]

    assert seen(gated) == seen(full)
    first = seen(full).index(True)
    assert 3 <= first <= 5 and not any(seen(full)[:3])
    # it was found by looking only at crops: one full pass (the first frame), the rest
    # on the changed regions, a small share of the frame
    assert gate.stats.full_passes == 1 and gate.stats.crop_passes >= 8
    assert gate.stats.as_dict()["share_of_pixels_detected_on"] < 0.5
    assert gate.stats.unchanged == 2  # frames 1-2: only grain changed


def test_a_face_that_stops_stays_masked_through_the_unchanged_frames(
        faces: FaceDetector, tmp_path: Path) -> None:
    frames, _lefts = walking_in(24, stop_at=8)
    paste_still = lfw_face(3, 40)
    for frame in frames:  # and someone who stands still all along
        paste(frame, paste_still, 240, 100)
    clip = write_clip(tmp_path / "stops.mp4", frames, fps=10)
    gated = propose(clip, detectors=[faces])
    full = propose(clip, detectors=[faces], gated=False)

    def covered(proposal_tracks: list[Track], frame: int, x: int, y: int) -> bool:
        return any(frame in t.boxes and t.boxes[frame][0].x <= x <= t.boxes[frame][0].x
                   + t.boxes[frame][0].w and t.boxes[frame][0].y <= y
                   <= t.boxes[frame][0].y + t.boxes[frame][0].h for t in proposal_tracks)

    stopped_x, stopped_y = -48 + 12 * 6 + 24, 60 + 29  # the stopped face's centre
    for n in range(9, 24):
        assert covered(gated.tracks, n, stopped_x, stopped_y), n
        assert covered(gated.tracks, n, 260, 120), n
    assert [t.id for t in gated.tracks] == [t.id for t in full.tracks]
    assert gated.detections_per_kind == full.detections_per_kind
    record = gated.detection["face"]
    assert record["method"] == "change-gated" and record["unchanged_frames"] >= 10
    assert record["scanned_frames"] == 24 and record["full_frame_passes"] == 1
    assert record["threshold_grey_levels"] == 6.0
    assert record["refresh_every_scanned_frames"] == 50
    assert full.detection["face"]["method"] == "full frame on every scanned frame"


def test_a_lighting_change_triggers_a_full_pass_and_the_faces_are_found_again(
        faces: FaceDetector) -> None:
    face = astronaut_face(48)
    frames = []
    for n in range(6):
        frame = background(WIDTH, HEIGHT, seed=n)
        paste(frame, face, 100, 50)
        if n >= 3:  # the street lights come on
            frame = np.clip(frame.astype(np.int16) + 40, 0, 255).astype(np.uint8)
        frames.append(frame)
    gate = ChangeGate(faces)
    per_frame = [gate.detect(f) for f in frames]
    assert gate.stats.full_passes == 2 and gate.stats.unchanged == 4
    assert all(_centred_in(d, 100, 50, 48, 58) for d in per_frame)


def test_the_refresh_runs_a_full_pass_every_k_scanned_frames(faces: FaceDetector) -> None:
    gate = ChangeGate(faces, GateParameters(refresh_every=3))
    for n in range(7):
        gate.detect(background(WIDTH, HEIGHT, seed=n))
    assert gate.stats.full_passes == 3 and gate.stats.unchanged == 4  # frames 0, 3, 6


def test_crops_cover_the_change_with_its_margin_snapped_to_the_stride(
        faces: FaceDetector) -> None:
    gate = ChangeGate(faces)
    still = background(WIDTH, HEIGHT, seed=0)
    gate.detect(still)
    moved = still.copy()
    moved[70:80, 130:140] = 255  # a small change
    moved[150:160, 300:310] = 0  # another, near the corner
    crops = gate.crops(luma_blocks(moved, 4, 16), height=HEIGHT, width=WIDTH)
    assert crops == [(64, 0, 192, 128), (224, 96, 320, 192)]
    assert all((x1 % 32, y1 % 32) == (0, 0) for x1, y1, _x2, _y2 in crops)
    assert merge_rects([(0, 0, 64, 64), (32, 32, 96, 96), (200, 0, 232, 32)]) == [
        (0, 0, 96, 96), (200, 0, 232, 32)]
