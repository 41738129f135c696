"""A watch folder whose blob store is full: nothing is ingested or remembered, the
cameras' state says why in one sentence, and the files are ingested once there is room."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from indexer.ingest import IngestOptions, IngestOutcome, ingest_file
from indexer.recording.watch import FolderWatcher
from search_api.state import AppState
from search_api.usecases.recording import store_space_check
from storage.models.recording import WatchedFile
from tests.indexer.recording.conftest import CAMERA, originals, recorder_state


def test_a_full_store_holds_the_watched_files_until_there_is_room(
        recording: AppState, footage: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nvr"
    folder.mkdir()
    target = folder / f"{CAMERA}_20260125T210000.ts"
    target.write_bytes(footage.read_bytes())
    full = {"now": True}
    recording.settings.record_min_free_mb = 100
    blobs = recording.settings.blobs_dir
    low = store_space_check(recording.settings, free_bytes=lambda path: (
        3 * 2**20 if full["now"] and path == blobs else 2**40))
    clock = {"now": 0.0}

    def ingest(path: Path, camera_id: str) -> IngestOutcome:
        return ingest_file(engine=recording.engine, originals=recording.originals,
                           derived=recording.derived, path=path, camera_id=camera_id,
                           start=None, options=IngestOptions(), actor="watch")

    watcher = FolderWatcher(folder=folder, engine=recording.engine, ingest=ingest,
                            camera_id=CAMERA, settle_s=1.0, monotonic=lambda: clock["now"],
                            low_space=low)
    for _ in range(3):
        assert watcher.scan_once() == []
        clock["now"] += 5
    state = recorder_state(recording)
    assert state is not None and (state.state, state.message) == ("disk_full", (
        f"The blob store {blobs} has 3 MiB free, less than the 100 MiB ingest needs; files "
        "wait where they are until there is room."))
    assert originals(recording) == [] and target.stat().st_size == footage.stat().st_size
    with Session(recording.engine) as session:
        assert session.exec(select(WatchedFile)).all() == []

    full["now"] = False
    assert watcher.scan_once() == []  # its settle time starts now
    clock["now"] += 5
    [result] = watcher.scan_once()
    assert result.status == "ingested"
    assert [o.filename for o in originals(recording)] == [target.name]
    assert getattr(recorder_state(recording), "state", "") == "watching"
