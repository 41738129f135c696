"""Ingest of real footage: storage, segments, frames, provenance, formats, idempotence."""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import Session, col, select

from indexer.ingest import IngestOutcome
from indexer.media import probe, tool_version
from indexer.samples import H264, SampleSet, _encode, day_scene, truncated_copy
from search_api.state import AppState
from storage.custody import acquisition_entry
from storage.models.media import Frame, Original, Segment
from tests.indexer.ingest.conftest import Ingest, written


def _rows(state: AppState, original_id: int) -> tuple[Original, list[Segment], list[Frame]]:
    with Session(state.engine) as session:
        original = session.get(Original, original_id)
        assert original is not None
        segments = session.exec(select(Segment).where(Segment.original_id == original_id)
                                .order_by(col(Segment.index))).all()
        frames = session.exec(select(Frame).where(Frame.original_id == original_id)
                              .order_by(col(Frame.offset_s))).all()
        return original, list(segments), list(frames)


def test_day_clip_is_stored_segmented_and_sampled_with_provenance(
        registered: AppState, ingest: Ingest, samples: SampleSet) -> None:
    clip = samples.by_name("CAM-001_20260125T100000.mp4")
    outcome = ingest(clip.path)

    data = clip.path.read_bytes()
    assert outcome.sha256 == hashlib.sha256(data).hexdigest()
    assert registered.originals.path_for(outcome.sha256).read_bytes() == data
    assert not outcome.duplicate and not outcome.damaged
    assert outcome.start_source == "filename"
    assert outcome.recording_start_utc == datetime(2026, 1, 25, 8, 0, tzinfo=UTC)

    original, segments, frames = _rows(registered, outcome.original_id)
    assert original.status == "ready"
    assert (original.container, original.video_codec) == ("mp4", "h264")
    assert (original.width, original.height, original.fps) == (320, 180, 25.0)
    assert original.duration_s == pytest.approx(12.0)
    assert original.timezone == "Europe/Kyiv"

    # 12 s at 10 s segments, cut at the 2 s keyframes: 0-10 and 10-12
    assert [(s.index, s.start_offset_s, s.duration_s) for s in segments] == [
        (0, 0.0, 10.0), (1, 10.0, 2.0)]
    for segment in segments:
        assert segment.method == "stream_copy"
        assert (segment.tool, segment.tool_version) == ("ffmpeg", tool_version())
        assert segment.parameters["segment_time"] == 10.0
        assert segment.parameters["container"] == "mp4"
        assert segment.parameters["source_sha256"] == outcome.sha256
        assert segment.start_utc == original.recording_start_utc + timedelta(
            seconds=segment.start_offset_s)
        assert registered.derived.verify(segment.sha256)
        cut = probe(registered.derived.path_for(segment.sha256))
        assert len(cut.frame_times_s) == segment.parameters["frame_count"]
        assert segment.parameters["frame_count"] == round(segment.duration_s * 25)

    assert [f.offset_s for f in frames] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    by_id = {s.id: s for s in segments}
    for frame in frames:
        owner = by_id[frame.segment_id]
        assert owner.start_offset_s <= frame.offset_s < owner.start_offset_s + owner.duration_s
        assert frame.camera_id == "CAM-001"
        assert frame.captured_at_utc == original.recording_start_utc + timedelta(
            seconds=frame.offset_s)
        with Image.open(registered.derived.path_for(frame.thumbnail_sha256)) as image:
            assert image.format == "JPEG"
            assert image.size == (frame.width, frame.height) == (320, 180)

    with Session(registered.engine) as session:
        entry = acquisition_entry(session, outcome.original_id)
        assert entry is not None
        assert entry.details["sha256"] == outcome.sha256
        assert entry.details["filename"] == clip.path.name
    assert written(registered).temp_files == []


def test_frames_are_decoded_at_reduced_size(ingest: Ingest, registered: AppState,
                                            samples: SampleSet) -> None:
    outcome = ingest(samples.by_name("CAM-001_20260125T210000.mp4").path, frame_max_side=160)
    _, _, frames = _rows(registered, outcome.original_id)
    assert {(f.width, f.height) for f in frames} == {(160, 90)}


