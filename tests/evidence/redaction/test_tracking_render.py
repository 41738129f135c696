"""Tracks never blink; masks are irreversible, idempotent and touch nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from evidence.redaction.detect import Detection
from evidence.redaction.render import merge_overlapping, redact_frame
from evidence.redaction.review import (
    DecisionView,
    check_manual_box,
    final_boxes,
    parse_targets,
    require_reason,
)
from evidence.redaction.tracking import Box, build_tracks
from evidence.redaction.video import VideoFacts
from storage.errors import InvalidInputError
from tests.evidence.redaction.footage import astronaut_face, background, paste


def det(x: float, y: float, size: float = 40) -> Detection:
    return Detection(x, y, x + size, y + size, score=0.9)


def test_a_blinking_detector_gives_a_box_on_every_frame_with_its_source() -> None:
    # found on frames 0-2 and 6-7, missed on 3-5 (a blink), walking right 4 px a frame
    per_frame = [[det(100 + 4 * n, 50)] if n not in (3, 4, 5) else [] for n in range(8)]
    per_frame += [[] for _ in range(10)]
    [track] = build_tracks(per_frame, kind="face", width=320, height=240)
    assert sorted(track.boxes) == list(range(0, 14))  # held 6 frames after the last
    sources = {n: s for n, (_b, s) in track.boxes.items()}
    assert [sources[n] for n in (3, 4, 5)] == ["interpolated"] * 3
    assert sources[8] == sources[13] == "held"
    # interpolated boxes move on between the detections, padded by 20 % a side
    xs = [track.boxes[n][0].x for n in range(0, 8)]
    assert xs == sorted(xs) and xs[4] == pytest.approx(100 + 16 - 8, abs=1)
    assert track.boxes[0][0] == Box(92, 42, 56, 56)


def test_a_face_found_late_is_masked_from_a_few_frames_before_and_two_faces_two_tracks(
) -> None:
    per_frame = [[] for _ in range(5)] + [[det(10, 10), det(200, 100)] for _ in range(3)]
    tracks = build_tracks(per_frame, kind="face", width=320, height=240)
    assert [t.id for t in tracks] == ["face-1", "face-2"]
    assert all(t.first_frame == 2 and t.boxes[2][1] == "held" for t in tracks)
    # a box at the edge is clipped to the frame
    assert tracks[0].boxes[5][0] == Box(2, 2, 56, 56)


def test_blur_is_idempotent_irreversible_and_leaves_the_rest_alone() -> None:
    frame = background(320, 240)
    face = astronaut_face(96)
    paste(frame, face, 100, 40)
    box = Box(100, 40, face.shape[1], face.shape[0])
    once = redact_frame(frame, [box])
    twice = redact_frame(once, [box])
    assert np.array_equal(once, twice)
    outside = np.ones(frame.shape[:2], bool)
    outside[box.y:box.y + box.h, box.x:box.x + box.w] = False
    assert np.array_equal(once[outside], frame[outside])

    def detail(img: np.ndarray) -> float:
        gray = img.astype(np.float64).mean(axis=2)
        return float(np.abs(np.diff(gray, axis=0)).mean() + np.abs(np.diff(gray, axis=1)).mean())

    region = (slice(box.y, box.y + box.h), slice(box.x, box.x + box.w))
    assert detail(once[region]) < 0.25 * detail(frame[region])
    filled = redact_frame(frame, [box], style="fill")
    assert not filled[region].any() and np.array_equal(redact_frame(filled, [box],
                                                                    style="fill"), filled)


def test_overlapping_boxes_are_masked_as_one_and_stay_idempotent() -> None:
    boxes = [Box(10, 10, 40, 40), Box(40, 30, 40, 40), Box(200, 10, 10, 10)]
    assert merge_overlapping(boxes) == [Box(10, 10, 70, 60), Box(200, 10, 10, 10)]
    frame = np.random.default_rng(1).integers(0, 256, (120, 240, 3), dtype=np.uint8)
    once = redact_frame(frame, boxes)
    assert np.array_equal(redact_frame(once, boxes), once)


def test_an_unknown_style_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="style 'pixelate' is not one of blur, fill"):
        redact_frame(background(32, 32), [Box(0, 0, 8, 8)], style="pixelate")


FACTS = VideoFacts(width=480, height=272, fps=__import__("fractions").Fraction(10),
                   frame_count=10, has_audio=False)


def test_a_manual_box_outside_the_frame_or_the_clip_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"lies outside the 480x272 frame"):
        check_manual_box(x=460, y=10, w=40, h=40, start_s=0, end_s=0.5, facts=FACTS)
    with pytest.raises(InvalidInputError, match="lies outside"):
        check_manual_box(x=-1, y=10, w=4, h=4, start_s=0, end_s=0.5, facts=FACTS)
    with pytest.raises(InvalidInputError, match="needs a width and height"):
        check_manual_box(x=1, y=1, w=0, h=4, start_s=0, end_s=0.5, facts=FACTS)
    with pytest.raises(InvalidInputError, match=r"the box starts at 3\.00 s"):
        check_manual_box(x=1, y=1, w=4, h=4, start_s=3, end_s=4, facts=FACTS)
    manual = check_manual_box(x=1, y=1, w=4, h=4, start_s=0.2, end_s=0.5, facts=FACTS)
    assert (manual.start_frame, manual.end_frame) == (2, 4)


def test_a_track_is_only_left_unmasked_with_a_reason_and_manual_boxes_add_masks() -> None:
    with pytest.raises(InvalidInputError, match="Excluding a track needs a reason"):
        require_reason("   ", "Excluding a track")
    tracks = build_tracks([[det(10, 10)], [det(12, 10)]], kind="face", width=100, height=100)
    manual = check_manual_box(x=50, y=50, w=10, h=10, start_s=0, end_s=0.1, facts=FACTS)
    boxes, summary = final_boxes(tracks, [DecisionView("exclude_track", "face-1", None),
                                          DecisionView("manual_box", None, manual)],
                                 frame_count=3)
    assert boxes[0] == [Box(50, 50, 10, 10)] and boxes[2] == []
    assert summary["excluded_tracks"] == ["face-1"] and summary["faces_masked"] == 0
    with pytest.raises(InvalidInputError, match="faces, plates"):
        parse_targets("faces,tattoos")
