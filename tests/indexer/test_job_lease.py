"""The progress writer: the latest report reaches the row, a lost lease is told, and a
failed write neither stops the ingest nor the writes after it."""

from __future__ import annotations

import logging
import threading

import pytest

from indexer.job_lease import LeaseKeeper, ProgressWriter


def test_closing_writes_the_last_report_and_only_reports_in_order() -> None:
    written: list[tuple[str, float]] = []
    first_write_started, release = threading.Event(), threading.Event()

    def write(stage: str, fraction: float) -> bool:
        if not written:
            first_write_started.set()
            release.wait(5)
        written.append((stage, fraction))
        return True

    with ProgressWriter(write=write, name="test-progress") as writer:
        assert writer.report("hashing", 0.0)
        assert first_write_started.wait(5)
        for step in range(1, 6):  # all reported while the first write is still under way
            assert writer.report("sampling", step / 10)
        release.set()
    assert written == [("hashing", 0.0), ("sampling", 0.5)]
    assert not writer.lost


def test_a_write_that_finds_the_job_taken_over_marks_the_lease_lost() -> None:
    written: list[str] = []

    def write(stage: str, _fraction: float) -> bool:
        written.append(stage)
        return False

    with ProgressWriter(write=write, name="test-progress") as writer:
        writer.report("sampling", 0.1)
    assert writer.lost and written == ["sampling"]
    assert writer.report("sampling", 0.2) is False


def test_a_failed_write_is_logged_and_the_next_report_is_still_written(
        caplog: pytest.LogCaptureFixture) -> None:
    written: list[str] = []
    failed_once = threading.Event()

    def write(stage: str, _fraction: float) -> bool:
        if not failed_once.is_set():
            failed_once.set()
            raise OSError("database is locked")
        written.append(stage)
        return True

    with caplog.at_level(logging.WARNING, logger="oko.jobs"), \
            ProgressWriter(write=write, name="test-progress") as writer:
        writer.report("hashing", 0.0)
        assert failed_once.wait(5)
        writer.report("saving", 0.9)
    assert written == ["saving"] and not writer.lost
    assert "could not write ingest progress" in caplog.text


def test_the_lease_keeper_beats_until_closed_and_survives_a_failed_beat() -> None:
    beats: list[int] = []
    two_beats = threading.Event()

    def beat() -> None:
        beats.append(len(beats))
        if len(beats) == 1:
            raise OSError("database is locked")
        if len(beats) >= 3:
            two_beats.set()

    with LeaseKeeper(beat=beat, interval=0.01, name="test-lease"):
        assert two_beats.wait(5)
    count = len(beats)
    threading.Event().wait(0.05)
    assert len(beats) == count  # no beat after closing