def test_reingest_is_a_duplicate_and_changes_nothing(ingest: Ingest, registered: AppState,
                                                     samples: SampleSet) -> None:
    path = samples.by_name("CAM-002_20260125T120000.mp4").path
    first = ingest(path)
    before = written(registered)
    again = ingest(path)
    assert again.duplicate
    assert again.original_id == first.original_id
    assert (again.segment_count, again.frame_count) == (first.segment_count, first.frame_count)
    assert "already ingested" in again.message
    assert written(registered) == before


@pytest.mark.parametrize(("name", "container", "codec", "start_source"), [
    ("CAM-003_20260125T140000.avi", "avi", "mpeg4", "filename"),
    ("CAM-002_20260125T220000.mkv", "matroska", "hevc", "container"),
    ("CAM-003_20260125T150000.mp4", "mp4", "h264", "filename"),
    ("CAM-001_20260125T230000.ts", "mpegts", "h264", "filename"),
])
def test_real_world_formats_ingest(ingest: Ingest, registered: AppState, samples: SampleSet,
                                   name: str, container: str, codec: str,
                                   start_source: str) -> None:
    clip = samples.by_name(name)
    outcome = ingest(clip.path)
    original, segments, frames = _rows(registered, outcome.original_id)
    assert (original.container, original.video_codec) == (container, codec)
    assert original.variable_frame_rate == clip.variable_frame_rate
    assert outcome.start_source == start_source
    assert outcome.recording_start_utc == clip.expected_start_utc
    assert not outcome.damaged
    assert segments and frames
    assert frames[0].offset_s == 0.0
    assert frames[-1].offset_s <= original.duration_s
    assert sum(s.duration_s for s in segments) == pytest.approx(original.duration_s, abs=0.1)


def test_variable_frame_rate_offsets_follow_timestamps(ingest: Ingest, registered: AppState,
                                                       samples: SampleSet) -> None:
    outcome = ingest(samples.by_name("CAM-003_20260125T150000.mp4").path)
    original, _, frames = _rows(registered, outcome.original_id)
    assert original.variable_frame_rate
    # 200 frames stretched to ~10.6 s: sampled every 2 s of real time, not every 50 frames
    assert [round(f.offset_s) for f in frames] == [0, 2, 4, 6, 8, 10]


def test_start_option_wins_and_naive_times_are_camera_local(
        ingest: Ingest, samples: SampleSet) -> None:
    clip = samples.by_name("CAM-001_20260125T210000.mp4")  # has a container time
    outcome = ingest(clip.path, start=datetime(2026, 2, 1, 9, 30))  # naive: Kyiv, UTC+2
    assert outcome.start_source == "cli"
    assert outcome.recording_start_utc == datetime(2026, 2, 1, 7, 30, tzinfo=UTC)


def test_container_time_beats_filename(ingest: Ingest, samples: SampleSet,
                                       tmp_path: Path) -> None:
    clip = samples.by_name("CAM-001_20260125T210000.mp4")
    renamed = tmp_path / "CAM-001_20300101T000000.mp4"
    renamed.write_bytes(clip.path.read_bytes())
    outcome = ingest(renamed)
    assert outcome.start_source == "container"
    assert outcome.recording_start_utc == datetime(2026, 1, 25, 19, 0, tzinfo=UTC)


@pytest.mark.parametrize(("name", "reason"), [
    ("CAM-001_20260125T100000.mp4", "could be decoded"),
    ("CAM-003_20260125T140000.avi", "the container lists 200 frames but only"),
    ("CAM-002_20260125T220000.mkv", "could be decoded"),
    ("CAM-001_20260125T230000.ts", "ends in the middle of a packet"),
])
def test_truncated_recording_is_kept_and_marked_damaged(
        ingest: Ingest, registered: AppState, samples: SampleSet, tmp_path: Path,
        name: str, reason: str) -> None:
    clip = samples.by_name(name)
    damaged = truncated_copy(clip.path, tmp_path / name, keep_fraction=0.45)
    outcome = ingest(damaged)
    assert outcome.damaged
    assert 0 < outcome.decodable_duration_s < clip.duration_s
    assert reason in outcome.damage_reason
    assert f"Damaged recording: {outcome.damage_reason}" in outcome.message
    # stored exactly as received
    assert registered.originals.path_for(outcome.sha256).read_bytes() == damaged.read_bytes()
    original, segments, frames = _rows(registered, outcome.original_id)
    assert original.damaged and original.status == "ready"
    assert original.decodable_duration_s == outcome.decodable_duration_s
    assert original.damage_reason == outcome.damage_reason
    assert segments and frames
    assert all(f.offset_s <= outcome.decodable_duration_s for f in frames)


