"""Plate reading: recall, false hits, per-character accuracy and throughput, with a baseline.

A generator renders Ukrainian-style plates (white, the blue UA strip, DejaVu Sans Bold)
60-200 px wide with perspective, rotation, blur, motion blur, noise, JPEG compression,
and day or night infrared looks, and composites each into ``--frames`` consecutive
sampled street frames of the size ingest stores (448x252), keeping the ground truth.

Oko's pipeline (detector on the frame at <=480 px, plate-shaped boxes, upscaled crops,
grammar, votes over the frames of one pass) is compared with a baseline that runs the
same OCR package's full pipeline (detector at its default upscaling, angle classifier,
recogniser) on every full frame and takes any text, normalised only (no grammar, no
voting). Queries: the exact plate, the plate with two characters as ``?``, and plates
not in the footage (false exact hits). Throughput is frames/s on this machine; the
ingest slowdown is plate-reading time over ingest time for a real clip.

Run: ``.venv/bin/python benchmarks/plates.py [--plates 30] [--frames 3] [--seed 7]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.plates.grammar import PLATE_LETTERS, confusion_distance, normalise, parse_query
from indexer.plates.reader import PlateReader, ReadStats
from indexer.plates.render import (
    Degradation,
    degrade_frame,
    degrade_plate,
    paste_plate,
    render_plate,
    street_frame,
)

WIDTH, HEIGHT = 448, 252
CPU_SECONDS: dict[str, float] = {}
CORES = 2


def _speed(frames: int, wall_s: float, cpu_s: float) -> dict[str, float]:
    """Measured frames/s (on a shared machine), and what 2 free cores would give."""
    return {"frames_per_s": round(frames / wall_s, 2),
            "cpu_s_per_frame": round(cpu_s / frames, 3),
            "frames_per_s_on_2_free_cores": round(CORES * frames / cpu_s, 2)}


def random_plate(rnd: random.Random) -> str:
    letters = PLATE_LETTERS
    if rnd.random() < 0.15:
        return "".join(rnd.choice("0123456789") for _ in range(5)) + rnd.choice(
            letters) + rnd.choice(letters)
    return (rnd.choice(letters) + rnd.choice(letters)
            + "".join(rnd.choice("0123456789") for _ in range(4))
            + rnd.choice(letters) + rnd.choice(letters))


@dataclass(frozen=True)
class Case:
    plate: str
    width: int
    night: bool
    how: Degradation
    frames: list[Image.Image]


def make_cases(count: int, frames: int, seed: int) -> list[Case]:
    rnd = random.Random(seed)
    cases: list[Case] = []
    for number in range(count):
        plate = random_plate(rnd)
        width = 60 + round(140 * number / max(1, count - 1))  # 60..200 px, evenly
        night = rnd.random() < 0.3
        how = Degradation(rotation_deg=rnd.uniform(-7, 7), perspective=rnd.uniform(0, 0.18),
                          blur=rnd.uniform(0, 0.9), motion=rnd.choice([0, 0, 2, 3, 5]),
                          noise=rnd.uniform(0, 9), jpeg_quality=rnd.randint(40, 90),
                          night=night)
        images = []
        for step in range(frames):
            scale = 1.0 + 0.06 * step  # the car comes closer
            plate_img = degrade_plate(render_plate(plate, width=round(width * scale)), how)
            x = 30 + step * (WIDTH - plate_img.width - 60) // max(1, frames - 1)
            y = 150 + rnd.randint(-10, 10)
            frame = paste_plate(street_frame(WIDTH, HEIGHT, seed=number), plate_img,
                                x=max(0, x), y=min(HEIGHT - plate_img.height - 2, y))
            images.append(degrade_frame(frame, how, seed=number * 31 + step))
        cases.append(Case(plate, width, night, how, images))
    return cases


def _vote(texts: list[str]) -> str | None:
    if not texts:
        return None
    counts: dict[str, int] = {}
    for text in texts:
        counts[text] = counts.get(text, 0) + 1
    return max(counts.items(), key=lambda item: item[1])[0]


def _char_accuracy(truth: str, read: str | None) -> float:
    if not read:
        return 0.0
    if len(read) != len(truth):
        return max(0.0, 1.0 - confusion_distance(truth, read) / len(truth))
    return sum(a == b for a, b in zip(truth, read, strict=True)) / len(truth)


def _two_wild(plate: str, rnd: random.Random) -> str:
    spots = rnd.sample(range(len(plate)), 2)
    return "".join("?" if i in spots else c for i, c in enumerate(plate))


def evaluate(per_case_texts: list[list[str]], cases: list[Case], absent: list[str],
             *, voted: bool, seed: int) -> dict[str, Any]:
    """Recall, false exact hits and per-character accuracy from what each pass yielded."""
    rnd = random.Random(seed)
    sightings = [({_vote(texts)} - {None}) if voted else set(texts)
                 for texts in per_case_texts]
    everything = set().union(*sightings) if sightings else set()
    exact = sum(case.plate in found for case, found in zip(cases, sightings, strict=True))
    wild = 0
    for case, found in zip(cases, sightings, strict=True):
        regex = parse_query(_two_wild(case.plate, rnd)).regex()
        wild += any(regex.fullmatch(text) for text in found)
    false_hits = sum(plate in everything for plate in absent)
    chars = []
    for case, found in zip(cases, sightings, strict=True):
        best = min(found, key=lambda t: confusion_distance(case.plate, t), default=None)
        chars.append(_char_accuracy(case.plate, best))
    by_size: dict[str, list[int]] = {}
    for case, found in zip(cases, sightings, strict=True):
        band = "60-99" if case.width < 100 else "100-149" if case.width < 150 else "150-200"
        by_size.setdefault(band, []).append(int(case.plate in found))
    return {
        "exact_recall": round(exact / len(cases), 4),
        "two_wildcard_recall": round(wild / len(cases), 4),
        "false_exact_hits": false_hits, "absent_plates_queried": len(absent),
        "per_character_accuracy": round(float(np.mean(chars)), 4),
        "exact_recall_by_width_px": {k: round(sum(v) / len(v), 3) for k, v in by_size.items()},
        "night_exact_recall": round(np.mean([c.plate in f for c, f in zip(
            cases, sightings, strict=True) if c.night] or [0]), 3),
    }


def run_oko(cases: list[Case]) -> tuple[list[list[str]], float, ReadStats]:
    reader = PlateReader()
    stats = ReadStats()
    texts: list[list[str]] = []
    started, cpu = time.perf_counter(), time.process_time()
    for case in cases:
        texts.append([read.text for frame in case.frames for read in reader.read(frame, stats)])
    CPU_SECONDS["oko"] = time.process_time() - cpu
    return texts, time.perf_counter() - started, stats


def run_baseline(cases: list[Case]) -> tuple[list[list[str]], float]:
    from rapidocr_onnxruntime import RapidOCR

    ocr = RapidOCR(intra_op_num_threads=2, inter_op_num_threads=1)
    texts: list[list[str]] = []
    started, cpu = time.perf_counter(), time.process_time()
    for case in cases:
        found: list[str] = []
        for frame in case.frames:
            result, _ = ocr(np.ascontiguousarray(np.asarray(frame)[:, :, ::-1]))
            found += [normalise(str(text)) for _box, text, _score in result or []]
        texts.append(found)
    CPU_SECONDS["baseline"] = time.process_time() - cpu
    return texts, time.perf_counter() - started


def ingest_slowdown(seconds: float) -> dict[str, Any]:
    """Ingest a clip with plates into a scratch data dir, then read its plates: times."""
    from sqlmodel import Session, select

    from indexer.ingest import IngestOptions, ingest_file
    from indexer.plates.footage import PlatePass, write_plate_clip
    from indexer.plates.sightings import read_pending_plates
    from search_api.state import build_state
    from storage.models.media import Camera
    from storage.models.plates import PlateSighting
    from storage.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        passes = [PlatePass(random_plate(random.Random(i)), i * 10 + 0.5, i * 10 + 8.5,
                            plate_width=90 + 10 * (i % 5)) for i in range(int(seconds // 10))]
        clip = write_plate_clip(root / "CAM-B01_20260125T120000.mp4", passes=passes,
                                seconds=seconds)
        state = build_state(Settings(home=root / "home", environment="test",
                                     key_passphrase="bench-passphrase"))  # noqa: S106
        with Session(state.engine) as session:
            session.add(Camera(id="CAM-B01", name="bench", district="x", latitude=50.45,
                               longitude=30.52, agency="police"))
            session.commit()
        started = time.perf_counter()
        outcome = ingest_file(engine=state.engine, originals=state.originals,
                              derived=state.derived, path=clip, camera_id="CAM-B01",
                              start=None, options=IngestOptions())
        ingest_s = time.perf_counter() - started
        reader = PlateReader()
        report = read_pending_plates(engine=state.engine, derived=state.derived,
                                     reader=reader,
                                     motion_threshold=state.settings.motion_threshold)
        found = {p.text for p in passes}
        with Session(state.engine) as session:
            read = {s.plate for s in session.exec(select(PlateSighting)).all()}
        state.engine.dispose()
    return {"clip_seconds": seconds, "frames": outcome.frame_count,
            "ingest_s": round(ingest_s, 2), "plate_reading_s": round(report.seconds, 2),
            "slowdown_factor": round((ingest_s + report.seconds) / ingest_s, 2),
            "frames_read": report.frames_read, "frames_static_skipped": report.frames_static,
            "plates_in_clip": len(found), "plates_found": len(found & read),
            "sightings": len(read)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=30)
    parser.add_argument("--frames", type=int, default=3, help="Sampled frames per pass")
    parser.add_argument("--absent", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    cases = make_cases(args.plates, args.frames, args.seed)
    present = {case.plate for case in cases}
    rnd = random.Random(args.seed + 1)
    absent: list[str] = []
    while len(absent) < args.absent:
        plate = random_plate(rnd)
        if plate not in present:
            absent.append(plate)
    frame_count = sum(len(case.frames) for case in cases)
    texts, oko_s, stats = run_oko(cases)
    result: dict[str, Any] = {
        "set": {"plates": len(cases), "frames_per_pass": args.frames, "frames": frame_count,
                "frame_size": f"{WIDTH}x{HEIGHT}", "plate_width_px": "60-200",
                "night_plates": sum(c.night for c in cases), "seed": args.seed},
        "oko": {**evaluate(texts, cases, absent, voted=True, seed=args.seed),
                **_speed(frame_count, oko_s, CPU_SECONDS["oko"]),
                "candidates_per_frame": round(stats.candidates / frame_count, 2),
                "rejected_by_grammar": stats.rejected_by_grammar},
    }
    if not args.no_baseline:
        base_texts, base_s = run_baseline(cases)
        result["baseline_full_frame_no_grammar"] = {
            **evaluate(base_texts, cases, absent, voted=False, seed=args.seed),
            **_speed(frame_count, base_s, CPU_SECONDS["baseline"])}
    result["goal_frames_per_s"] = 10.0  # 20 cameras, one frame per 2 s
    result["ingest"] = ingest_slowdown(args.clip_seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
