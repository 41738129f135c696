"""Generated CCTV-like footage with real faces (skimage's astronaut and LFW crops)
composited in, and a licence plate drawn with DejaVu Sans: the test's own artefacts."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from evidence.fonts import DEJAVU_SANS_BOLD, font_path

Frame = npt.NDArray[np.uint8]


def astronaut_face(size: int) -> Frame:
    from skimage import data

    face = data.astronaut()[25:205, 165:315]  # the head, about 150x180
    return np.asarray(Image.fromarray(face).resize((size, round(size * 1.2)),
                                                   Image.Resampling.LANCZOS))


def lfw_face(index: int, size: int) -> Frame:
    from skimage import data

    gray = (data.lfw_subset()[index] * 255).astype(np.uint8)
    img = Image.fromarray(gray).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def plate_image(text: str = "AA 1234 BC", height: int = 36) -> Frame:
    font = ImageFont.truetype(str(font_path(DEJAVU_SANS_BOLD)), int(height * 0.7))
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("RGB", (right - left + height // 2, height), (245, 245, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width - 1, img.height - 1], outline=(20, 20, 20), width=2)
    draw.text((height // 4 - left, (height - (bottom - top)) // 2 - top), text,
              font=font, fill=(10, 10, 10))
    return np.asarray(img)


def background(width: int, height: int, seed: int = 0) -> Frame:
    rng = np.random.default_rng(seed)
    ys = np.linspace(60, 140, height)[:, None, None]
    xs = np.linspace(0, 40, width)[None, :, None]
    base = ys + xs + np.array([0, 5, 10])[None, None, :]
    noise = rng.normal(0, 3, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Placed:
    """Where an item is on a frame: left, top, width, height."""

    kind: str
    x: int
    y: int
    w: int
    h: int


def paste(frame: Frame, item: Frame, x: int, y: int) -> None:
    h, w = item.shape[:2]
    frame[y:y + h, x:x + w] = item


def write_clip(path: Path, frames: list[Frame], *, fps: int = 10) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "g": str(fps), "bf": "0"}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def street_frames(*, count: int = 8, width: int = 480, height: int = 272,
                  faces: bool = True, plate: bool = True,
                  face_size: int = 64) -> tuple[list[Frame], list[list[Placed]]]:
    """A face walking right (astronaut), a still face (LFW) and a parked car's plate."""
    frames: list[Frame] = []
    truth: list[list[Placed]] = []
    walker = astronaut_face(face_size)
    still = lfw_face(3, face_size)
    plate_px = plate_image()
    for n in range(count):
        frame = background(width, height, seed=n)
        placed: list[Placed] = []
        if faces:
            x = 40 + n * 6
            paste(frame, walker, x, 40)
            placed.append(Placed("face", x, 40, walker.shape[1], walker.shape[0]))
            paste(frame, still, 300, 50)
            placed.append(Placed("face", 300, 50, still.shape[1], still.shape[0]))
        if plate:
            paste(frame, plate_px, 250, 200)
            placed.append(Placed("plate", 250, 200, plate_px.shape[1], plate_px.shape[0]))
        frames.append(frame)
        truth.append(placed)
    return frames, truth
