"""Synthetic Ukrainian plates for tests, the benchmark and the demo footage.

A plate is drawn like the national one: white, black border, the blue strip on the left
with the flag and "UA", the text in a bold sans (DejaVu, from matplotlib's package data,
found without importing matplotlib). ``degrade`` applies what a street camera does to
it: perspective, rotation, blur, motion blur, noise, JPEG compression, and the
infrared night look (grey, dark scene, the retro-reflective plate glowing).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from functools import cache
from importlib.util import find_spec
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from indexer.plates.grammar import format_plate
from storage.errors import ConfigurationError

PLATE_ASPECT = 520 / 112  # the national plate, in millimetres
BLUE = (0, 76, 160)
YELLOW = (255, 213, 0)


@cache
def font_file(name: str = "DejaVuSans-Bold.ttf") -> Path:
    """A DejaVu TTF from matplotlib's ``mpl-data/fonts/ttf``.

    Raises ``ConfigurationError`` when matplotlib or the font is missing.
    """
    spec = find_spec("matplotlib")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(location) / "mpl-data" / "fonts" / "ttf" / name
        if candidate.is_file():
            return candidate
    raise ConfigurationError(f"The font {name} was not found in matplotlib's package data;"
                             " install matplotlib to render plates.")


def render_plate(text: str, *, width: int = 520) -> Image.Image:
    """The plate ``text`` (normalised, e.g. ``AE1234KX``) drawn ``width`` pixels wide."""
    scale = 4 if width < 260 else 1  # draw big and shrink: small plates stay crisp
    big_w = width * scale
    big_h = max(8, round(big_w / PLATE_ASPECT))
    image = Image.new("RGB", (big_w, big_h), "white")
    draw = ImageDraw.Draw(image)
    border = max(2, big_h // 28)
    draw.rectangle((0, 0, big_w - 1, big_h - 1), outline="black", width=border)
    strip = round(big_w * 0.09)
    draw.rectangle((border, border, strip, big_h - border - 1), fill=BLUE)
    flag_h = round(big_h * 0.22)
    flag_x0, flag_x1 = border + strip // 6, strip - strip // 6
    top = round(big_h * 0.14)
    draw.rectangle((flag_x0, top, flag_x1, top + flag_h // 2), fill=BLUE, outline="white")
    draw.rectangle((flag_x0, top + flag_h // 2, flag_x1, top + flag_h), fill=YELLOW)
    small = ImageFont.truetype(str(font_file()), max(6, round(big_h * 0.3)))
    draw.text(((border + strip) / 2, big_h * 0.72), "UA", font=small, fill="white",
              anchor="mm")
    printed = format_plate(text)
    size = round(big_h * 0.8)
    font = ImageFont.truetype(str(font_file()), size)
    room = big_w - strip - 3 * border
    while size > 6 and draw.textlength(printed, font=font) > room * 0.94:
        size -= 2
        font = ImageFont.truetype(str(font_file()), size)
    draw.text((strip + border + room / 2, big_h / 2 + border), printed, font=font,
              fill="black", anchor="mm")
    if scale > 1:
        image = image.resize((width, max(4, round(width / PLATE_ASPECT))),
                             Image.Resampling.LANCZOS)
    return image


@dataclass(frozen=True)
class Degradation:
    """What the camera does to a plate; every field has a harmless default."""

    rotation_deg: float = 0.0
    perspective: float = 0.0  # 0..0.3: how much one side shrinks
    blur: float = 0.0  # Gaussian radius, px
    motion: int = 0  # horizontal motion-blur length, px
    noise: float = 0.0  # Gaussian noise sigma, 0..255
    jpeg_quality: int = 0  # 0: no recompression
    night: bool = False


def _perspective(image: Image.Image, amount: float) -> Image.Image:
    w, h = image.size
    shrink = amount * h
    # map the output rectangle onto a source quadrilateral whose right side is shorter
    coeffs = _perspective_coeffs(
        [(0, 0), (w, 0), (w, h), (0, h)],
        [(0, 0), (w, -shrink), (w, h + shrink), (0, h)])
    return image.transform((w, h), Image.Transform.PERSPECTIVE, coeffs,
                           Image.Resampling.BICUBIC, fillcolor=(90, 90, 90))


def _perspective_coeffs(dst: list[tuple[float, float]],
                        src: list[tuple[float, float]]) -> list[float]:
    rows: list[list[float]] = []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = np.linalg.solve(np.array(rows, dtype=float),
                               np.array([c for point in src for c in point], dtype=float))
    return [float(c) for c in solution]


def degrade_plate(plate: Image.Image, how: Degradation) -> Image.Image:
    """The plate as the camera sees it before it is pasted into the scene (RGBA)."""
    image = plate.convert("RGB")
    if how.night:
        grey = image.convert("L").point(lambda v: 60 + int(v * 0.75))  # glowing plate
        image = grey.convert("RGB")
    if how.perspective:
        image = _perspective(image, how.perspective)
    rgba = image.convert("RGBA")
    if how.rotation_deg:
        rgba = rgba.rotate(how.rotation_deg, resample=Image.Resampling.BICUBIC, expand=True)
    return rgba


def degrade_frame(frame: Image.Image, how: Degradation, *, seed: int = 0) -> Image.Image:
    """Blur, motion blur, noise, night look and JPEG applied to a whole frame."""
    image = frame.convert("RGB")
    if how.night:
        arr = np.asarray(image.convert("L"), dtype=np.float32)
        bright = arr > 150  # the plate (and lights) glow; the scene goes dark
        arr = np.where(bright, arr, arr * 0.45)
        image = Image.fromarray(arr.clip(0, 255).astype(np.uint8)).convert("RGB")
    if how.blur:
        image = image.filter(ImageFilter.GaussianBlur(how.blur))
    if how.motion > 1:
        size = how.motion if how.motion % 2 else how.motion + 1
        kernel = [0.0] * (size * size)
        for i in range(size):
            kernel[(size // 2) * size + i] = 1.0 / size
        if size <= 5:
            image = image.filter(ImageFilter.Kernel((size, size), kernel, scale=1))
        else:
            arr = np.asarray(image, dtype=np.float32)
            out = np.zeros_like(arr)
            for shift in range(size):
                out += np.roll(arr, shift - size // 2, axis=1)
            image = Image.fromarray((out / size).clip(0, 255).astype(np.uint8))
    if how.noise:
        rng = np.random.default_rng(seed)
        arr = np.asarray(image, dtype=np.float32)
        arr = arr + rng.normal(0.0, how.noise, arr.shape).astype(np.float32)
        image = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    if how.jpeg_quality:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=how.jpeg_quality)
        buffer.seek(0)
        image = Image.open(buffer).convert("RGB")
    return image


def street_frame(width: int, height: int, *, seed: int = 0) -> Image.Image:
    """A plain street-like background: sky, houses, road with markings, a car body."""
    rnd = random.Random(seed)
    image = Image.new("RGB", (width, height), (135, 206, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, int(height * 0.4), width, height), fill=(85, 90, 96))
    for _ in range(3):
        x = rnd.randint(0, width - width // 5)
        draw.rectangle((x, int(height * 0.1), x + width // 5, int(height * 0.4)),
                       fill=(200, 162, 122))
    for x in range(0, width, width // 6):
        draw.rectangle((x, int(height * 0.67), x + width // 12, int(height * 0.685)),
                       fill=(240, 240, 240))
    return image


def paste_plate(frame: Image.Image, plate: Image.Image, *, x: int, y: int) -> Image.Image:
    """``plate`` (RGBA or RGB) pasted on a car-coloured patch around it at (x, y)."""
    out = frame.copy()
    draw = ImageDraw.Draw(out)
    w, h = plate.size
    draw.rectangle((x - w // 3, y - h * 2, x + w + w // 3, y + h + h // 2), fill=(40, 60, 140))
    mask = plate.split()[3] if plate.mode == "RGBA" else None
    out.paste(plate.convert("RGB"), (x, y), mask)
    return out


__all__ = [
    "Degradation",
    "degrade_frame",
    "degrade_plate",
    "font_file",
    "paste_plate",
    "render_plate",
    "street_frame",
]
