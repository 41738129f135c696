"""Motion-gated embedding queue on real ingested footage: gating, idempotency, crash safety."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from sqlmodel import Session, select

from indexer import embed_queue
from indexer.embed_queue import EmbedReport, embed_pending_frames, pending_frame_count
from indexer.embeddings import ClipEmbedder, build_unsafe_random_embedder
from indexer.media import ffmpeg_exe
from indexer.motion import motion_score, motion_signature
from indexer.vectors import vector_from_bytes
from search_api.state import AppState
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from storage.models.search_index import SearchBacklog
from tests.indexer.embeddings.conftest import BURST, CAPTURE_START, IngestedClip, ingest_clip

THRESHOLD = 0.02


def _run(state: AppState, embedder: ClipEmbedder, **kwargs: object) -> EmbedReport:
    return embed_pending_frames(engine=state.engine, derived=state.derived, embedder=embedder,
                                batch_size=4, motion_threshold=THRESHOLD, **kwargs)  # type: ignore[arg-type]


def _rows(state: AppState) -> dict[int, tuple[FrameEmbedding, Frame]]:
    with Session(state.engine) as session:
        pairs = session.exec(select(FrameEmbedding, Frame)
                             .join(Frame, FrameEmbedding.frame_id == Frame.id)).all()  # type: ignore[arg-type]
        return {row.frame_id: (row, frame) for row, frame in pairs}


def _decisions(state: AppState) -> dict[int, tuple[str, int | None]]:
    """Per frame: embedded or linked, and to which frame."""
    return {fid: (row.status, row.linked_frame_id) for fid, (row, _) in _rows(state).items()}


def _van_visible(frame: Frame) -> bool:
    offset = (frame.captured_at_utc - CAPTURE_START).total_seconds()
    return BURST[0] + 0.1 < offset < BURST[1] - 0.1


def test_motion_score_sees_a_small_moving_object_but_not_noise() -> None:
    rng = np.random.default_rng(0)
    street = Image.new("RGB", (320, 180), (90, 95, 100))
    noisy = Image.fromarray(np.clip(np.asarray(street, dtype=np.int16)
                                    + rng.integers(-6, 7, (180, 320, 3)), 0, 255).astype(np.uint8))
    with_person = street.copy()
    ImageDraw.Draw(with_person).rectangle((150, 100, 162, 124), fill=(30, 160, 60))  # 12x24 px

    base = motion_signature(street)
    assert motion_score(base, None) == 1.0
    assert motion_score(base, base) == 0.0
    assert motion_score(motion_signature(noisy), base) < THRESHOLD
    assert motion_score(motion_signature(with_person), base) > THRESHOLD


def test_static_frames_are_linked_and_the_moving_van_is_embedded(
    any_state: AppState, any_ingested: IngestedClip, tiny_embedder: ClipEmbedder
) -> None:
    progress: list[tuple[int, int]] = []
    report = _run(any_state, tiny_embedder,
                  progress=lambda done, total: progress.append((done, total)))

    rows = _rows(any_state)
    total = len(any_ingested.frame_ids)
    assert report.embedded + report.linked == total == len(rows)
    assert report.failed == []
    assert report.skipped_fraction == pytest.approx(report.linked / total)
    assert report.skipped_fraction > 0.5  # most of a still street is skipped
    print(f"motion gating skipped {report.skipped_fraction:.1%} of {total} frames")
    assert progress[-1] == (total, total)

    for row, frame in rows.values():
        if _van_visible(frame):
            assert row.status == "embedded", f"van frame at {frame.captured_at_utc} was linked"
        if row.status == "linked":
            assert row.vector is None and row.motion_score < THRESHOLD
            target, target_frame = rows[row.linked_frame_id]  # type: ignore[index]
            assert target.status == "embedded"
            assert target_frame.camera_id == frame.camera_id
            assert target_frame.captured_at_utc <= frame.captured_at_utc
        else:
            assert row.linked_frame_id is None
            assert abs(float(np.linalg.norm(vector_from_bytes(row.vector))) - 1) < 1e-5
    with Session(any_state.engine) as session:
        assert pending_frame_count(session=session,
                                   weights_sha256=tiny_embedder.weights_sha256) == 0


def test_search_by_example_finds_the_van_among_embedded_frames(
    state: AppState, ingested: IngestedClip, tiny_embedder: ClipEmbedder
) -> None:
    """Gating keeps every van frame searchable: a van frame as query ranks van frames first."""
    _run(state, tiny_embedder)
    rows = _rows(state)
    embedded = [(row, frame) for row, frame in rows.values() if row.status == "embedded"]
    matrix = np.stack([vector_from_bytes(row.vector) for row, _ in embedded])
    van = [frame for _, frame in embedded if _van_visible(frame)]
    query_frame = van[len(van) // 2]
    with state.derived.open(query_frame.thumbnail_sha256) as handle:
        query = tiny_embedder.encode_images([Image.open(handle)])[0]

    ranked = [embedded[i][1] for i in np.argsort(-(matrix @ query))]
    assert ranked[0].id == query_frame.id
    assert all(_van_visible(frame) for frame in ranked[1:3])


def test_rerun_is_idempotent(
    state: AppState, ingested: IngestedClip, tiny_embedder: ClipEmbedder
) -> None:
    _run(state, tiny_embedder)
    before = {fid: (row.status, row.vector, row.linked_frame_id)
              for fid, (row, _) in _rows(state).items()}
    again = _run(state, tiny_embedder)
    assert (again.embedded, again.linked) == (0, 0)
    after = {fid: (row.status, row.vector, row.linked_frame_id)
             for fid, (row, _) in _rows(state).items()}
    assert after == before


class CrashingEmbedder:
    """Delegates to a real embedder, then dies on the n-th batch, like a killed worker."""

    def __init__(self, inner: ClipEmbedder, crash_on_batch: int) -> None:
        self.inner = inner
        self.preset = inner.preset
        self.weights_sha256 = inner.weights_sha256
        self.batches = 0
        self.crash_on_batch = crash_on_batch

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.batches += 1
        if self.batches == self.crash_on_batch:
            raise KeyboardInterrupt("worker killed")
        return self.inner.encode_images(images)


def test_crash_mid_queue_leaves_whole_batches_and_a_rerun_completes(
    any_state: AppState, any_ingested: IngestedClip, tiny_embedder: ClipEmbedder
) -> None:
    with pytest.raises(KeyboardInterrupt):
        _run(any_state, CrashingEmbedder(tiny_embedder, crash_on_batch=2))
    partial = _rows(any_state)
    assert 0 < len(partial) < len(any_ingested.frame_ids)
    for row, _ in partial.values():  # no dangling links after the crash
        if row.status == "linked":
            assert row.linked_frame_id in partial

    _run(any_state, tiny_embedder)
    resumed = _decisions(any_state)

    assert sorted(resumed) == sorted(any_ingested.frame_ids)
    with Session(any_state.engine) as session:  # a clean run from scratch must agree
        for row in session.exec(select(FrameEmbedding)).all():
            session.delete(row)
        session.commit()
    _run(any_state, tiny_embedder)
    clean = _decisions(any_state)
    assert resumed == clean


def test_paged_reading_of_the_queue_gives_the_same_result(
    any_state: AppState, any_ingested: IngestedClip, tiny_embedder: ClipEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _run(any_state, tiny_embedder)
    whole = _decisions(any_state)
    with Session(any_state.engine) as session:
        for row in session.exec(select(FrameEmbedding)).all():
            session.delete(row)
        session.commit()

    monkeypatch.setattr(embed_queue, "PENDING_PAGE", 5)
    _run(any_state, tiny_embedder)
    paged = _decisions(any_state)
    assert paged == whole


def test_new_weights_reembed_every_frame(
    any_state: AppState, any_ingested: IngestedClip, tiny_embedder: ClipEmbedder
) -> None:
    _run(any_state, tiny_embedder)
    newer = build_unsafe_random_embedder("test-tiny", seed=7, threads=2)
    with Session(any_state.engine) as session:
        assert pending_frame_count(session=session, weights_sha256=newer.weights_sha256) == len(
            any_ingested.frame_ids)
    report = _run(any_state, newer)
    assert report.processed == len(any_ingested.frame_ids)
    assert {row.weights_sha256 for row, _ in _rows(any_state).values()} == {newer.weights_sha256}


def test_limit_and_unreadable_frames_stay_pending(
    state: AppState, ingested: IngestedClip, tiny_embedder: ClipEmbedder
) -> None:
    first = _run(state, tiny_embedder, limit=5)
    assert first.processed == 5

    broken_id = ingested.frame_ids[10]
    with Session(state.engine) as session:
        broken = session.get(Frame, broken_id)
        assert broken is not None
        broken.thumbnail_sha256 = "0" * 64  # its image is not in the derived store
        session.add(broken)
        session.commit()
    report = _run(state, tiny_embedder)
    assert [f.frame_id for f in report.failed] == [broken_id]
    assert "frame image unreadable" in report.failed[0].reason
    assert broken_id not in _rows(state)
    with Session(state.engine) as session:
        assert pending_frame_count(session=session,
                                   weights_sha256=tiny_embedder.weights_sha256) == 1


def test_gating_continues_from_the_last_embedded_frame_across_runs(
    state: AppState, ingested: IngestedClip, tiny_embedder: ClipEmbedder
) -> None:
    _run(state, tiny_embedder, limit=3)  # first three frames of a still street
    _run(state, tiny_embedder)
    rows = _rows(state)
    first_frame = min(rows.values(), key=lambda pair: pair[1].captured_at_utc)[1]
    quiet = [row for row, frame in rows.values()
             if frame.captured_at_utc < CAPTURE_START + timedelta(seconds=BURST[0] - 0.5)]
    # the whole quiet start links to the very first frame, even across the two runs
    assert [r.status for r in quiet].count("embedded") == 1
    assert all(r.linked_frame_id == first_frame.id for r in quiet if r.status == "linked")


class CountingEmbedder:
    """Delegates to a real embedder and records the size of every batch it is given."""

    def __init__(self, inner: ClipEmbedder) -> None:
        self.inner = inner
        self.preset = inner.preset
        self.weights_sha256 = inner.weights_sha256
        self.batch_sizes: list[int] = []

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        self.batch_sizes.append(len(images))
        return self.inner.encode_images(images)


def test_a_batch_spans_cameras_and_each_frame_keeps_its_camera(
    state: AppState, van_clip: Path, tiny_embedder: ClipEmbedder, tmp_path: Path
) -> None:
    ingest_clip(state, van_clip, camera_id="CAM-A")
    darker = tmp_path / "CAM-B_20260125T120000.mp4"  # the same street, other bytes
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-i", str(van_clip), "-vf", "eq=brightness=-0.1", "-c:v", "libx264",
                    "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", str(darker)],
                   check=True, capture_output=True)
    ingest_clip(state, darker, camera_id="CAM-B")
    counting = CountingEmbedder(tiny_embedder)

    report = embed_pending_frames(engine=state.engine, derived=state.derived,
                                  embedder=counting, batch_size=64,
                                  motion_threshold=THRESHOLD)

    assert report.cameras == ["CAM-A", "CAM-B"]
    assert counting.batch_sizes == [report.embedded]  # one batch for both cameras
    rows = _rows(state)
    embedded_cameras = {frame.camera_id for row, frame in rows.values()
                        if row.status == "embedded"}
    assert embedded_cameras == {"CAM-A", "CAM-B"}
    for row, frame in rows.values():  # a link never crosses cameras
        if row.status == "linked":
            assert rows[row.linked_frame_id][1].camera_id == frame.camera_id
    with Session(state.engine) as session:
        backlog = session.exec(select(SearchBacklog, Frame)
                               .join(Frame, SearchBacklog.frame_id == Frame.id)).all()  # type: ignore[arg-type]
    assert len(backlog) == len(rows)
    assert all(entry.embedded and entry.camera_id == frame.camera_id
               for entry, frame in backlog)
