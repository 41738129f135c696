"""Ingest through REAL worker processes, over the embedded SQLite broker and over Redis.

Includes kill -9 of a worker mid-ingest: after a new worker starts, the job is
recovered from its DB lease (not from broker redelivery) and leaves exactly the
rows, blobs and (no) temp files of a clean ingest.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import Session, col, select

from indexer.ingest import ingest_file
from search_api.state import AppState, build_state
from search_api.usecases.ingest import ingest_options
from storage.cameras import add_camera, validate_camera
from storage.models.media import Frame, IngestJob, Original, Segment
from storage.settings import Settings
from tests.search_api.jobs.conftest import (
    CliResult,
    WorkerProcess,
    job_row,
    wait_until,
)

BROKERS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=BROKERS)
def broker(request: pytest.FixtureRequest, settings: Settings) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_broker")
    return str(request.param)


def _json(result: CliResult) -> list[dict[str, object]]:
    assert result.code == 0 or result.out, result.err
    data = json.loads(result.out)
    assert isinstance(data, list)
    return data


def _stored_rows(state: AppState, original_id: int) -> tuple[list[tuple[object, ...]], ...]:
    with Session(state.engine) as session:
        segments = session.exec(select(Segment).where(Segment.original_id == original_id)
                                .order_by(col(Segment.index))).all()
        frames = session.exec(select(Frame).where(Frame.original_id == original_id)
                              .order_by(col(Frame.offset_s))).all()
    return ([(s.index, s.start_offset_s, s.duration_s, s.sha256) for s in segments],
            [(f.offset_s, f.thumbnail_sha256) for f in frames])


def _frame_size(state: AppState, original_id: int) -> tuple[int, int]:
    with Session(state.engine) as session:
        frame = session.exec(select(Frame).where(Frame.original_id == original_id)).first()
    assert frame is not None
    return frame.width, frame.height


def _segment_or_frame(state: AppState, sha256: str, frame_size: tuple[int, int]) -> bool:
    """Whether a derived blob is what ingest writes: an MP4 segment or a sampled frame."""
    with state.derived.open(sha256) as handle:
        data = handle.read()
    if data[4:8] == b"ftyp":
        return True
    with Image.open(io.BytesIO(data)) as image:
        return image.size == frame_size


def _temp_files(settings: Settings) -> list[Path]:
    return [path for path in settings.tmp_dir.rglob("*") if path.is_file()]


@pytest.mark.slow
def test_ingest_through_a_real_worker_then_duplicate(
    broker: str, state: AppState, camera: str, short_clip: Path,
    run_oko: Callable[..., CliResult], start_worker: Callable[[], WorkerProcess],
) -> None:
    worker = start_worker()
    first = run_oko("ingest", str(short_clip), "--camera", camera, "--wait", "--json")
    assert first.code == 0, worker.log()
    [done] = _json(first)
    assert (done["status"], done["progress"], done["duplicate"]) == ("done", 1.0, False)
    assert (done["segments"], done["frames"]) == (1, 3)
    assert str(done["worker"]).endswith(f":{worker.process.pid}")

    again = run_oko("ingest", str(short_clip), "--camera", camera, "--wait")
    assert again.code == 0
    assert "DUPLICATE" in again.out and str(done["sha256"]) in again.out

    listed = _json(run_oko("jobs", "--json"))
    assert [job["status"] for job in listed] == ["duplicate", "done"]
    assert all(job["progress"] == 1.0 for job in listed)
    with Session(state.engine) as session:
        assert len(session.exec(select(Original)).all()) == 1
    assert not _temp_files(state.settings)


@pytest.mark.slow
def test_a_folder_is_walked_by_the_worker_and_waited_for_file_by_file(
    broker: str, state: AppState, camera: str, short_clip: Path, tmp_path: Path,
    run_oko: Callable[..., CliResult], start_worker: Callable[[], WorkerProcess],
) -> None:
    folder = tmp_path / "incoming"
    (folder / "later").mkdir(parents=True)
    (folder / short_clip.name).write_bytes(short_clip.read_bytes())
    (folder / "later" / "CAM-001_20260125T120000.mp4").write_bytes(short_clip.read_bytes())
    worker = start_worker()
    result = run_oko("ingest", str(folder), "--camera", camera, "--wait", "--json")
    assert result.code == 0, worker.log()
    walked, *files = _json(result)
    assert (walked["source_path"], walked["stage"], walked["files"]) == (
        str(folder.resolve()), "walked", 2)
    assert sorted((job["parent_id"], job["status"]) for job in files) == [
        (walked["id"], "done"), (walked["id"], "duplicate")]  # the same bytes twice


@pytest.mark.slow
def test_a_file_that_fails_in_the_worker_exits_non_zero_and_stores_nothing(
    state: AppState, camera: str, tmp_path: Path,
    run_oko: Callable[..., CliResult], start_worker: Callable[[], WorkerProcess],
) -> None:
    start_worker()
    not_video = tmp_path / "CAM-001_20260125T100000.mp4"
    not_video.write_text("this is a text file, not a recording\n" * 20)
    result = run_oko("ingest", str(not_video), "--camera", camera, "--wait")
    assert result.code == 1
    assert "FAILED" in result.out and not_video.name in result.out
    with Session(state.engine) as session:
        [job] = session.exec(select(IngestJob)).all()
        assert session.exec(select(Original)).all() == []
    assert job.status == "failed" and job.message.endswith(".")
    assert list(state.originals.iter_hashes()) == []
    assert list(state.derived.iter_hashes()) == []


def _clean_ingest(path: Path, tmp_path: Path) -> tuple[list[tuple[object, ...]], ...]:
    """The rows a single uninterrupted in-process ingest of ``path`` produces."""
    clean = build_state(Settings(home=tmp_path / "clean-home", environment="test",
                                 key_passphrase="test-passphrase"))
    try:
        with Session(clean.engine) as session:
            add_camera(session, camera=validate_camera(
                id="CAM-001", name="Test street", latitude=50.45, longitude=30.52,
                agency="police"))
            session.commit()
        outcome = ingest_file(engine=clean.engine, originals=clean.originals,
                              derived=clean.derived, path=path, camera_id="CAM-001",
                              start=None, options=ingest_options(clean.settings))
        return _stored_rows(clean, outcome.original_id)
    finally:
        clean.engine.dispose()


@pytest.mark.slow
def test_kill_9_mid_ingest_recovers_with_no_duplicate_or_missing_segments(
    broker: str, state: AppState, camera: str, long_clip: Path, tmp_path: Path,
    run_oko: Callable[..., CliResult], start_worker: Callable[[], WorkerProcess],
) -> None:
    doomed = start_worker()
    queued = _json(run_oko("ingest", str(long_clip), "--camera", camera, "--json"))
    job_id = int(str(queued[0]["id"]))

    def sampling_under_way() -> bool:
        job = job_row(state, job_id)
        return job.status == "running" and job.stage == "sampling" and job.progress > 0.02

    wait_until(sampling_under_way, timeout=120, what="the job to be sampling", worker=doomed,
               interval=0.05)
    doomed.kill()
    killed = job_row(state, job_id)
    assert killed.status == "running" and killed.progress < 1.0, "ingest finished before kill"
    assert killed.worker is not None and killed.worker.endswith(f":{doomed.process.pid}")

    rescuer = start_worker()
    wait_until(lambda: job_row(state, job_id).status == "done", timeout=180,
               what="the recovered job to finish", worker=rescuer)
    job = job_row(state, job_id)
    assert job.attempts == 2 and job.worker is not None, rescuer.log()
    assert job.worker.endswith(f":{rescuer.process.pid}")
    assert job.original_id is not None

    segments, frames = _stored_rows(state, job.original_id)
    clean_segments, clean_frames = _clean_ingest(long_clip, tmp_path)
    assert len(segments) == len(clean_segments) == 24
    assert len(frames) == len(clean_frames) == 120
    assert segments == clean_segments
    assert frames == clean_frames
    with Session(state.engine) as session:
        assert len(session.exec(select(Original)).all()) == 1
    referenced = {sha for *_rest, sha in segments} | {sha for _offset, sha in frames}
    stored = set(state.derived.iter_hashes())
    assert referenced <= stored
    # The rescuer goes on to read plates in the new frames and stores crops of its own;
    # what must not be left over is a segment or a frame of the killed run.
    frame_size = _frame_size(state, job.original_id)
    assert [sha for sha in stored - referenced
            if _segment_or_frame(state, sha, frame_size)] == []
    wait_until(lambda: not _temp_files(state.settings), timeout=30,
               what="the dead worker's temp files to be swept", worker=rescuer)
