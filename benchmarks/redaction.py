"""Redaction quality and speed on real faces that ship with scikit-image. Prints JSON.

1. Face recall: the astronaut's face and LFW face crops (``skimage.data.lfw_subset``, 25
   px faces like distant CCTV faces) composited into 1280x720 street-like frames at
   several sizes; a face counts as found when a detection's centre lies in it. Measured
   twice: full-frame detection on the frame, and the change-gated path the pipeline
   uses (``evidence.redaction.gating``), the faces appearing in a street seen the frame
   before (fresh sensor grain), so they are found on the changed crops.
2. Residual detail: high-frequency energy (mean absolute Laplacian) of each face after
   the blur, as a share of before, measured on the yuv420p planes x264 is given
   (converted back to RGB); beside it the previous path (the RGB mask, then converted
   to those planes), measured the same way.
3. Change outside the masks: mean absolute difference outside the boxes between the
   redacted clip and the same clip re-encoded unmasked (re-encoding loss alone), and
   against the source frames.
4. Plate readability: RapidOCR (detection + recognition) on a frame with a drawn
   Ukrainian-style plate, before and after redaction, the boxes found by the gated
   detectors on the car (and two faces) arriving in a street seen the frame before.
5. Throughput (the pipeline as it runs: frames decoded to yuv420p on a read-ahead
   thread, onnxruntime on one intra-op thread, the mask drawn in the yuv420p planes
   that go to x264): detection (faces on every frame, plates on every ``PLATE_EVERY``-th at
   ``PLATE_SCALE``) plus masking and H.264 re-encode of a 720p25 clip, in frames/s,
   against 25 (realtime), for (a) the street (a face walking, one still, a parked car,
   fresh sensor grain of sigma 3 on every frame) and (b) the worst case: heavy noise
   (sigma ``WORST_NOISE``) on every frame, so the whole frame changes every frame and
   the gate falls back to full-frame passes. ``--runs`` runs alternate with the
   baseline (the previous path: full-frame face detection on every frame, ``gated=
   False``) in the same invocation; medians are reported, in wall time and in CPU time
   (``cpu_fps_2_cores``: frames / (CPU seconds / 2), what two idle cores would give,
   since the machine may be shared). Also (c) the street re-encoded at a camera's bit
   rate (``--camera-bitrate``, 4 Mbit/s), since the street clip's fresh grain at CRF 12
   (about 39 Mbit/s) makes decoding it the largest cost. Quality (1-4) is measured on
   the renderer's path too: frames converted to yuv420p, masked in their planes.

Run: ``.venv/bin/python benchmarks/redaction.py [--frames 50] [--faces 8] [--runs 3]
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

from evidence.redaction.detect import Detection, FaceDetector, PlateDetector
from evidence.redaction.gating import ChangeGate
from evidence.redaction.picture import Picture
from evidence.redaction.pipeline import (
    DETECTOR_THREADS,
    PLATE_EVERY,
    build_detectors,
    gate_parameters,
    propose,
    render_clip,
)
from evidence.redaction.render import redact_frame, redact_picture
from evidence.redaction.review import final_boxes
from evidence.redaction.tracking import PAD, Box
from evidence.redaction.video import frames, render_parameters, video_facts, write_redacted
from tests.evidence.redaction.footage import (
    astronaut_face,
    background,
    lfw_face,
    paste,
    plate_image,
    write_clip,
)

SIZES = (16, 20, 24, 32, 48, 64, 96)
WORST_NOISE = 25.0
WIDTH, HEIGHT = 1280, 720


def _laplacian_energy(region: np.ndarray) -> float:
    import cv2

    gray = region.astype(np.float32).mean(axis=2)
    return float(np.abs(cv2.Laplacian(gray, cv2.CV_32F)).mean())


def _masked(frame: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """The frame masked as the renderer masks it: in its yuv420p planes."""
    return redact_picture(Picture.from_rgb(frame), boxes).rgb()


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


def _found(detections: list[Detection], x: int, y: int, w: int, h: int) -> bool:
    return any(x <= (d.x1 + d.x2) / 2 <= x + w and y <= (d.y1 + d.y2) / 2 <= y + h
               for d in detections)


def _gated(detector: FaceDetector | PlateDetector, frame: np.ndarray, seed: int
           ) -> tuple[list[Detection], dict[str, Any]]:
    """``frame``'s detections by the gate, after it saw the empty street (other grain)."""
    gate = ChangeGate(detector, gate_parameters(detector))
    gate.detect(Picture.from_rgb(background(WIDTH, HEIGHT, seed=seed + 1000)))
    found = gate.detect(Picture.from_rgb(frame))
    return found, gate.stats.as_dict()


