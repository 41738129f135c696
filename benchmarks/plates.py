"""Plate reading: recall, false hits, per-character accuracy and throughput, with a baseline.

A generator renders Ukrainian-style plates (white, the blue UA strip, DejaVu Sans Bold)
60-200 px wide with perspective, rotation, blur, motion blur, noise, JPEG compression,
and day or night infrared looks, and composites each into ``--frames`` consecutive
sampled street frames of the size ingest stores (448x252), keeping the ground truth.

Oko's pipeline (detector on the frame at <=480 px, only on the regions that changed
since the pass's previous frame, plate-shaped boxes, crops, grammar, votes over the
frames of one pass) is compared with the previous setting (onnxruntime threads spinning,
the detector on every whole frame) in the same run, and with a baseline that runs the
same OCR package's full pipeline (detector at its default upscaling, angle classifier,
recogniser) on every full frame and takes any text, normalised only (no grammar, no
voting). Queries: the exact plate, the plate with two characters as ``?``, and plates
not in the footage (false exact hits). Throughput is frames/s on this machine; the
ingest slowdown is plate-reading time over ingest time for a real clip.

Run: ``.venv/bin/python benchmarks/plates.py [--plates 30] [--frames 3] [--seed 7]
[--repeats 3] [--modes before_spinning_whole_frames,oko_stored_copy,oko_full_resolution_crops]
[--no-baseline] [--no-ingest]`` (JSON on stdout; each part also on stderr as it is done)
"""

from __future__ import annotations

import argparse
import json
import os
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
from indexer.plates.reader import PlateReader, ReaderConfig, ReadStats
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
    frames: list[Image.Image]  # the stored copies (448x252), what the detector sees
    originals: list[Image.Image]  # the same frames at the original's resolution


def make_cases(count: int, frames: int, seed: int, scale: float = 1.0) -> list[Case]:
    """Plates 60-200 px wide in the stored copy; each frame is rendered at ``scale`` times
    the stored size (the original) and scaled down to the stored copy as ingest does."""
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
        big = Degradation(rotation_deg=how.rotation_deg, perspective=how.perspective,
                          blur=how.blur * scale, motion=round(how.motion * scale),
                          noise=how.noise, jpeg_quality=how.jpeg_quality, night=night)
        ow, oh = round(WIDTH * scale), round(HEIGHT * scale)
        images, originals = [], []
        for step in range(frames):
            closer = 1.0 + 0.06 * step  # the car comes closer
            plate_img = degrade_plate(render_plate(plate, width=round(width * closer * scale)),
                                      big)
            x = round(30 * scale) + step * (ow - plate_img.width - round(60 * scale)) // max(
                1, frames - 1)
            y = round((150 + rnd.randint(-10, 10)) * scale)
            frame = paste_plate(street_frame(ow, oh, seed=number), plate_img,
                                x=max(0, x), y=min(oh - plate_img.height - 2, y))
            original = degrade_frame(frame, big, seed=number * 31 + step)
            originals.append(original)
            images.append(original if scale == 1.0 else original.resize(
                (WIDTH, HEIGHT), Image.Resampling.BICUBIC))
        cases.append(Case(plate, width, night, how, images, originals))
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


def run_oko(cases: list[Case], *, full: bool = False,
            reader: PlateReader | None = None) -> tuple[list[list[str]], float, ReadStats]:
    """Oko's reader on the stored copies; ``full``: crops cut from the originals. A pass's
    frames come from one camera: each is detected where it changed since the one before
    (when the reader's ``regions`` is on)."""
    reader = reader or PlateReader()
    stats = ReadStats()
    texts: list[list[str]] = []
    started, cpu = time.perf_counter(), time.process_time()
    for case in cases:
        found: list[str] = []
        previous: Image.Image | None = None
        for frame, original in zip(case.frames, case.originals, strict=True):
            regions = reader.changed_regions(frame, previous)
            found += [read.text for read in reader.read(
                frame, stats, source=original if full else None, regions=regions)]
            previous = frame
        texts.append(found)
    CPU_SECONDS["oko_full" if full else "oko"] = time.process_time() - cpu
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


