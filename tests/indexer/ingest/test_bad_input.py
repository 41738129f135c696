"""Bad input: one clear sentence each, and nothing half-written (rows, blobs, temp files)."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

import storage.atomic
from indexer.ingest import MissingStartTimeError, parse_start, resolve_source
from indexer.media import EmptyFileError, NotVideoError, NoVideoStreamError, ffmpeg_exe
from indexer.samples import SampleSet
from search_api.state import AppState
from storage.errors import InvalidInputError, NotFoundError, StorageError
from tests.indexer.ingest.conftest import NOTHING, Ingest, written


def _audio_only(path: Path) -> Path:
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "sine=f=440:d=3", "-c:a", "aac", "-fflags", "+bitexact",
                    str(path)], check=True)
    return path


def test_non_video_file_is_refused(ingest: Ingest, registered: AppState,
                                   tmp_path: Path) -> None:
    notes = tmp_path / "CAM-001_20260125T100000.mp4"
    notes.write_text("Shift report: nothing unusual.\n")
    with pytest.raises(NotVideoError, match=r"^'CAM-001_20260125T100000.mp4' is not a video "
                                            r"file: FFmpeg does not recognise its format.$"):
        ingest(notes)
    assert written(registered) == NOTHING


def test_still_image_is_not_a_recording(ingest: Ingest, registered: AppState,
                                        tmp_path: Path) -> None:
    still = tmp_path / "CAM-001_20260125T100000.mp4"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=s=64x36:d=1", "-frames:v", "1", "-f", "image2",
                    "-c:v", "png", str(still)], check=True)
    with pytest.raises(NotVideoError, match="is not a video file"):
        ingest(still)
    assert written(registered) == NOTHING


def test_file_without_video_stream_is_refused(ingest: Ingest, registered: AppState,
                                              tmp_path: Path) -> None:
    audio = _audio_only(tmp_path / "CAM-001_20260125T100000.mp4")
    with pytest.raises(NoVideoStreamError, match=r"^'CAM-001_20260125T100000.mp4' has no video "
                                                 r"stream; only recordings with a decodable "
                                                 r"video stream can be ingested.$"):
        ingest(audio)
    assert written(registered) == NOTHING


def test_video_stream_that_cannot_be_decoded_is_refused(
        ingest: Ingest, registered: AppState, samples: SampleSet, tmp_path: Path) -> None:
    """Index and headers intact, every picture zeroed: a recorder that wrote no data."""
    data = bytearray(samples.by_name("CAM-001_20260125T100000.mp4").path.read_bytes())
    payload = data.index(b"mdat") + 4
    blank = tmp_path / "CAM-001_20260125T100000.mp4"
    blank.write_bytes(data[:payload] + bytes(len(data) - payload))
    with pytest.raises(NoVideoStreamError, match=r"^'CAM-001_20260125T100000.mp4' has a video "
                                                 r"stream that cannot be decoded; only"):
        ingest(blank)
    assert written(registered) == NOTHING


def test_zero_byte_file_is_refused(ingest: Ingest, registered: AppState,
                                   tmp_path: Path) -> None:
    empty = tmp_path / "CAM-001_20260125T100000.mp4"
    empty.touch()
    with pytest.raises(EmptyFileError, match=r"^'CAM-001_20260125T100000.mp4' is empty "
                                             r"\(0 bytes\); there is no recording to ingest.$"):
        ingest(empty)
    assert written(registered) == NOTHING


def test_unknown_camera_is_refused(ingest: Ingest, registered: AppState,
                                   samples: SampleSet) -> None:
    with pytest.raises(NotFoundError, match=r"^Camera 'CAM-404' is not registered.$"):
        ingest(samples.clips[0].path, camera_id="CAM-404")
    assert written(registered) == NOTHING


def test_missing_path_is_refused(ingest: Ingest, registered: AppState, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "CAM-001_20260125T100000.mp4"
    with pytest.raises(NotFoundError, match=rf"^Path '{missing}' does not exist.$"):
        resolve_source(missing)
    with pytest.raises(NotFoundError, match="does not exist"):
        ingest(missing)
    assert written(registered) == NOTHING


@pytest.mark.parametrize("text", ["yesterday 9pm", "2026-13-01T00:00:00", "25.01.2026 21:00"])
def test_unparseable_start_time_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"^Cannot parse start time '{text}': use "
                                                r"ISO 8601, e.g. 2026-01-25T21:00:00\+02:00.$"):
        parse_start(text)


def test_start_time_parsing() -> None:
    assert parse_start("2026-01-25T21:00:00+02:00").isoformat() == "2026-01-25T19:00:00+00:00"
    assert parse_start("2026-01-25T21:00:00Z").isoformat() == "2026-01-25T21:00:00+00:00"
    # naive: local to the camera's zone
    assert parse_start("2026-07-01T12:00", "Europe/Kyiv").isoformat() == (
        "2026-07-01T09:00:00+00:00")


def test_recording_without_any_start_is_refused(ingest: Ingest, registered: AppState,
                                                samples: SampleSet, tmp_path: Path) -> None:
    unnamed = tmp_path / "export.ts"
    unnamed.write_bytes(samples.by_name("CAM-001_20260125T230000.ts").path.read_bytes())
    with pytest.raises(MissingStartTimeError, match=r"^Cannot tell when 'export\.ts' was recorded"):
        ingest(unnamed, camera_id="CAM-001")
    assert written(registered) == NOTHING


# Disk-full and permission errors are injected at the OS call that fails in real life
# (fsync for ENOSPC on a delayed-allocation filesystem, mkstemp for EACCES). A chmod'ed
# directory would not do: tests may run as root, and root ignores file permissions.
def test_disk_full_while_storing_leaves_nothing(ingest: Ingest, registered: AppState,
                                                samples: SampleSet,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def no_space(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.atomic.os, "fsync", no_space)
    with pytest.raises(StorageError, match=r"^The disk is full while writing the blob; "
                                           r"nothing was stored.$"):
        ingest(samples.clips[0].path)
    monkeypatch.undo()
    assert written(registered) == NOTHING


def test_permission_error_while_storing_leaves_nothing(ingest: Ingest, registered: AppState,
                                                       samples: SampleSet,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(storage.atomic.tempfile, "mkstemp", denied)
    with pytest.raises(StorageError, match=r"^Permission denied while creating a temp file "
                                           r"for the blob; nothing was stored.$"):
        ingest(samples.clips[0].path)
    monkeypatch.undo()
    assert written(registered) == NOTHING