def recall_and_detail(detector: FaceDetector, faces_per_size: int) -> dict[str, Any]:
    per_size: dict[str, Any] = {}
    found_big = gated_big = total_big = 0
    ratios: list[float] = []
    ratios_old: list[float] = []
    for n, ((frame, truth), size) in enumerate(zip(face_frames(faces_per_size), SIZES,
                                                   strict=True)):
        detections = detector.detect(frame)
        gated, stats = _gated(detector, frame, n)
        found = sum(_found(detections, *t) for t in truth)
        found_gated = sum(_found(gated, *t) for t in truth)
        for x, y, w, h in truth:
            masked = _masked(frame, [_padded(x, y, w, h)])
            before = _laplacian_energy(frame[y:y + h, x:x + w])
            after = _laplacian_energy(masked[y:y + h, x:x + w])
            # the previous path: the RGB mask, then the 4:2:0 planes x264 is given
            old = Picture.from_rgb(redact_frame(frame, [_padded(x, y, w, h)])).rgb()
            after_old = _laplacian_energy(old[y:y + h, x:x + w])
            if size >= 24:
                ratios.append(after / before if before else 0.0)
                ratios_old.append(after_old / before if before else 0.0)
        per_size[str(size)] = {
            "faces": len(truth), "found": found, "recall": round(found / len(truth), 3),
            "found_gated": found_gated, "recall_gated": round(found_gated / len(truth), 3),
            "gated_pass": "full frame" if stats["full_frame_passes"] == 2 else
                f"{stats['crops']} crops"}
        if size >= 24:
            found_big += found
            gated_big += found_gated
            total_big += len(truth)
    return {"per_size_px": per_size,
            "recall_faces_ge_24px": round(found_big / total_big, 3),
            "recall_faces_ge_24px_gated": round(gated_big / total_big, 3),
            "residual_detail": {"median_share": round(float(np.median(ratios)), 4),
                                "max_share": round(float(np.max(ratios)), 4),
                                "faces": len(ratios)},
            "residual_detail_previous_rgb_mask_as_encoded": {
                "median_share": round(float(np.median(ratios_old)), 4),
                "max_share": round(float(np.max(ratios_old)), 4)}}


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
    plates, plate_stats = _gated(PlateDetector(threads=DETECTOR_THREADS), frame, 5)
    faces, face_stats = _gated(FaceDetector(threads=DETECTOR_THREADS), frame, 5)
    boxes = [_padded(int(d.x1), int(d.y1), int(d.x2 - d.x1), int(d.y2 - d.y1))
             for d in [*plates, *faces]]
    masked = _masked(frame, boxes)
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
            "plates_detected": len(plates), "faces_detected": len(faces),
            "gated_crops": {"plate": plate_stats["crops"], "face": face_stats["crops"]}}


