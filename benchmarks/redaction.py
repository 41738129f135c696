"""Redaction quality and speed on real faces that ship with scikit-image. Prints JSON.

1. Face recall: the astronaut's face and LFW face crops (``skimage.data.lfw_subset``, 25
   px faces like distant CCTV faces) composited into 1280x720 street-like frames at
   several sizes; a face counts as found when a detection's centre lies in it.
2. Residual detail: high-frequency energy (mean absolute Laplacian) of each face after
   the blur, as a share of before.
3. Change outside the masks: mean absolute difference outside the boxes between the
   redacted clip and the same clip re-encoded unmasked (re-encoding loss alone), and
   against the source frames.
4. Plate readability: RapidOCR (detection + recognition) on a frame with a drawn
   Ukrainian-style plate, before and after redaction.
5. Throughput: detection on every frame (faces and plates) plus masking and H.264
   re-encode of a 720p25 clip, in frames/s, against 25 (realtime).

Run: ``.venv/bin/python benchmarks/redaction.py [--frames 25] [--faces 8]
[--screenshots docs/screenshots]``
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evidence.redaction.detect import FaceDetector, PlateDetector
from evidence.redaction.pipeline import propose, render_clip
from evidence.redaction.render import redact_frame
from evidence.redaction.review import final_boxes
from evidence.redaction.tracking import PAD, Box
from evidence.redaction.video import frames, video_facts, write_redacted
from tests.evidence.redaction.footage import (
    astronaut_face,
    background,
    lfw_face,
    paste,
    plate_image,
    write_clip,
)

SIZES = (16, 20, 24, 32, 48, 64, 96)
WIDTH, HEIGHT = 1280, 720


def _laplacian_energy(region: np.ndarray) -> float:
    import cv2

    gray = region.astype(np.float32).mean(axis=2)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F)).mean())


def _padded(x: int, y: int, w: int, h: int) -> Box:
    return Box(max(0, int(x - PAD * w)), max(0, int(y - PAD * h)), int(w * (1 + 2 * PAD)),
               int(h * (1 + 2 * PAD)))


def face_frames(faces_per_size: int) -> list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]:
    """One 720p frame per size, each with ``faces_per_size`` faces (astronaut first)."""
    result = []
    for n, size in enumerate(SIZES):
        frame = background(WIDTH, HEIGHT, seed=n)
        truth = []
        for i in range(faces_per_size):
            face = astronaut_face(size) if i == 0 else lfw_face(i * 7 % 200, size)
            x = 40 + (i % 8) * 150
            y = 60 + (i // 8) * 220 + (n % 2) * 30
            paste(frame, face, x, y)
            truth.append((x, y, face.shape[1], face.shape[0]))
        result.append((frame, truth))
    return result


def recall_and_detail(detector: FaceDetector, faces_per_size: int) -> dict[str, Any]:
    per_size: dict[str, Any] = {}
    found_big = total_big = 0
    ratios: list[float] = []
    for (frame, truth), size in zip(face_frames(faces_per_size), SIZES, strict=True):
        detections = detector.detect(frame)
        found = 0
        for x, y, w, h in truth:
            hit = any(x <= (d.x1 + d.x2) / 2 <= x + w and y <= (d.y1 + d.y2) / 2 <= y + h
                      for d in detections)
            found += hit
            masked = redact_frame(frame, [_padded(x, y, w, h)])
            before = _laplacian_energy(frame[y:y + h, x:x + w])
            after = _laplacian_energy(masked[y:y + h, x:x + w])
            if size >= 24:
                ratios.append(after / before if before else 0.0)
        per_size[str(size)] = {"faces": len(truth), "found": found,
                               "recall": round(found / len(truth), 3)}
        if size >= 24:
            found_big += found
            total_big += len(truth)
    return {"per_size_px": per_size,
            "recall_faces_ge_24px": round(found_big / total_big, 3),
            "residual_detail": {"median_share": round(float(np.median(ratios)), 4),
                                "max_share": round(float(np.max(ratios)), 4),
                                "faces": len(ratios)}}


def plate_readability(work: Path, screenshots: Path | None) -> dict[str, Any]:
    try:
        from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped]
    except ImportError:
        return {"skipped": "rapidocr-onnxruntime is not installed"}
    frame = background(WIDTH, HEIGHT, seed=5)
    plate = plate_image("AA 1234 BC", height=44)
    paste(frame, plate, 700, 560)
    face = astronaut_face(96)
    paste(frame, face, 300, 200)
    paste(frame, lfw_face(11, 64), 520, 240)
    plates = PlateDetector().detect(frame)
    faces = FaceDetector().detect(frame)
    boxes = [_padded(int(d.x1), int(d.y1), int(d.x2 - d.x1), int(d.y2 - d.y1))
             for d in [*plates, *faces]]
    masked = redact_frame(frame, boxes)
    ocr = RapidOCR()
    before, _ = ocr(np.ascontiguousarray(frame[:, :, ::-1]))
    after, _ = ocr(np.ascontiguousarray(masked[:, :, ::-1]))
    if screenshots is not None:
        from PIL import Image

        screenshots.mkdir(parents=True, exist_ok=True)
        for name, img in (("redaction-before.png", frame), ("redaction-after.png", masked)):
            Image.fromarray(img).resize((WIDTH // 2, HEIGHT // 2)).save(screenshots / name)
    read_before = [r[1] for r in before or []]
    read_after = [r[1] for r in after or []]
    return {"plate": "AA 1234 BC", "ocr_before": read_before, "ocr_after": read_after,
            "plate_read_after": any("1234" in t.replace(" ", "") for t in read_after),
            "plates_detected": len(plates), "faces_detected": len(faces)}


def throughput_and_outside(work: Path, n_frames: int) -> dict[str, Any]:
    clip_frames = []
    walker = astronaut_face(80)
    for n in range(n_frames):
        frame = background(WIDTH, HEIGHT, seed=n)
        paste(frame, walker, 100 + 8 * n, 200)
        paste(frame, lfw_face(3, 48), 900, 150)
        paste(frame, plate_image(height=40), 600, 600)
        clip_frames.append(frame)
    source = write_clip(work / "street-720p25.mp4", clip_frames, fps=25)
    started = time.perf_counter()
    detectors = [FaceDetector(), PlateDetector()]
    loaded = time.perf_counter()
    proposal = propose(source, detectors=detectors)
    detected = time.perf_counter()
    boxes, _summary = final_boxes(proposal.tracks, [], frame_count=proposal.facts.frame_count)
    render_clip(source, work / "redacted.mp4", facts=proposal.facts, boxes=boxes,
                style="blur", mute_audio=False)
    rendered = time.perf_counter()
    write_redacted(source, work / "plain.mp4", facts=video_facts(source),
                   transform=lambda _i, f: f, mute_audio=False)
    redacted = list(frames(work / "redacted.mp4"))
    plain = list(frames(work / "plain.mp4"))
    src = list(frames(source))
    outside_vs_plain, outside_vs_source, reencode_loss = [], [], []
    for i, (r, p, s) in enumerate(zip(redacted, plain, src, strict=True)):
        mask = np.ones(r.shape[:2], bool)
        for b in boxes[i]:
            mask[max(0, b.y - 8):b.y + b.h + 8, max(0, b.x - 8):b.x + b.w + 8] = False
        outside_vs_plain.append(np.abs(r.astype(int) - p)[mask].mean())
        outside_vs_source.append(np.abs(r.astype(int) - s)[mask].mean())
        reencode_loss.append(np.abs(p.astype(int) - s)[mask].mean())
    detect_s, render_s = detected - loaded, rendered - detected
    total_fps = n_frames / (detect_s + render_s)
    return {
        "frames": n_frames, "size": f"{WIDTH}x{HEIGHT}", "fps_in": 25,
        "model_load_s": round(loaded - started, 2),
        "detect_faces_and_plates_fps": round(n_frames / detect_s, 2),
        "mask_and_encode_fps": round(n_frames / render_s, 2),
        "end_to_end_fps": round(total_fps, 2), "realtime_factor": round(total_fps / 25, 3),
        "tracks": [t.id for t in proposal.tracks],
        "outside_masks_mean_abs_diff": {
            "redacted_vs_unmasked_reencode": round(float(np.mean(outside_vs_plain)), 4),
            "redacted_vs_source": round(float(np.mean(outside_vs_source)), 4),
            "unmasked_reencode_vs_source": round(float(np.mean(reencode_loss)), 4)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=25)
    parser.add_argument("--faces", type=int, default=8, help="faces per size")
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {"faces": recall_and_detail(FaceDetector(), args.faces),
                  "plates": plate_readability(work, args.screenshots),
                  "throughput": throughput_and_outside(work, args.frames)}
    goals = {"recall_ge_0.95": result["faces"]["recall_faces_ge_24px"] >= 0.95,
             "detail_lt_25pct": result["faces"]["residual_detail"]["max_share"] < 0.25,
             "no_plate_readable": not result["plates"].get("plate_read_after", True),
             "realtime_720p25": result["throughput"]["realtime_factor"] >= 1.0}
    print(json.dumps({**result, "goals_met": goals}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
