"""MJPEG cameras (issue 15): an MJPEG recording (many JPEG frames at a real frame rate,
in AVI or MKV) is ingested as video; a single JPEG, or an AVI holding one MJPEG
picture, is still refused in one sentence and nothing is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlmodel import Session, select

from indexer.media import NotVideoError, NoVideoStreamError, ffmpeg_exe, probe
from search_api.state import AppState
from storage.models.media import Frame, Original, Segment
from tests.indexer.ingest.conftest import NOTHING, Ingest, written


def write_mjpeg(path: Path, *, seconds: float = 6, frames: int | None = None,
                fmt: str | None = None) -> Path:
    """testsrc2 at 320x180, 10 fps, as MJPEG (quality 5) in ``path``'s container."""
    limit = ["-frames:v", str(frames)] if frames is not None else []
    container = ["-f", fmt] if fmt else []
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=s=320x180:r=10:d={seconds}", *limit, "-c:v", "mjpeg",
                    "-q:v", "5", "-pix_fmt", "yuvj420p", *container, str(path)], check=True)
    return path


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_an_mjpeg_recording_is_ingested_as_video(ingest: Ingest, registered: AppState,
                                                 tmp_path: Path, suffix: str) -> None:
    clip = write_mjpeg(tmp_path / f"CAM-001_20260125T100000{suffix}")
    info = probe(clip)
    assert (info.video_codec, info.fps, len(info.frame_times_s)) == ("mjpeg", 10.0, 60)
    outcome = ingest(clip, segment_seconds=2.0, sample_interval_seconds=1.0)
    assert not outcome.duplicate and outcome.frame_count == 6
    with Session(registered.engine) as session:
        original = session.exec(select(Original)).one()
        segments = session.exec(select(Segment).order_by(Segment.start_offset_s)).all()
        frames = session.exec(select(Frame)).all()
    assert (original.video_codec, original.width, original.height) == ("mjpeg", 320, 180)
    assert len(segments) == 3 and len(frames) == 6
    # every MJPEG frame is a keyframe: segments are stream copies, in MKV (not MP4)
    first = registered.derived.path_for(segments[0].sha256)
    assert probe(first).video_codec == "mjpeg" and probe(first).container == "matroska"
    assert registered.originals.path_for(original.sha256).read_bytes() == clip.read_bytes()


def test_a_single_jpeg_is_still_not_a_recording(ingest: Ingest, registered: AppState,
                                                tmp_path: Path) -> None:
    jpeg = tmp_path / "CAM-001_20260125T100000.jpg"
    write_mjpeg(jpeg, frames=1, fmt="image2")
    with pytest.raises(NotVideoError, match=r"^'CAM-001_20260125T100000.jpg' is not a video "
                                            r"file: FFmpeg does not recognise its format.$"):
        ingest(jpeg)
    assert written(registered) == NOTHING


def test_an_avi_holding_one_mjpeg_picture_is_refused(ingest: Ingest, registered: AppState,
                                                      tmp_path: Path) -> None:
    one = write_mjpeg(tmp_path / "CAM-001_20260125T100000.avi", frames=1)
    with pytest.raises(NoVideoStreamError, match=r"^'CAM-001_20260125T100000.avi' holds a "
                                                 r"single picture, not a moving video; only "
                                                 r"recordings with a decodable video stream "
                                                 r"can be ingested.$"):
        ingest(one)
    assert written(registered) == NOTHING
