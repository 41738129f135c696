"""The Celery-backed ``JobQueue``: how use cases hand ingest, export and embedding work to
a worker.

Celery is imported on the first enqueue, so a command that queues nothing never loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from storage.settings import Settings

if TYPE_CHECKING:
    from celery import Celery


class CeleryJobQueue:
    """Sends task messages through the broker in ``settings`` (one Celery app per process)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app: Celery | None = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Celery:
        from search_api.tasks.app import make_celery

        with self._lock:
            if self._app is None:
                self._app = make_celery(self._settings)
            return self._app

    def enqueue_ingest(self, job_ids: Sequence[int]) -> None:
        from search_api.tasks.app import enqueue_ingest

        enqueue_ingest(self.app, list(job_ids))

    def enqueue_export(self, job_id: int) -> None:
        from search_api.tasks.app import enqueue_export

        enqueue_export(self.app, job_id)

    def enqueue_redaction(self, redaction_id: int) -> None:
        from search_api.tasks.app import enqueue_redaction

        enqueue_redaction(self.app, redaction_id)

    def enqueue_embed(self) -> None:
        from search_api.tasks.app import enqueue_embed

        enqueue_embed(self.app)


__all__ = ["CeleryJobQueue"]
