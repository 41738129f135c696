"""``oko ingest`` with no model installed loads no model, index, PDF or timestamp stack.

Each case runs the real command in a fresh interpreter and reports which of the heavy
modules ended up in ``sys.modules``; a behaviour test, not a timing test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, select

from search_api.state import AppState
from storage.cameras import add_camera, validate_camera
from storage.models.media import Frame, IngestJob, Original
from tests.search_api.jobs.conftest import REPO_ROOT, make_clip, settings_env

MODEL_STACK = ("torch", "torchvision", "open_clip", "faiss", "onnxruntime")
# what ingesting in this process has no use for either
NOT_FOR_INGEST = (*MODEL_STACK, "numpy", "celery", "kombu", "fastapi", "reportlab",
                  "pyhanko", "cv2", "rapidocr_onnxruntime", "oko_verify.verify",
                  # the RFC 3161 client, the API's tokens and passwords, progress bars
                  "asn1crypto", "urllib.request", "jwt", "argon2", "rich.progress")

PROBE = """
import json, sys
from search_api.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
"""


def _run_cli(args: list[str], state: AppState, modules: tuple[str, ...]
             ) -> dict[str, object]:
    run = subprocess.run([sys.executable, "-c", PROBE % (modules,), *args],
                         env=settings_env(state.settings), capture_output=True, text=True,
                         cwd=REPO_ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    result: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def camera(state: AppState) -> str:
    with Session(state.engine) as session:
        add_camera(session, camera=validate_camera(
            id="CAM-001", name="Test street", latitude=50.45, longitude=30.52,
            agency="police"))
        session.commit()
    return "CAM-001"


def test_ingest_here_without_a_model_loads_no_model_index_or_worker_stack(
        state: AppState, camera: str, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "CAM-001_20260125T100000.mp4", seconds=4)
    result = _run_cli(["ingest", str(clip), "--camera", camera, "--here", "--json"], state,
                      NOT_FOR_INGEST)
    assert result == {"code": 0, "loaded": []}
    with Session(state.engine) as session:
        original = session.exec(select(Original)).one()
        job = session.exec(select(IngestJob)).one()
        frames = session.exec(select(Frame)).all()
    assert (job.status, job.original_id) == ("done", original.id)
    assert original.status == "ready" and original.sampling == "keyframes"
    assert len(frames) == 2  # one per 2 s interval of the 4 s clip


def test_queueing_ingest_loads_no_model_or_index(state: AppState, camera: str,
                                                 tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "CAM-001_20260125T100000.mp4", seconds=2)
    result = _run_cli(["ingest", str(clip), "--camera", camera, "--json"], state,
                      MODEL_STACK)
    assert result == {"code": 0, "loaded": []}
    with Session(state.engine) as session:
        assert session.exec(select(IngestJob.status)).all() == ["queued"]
        assert session.exec(select(Original)).all() == []


def test_ingest_here_of_a_missing_file_is_one_sentence_and_queues_nothing(
        state: AppState, camera: str, tmp_path: Path) -> None:
    missing = tmp_path / "gone.mp4"
    run = subprocess.run([sys.executable, "-m", "search_api.cli", "ingest", str(missing),
                          "--camera", camera, "--here"], env=settings_env(state.settings),
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert run.returncode == 1
    assert " ".join(run.stderr.split()) == f"error: Path '{missing}' does not exist."
    with Session(state.engine) as session:
        assert session.exec(select(IngestJob)).all() == []
        assert session.exec(select(Original)).all() == []
    assert list(state.originals.iter_hashes()) == []
