"""A file the recorder (or a watch folder) ingests asks the worker to embed its frames,
as an ingest job does; a duplicate asks nothing, and an unreachable broker only delays it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from search_api.state import AppState
from search_api.tasks.app import BrokerUnavailableError
from search_api.usecases.recording import RecordedFileIngest
from tests.indexer.recording.conftest import CAMERA, originals


class CountingQueue:
    def __init__(self, *, reachable: bool = True) -> None:
        self.embeds = 0
        self.reachable = reachable

    def enqueue_ingest(self, job_ids: Sequence[int]) -> None:
        raise AssertionError("a recorded file is ingested in place, not queued")

    def enqueue_export(self, job_id: int) -> None:
        raise AssertionError("no export here")

    def enqueue_embed(self) -> None:
        if not self.reachable:
            raise BrokerUnavailableError("The job broker cannot be reached.")
        self.embeds += 1


START = datetime(2026, 1, 25, 19, 0, tzinfo=UTC)


def test_a_new_recorded_file_queues_embedding_once(recording: AppState,
                                                   footage: Path) -> None:
    queue = CountingQueue()
    recording.job_queue = queue
    ingest = RecordedFileIngest(recording)
    first = ingest(footage, camera_id=CAMERA, start=START)
    assert not first.duplicate and first.frame_count > 0
    assert queue.embeds == 1
    again = ingest(footage, camera_id=CAMERA, start=START)
    assert again.duplicate and queue.embeds == 1


def test_an_unreachable_broker_keeps_the_recorded_file(recording: AppState,
                                                       footage: Path) -> None:
    recording.job_queue = CountingQueue(reachable=False)
    outcome = RecordedFileIngest(recording)(footage, camera_id=CAMERA, start=START)
    assert not outcome.duplicate
    assert [o.sha256 for o in originals(recording)] == [outcome.sha256]
