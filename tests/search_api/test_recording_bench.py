"""benchmarks/recording.py: the random model it installs, its verdict, its usage errors.

The model tests use the ``test-tiny`` architecture (seconds to build and export); the
ViT-B-32 path is the same code with a bigger model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.random_clip import prepare_random_model
from benchmarks.recording import make_footage, run_cameras
from benchmarks.recording_analysis import (
    backlog_summary,
    lag_summary,
    verdict,
    worker_log_summary,
)
from indexer.reindex import ReindexSettings, load_installed_embedder
from search_api.state import build_state
from storage.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "recording.py"


def test_random_model_is_built_once_and_a_worker_loads_its_onnx_tower(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model = prepare_random_model(cache, name="test-tiny")
    graph = cache / "onnx" / model.weights_sha256 / "image-fp32.onnx"
    assert model.weights.is_file() and graph.is_file()
    assert model.onnx_parity_min_cosine is not None and model.onnx_parity_min_cosine >= 0.999
    built = (model.weights.stat().st_mtime_ns, graph.stat().st_mtime_ns)

    again = prepare_random_model(cache, name="test-tiny")  # reused, not rebuilt
    assert again.weights_sha256 == model.weights_sha256
    assert (again.weights.stat().st_mtime_ns, graph.stat().st_mtime_ns) == built

    settings = Settings(home=tmp_path / "home", environment="test",
                        key_passphrase="test-passphrase", **model.settings())
    state = build_state(settings)
    try:
        model.install_onnx(settings.onnx_dir)
        embedder = load_installed_embedder(
            engine=state.engine, config=ReindexSettings.from_settings(settings))
    finally:
        state.engine.dispose()
    assert embedder.image_backend == "onnx-fp32"
    assert embedder.weights_sha256 == model.weights_sha256
    installed = settings.onnx_dir / model.weights_sha256 / "image-fp32.onnx"
    assert installed.stat().st_ino == graph.stat().st_ino  # the cached export, not a new one


def test_torch_encoder_needs_no_export(tmp_path: Path) -> None:
    model = prepare_random_model(tmp_path, name="test-tiny", image_encoder="torch")
    assert model.onnx_cache is None and not (tmp_path / "onnx").exists()
    assert model.environment()["OKO_IMAGE_ENCODER"] == "torch"


def test_verdict_needs_every_check() -> None:
    lag = lag_summary([3.0, 4.0, 3.5, 4.2, 3.9, 4.1], cameras=2, segment_seconds=10)
    assert lag["first_files"] == [3.0, 4.0] and lag["last_files"] == [3.9, 4.1]
    draining = backlog_summary([40, 90, 30, 10, 5, 0], bound=60)
    assert draining["peak"] == 90 and draining["at_end"] == 0 and draining["drains"]
    growing = backlog_summary([10, 30, 50, 70, 90, 110], bound=60)
    assert not growing["drains"]

    good = verdict(lost=0, lag=lag, segment_seconds=10, backlogs=[draining])
    assert good["sustained"] and all(good["checks"].values())
    assert verdict(lost=0, lag=lag, segment_seconds=10,
                   backlogs=[draining, growing])["checks"]["backlog_drains"] is False
    assert not verdict(lost=1, lag=lag, segment_seconds=10, backlogs=[])["sustained"]
    late = lag_summary([2.0, 2.0, 9.0, 19.0, 19.0, 19.5], cameras=2, segment_seconds=10)
    checks = verdict(lost=0, lag=late, segment_seconds=10, backlogs=[])["checks"]
    assert checks["lag_bounded"] and not checks["lag_not_growing"]
    empty = verdict(lost=0, lag=lag_summary([], cameras=2, segment_seconds=10),
                    segment_seconds=10, backlogs=[])
    assert not empty["sustained"]  # no file ingested is not capacity


def test_worker_log_summary_counts_embed_tasks() -> None:
    log = ("[2026-12-02 00:10:01,000: INFO/MainProcess] Task oko.embed[ab-1] succeeded in "
           "6.5s: 'Embedded 12 frames'\n"
           "[2026-12-02 00:10:09,000: INFO/MainProcess] Task oko.ingest[cd-2] succeeded in 1.0s\n"
           "[2026-12-02 00:10:20,000: INFO/MainProcess] Task oko.embed[ef-3] succeeded in "
           "7.5s: 'Embedded 3 frames'\n"
           "[2026-12-02 00:10:30,000: ERROR/MainProcess] Task oko.embed[gh-4] raised "
           "unexpected: IntegrityError()\n")
    summary = worker_log_summary(log)
    assert summary == {"embed_tasks": 3, "embed_tasks_failed": 1, "embed_task_s_total": 14.0,
                       "embed_task_s_median": 7.0, "image_tower_fell_back_to_torch": False}


@pytest.mark.parametrize("args, message", [
    (["--cameras", "0"], "positive camera counts"),
    (["--cameras", "2,x"], "positive camera counts"),
    (["--embedder", "vit-h-14"], "invalid choice"),
    (["--image-encoder", "tensorrt"], "invalid choice"),
])
def test_bad_options_are_usage_errors_and_write_nothing(tmp_path: Path, args: list[str],
                                                        message: str) -> None:
    footage_dir = tmp_path / "footage"
    done = subprocess.run([sys.executable, str(SCRIPT), *args, "--mode", "embed",
                           "--footage-dir", str(footage_dir)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert not footage_dir.exists()


def test_a_short_embed_run_reports_the_backend_and_the_verdict(tmp_path: Path) -> None:
    footage = make_footage(tmp_path, height=720, seconds=10)
    model = prepare_random_model(tmp_path, name="test-tiny")
    result = run_cameras(footage, count=1, seconds=25, segment_seconds=5, mode="embed",
                         model=model)
    assert result["files_recorded"] >= 1
    assert result["gaps"] == []  # the recorder's own stop at the end is no lost footage
    assert result["embedding"]["image_backend"] == "onnx-fp32"
    assert result["embedding"]["weights_sha256"] == model.weights_sha256
    assert result["analysis_thread"]["model_load_s"] is not None
    assert result["analysis_thread"]["error"] is None
    assert set(result["checks"]) == {"nothing_lost", "lag_bounded", "lag_not_growing",
                                     "backlog_drains"}
    assert result["sustained"] == all(result["checks"].values())
    assert {"at_first_sample", "peak", "at_end", "drains"} <= set(
        result["analysis_backlog"]["embedding"])
    assert "plates" not in result["analysis_backlog"]  # embed mode reads no plates
    assert set(result["cpu_cores"]) >= {"recording_process", "recorder_ffmpeg",
                                        "camera_servers", "workers", "machine_busy"}
