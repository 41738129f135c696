"""Two workers embedding at once split the cameras instead of embedding the same frames."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from sqlmodel import Session, select

from indexer.embed_queue import EmbedReport, embed_pending_frames, pending_frame_count
from indexer.embeddings import ClipEmbedder
from indexer.media import ffmpeg_exe
from search_api.state import AppState
from storage.claims import CameraClaims
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from tests.indexer.embeddings.conftest import ingest_clip

THRESHOLD = 0.02
REPO = Path(__file__).resolve().parents[3]


def _two_cameras(state: AppState, van_clip: Path, tmp_path: Path) -> None:
    ingest_clip(state, van_clip, camera_id="CAM-A")
    other = tmp_path / "CAM-B_20260125T120000.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-i", str(van_clip), "-vf", "eq=brightness=-0.1", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", str(other)],
                   check=True, capture_output=True)
    ingest_clip(state, other, camera_id="CAM-B")


def _embedded_cameras(state: AppState) -> dict[str, int]:
    with Session(state.engine) as session:
        rows = session.exec(select(Frame.camera_id).join(
            FrameEmbedding, FrameEmbedding.frame_id == Frame.id)).all()  # type: ignore[arg-type]
    counts: dict[str, int] = {}
    for camera_id in rows:
        counts[camera_id] = counts.get(camera_id, 0) + 1
    return counts


def _embed(state: AppState, embedder: ClipEmbedder) -> EmbedReport:
    return embed_pending_frames(engine=state.engine, derived=state.derived, embedder=embedder,
                                batch_size=8, motion_threshold=THRESHOLD)


def test_a_camera_another_worker_holds_is_left_to_it(
    any_state: AppState, van_clip: Path, tiny_embedder: ClipEmbedder, tmp_path: Path
) -> None:
    _two_cameras(any_state, van_clip, tmp_path)
    with Session(any_state.engine) as session:
        frames_a = len(session.exec(select(Frame.id).where(Frame.camera_id == "CAM-A")).all())

    with CameraClaims(any_state.engine, f"embed:{tiny_embedder.weights_sha256}") as other:
        assert other.try_claim("CAM-A")
        report = _embed(any_state, tiny_embedder)
    assert report.cameras == ["CAM-B"] and report.cameras_busy == ["CAM-A"]
    assert "CAM-A" not in _embedded_cameras(any_state)
    with Session(any_state.engine) as session:
        assert pending_frame_count(session=session,
                                   weights_sha256=tiny_embedder.weights_sha256) == frames_a

    again = _embed(any_state, tiny_embedder)  # the other worker is gone: its camera is free
    assert again.cameras == ["CAM-A"] and again.cameras_busy == []
    assert _embedded_cameras(any_state)["CAM-A"] == frames_a


def test_claims_are_exclusive_and_released_when_their_process_is_killed(
    any_state: AppState, tmp_path: Path
) -> None:
    ready = tmp_path / "claimed"
    url = any_state.engine.url.render_as_string(hide_password=False)
    holder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from pathlib import Path
from storage.claims import CameraClaims
from storage.db import make_engine
claims = CameraClaims(make_engine({url!r}), "plates:k")
assert claims.try_claim("CAM-A")
Path({str(ready)!r}).write_text("yes")
time.sleep(600)
"""], cwd=REPO)
    try:
        for _ in range(600):
            if ready.exists() or holder.poll() is not None:
                break
            time.sleep(0.1)
        assert ready.exists(), "the holder process did not claim its camera"
        with CameraClaims(any_state.engine, "plates:k") as claims:
            assert not claims.try_claim("CAM-A")  # held by the other process
            assert claims.try_claim("CAM-B")  # another camera is free
        with CameraClaims(any_state.engine, "embed:k") as claims:
            assert claims.try_claim("CAM-A")  # another kind of analysis is free
    finally:
        holder.kill()
        holder.wait()
    with CameraClaims(any_state.engine, "plates:k") as claims:
        if any_state.engine.dialect.name == "postgresql":
            # the server notices the closed connection at once, but only once it reads it
            for _ in range(100):
                if claims.try_claim("CAM-A"):
                    break
                time.sleep(0.1)
        assert claims.try_claim("CAM-A")


def test_an_in_memory_database_claims_within_the_process(tmp_path: Path) -> None:
    from storage.db import make_engine

    engine = make_engine("sqlite://")
    with CameraClaims(engine, "embed:x") as first, CameraClaims(engine, "embed:x") as second:
        assert first.try_claim("CAM-A") and not second.try_claim("CAM-A")
        first.release("CAM-A")
        assert second.try_claim("CAM-A")
    with CameraClaims(engine, "embed:x") as third:
        assert third.try_claim("CAM-A")

