"""Playback proxies (issue 15): a segment browsers cannot play (HEVC, MPEG-4 Part 2,
MJPEG) is served as an H.264 proxy made on first request, stored as a derived blob with
its provenance record and reused; an H.264 segment is served as it is."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from indexer.ingest import IngestOptions, ingest_file
from indexer.media import ffmpeg_exe
from search_api.state import AppState
from storage.media_copies import proxy_record_path
from storage.models.access import AuditEvent, Role
from storage.models.media import Original, Segment
from tests.search_corpus import SearchCorpus, copy_corpus


@pytest.fixture
def state(search_corpus: SearchCorpus, tmp_path: Path) -> Iterator[AppState]:
    """The corpus with a derived store of its own: proxies are written there (and one
    test damages a segment), never into the shared, read-only corpus."""
    copy = copy_corpus(search_corpus, tmp_path / "oko-home")
    shared = copy.derived.root.resolve()
    copy.settings.home.joinpath("derived").unlink()
    shutil.copytree(shared, copy.settings.home / "derived")
    assert not copy.derived.root.is_symlink()
    yield copy
    copy.engine.dispose()


@pytest.fixture
def investigator(client_as: Callable[..., TestClient]) -> TestClient:
    return client_as(Role.INVESTIGATOR, agency="police")


def _segment_of(state: AppState, codec: str) -> Segment:
    with Session(state.engine) as session:
        segment = session.exec(select(Segment).join(Original).where(
            col(Original.video_codec) == codec).order_by(col(Segment.id))).first()
        assert segment is not None, f"the corpus has no {codec} segment"
        return segment


def _probe(data: bytes) -> tuple[str, int, int]:
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0].codec_context
        return video.codec.canonical_name, video.width, video.height


@pytest.mark.parametrize("codec", ["hevc", "mpeg4"])
def test_a_segment_browsers_cannot_play_is_served_as_an_h264_proxy(
        investigator: TestClient, state: AppState, codec: str) -> None:
    segment = _segment_of(state, codec)
    source = state.derived.path_for(segment.sha256)
    assert _probe(source.read_bytes())[0] == codec
    record_path = proxy_record_path(state.derived, segment.sha256)
    assert not record_path.exists()

    first = investigator.get(f"/api/segments/{segment.id}/video")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "video/mp4"
    proxy_sha = first.headers["x-oko-playback-proxy"]
    codec_served, width, height = _probe(first.content)
    assert codec_served == "h264"
    assert (width, height) == _probe(source.read_bytes())[1:]  # small: size kept
    assert state.derived.path_for(proxy_sha).read_bytes() == first.content

    record = json.loads(record_path.read_text())
    assert record["sha256"] == proxy_sha and record["source_sha256"] == segment.sha256
    assert record["derived"] is True and record["profile"] == "playback-proxy"
    assert record["tool"] == "ffmpeg" and record["tool_version"]
    assert "-c:v libx264" in record["command"] and record["parameters"]["crf"] == 28
    assert source.read_bytes() and _probe(source.read_bytes())[0] == codec  # untouched

    blobs = sorted(state.derived.iter_hashes())
    stamp = record_path.stat().st_mtime_ns
    again = investigator.get(f"/api/segments/{segment.id}/video",
                             headers={"Range": "bytes=0-99"})
    assert again.status_code == 206
    assert again.headers["x-oko-playback-proxy"] == proxy_sha  # reused, not remade
    assert again.content == first.content[:100]
    assert again.headers["content-range"] == f"bytes 0-99/{len(first.content)}"
    assert sorted(state.derived.iter_hashes()) == blobs
    assert record_path.stat().st_mtime_ns == stamp

    with Session(state.engine) as session:
        views = session.exec(select(AuditEvent).where(
            col(AuditEvent.action) == "view_video")).all()
    assert [v.details.get("proxy_sha256") for v in views] == [proxy_sha]


def test_an_h264_segment_is_served_as_stored(investigator: TestClient,
                                             state: AppState) -> None:
    segment = _segment_of(state, "h264")
    response = investigator.get(f"/api/segments/{segment.id}/video")
    assert response.status_code == 200
    assert "x-oko-playback-proxy" not in response.headers
    assert response.content == state.derived.path_for(segment.sha256).read_bytes()
    assert not proxy_record_path(state.derived, segment.sha256).exists()


def test_a_segment_ffmpeg_cannot_decode_is_refused_in_one_sentence(
        investigator: TestClient, state: AppState) -> None:
    """The stored HEVC segment damaged on disk: only its first 64 bytes are left."""
    segment = _segment_of(state, "hevc")
    stored = state.derived.path_for(segment.sha256)
    head = stored.read_bytes()[:64]
    stored.chmod(0o600)
    stored.write_bytes(head)
    blobs = sorted(state.derived.iter_hashes())
    response = investigator.get(f"/api/segments/{segment.id}/video")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "transcode"
    assert body["detail"] == f"segment {segment.id} has no video stream to play."
    assert sorted(state.derived.iter_hashes()) == blobs
    assert not proxy_record_path(state.derived, segment.sha256).exists()
    with Session(state.engine) as session:
        assert session.exec(select(AuditEvent).where(
            col(AuditEvent.action) == "view_video")).all() == []


def test_an_mjpeg_cameras_segment_is_served_as_an_h264_proxy_with_provenance(
        investigator: TestClient, state: AppState, tmp_path: Path) -> None:
    """An MJPEG AVI (10 fps, generated here) ingested for a camera the investigator sees:
    its MKV segment plays as the H.264 proxy, recorded as derived from that segment."""
    shared = state.originals.root.resolve()
    state.settings.home.joinpath("blobs").unlink()  # ingest writes: a private copy
    shutil.copytree(shared, state.settings.home / "blobs")
    clip = tmp_path / "mjpeg.avi"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=s=320x180:r=10:d=4", "-c:v", "mjpeg", "-q:v", "5",
                    "-pix_fmt", "yuvj420p", str(clip)], check=True)
    outcome = ingest_file(engine=state.engine, originals=state.originals,
                          derived=state.derived, path=clip, camera_id="CAM-001",
                          start=datetime(2026, 2, 1, 9, 0, tzinfo=UTC),
                          options=IngestOptions(segment_seconds=2.0))
    with Session(state.engine) as session:
        segment = session.exec(select(Segment).where(
            col(Segment.original_id) == outcome.original_id).order_by(col(Segment.id))).first()
    assert segment is not None
    stored = state.derived.path_for(segment.sha256).read_bytes()
    assert _probe(stored) == ("mjpeg", 320, 180)
    response = investigator.get(f"/api/segments/{segment.id}/video")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    assert _probe(response.content) == ("h264", 320, 180)
    record = json.loads(proxy_record_path(state.derived, segment.sha256).read_text())
    assert record["sha256"] == response.headers["x-oko-playback-proxy"]
    assert record["source_sha256"] == segment.sha256 and record["derived"] is True
    assert record["profile"] == "playback-proxy" and "-c:v libx264" in record["command"]
    assert state.derived.path_for(segment.sha256).read_bytes() == stored  # untouched
