"""Detections linked into tracks over frames, so a mask never blinks.

1. ``link``: each frame's detections join the open track whose last box overlaps most
   (IoU >= ``iou``) or, failing that, whose centre is nearest (within one box
   diagonal); the rest start tracks. A track closes after ``max_gap`` frames unseen.
2. ``fill``: a track's box is interpolated linearly across frames where the detector
   blinked, held for ``hold`` frames after its last detection and ``lead`` frames
   before its first (a face that walks in is found a little late), and padded by
   ``pad`` of its size on every side, clipped to the frame.

Every frame a track covers has a box whose ``source`` says how it came: detected,
interpolated or held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from evidence.redaction.detect import Detection

IOU_LINK = 0.3
MAX_GAP = 12
HOLD_FRAMES = 6
LEAD_FRAMES = 3
PAD = 0.2


@dataclass(frozen=True, order=True)
class Box:
    """An integer pixel box: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass
class Track:
    """One face or plate over frames: frame index -> (padded box, source)."""

    id: str
    kind: str
    boxes: dict[int, tuple[Box, str]] = field(default_factory=dict)
    best_score: float = 0.0

    @property
    def first_frame(self) -> int:
        return min(self.boxes)

    @property
    def last_frame(self) -> int:
        return max(self.boxes)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "best_score": round(self.best_score, 4),
                "first_frame": self.first_frame, "last_frame": self.last_frame,
                "boxes": [[f, *b.as_list(), s] for f, (b, s) in sorted(self.boxes.items())]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Track:
        return cls(id=str(data["id"]), kind=str(data["kind"]),
                   best_score=float(data.get("best_score", 0.0)),
                   boxes={int(r[0]): (Box(int(r[1]), int(r[2]), int(r[3]), int(r[4])),
                                      str(r[5])) for r in data["boxes"]})


def iou(a: Detection, b: Detection) -> float:
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = ix * iy
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def _centre_distance(a: Detection, b: Detection) -> tuple[float, float]:
    dx = (a.x1 + a.x2 - b.x1 - b.x2) / 2
    dy = (a.y1 + a.y2 - b.y1 - b.y2) / 2
    diagonal = math.hypot(b.x2 - b.x1, b.y2 - b.y1)
    return math.hypot(dx, dy), diagonal


def link(per_frame: list[list[Detection]], *, kind: str, iou_min: float = IOU_LINK,
         max_gap: int = MAX_GAP) -> list[dict[int, Detection]]:
    """Raw tracks: frame index -> detection, in the order they started."""
    tracks: list[dict[int, Detection]] = []
    open_tracks: list[int] = []
    for frame, detections in enumerate(per_frame):
        open_tracks = [t for t in open_tracks if frame - max(tracks[t]) <= max_gap]
        pairs: list[tuple[float, int, int]] = []
        for t in open_tracks:
            last = tracks[t][max(tracks[t])]
            for d, det in enumerate(detections):
                overlap = iou(last, det)
                if overlap >= iou_min:
                    pairs.append((2.0 + overlap, t, d))
                else:
                    distance, diagonal = _centre_distance(det, last)
                    if distance <= diagonal:
                        pairs.append((1.0 - distance / (diagonal + 1e-9), t, d))
        used_t: set[int] = set()
        used_d: set[int] = set()
        for _score, t, d in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
            if t not in used_t and d not in used_d:
                tracks[t][frame] = detections[d]
                used_t.add(t)
                used_d.add(d)
        for d, det in enumerate(detections):
            if d not in used_d:
                tracks.append({frame: det})
                open_tracks.append(len(tracks) - 1)
    return tracks


def _padded(det: Detection, *, pad: float, width: int, height: int) -> Box:
    w, h = det.x2 - det.x1, det.y2 - det.y1
    x1 = max(0, math.floor(det.x1 - pad * w))
    y1 = max(0, math.floor(det.y1 - pad * h))
    x2 = min(width, math.ceil(det.x2 + pad * w))
    y2 = min(height, math.ceil(det.y2 + pad * h))
    return Box(x1, y1, max(1, x2 - x1), max(1, y2 - y1))


def _between(a: Detection, b: Detection, t: float) -> Detection:
    return Detection(a.x1 + (b.x1 - a.x1) * t, a.y1 + (b.y1 - a.y1) * t,
                     a.x2 + (b.x2 - a.x2) * t, a.y2 + (b.y2 - a.y2) * t,
                     score=min(a.score, b.score))


def fill(raw: dict[int, Detection], *, track_id: str, kind: str, frame_count: int,
         width: int, height: int, pad: float = PAD, hold: int = HOLD_FRAMES,
         lead: int = LEAD_FRAMES) -> Track:
    """A raw track with a box on every frame it covers (see the module docstring)."""
    frames = sorted(raw)
    track = Track(id=track_id, kind=kind, best_score=max(d.score for d in raw.values()))

    def put(frame: int, det: Detection, source: str) -> None:
        if 0 <= frame < frame_count:
            track.boxes[frame] = (_padded(det, pad=pad, width=width, height=height), source)

    for frame in range(frames[0] - lead, frames[0]):
        put(frame, raw[frames[0]], "held")
    for current, following in zip(frames, [*frames[1:], None], strict=True):
        put(current, raw[current], "detected")
        if following is not None:
            for frame in range(current + 1, following):
                t = (frame - current) / (following - current)
                put(frame, _between(raw[current], raw[following], t), "interpolated")
    for frame in range(frames[-1] + 1, frames[-1] + 1 + hold):
        put(frame, raw[frames[-1]], "held")
    return track


def build_tracks(per_frame: list[list[Detection]], *, kind: str, width: int, height: int,
                 pad: float = PAD, lead: int = LEAD_FRAMES,
                 hold: int = HOLD_FRAMES) -> list[Track]:
    """Link and fill: the tracks of one kind over a clip, ids ``<kind>-1``, ``-2`` ..."""
    raw_tracks = link(per_frame, kind=kind)
    return [fill(raw, track_id=f"{kind}-{n}", kind=kind, frame_count=len(per_frame),
                 width=width, height=height, pad=pad, lead=lead, hold=hold)
            for n, raw in enumerate(raw_tracks, start=1)]


__all__ = ["HOLD_FRAMES", "LEAD_FRAMES", "MAX_GAP", "PAD", "Box", "Track", "build_tracks",
           "fill", "iou", "link"]
