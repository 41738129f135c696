"""Watch folders: a file is ingested once it stopped growing, once, even across restarts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select

from indexer.ingest import IngestOptions, IngestOutcome, ingest_file
from indexer.recording.watch import FolderWatcher
from search_api.state import AppState
from storage.db import session_scope
from storage.models.evidence import CustodyEntry
from storage.models.recording import WatchedFile
from tests.indexer.recording.conftest import CAMERA, originals, recorder_state


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _watcher(state: AppState, folder: Path, clock: FakeClock, **options: object) -> FolderWatcher:
    def ingest(path: Path, camera_id: str) -> IngestOutcome:
        return ingest_file(engine=state.engine, originals=state.originals,
                           derived=state.derived, path=path, camera_id=camera_id, start=None,
                           options=IngestOptions(), actor="watch")
    settings: dict[str, object] = {"camera_id": CAMERA, **options}
    return FolderWatcher(folder=folder, engine=state.engine, ingest=ingest, settle_s=5.0,
                         monotonic=clock, **settings)  # type: ignore[arg-type]


def _watched(state: AppState) -> list[WatchedFile]:
    with Session(state.engine) as session:
        return list(session.exec(select(WatchedFile)).all())


def test_a_growing_file_waits_and_a_settled_one_is_ingested_once_across_restarts(
        recording: AppState, footage: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nvr"
    folder.mkdir()
    target = folder / f"{CAMERA}_20260125T210000.ts"
    data = footage.read_bytes()
    clock = FakeClock()
    watcher = _watcher(recording, folder, clock)

    target.write_bytes(data[: len(data) // 2])  # the NVR is still writing
    assert watcher.scan_once() == []
    clock.now += 10
    with target.open("ab") as handle:
        handle.write(data[len(data) // 2:])
    assert watcher.scan_once() == []  # it grew: its settle time starts again
    clock.now += 4
    assert watcher.scan_once() == []
    clock.now += 2
    [result] = watcher.scan_once()
    assert (result.status, result.camera_id) == ("ingested", CAMERA)
    assert watcher.scan_once() == []

    restarted = _watcher(recording, folder, clock)
    assert restarted.scan_once() == []
    clock.now += 10
    assert restarted.scan_once() == []  # remembered in the database: not ingested again
    [row] = _watched(recording)
    assert (row.name, row.status, row.size_bytes) == (target.name, "ingested", len(data))
    [original] = originals(recording)
    assert original.sha256 == row.sha256 and original.filename == target.name
    assert original.start_source == "filename"
    with Session(recording.engine) as session:
        [entry] = session.exec(select(CustodyEntry)).all()
    assert entry.actor == "watch"


def test_a_file_ingest_refuses_is_remembered_with_its_sentence_and_not_retried(
        recording: AppState, tmp_path: Path) -> None:
    folder = tmp_path / "nvr"
    folder.mkdir()
    (folder / "CAM-REC_20260125T210000.mp4").write_bytes(b"not a video at all")
    clock = FakeClock()
    watcher = _watcher(recording, folder, clock)
    watcher.scan_once()
    clock.now += 6
    [result] = watcher.scan_once()
    assert result.status == "failed"
    assert result.message == ("'CAM-REC_20260125T210000.mp4' is not a video file: FFmpeg "
                              "does not recognise its format.")
    clock.now += 6
    assert watcher.scan_once() == []
    assert originals(recording) == []
    assert [w.status for w in _watched(recording)] == ["failed"]


def test_patterns_map_files_to_cameras_and_unmatched_files_are_left(
        recording: AppState, footage: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nvr"
    (folder / "2026-01-25").mkdir(parents=True)
    shutil.copyfile(footage, folder / "2026-01-25" / "ch01_20260125T210000.ts")
    shutil.copyfile(footage, folder / "2026-01-25" / "ch09_20260125T210000.ts")
    clock = FakeClock()
    watcher = _watcher(recording, folder, clock, camera_id=None,
                       mapping=[("ch01_*", CAMERA)])
    watcher.scan_once()
    clock.now += 6
    [result] = watcher.scan_once()
    assert result.name == "2026-01-25/ch01_20260125T210000.ts"
    assert len(originals(recording)) == 1


def test_a_watch_folder_that_disappears_is_reported_and_nothing_else_changes(
        recording: AppState, footage: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nvr"
    folder.mkdir()
    shutil.copyfile(footage, folder / f"{CAMERA}_20260125T210000.ts")
    clock = FakeClock()
    watcher = _watcher(recording, folder, clock)
    watcher.scan_once()
    clock.now += 6
    assert len(watcher.scan_once()) == 1
    kept = originals(recording)

    shutil.rmtree(folder)
    assert watcher.scan_once() == []
    state = recorder_state(recording)
    assert state is not None
    assert state.message == (f"Watch folder {folder} disappeared; nothing is ingested from "
                             "it until it is back.")
    assert (state.message_code, state.message_args) == ("watch_folder_gone",
                                                        {"folder": str(folder)})
    assert [o.sha256 for o in originals(recording)] == [o.sha256 for o in kept]
    assert all(recording.originals.verify(o.sha256) for o in kept)
    assert len(_watched(recording)) == 1

    folder.mkdir()
    assert watcher.scan_once() == []
    assert recorder_state(recording).message == f"Watching {folder}."  # type: ignore[union-attr]


def test_a_watch_needs_a_camera_or_a_mapping(recording: AppState, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a watch needs a camera or a pattern mapping"):
        FolderWatcher(folder=tmp_path, engine=recording.engine,
                      ingest=lambda _p, _c: None)  # type: ignore[arg-type,return-value]
    with session_scope(recording.engine) as session:
        assert session.exec(select(WatchedFile)).all() == []


def test_oko_watch_once_ingests_what_settled_and_refuses_a_watch_without_a_camera(
        tmp_path: Path, footage: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from search_api.cli import main

    monkeypatch.setenv("OKO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OKO_DATABASE_URL", raising=False)
    monkeypatch.setenv("OKO_WATCH_SETTLE_SECONDS", "0")
    folder = tmp_path / "nvr"
    folder.mkdir()
    shutil.copyfile(footage, folder / f"{CAMERA}_20260125T210000.ts")
    assert main(["cameras", "add", "--id", CAMERA, "--name", "NVR", "--lat", "50.4",
                 "--lon", "30.5", "--agency", "police"]) == 0
    assert main(["watch", str(folder)]) == 2
    assert "Give either --camera ID or one or more --map PATTERN=CAMERA." in (
        capsys.readouterr().err)
    assert main(["watch", str(folder), "--map", "nonsense"]) == 2
    assert "'nonsense' is not PATTERN=CAMERA" in capsys.readouterr().err
    assert main(["watch", str(folder), "--camera", CAMERA, "--once"]) == 0
    assert f"{CAMERA}_20260125T210000.ts: ingested." in capsys.readouterr().out
    assert main(["watch", str(folder), "--camera", CAMERA, "--once"]) == 0
    assert capsys.readouterr().out == ""  # remembered: nothing ingested a second time
