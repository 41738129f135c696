"""The two background threads a running ingest job keeps: its lease and its progress.

``LeaseKeeper`` renews the lease at a fixed interval, so the lease tracks whether the
worker process is alive, not how often ingest happens to report progress (hashing a
large file reports rarely).

``ProgressWriter`` writes the job's progress row from its own thread, so sampling never
waits on a database commit (about a hundred a file, a fifth of a 5-minute file's
ingest when written inline). Each report replaces the one not yet written: the row
only ever shows the latest. A write that finds the job no longer this worker's marks
the lease lost; the next report, or closing the writer, says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("oko.jobs")


class LeaseKeeper:
    """Calls ``beat`` every ``interval`` seconds from a daemon thread while open."""

    def __init__(self, *, beat: Callable[[], object], interval: float, name: str) -> None:
        self._beat = beat
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception:  # noqa: S112  (a missed beat is retried; the lease tolerates it)
                continue


class ProgressWriter:
    """Writes the latest reported (stage, fraction) with ``write`` from its own thread.

    ``write`` returns False when the job is no longer this worker's. Closing the writer
    writes what is still pending first, so the row ends on the last report.
    """

    def __init__(self, *, write: Callable[[str, float], bool], name: str) -> None:
        self._write = write
        self._changed = threading.Condition()
        self._pending: tuple[str, float] | None = None
        self._closing = False
        self._lost = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def lost(self) -> bool:
        """Whether a write found the job taken over by another worker."""
        with self._changed:
            return self._lost

    def __enter__(self) -> ProgressWriter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join()

    def report(self, stage: str, fraction: float) -> bool:
        """Queue ``stage`` at ``fraction`` for writing; False once the lease is lost."""
        with self._changed:
            if self._lost:
                return False
            self._pending = (stage, fraction)
            self._changed.notify()
            return True

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._pending is None and not self._closing:
                    self._changed.wait()
                if self._pending is None:
                    return
                stage, fraction = self._pending
                self._pending = None
            try:
                ours = self._write(stage, fraction)
            except Exception:  # a missed progress write is not the ingest's failure
                log.warning("could not write ingest progress (%s %.2f)", stage, fraction,
                            exc_info=True)
                continue
            if not ours:
                with self._changed:
                    self._lost = True
                return


__all__ = ["LeaseKeeper", "ProgressWriter"]
