"""Recording capacity: N simulated cameras streamed in real time over loopback, recorded.

    python benchmarks/recording.py [--cameras 4,8] [--find-max] [--seconds 300]
                                   [--height 720|1080] [--grain 10]
                                   [--mode ingest|plates|embed|analysis|workers]
                                   [--segment-seconds 10]
                                   [--embedder vit-b-32-random|test-tiny]
                                   [--image-encoder onnx|torch]

Each simulated camera is an ffmpeg HTTP MPEG-TS server (``-re -stream_loop -1 -listen
1``) playing generated footage (``--height`` 720 or 1080, 25 fps, a keyframe every 2 s;
``--grain`` adds sensor noise at a camera's 3 Mbit/s). One in-process ``RecorderPool``
records all of them in ``--segment-seconds`` files, each ingested as it finishes
(keyframe sampling). What else runs, by ``--mode``:

- ``ingest``: nothing else (recording + ingest only; SQLite);
- ``plates``: one analysis thread in the same process reads plates in every new frame
  (``read_waiting_plates``, rapidocr's real PP-OCR weights; SQLite);
- ``embed``: one analysis thread embeds every new frame and syncs the shards
  (``indexer.reindex`` with the model ``load_installed_embedder`` loads, once, before the
  clock starts);
- ``analysis``: plates and embedding both, in that thread;
- ``workers``: recording in this process on a real PostgreSQL (``tests.services``),
  each finished file queued to a real Redis on 127.0.0.1, and 2 separate ``oko worker``
  processes (solo pool) taking the embed-and-plates task, as a recorder machine and
  worker machines would split the work. A worker's ``oko.embed`` task loads the model
  itself (``search_api.usecases.ingest``), so the workers pay that load per task.

The model (``--embedder``): there are no CLIP weights on the build machine, so it is a
random-weight model built through open_clip (``benchmarks/random_clip.py``):
``vit-b-32-random`` (default; the default preset's architecture, the same arithmetic as
real weights) or ``test-tiny`` (the tests' model, nearly free). It is saved as a
checkpoint and installed as ``OKO_CLIP_WEIGHTS``, loaded through the production path
(``load_installed_embedder``). ``--image-encoder onnx`` (default) sets
``OKO_IMAGE_ENCODER=onnx``: the image tower runs on ONNX Runtime (``indexer.onnx_towers``),
as a worker does when ONNX is enabled; a worker's default is torch (``--image-encoder
torch``). The checkpoint and the ONNX export are built once into ``--footage-dir``
(``--prepare-only``) and hard-linked into each run's data dir, so no run exports.

For every N it prints, as JSON: files expected / recorded / lost (gaps, quarantined
files, files left in the spool), the ingest lag of each file (its acquisition custody
entry minus the file's end) as median, max and last files against first, the analysis
backlog (frames waiting for plates / embedding, sampled every 10 s: first sample, peak,
end, and its trend, the second half's mean against the first half's), the embedder and
the backend that really ran, and CPU use (cores, by process group: the recording process
with its in-process analysis thread, its ffmpeg recorders, the camera servers, the
workers). N is ``sustained`` when each of ``checks`` holds; ``sustained_rule`` states
them: nothing lost, the lag under two file lengths and not growing, and the backlog
(where there is analysis) draining: at the end under three files' frames per camera,
and not growing. ``--find-max`` doubles N from the first count until a run is not
sustained, then bisects (each step a full run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402

from benchmarks.random_clip import (  # noqa: E402
    EMBEDDERS,
    IMAGE_ENCODERS,
    RandomModel,
    prepare_random_model,
)
from benchmarks.recording_analysis import (  # noqa: E402
    SUSTAINED_RULE,
    Analysis,
    backlog_summary,
    lag_summary,
    verdict,
    worker_log_summary,
)
from indexer.media import ffmpeg_exe, tool_version  # noqa: E402
from indexer.samples import H264, _encode, day_scene  # noqa: E402
from search_api.state import AppState, build_state  # noqa: E402
from search_api.usecases.recording import build_recorder_pool  # noqa: E402
from storage.cameras import add_camera, validate_camera  # noqa: E402
from storage.db import session_scope  # noqa: E402
from storage.models.evidence import CustodyEntry  # noqa: E402
from storage.models.media import Camera, Frame, Original  # noqa: E402
from storage.models.plates import PlateFrameScan  # noqa: E402
from storage.models.recording import CameraGap  # noqa: E402
from storage.models.search import FrameEmbedding  # noqa: E402
from storage.settings import Settings  # noqa: E402

MODES = ("ingest", "plates", "embed", "analysis", "workers")
SAMPLE_INTERVAL_S = 2.0  # ingest's default: one frame per GOP
PASSPHRASE = "benchmark-throwaway-passphrase"  # noqa: S105  # a throwaway key
EMBEDDING_MODES = ("embed", "analysis", "workers")
STOP_REASONS = ("recorder_stopped", "The recorder was stopped.")  # the stop at the end


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_footage(directory: Path, *, height: int, seconds: float = 60.0,
                 grain: int = 0) -> Path:
    """``seconds`` of street footage at ``height`` p, 25 fps, 2 s GOP, no B-frames, as TS.

    ``grain`` adds sensor-like noise of that strength, encoded at a camera's 3 Mbit/s
    (the flat drawing alone compresses to ~0.1 Mbit/s, far cheaper to decode than real
    footage).
    """
    path = directory / f"street-{height}p-grain{grain}.ts"
    if not path.exists():
        width = height * 16 // 9 // 2 * 2
        small = day_scene(width // 4 // 2 * 2, height // 4 // 2 * 2, seconds)
        noise = f",noise=alls={grain}:allf=t" if grain else ""
        graph = small.removesuffix("[v]") + f",scale={width}:{height}:flags=neighbor{noise}[v]"
        rate = ["-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M"] if grain else []
        _encode(out=path, graph=graph,
                codec_args=[*H264[:-2], "-threads", "0", "-bf", "0", *rate])
    return path


def _servers(footage: Path, count: int) -> list[tuple[str, subprocess.Popen[bytes]]]:
    started = []
    for _ in range(count):
        url = f"http://127.0.0.1:{_free_port()}/cam.ts"
        process = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
             "-stream_loop", "-1", "-i", str(footage), "-map", "0:v:0", "-c", "copy",
             "-f", "mpegts", "-listen", "1", url],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append((url, process))
    return started


@dataclass
class CpuMeter:
    """CPU seconds per part, read from /proc every few seconds (processes come and go)."""

    parts: dict[str, Callable[[], list[psutil.Process]]]
    seen: dict[tuple[str, int, float], float] = field(default_factory=dict)

    def sample(self) -> None:
        for name, processes in self.parts.items():
            try:
                found = processes()
            except psutil.Error:  # one exited while the tree was read: next sample
                continue
            for process in found:
                try:
                    times = process.cpu_times()
                    key = (name, process.pid, process.create_time())
                except psutil.Error:
                    continue
                self.seen[key] = times.user + times.system

    def cores(self, elapsed: float) -> dict[str, float]:
        totals: dict[str, float] = dict.fromkeys(self.parts, 0.0)
        for (name, _pid, _started), seconds in self.seen.items():
            totals[name] += seconds
        return {name: round(total / elapsed, 2) for name, total in totals.items()}


def _backlog(state: AppState) -> dict[str, int]:
    with Session(state.engine) as session:
        frames = int(session.exec(select(func.count()).select_from(Frame)).one())
        scanned = int(session.exec(select(func.count()).select_from(PlateFrameScan)).one())
        embedded = int(session.exec(select(func.count(func.distinct(
            col(FrameEmbedding.frame_id))))).one())
    return {"frames": frames, "plates_waiting": frames - scanned,
            "embedding_waiting": frames - embedded}


@contextmanager
def _workers(settings: Settings, work: Path, count: int, model: RandomModel,
             logs: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OKO_")}
    env |= {"OKO_HOME": str(settings.home), "OKO_ENVIRONMENT": "test",
            "OKO_KEY_PASSPHRASE": PASSPHRASE, "OKO_DATABASE_URL": str(settings.database_url),
            "OKO_BROKER_URL": str(settings.broker_url), **model.environment(),
            "OKO_WORKER_CONCURRENCY": "1", "PYTHONPATH": str(ROOT)}
    started = []
    for number in range(count):
        log = (work / f"worker-{number}.log").open("wb")
        started.append(subprocess.Popen(
            [sys.executable, "-m", "search_api.cli", "worker", "--pool", "solo"],
            env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        keep = Path(os.environ.get("OKO_BENCH_LOG_DIR", tempfile.gettempdir()))
        for number in range(count):
            text = (work / f"worker-{number}.log").read_text(errors="replace")
            (keep / f"recording-bench-worker-{number}.log").write_text(text)
            logs[f"worker-{number}"] = text


def _settings(home: Path, *, mode: str, segment_seconds: float, model: RandomModel | None,
              stack: ExitStack) -> Settings:
    extra: dict[str, Any] = {}
    if mode == "workers":
        from tests.services import start_postgres
        from tests.services_redis import redis_server

        postgres = start_postgres()
        stack.callback(postgres.stop)
        extra["database_url"] = postgres.create_database(migrated=True)
        extra["broker_url"] = stack.enter_context(redis_server(home.parent / "redis"))
    return Settings(home=home, environment="test", key_passphrase=PASSPHRASE,
                    record_segment_seconds=segment_seconds, record_min_free_mb=0,
                    record_backoff_seconds=0.5, record_backoff_max_seconds=2,
                    **(model.settings() if model else {"clip_preset": "test-tiny"}), **extra)


def run_cameras(footage: Path, *, count: int, seconds: float, segment_seconds: float,
                mode: str, model: RandomModel | None) -> dict[str, Any]:
    worker_logs: dict[str, str] = {}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oko-rec-bench-")))
        settings = _settings(work / "home", mode=mode, segment_seconds=segment_seconds,
                             model=model, stack=stack)
        job_queue = None
        if mode == "workers":
            from search_api.jobqueue import CeleryJobQueue

            job_queue = CeleryJobQueue(settings)
        state = build_state(settings, job_queue=job_queue)
        stack.callback(state.engine.dispose)
        if model is not None:
            model.install_onnx(settings.onnx_dir)
        analysis = Analysis(state, mode)
        analysis.load()  # before the clock and the cameras: a worker is started beforehand
        servers = _servers(footage, count)
        with session_scope(state.engine) as session:
            for number, (url, _process) in enumerate(servers, start=1):
                camera = validate_camera(id=f"SIM-{number:03d}", name="Simulated",
                                         latitude=50.45, longitude=30.52, agency="police")
                add_camera(session, camera=camera).stream_url = url
        workers = (stack.enter_context(_workers(settings, work, 2, model, worker_logs))
                   if mode == "workers" and model is not None else [])
        server_pids = {p.pid for _u, p in servers}
        worker_pids = {p.pid for p in workers}
        me = psutil.Process()

        def children(wanted: Callable[[psutil.Process], bool]) -> list[psutil.Process]:
            return [c for c in me.children(recursive=True) if wanted(c)]

        def in_workers(c: psutil.Process) -> bool:
            try:
                return c.pid in worker_pids or any(p.pid in worker_pids for p in c.parents())
            except psutil.Error:
                return False

        meter = CpuMeter(parts={
            "recording_process": lambda: [me],
            "recorder_ffmpeg": lambda: children(lambda c: c.pid not in server_pids
                                                and not in_workers(c)),
            "camera_servers": lambda: children(lambda c: c.pid in server_pids),
            "workers": lambda: children(in_workers),
        })
        meter.sample()  # the model load so far is not part of the run
        meter_start = dict(meter.seen)
        analysis_cpu_start = analysis.cpu_seconds()
        stop_analysis = threading.Event()
        thread = None
        if mode in ("plates", "embed", "analysis"):
            thread = threading.Thread(target=analysis.run, args=(stop_analysis,),
                                      daemon=True, name="analysis")
            thread.start()
        pool = build_recorder_pool(state, refresh_s=3600)
        machine_before = psutil.cpu_times()
        started = time.monotonic()
        pool.start()
        backlog: list[dict[str, int]] = []
        loads: list[float] = []
        try:
            while (now := time.monotonic()) < started + seconds:
                time.sleep(min(10.0, started + seconds - now))
                meter.sample()
                loads.append(os.getloadavg()[0])
                backlog.append(_backlog(state))
            meter.sample()
            analysis_cpu = analysis.cpu_seconds() - analysis_cpu_start
        finally:
            pool.stop()
        elapsed = time.monotonic() - started
        machine = psutil.cpu_times()
        busy = (sum(machine) - machine.idle - machine.iowait) - (
            sum(machine_before) - machine_before.idle - machine_before.iowait)
        stop_analysis.set()
        if thread is not None:
            thread.join(timeout=120)
        for _url, process in servers:
            process.kill()
            process.wait()
        with Session(state.engine) as session:
            originals = session.exec(select(Original)).all()
            entries = {e.original_id: e.recorded_at for e in session.exec(
                select(CustodyEntry).where(CustodyEntry.action == "acquisition")).all()}
            gaps = [g for g in session.exec(select(CameraGap)).all()
                    if g.reason.split(":")[0] not in STOP_REASONS]
            cameras = len(session.exec(select(Camera)).all())
        left_in_spool = [p for p in settings.spool_dir.glob("*/*/*")
                         if p.is_file() and p.suffix in (".ts", ".mkv", ".mp4")
                         and "quarantine" not in p.parts]
        quarantined = list(settings.spool_dir.glob("*/quarantine/*"))
        final_backlog = _backlog(state)
    lags = sorted((o.recording_start_utc + timedelta(seconds=o.duration_s),
                   (entries[o.id] - o.recording_start_utc - timedelta(
                       seconds=o.duration_s)).total_seconds())
                  for o in originals if o.id in entries)
    lag = lag_summary([value for _end, value in lags], cameras=count,
                      segment_seconds=segment_seconds)
    bound = cameras * 3 * segment_seconds / SAMPLE_INTERVAL_S
    analysed = {"plates": ("plates", "analysis", "workers"), "embedding": EMBEDDING_MODES}
    backlog_report: dict[str, Any] = {
        "frames_sampled": final_backlog["frames"], "bound_frames": int(bound),
        "after_stop": {f"{k}_waiting": final_backlog[f"{k}_waiting"]
                       for k, modes in analysed.items() if mode in modes}}
    for name, modes in analysed.items():
        if mode in modes:
            backlog_report[name] = backlog_summary(
                [b[f"{name}_waiting"] for b in backlog], bound=bound)
    lost = {"gaps": len(gaps), "quarantined": len(quarantined),
            "left_in_spool": len(left_in_spool)}
    gap_list = [{"camera": g.camera_id, "reason": g.reason,
                 "seconds": round((g.end_utc - g.start_utc).total_seconds(), 1)
                 if g.end_utc else None} for g in gaps]
    outcome = verdict(lost=sum(lost.values()), lag=lag, segment_seconds=segment_seconds,
                      backlogs=[v for k, v in backlog_report.items() if k in analysed])
    for key, seconds_then in meter_start.items():
        meter.seen[key] -= seconds_then
    embedding: dict[str, Any] | None = None
    if mode in EMBEDDING_MODES and model is not None:
        embedding = {**model.describe(), "model_loaded": "once, before the clock"}
        if mode == "workers":
            embedding |= {"model_loaded": "by each oko.embed task (the worker's own path)",
                          "image_backend": "torch" if model.image_encoder == "torch" else
                          ("torch (the ONNX tower fell back)" if any(
                              worker_log_summary(t)["image_tower_fell_back_to_torch"]
                              for t in worker_logs.values()) else "onnx-fp32"),
                          "workers": {name: worker_log_summary(text)
                                      for name, text in sorted(worker_logs.items())}}
        else:
            embedding["image_backend"] = str(getattr(analysis.embedder, "image_backend", "?"))
    return {
        "cameras": count,
        "mode": mode,
        "recorded_s": round(elapsed, 1),
        "files_expected_about": int(elapsed // segment_seconds) * cameras,
        "files_recorded": len(originals),
        "files_lost": lost,
        "gaps": gap_list,
        "footage_s_recorded": round(sum(o.duration_s for o in originals), 1),
        "ingest_lag_s": lag,
        "analysis_backlog": backlog_report if mode != "ingest" else None,
        "analysis_thread": analysis.report(elapsed) if thread is not None else None,
        "embedding": embedding,
        "cpu_cores": {**meter.cores(elapsed), "machine_busy": round(busy / elapsed, 2),
                      "of_which_in_process_analysis": round(analysis_cpu / elapsed, 2)
                      if thread is not None else None},
        "load_average_1min": {"min": round(min(loads, default=0), 2),
                              "max": round(max(loads, default=0), 2),
                              "end": round(os.getloadavg()[0], 2)},
        **outcome,
    }


def counts_to_try(first: int, *, find_max: bool, run: Callable[[int], bool]) -> None:
    """Run ``first``; with ``find_max``, double until not sustained, then bisect."""
    good, bad, n = 0, None, first
    while True:
        if run(n):
            good = n
        else:
            bad = n
        if not find_max:
            return
        if bad is None:
            n *= 2
        elif bad - good <= 1 or (good and bad - good <= max(1, good // 4)):
            return
        else:
            n = (good + bad) // 2 if good else max(1, bad // 2)


def camera_counts(text: str) -> list[int]:
    """``--cameras``: comma-separated positive counts."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of positive camera counts")
    return counts


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default=[1, 2, 4], type=camera_counts,
                        help="Comma-separated camera counts to try, in order (with "
                             "--find-max: the first count to start the search from).")
    parser.add_argument("--find-max", action="store_true",
                        help="Search for the largest sustained N (doubling, then bisecting).")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--height", type=int, default=720, choices=(720, 1080))
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--mode", default="ingest", choices=MODES)
    parser.add_argument("--footage-dir", type=Path, default=None)
    parser.add_argument("--grain", type=int, default=0,
                        help="Noise strength (e.g. 10) for a realistic bitrate.")
    parser.add_argument("--prepare-only", action="store_true",
                        help="Only build the footage (and model) in --footage-dir, untimed.")
    parser.add_argument("--embedder", default="vit-b-32-random", choices=sorted(EMBEDDERS),
                        help="The random-weight model embedding modes install "
                             "(benchmarks/random_clip.py).")
    parser.add_argument("--image-encoder", default="onnx", choices=IMAGE_ENCODERS,
                        help="OKO_IMAGE_ENCODER for the embedding: onnx (ONNX Runtime image "
                             "tower) or torch (a worker's default).")
    return parser


