"""A sampled frame at full resolution, decoded from its original for plate crops.

The detector looks at the stored copy (at most 448 px); where it finds plate candidates,
the reader cuts them from the same frame decoded from the original recording, so small
plates keep their pixels. Decoding seeks to the key frame before the frame's offset and
decodes forward to it, only for frames with candidates.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av
from PIL import Image

log = logging.getLogger(__name__)
TOLERANCE_S = 1e-3


def decode_frame_at(path: Path, offset_s: float) -> Image.Image | None:
    """The frame ``offset_s`` seconds after the original's first frame (the offset ingest
    recorded), at full resolution; None when it cannot be decoded (the stored copy is
    used then)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            base = stream.time_base
            origin = float(stream.start_time * base) if stream.start_time is not None \
                and base is not None else 0.0
            target = origin + offset_s
            if base is not None:
                container.seek(int(max(0.0, target - 0.5) / float(base)), stream=stream,
                               backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.time is None or frame.time + TOLERANCE_S < target:
                    continue
                image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
                return image
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        log.warning("frame at %.3f s of %s not decoded (%s); the stored copy is read",
                    offset_s, path.name, exc)
    return None


__all__ = ["decode_frame_at"]