def _street_clip(work: Path, n_frames: int, *, noise: float = 0.0) -> Path:
    """The street; with ``noise``, that much Gaussian noise on top of every frame."""
    clip_frames = []
    walker = astronaut_face(80)
    rng = np.random.default_rng(7)
    for n in range(n_frames):
        frame = background(WIDTH, HEIGHT, seed=n)
        paste(frame, walker, 100 + 8 * n, 200)
        paste(frame, lfw_face(3, 48), 900, 150)
        paste(frame, plate_image(height=40), 600, 600)
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255
                            ).astype(np.uint8)
        clip_frames.append(frame)
    name = f"street-720p25{'-noise' if noise else ''}.mp4"
    return write_clip(work / name, clip_frames, fps=25)


def _camera_bitrate(source: Path, work: Path, bitrate: str) -> Path:
    """The street re-encoded as a camera would send it: ``bitrate`` constant bit rate,
    a keyframe every 2 s (the street clip itself is CRF 12 with fresh grain on every
    frame, about 39 Mbit/s, which makes decoding it the largest cost)."""
    from fractions import Fraction

    import av

    out = work / f"street-720p25-{bitrate}.mp4"
    with av.open(str(source)) as inp, av.open(str(out), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.bit_rate = int(float(bitrate.rstrip("M")) * 1_000_000)
        stream.options = {"preset": "veryfast", "g": "50", "bf": "0", "maxrate": bitrate,
                          "bufsize": bitrate}
        for index, frame in enumerate(inp.decode(video=0)):
            frame.pts, frame.time_base = index, Fraction(1, 25)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out


def _timed_run(source: Path, out: Path, *, baseline: bool) -> dict[str, Any]:
    """One proposal and render; the baseline is the previous path, full-frame detection
    on every scanned frame (``gated=False``)."""
    detectors = build_detectors(["faces", "plates"])
    wall0, cpu0 = time.perf_counter(), time.process_time()
    proposal = propose(source, detectors=detectors, gated=not baseline)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    boxes, _summary = final_boxes(proposal.tracks, [], frame_count=proposal.facts.frame_count)
    render_clip(source, out, facts=proposal.facts, boxes=boxes, style="blur",
                mute_audio=False)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    n = proposal.facts.frame_count
    return {"detect_fps": n / (wall1 - wall0), "render_fps": n / (wall2 - wall1),
            "end_to_end_fps": n / (wall2 - wall0), "cpu_fps_2_cores": n / ((cpu2 - cpu0) / 2),
            "detect_cpu_s_per_frame": (cpu1 - cpu0) / n,
            "render_cpu_s_per_frame": (cpu2 - cpu1) / n,
            "boxes": boxes, "tracks": [t.id for t in proposal.tracks],
            "gate": {k: {"full_frame_passes": v.get("full_frame_passes"),
                         "crop_passes": v.get("crop_passes"),
                         "unchanged_frames": v.get("unchanged_frames"),
                         "share_of_pixels_detected_on":
                             v.get("share_of_pixels_detected_on")}
                     for k, v in proposal.detection.items()}}


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, float)]
    result: dict[str, Any] = {k: round(float(np.median([r[k] for r in runs])), 3)
                              for k in keys}
    result["realtime_factor"] = round(result["end_to_end_fps"] / 25, 3)
    result["cpu_realtime_factor_2_cores"] = round(result["cpu_fps_2_cores"] / 25, 3)
    result["runs"] = len(runs)
    result["gate"] = runs[-1]["gate"]
    return result


def _side_by_side(source: Path, work: Path, runs: int) -> tuple[dict[str, Any], ...]:
    current: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    for _ in range(runs):  # alternating, so both see the same load on a shared machine
        baseline.append(_timed_run(source, work / "baseline.mp4", baseline=True))
        current.append(_timed_run(source, work / "redacted.mp4", baseline=False))
    gated, full = _medians(current), _medians(baseline)
    same = current[-1]["tracks"] == baseline[-1]["tracks"]
    return gated, full, {"same_tracks_as_baseline": same,
                         "tracks": current[-1]["tracks"],
                         "baseline_tracks": baseline[-1]["tracks"],
                         "speedup_end_to_end": round(gated["end_to_end_fps"]
                                                     / full["end_to_end_fps"], 2),
                         "speedup_cpu": round(gated["cpu_fps_2_cores"]
                                              / full["cpu_fps_2_cores"], 2)}, current[-1]


