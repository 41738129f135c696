"""The review of a proposed redaction: decisions on tracks and manual boxes, checked.

A proposal is a list of tracks (``evidence.redaction.tracking``). A reviewer then:

- excludes a track (``exclude_track``) with a reason, e.g. the suspect in a court copy,
  or includes it again (``include_track``), also with a reason;
- adds a manual box over a time range (``manual_box``), e.g. a tattoo or a house number;
- approves (``approve``), after which the redaction is evidence and takes no decisions.

Every decision names who, when and why. ``final_boxes`` applies them in order: the
boxes masked on each frame are the tracks not excluded plus the manual boxes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from evidence.redaction.tracking import Box, Track
from evidence.redaction.video import VideoFacts
from storage.errors import InvalidInputError

TARGETS = ("faces", "plates")
DECISION_KINDS = ("exclude_track", "include_track", "manual_box", "approve")
REASON_MAX = 500


@dataclass(frozen=True)
class ManualBox:
    box: Box
    start_frame: int
    end_frame: int  # inclusive

    def as_dict(self) -> dict[str, Any]:
        return {"box": self.box.as_list(), "start_frame": self.start_frame,
                "end_frame": self.end_frame}


@dataclass(frozen=True)
class DecisionView:
    """A recorded decision as the review applies it."""

    kind: str
    track_id: str | None
    manual: ManualBox | None


def parse_targets(text: str | Iterable[str]) -> list[str]:
    """``faces,plates`` -> ``["faces", "plates"]``. Raises ``InvalidInputError`` for an
    empty list or an unknown target."""
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t]
    unknown = [t for t in items if t not in TARGETS]
    if unknown or not items:
        raise InvalidInputError(f"Redact names what to mask: {', '.join(TARGETS)} "
                                f"(comma-separated); got {','.join(items) or 'nothing'}.")
    return [t for t in TARGETS if t in items]


def require_reason(reason: str, what: str) -> str:
    """The reason, stripped. Raises ``InvalidInputError`` when it is empty or too long."""
    cleaned = " ".join(reason.split())
    if not cleaned:
        raise InvalidInputError(f"{what} needs a reason; it goes on the record.")
    if len(cleaned) > REASON_MAX:
        raise InvalidInputError(f"A reason is at most {REASON_MAX} characters.")
    return cleaned


def check_track(track_id: str, tracks: Iterable[Track]) -> str:
    if track_id not in {t.id for t in tracks}:
        raise InvalidInputError(f"This redaction has no track {track_id!r}.")
    return track_id


def check_manual_box(*, x: int, y: int, w: int, h: int, start_s: float, end_s: float,
                     facts: VideoFacts) -> ManualBox:
    """A manual box over ``[start_s, end_s]`` seconds of the clip, in frames.

    Raises ``InvalidInputError`` for an empty box, one that is not wholly inside the
    frame, or a time range that is empty or outside the clip.
    """
    if w <= 0 or h <= 0:
        raise InvalidInputError(f"A manual box needs a width and height; got {w}x{h}.")
    if x < 0 or y < 0 or x + w > facts.width or y + h > facts.height:
        raise InvalidInputError(
            f"The box {w}x{h} at ({x}, {y}) lies outside the {facts.width}x{facts.height} "
            "frame.")
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or not 0 <= start_s <= end_s:
        raise InvalidInputError(
            f"The time range {start_s}-{end_s} s is empty or negative.")
    if start_s >= facts.duration_s:
        raise InvalidInputError(f"The clip is {facts.duration_s:.2f} s long; the box starts "
                                f"at {start_s:.2f} s.")
    first = int(start_s * facts.fps)
    last = min(facts.frame_count - 1, max(first, math.ceil(end_s * facts.fps) - 1))
    return ManualBox(box=Box(x, y, w, h), start_frame=first, end_frame=last)


def final_boxes(tracks: list[Track], decisions: list[DecisionView], *,
                frame_count: int) -> tuple[list[list[Box]], dict[str, Any]]:
    """The boxes masked on every frame, and a summary of what is masked."""
    excluded: set[str] = set()
    manual: list[ManualBox] = []
    for decision in decisions:
        if decision.kind == "exclude_track" and decision.track_id:
            excluded.add(decision.track_id)
        elif decision.kind == "include_track" and decision.track_id:
            excluded.discard(decision.track_id)
        elif decision.kind == "manual_box" and decision.manual is not None:
            manual.append(decision.manual)
    per_frame: list[list[Box]] = [[] for _ in range(frame_count)]
    kept = [t for t in tracks if t.id not in excluded]
    for track in kept:
        for frame, (box, _source) in track.boxes.items():
            if 0 <= frame < frame_count:
                per_frame[frame].append(box)
    for item in manual:
        for frame in range(item.start_frame, min(frame_count, item.end_frame + 1)):
            per_frame[frame].append(item.box)
    summary = {
        "faces_masked": sum(t.kind == "face" for t in kept),
        "plates_masked": sum(t.kind == "plate" for t in kept),
        "manual_boxes": len(manual),
        "excluded_tracks": sorted(excluded),
        "frames_with_masks": sum(bool(b) for b in per_frame),
    }
    return per_frame, summary


__all__ = ["DECISION_KINDS", "TARGETS", "DecisionView", "ManualBox", "check_manual_box",
           "check_track", "final_boxes", "parse_targets", "require_reason"]