def ingest_slowdown(seconds: float, *, width: int, height: int) -> dict[str, Any]:
    """Ingest a clip with plates (``width`` x ``height``) into a scratch data dir, then read
    its plates from the stored copies and, in a second data dir, with crops from the
    original: times side by side."""
    from sqlmodel import Session, select

    from indexer.ingest import IngestOptions, ingest_file
    from indexer.plates.footage import PlatePass, write_plate_clip
    from indexer.plates.sightings import read_pending_plates
    from search_api.state import build_state
    from search_api.usecases.plate_watch import crop_expiry_auditor
    from storage.models.media import Camera
    from storage.models.plates import PlateSighting
    from storage.settings import Settings

    scale = width / WIDTH
    out: dict[str, Any] = {"clip_seconds": seconds, "clip_size": f"{width}x{height}"}
    reader = PlateReader()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        passes = [PlatePass(random_plate(random.Random(i)), i * 10 + 0.5, i * 10 + 8.5,
                            plate_width=round((90 + 10 * (i % 5)) * scale))
                  for i in range(int(seconds // 10))]
        clip = write_plate_clip(root / "CAM-B01_20260125T120000.mp4", passes=passes,
                                seconds=seconds, width=width, height=height)
        for mode in ("stored_copy", "full_resolution_crops"):
            state = build_state(Settings(home=root / mode, environment="test",
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
            report = read_pending_plates(
                engine=state.engine, derived=state.derived, reader=reader,
                originals=state.originals if mode != "stored_copy" else None,
                motion_threshold=state.settings.motion_threshold,
                on_crops_expired=crop_expiry_auditor(state))
            found = {p.text for p in passes}
            with Session(state.engine) as session:
                read = {s.plate for s in session.exec(select(PlateSighting)).all()}
            state.engine.dispose()
            out[mode] = {
                "frames": outcome.frame_count, "ingest_s": round(ingest_s, 2),
                "plate_reading_s": round(report.seconds, 2),
                "slowdown_factor": round((ingest_s + report.seconds) / ingest_s, 2),
                "frames_read": report.frames_read,
                "frames_static_skipped": report.frames_static,
                "frames_cropped_from_original": report.stats.full_resolution,
                "plates_in_clip": len(found), "plates_found": len(found & read),
                "sightings": len(read)}
    return out


MODES = {  # name: (reader parameters, crops from the original)
    "before_spinning_whole_frames": (ReaderConfig(spinning=True, regions=False), True),
    "oko_stored_copy": (ReaderConfig(), False),
    "oko_full_resolution_crops": (ReaderConfig(), True),
}


def _timed_runs(cases: list[Case], repeats: int, modes: list[str]) -> dict[str, Any]:
    """Each mode in turn, alternating ``repeats`` times in one run (the machine is shared:
    all modes see the same load); medians of the timings."""
    readers = {name: PlateReader(MODES[name][0]) for name in modes}
    runs: dict[str, list[tuple[list[list[str]], float, float, ReadStats]]] = {
        name: [] for name in modes}
    for _ in range(repeats):
        for name in modes:
            full = MODES[name][1]
            texts, wall, stats = run_oko(cases, full=full, reader=readers[name])
            cpu = CPU_SECONDS["oko_full" if full else "oko"]
            runs[name].append((texts, wall, cpu, stats))
    return {name: {"texts": found[0][0], "stats": found[0][3],
                   "wall_s": float(np.median([r[1] for r in found])),
                   "cpu_s": float(np.median([r[2] for r in found]))}
            for name, found in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=30)
    parser.add_argument("--frames", type=int, default=3, help="Sampled frames per pass")
    parser.add_argument("--absent", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--original-scale", type=float, default=1280 / WIDTH,
                        help="Original frame size over the stored copy's (1280x720: 2.86)")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per mode (median)")
    parser.add_argument("--modes", default=",".join(MODES), help=(
        f"Comma-separated reader modes to time ({', '.join(MODES)}); '' for none"))
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-ingest", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    cases = make_cases(args.plates, args.frames, args.seed, scale=args.original_scale)
    present = {case.plate for case in cases}
    rnd = random.Random(args.seed + 1)
    absent: list[str] = []
    while len(absent) < args.absent:
        plate = random_plate(rnd)
        if plate not in present:
            absent.append(plate)
    frame_count = sum(len(case.frames) for case in cases)
    modes = [m for m in args.modes.split(",") if m]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    timed = _timed_runs(cases, max(1, args.repeats), modes)
    original = cases[0].originals[0].size
    result: dict[str, Any] = {
        "set": {"plates": len(cases), "frames_per_pass": args.frames, "frames": frame_count,
                "frame_size": f"{WIDTH}x{HEIGHT}", "original_size": f"{original[0]}x"
                f"{original[1]}", "plate_width_px": "60-200 (in the stored copy)",
                "night_plates": sum(c.night for c in cases), "seed": args.seed,
                "timing": f"median of {max(1, args.repeats)} alternating runs per mode"},
    }
    for name in modes:
        config, full = MODES[name]
        run = timed[name]
        stats = run["stats"]
        result[name] = {"crops_from": "original" if full else "stored copy",
                        "spinning": config.spinning, "regions": config.regions,
                        **evaluate(run["texts"], cases, absent, voted=True, seed=args.seed),
                        **_speed(frame_count, run["wall_s"], run["cpu_s"]),
                        "candidates_per_frame": round(stats.candidates / frame_count, 2),
                        "frames_region_detected": stats.region_frames,
                        "mean_share_detected_in_those": round(
                            stats.region_share / max(1, stats.region_frames), 3),
                        "rejected_by_grammar": stats.rejected_by_grammar}
    print(json.dumps({"partial": result, "load_average": os.getloadavg()}), file=sys.stderr,
          flush=True)  # if cut short
    if not args.no_baseline:
        base_texts, base_s = run_baseline(cases)
        result["baseline_full_frame_no_grammar"] = {
            **evaluate(base_texts, cases, absent, voted=False, seed=args.seed),
            **_speed(frame_count, base_s, CPU_SECONDS["baseline"])}
        print(json.dumps({"partial_baseline": result["baseline_full_frame_no_grammar"]}),
              file=sys.stderr, flush=True)
    result["goal_frames_per_s"] = 10.0  # 20 cameras, one frame per 2 s
    before = result.get("before_spinning_whole_frames")
    if before is not None:
        result["speedup_over_before"] = {
            name: {"frames_per_s": round(result[name]["frames_per_s"]
                                         / before["frames_per_s"], 2),
                   "frames_per_s_on_2_free_cores": round(
                       result[name]["frames_per_s_on_2_free_cores"]
                       / before["frames_per_s_on_2_free_cores"], 2)}
            for name in modes if name != "before_spinning_whole_frames"}
    if not args.no_ingest:
        result["ingest"] = ingest_slowdown(args.clip_seconds, width=original[0],
                                           height=original[1])
    result["load_average_1_5_15"] = {"start": [round(v, 2) for v in load_before],
                                      "end": [round(v, 2) for v in os.getloadavg()]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
