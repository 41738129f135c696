"""A worker killed at any point of an ingest leaves nothing that a re-run cannot finish."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlmodel import Session, select

import indexer.ingest
from indexer.samples import SampleSet
from search_api.state import AppState
from storage.models.evidence import CustodyEntry
from storage.models.media import Frame, Original, Segment
from tests.indexer.ingest.conftest import Ingest, written

KILL_AT_STAGE = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from indexer.ingest import IngestOptions, ingest_file
    from search_api.state import build_state
    from storage.settings import Settings

    home, url, path, stage = sys.argv[1:5]
    state = build_state(Settings(home=Path(home), database_url=url))

    def progress(current: str, _fraction: float) -> None:
        if current == stage:
            os.kill(os.getpid(), signal.SIGKILL)

    ingest_file(engine=state.engine, originals=state.originals, derived=state.derived,
                path=Path(path), camera_id="CAM-001", start=None, options=IngestOptions(),
                progress=progress)
""")


def _rows(state: AppState) -> tuple[list[Original], list[Segment], list[Frame], int]:
    with Session(state.engine) as session:
        custody = session.exec(select(CustodyEntry)
                               .where(CustodyEntry.action == "acquisition")).all()
        return (list(session.exec(select(Original)).all()),
                list(session.exec(select(Segment)).all()),
                list(session.exec(select(Frame)).all()), len(custody))


@pytest.mark.parametrize("stage", ["sampling", "saving"])
def test_kill_9_mid_ingest_then_rerun_gives_one_complete_set(
        ingest: Ingest, registered: AppState, samples: SampleSet, stage: str) -> None:
    clip = samples.by_name("CAM-001_20260125T100000.mp4")
    settings = registered.settings
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT_STAGE, str(settings.home),
         settings.resolved_database_url, str(clip.path), stage],
        capture_output=True, text=True, check=False, cwd=Path(__file__).parents[3])
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    originals, segments, frames, custody = _rows(registered)
    assert [o.status for o in originals] == ["processing"]
    assert (segments, frames, custody) == ([], [], 0)

    outcome = ingest(clip.path)
    assert not outcome.duplicate
    assert (outcome.segment_count, outcome.frame_count) == (2, 6)
    originals, segments, frames, custody = _rows(registered)
    assert [o.status for o in originals] == ["ready"]
    assert sorted(s.index for s in segments) == [0, 1]
    assert sorted(f.offset_s for f in frames) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert custody == 1
    assert written(registered).temp_files == []  # the killed run's scratch dir is gone
    assert ingest(clip.path).duplicate


def test_failure_inside_the_final_transaction_writes_no_rows(
        ingest: Ingest, registered: AppState, samples: SampleSet,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("worker lost its database connection")

    monkeypatch.setattr(indexer.ingest, "append_custody_entry", crash)
    clip = samples.by_name("CAM-001_20260125T210000.mp4")
    with pytest.raises(RuntimeError):
        ingest(clip.path)
    _, segments, frames, _ = _rows(registered)
    assert (segments, frames) == ([], [])
    assert written(registered).temp_files == []
    monkeypatch.undo()
    outcome = ingest(clip.path)
    _, segments, frames, custody = _rows(registered)
    assert (len(segments), len(frames), custody) == (outcome.segment_count,
                                                     outcome.frame_count, 1)