def test_long_gop_recording_gets_reencoded_segments(
        ingest: Ingest, registered: AppState, tmp_path: Path) -> None:
    """One keyframe in 24 s: stream copy cannot cut 10 s pieces, so the copies are re-encoded."""
    path = tmp_path / "CAM-002_20260125T080000.mp4"
    single_gop = [arg if arg != "50" else "1000" for arg in H264]
    _encode(out=path, graph=day_scene(160, 90, 24), codec_args=single_gop)
    before = path.read_bytes()
    outcome = ingest(path)
    _, segments, frames = _rows(registered, outcome.original_id)
    assert {s.method for s in segments} == {"reencode"}
    assert [round(s.start_offset_s) for s in segments] == [0, 10, 20]
    assert segments[0].parameters["codec"][:2] == ["-c:v", "libx264"]
    assert len(frames) == 12
    assert path.read_bytes() == before
    assert registered.originals.verify(outcome.sha256)


def test_outcome_is_reported_per_stage(registered: AppState, samples: SampleSet) -> None:
    from indexer.ingest import IngestOptions, ingest_file

    stages: list[str] = []
    outcome: IngestOutcome = ingest_file(
        engine=registered.engine, originals=registered.originals, derived=registered.derived,
        path=samples.by_name("CAM-002_20260125T220000.mkv").path, camera_id="CAM-002",
        start=None, options=IngestOptions(), progress=lambda stage, _f: stages.append(stage),
        actor="officer-1")
    assert list(dict.fromkeys(stages)) == ["probing", "hashing", "segmenting", "sampling",
                                           "saving", "done"]
    with Session(registered.engine) as session:
        entry = acquisition_entry(session, outcome.original_id)
        assert entry is not None and entry.actor == "officer-1"


def test_folders_walk_to_their_recordings(tmp_path: Path) -> None:
    from indexer.ingest import walk_folder

    for name in ("b/CAM-1_x.MKV", "a.mp4", "notes.txt", "._a.mp4", "c/d/e.ts"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    top = tmp_path.resolve()
    assert walk_folder(tmp_path).files == [top / "a.mp4", top / "b/CAM-1_x.MKV", top / "c/d/e.ts"]


def test_quicktime_mov_ingests(ingest: Ingest, registered: AppState, samples: SampleSet,
                               tmp_path: Path) -> None:
    from indexer.media import ffmpeg_exe

    mov = tmp_path / "CAM-003_20260125T160000.mov"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i",
                    str(samples.by_name("CAM-001_20260125T100000.mp4").path), "-c", "copy",
                    "-fflags", "+bitexact", str(mov)], check=True)
    outcome = ingest(mov)
    original, segments, frames = _rows(registered, outcome.original_id)
    assert (original.container, original.video_codec) == ("mov", "h264")
    assert (len(segments), len(frames)) == (2, 6)


@pytest.mark.parametrize(("name", "sampling"), [
    ("CAM-001_20260125T100000.mp4", "keyframes"),  # a keyframe every 2 s
    ("CAM-003_20260125T150000.mp4", "reduced_decode"),  # stretched: 2.65 s between them
])
def test_the_sampling_path_follows_the_keyframe_spacing_and_is_recorded(
        ingest: Ingest, registered: AppState, samples: SampleSet, name: str,
        sampling: str) -> None:
    outcome = ingest(samples.by_name(name).path)
    original, _, frames = _rows(registered, outcome.original_id)
    assert outcome.sampling == original.sampling == sampling
    assert [round(f.offset_s) for f in frames][:3] == [0, 2, 4]


def test_keyframe_sampling_takes_the_first_keyframe_of_each_interval(
        ingest: Ingest, registered: AppState, tmp_path: Path) -> None:
    """A keyframe every second, sampled every 2 s: only the even ones are decoded."""
    path = tmp_path / "CAM-002_20260125T090000.mp4"
    _encode(out=path, graph=day_scene(160, 90, 9),
            codec_args=[arg if arg != "50" else "25" for arg in H264])
    outcome = ingest(path)
    _, _, frames = _rows(registered, outcome.original_id)
    assert outcome.sampling == "keyframes"
    assert [f.offset_s for f in frames] == [0.0, 2.0, 4.0, 6.0, 8.0]