def throughput_and_outside(work: Path, n_frames: int, runs: int,
                           camera_bitrate: str) -> dict[str, Any]:
    source = _street_clip(work, n_frames)
    worst = _street_clip(work, n_frames, noise=WORST_NOISE)
    camera = _camera_bitrate(source, work, camera_bitrate) if camera_bitrate else None
    started = time.perf_counter()
    FaceDetector(), PlateDetector()
    load_s = time.perf_counter() - started
    gated, full, compared, last = _side_by_side(source, work, runs)
    worst_gated, worst_full, worst_compared, _ = _side_by_side(worst, work, runs)
    camera_result: dict[str, Any] = {}
    if camera is not None:
        cam_gated, cam_full, cam_compared, _ = _side_by_side(camera, work, runs)
        camera_result = {"street_at_camera_bitrate": {
            "bitrate": camera_bitrate, "source_mbit_s": round(
                camera.stat().st_size * 8 / (n_frames / 25) / 1e6, 1),
            "gated": cam_gated, "baseline_full_frame": cam_full, **cam_compared}}
    boxes = last["boxes"]
    _timed_run(source, work / "redacted.mp4", baseline=False)  # the gated clip, again
    write_redacted(source, work / "plain.mp4", facts=video_facts(source),
                   transform=lambda _i, picture: picture, mute_audio=False)
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
    return {
        "frames": n_frames, "size": f"{WIDTH}x{HEIGHT}", "fps_in": 25,
        "model_load_s": round(load_s, 2), "plate_every": PLATE_EVERY,
        "street": {"source_mbit_s": round(source.stat().st_size * 8 / (n_frames / 25)
                                          / 1e6, 1),
                   "gated": gated, "baseline_full_frame": full, **compared},
        "worst_case_whole_frame_changes": {"noise_sigma": WORST_NOISE, "gated": worst_gated,
                                           "baseline_full_frame": worst_full,
                                           **worst_compared},
        **camera_result,
        "realtime_factor": gated["realtime_factor"],
        "worst_case_realtime_factor": worst_gated["realtime_factor"],
        "outside_masks_mean_abs_diff": {
            "redacted_vs_unmasked_reencode": round(float(np.mean(outside_vs_plain)), 4),
            "redacted_vs_source": round(float(np.mean(outside_vs_source)), 4),
            "unmasked_reencode_vs_source": round(float(np.mean(reencode_loss)), 4)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--faces", type=int, default=8, help="faces per size")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each variant")
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--camera-bitrate", default="4M",
                        help="also time the street re-encoded at this bit rate (a "
                             "camera's; '' to skip)")
    parser.add_argument("--skip-quality", action="store_true",
                        help="throughput only (recall, detail and plates not measured)")
    args = parser.parse_args()
    import os

    result: dict[str, Any] = {"load_average_start": [round(x, 2) for x in os.getloadavg()],
                              "settings": {"onnxruntime_intra_op_threads": DETECTOR_THREADS,
                                           **render_parameters()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_quality:
            result["faces"] = recall_and_detail(FaceDetector(threads=DETECTOR_THREADS),
                                                args.faces)
            result["plates"] = plate_readability(work, args.screenshots)
        result["throughput"] = throughput_and_outside(work, args.frames, max(1, args.runs),
                                                      args.camera_bitrate)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    goals = {"realtime_720p25": result["throughput"]["realtime_factor"] >= 1.0}
    if not args.skip_quality:
        goals.update({
            "recall_ge_0.95": result["faces"]["recall_faces_ge_24px_gated"] >= 0.95,
            "detail_lt_25pct": result["faces"]["residual_detail"]["max_share"] < 0.25,
            "no_plate_readable": not result["plates"].get("plate_read_after", True)})
    print(json.dumps({**result, "goals_met": goals}, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