def main() -> None:
    args = parser().parse_args()
    footage_dir = args.footage_dir or Path(tempfile.mkdtemp(prefix="oko-rec-footage-"))
    footage_dir.mkdir(parents=True, exist_ok=True)
    footage = make_footage(footage_dir, height=args.height, grain=args.grain)
    model = prepare_random_model(footage_dir, name=args.embedder,
                                 image_encoder=args.image_encoder) \
        if args.mode in EMBEDDING_MODES else None
    if args.prepare_only:
        print(json.dumps({"footage": str(footage),
                          "model": {**model.describe(), "weights_path": str(model.weights),
                                    "prepare_s": model.prepare_s} if model else None}))
        return
    results: list[dict[str, Any]] = []

    def run(n: int) -> bool:
        result = run_cameras(footage, count=n, seconds=args.seconds,
                             segment_seconds=args.segment_seconds, mode=args.mode,
                             model=model)
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)  # progress, one line per N
        return bool(result["sustained"])

    counts = args.cameras
    if args.find_max:
        counts_to_try(counts[0], find_max=True, run=run)
    else:
        for n in counts:
            run(n)
    sustained = [r["cameras"] for r in results if r["sustained"]]
    not_sustained = [r["cameras"] for r in results if not r["sustained"]]
    print(json.dumps({
        "footage": {"height": args.height, "fps": 25, "gop_s": 2, "grain": args.grain,
                    "mbit_per_s": round(footage.stat().st_size * 8 / 60 / 1e6, 2)},
        "mode": args.mode,
        "plates": args.mode in ("plates", "analysis", "workers"),
        "embedding": args.mode in ("embed", "analysis", "workers"),
        "embedder": model.describe() if model else None,
        "sustained_rule": SUSTAINED_RULE,
        "workers": 2 if args.mode == "workers" else 0,
        "database": "postgresql" if args.mode == "workers" else "sqlite",
        "segment_seconds": args.segment_seconds,
        "seconds_per_run": args.seconds,
        "runs": results,
        "largest_sustained": max(sustained) if sustained else 0,
        "smallest_not_sustained": min(not_sustained) if not_sustained else None,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ffmpeg": tool_version(), "load_average": os.getloadavg()},
    }, indent=2))


if __name__ == "__main__":
    main()
