"""benchmarks/recording.py's analysis thread and its verdict on a run.

``Analysis`` does in the recording process what a worker's ``oko.embed`` task does
(plates, then embedding and the shard sync), in a loop, with the models loaded once;
``worker_log_summary`` reads what real workers did from their logs; ``verdict`` applies
``SUSTAINED_RULE`` to a run's lag, losses and backlog.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from search_api.state import AppState

SUSTAINED_RULE = (
    "sustained when all checks hold: nothing_lost (no gap but the final stop, no file "
    "quarantined or left in the spool); lag_bounded (every file's ingest lag under two "
    "file lengths); lag_not_growing (the last N files' mean lag not more than one file "
    "length above the first N files'); backlog_drains (with analysis, per kind: frames "
    "waiting at the end at most three files' frames per camera, and the second half's "
    "mean not more than half that above the first half's)")


@dataclass
class Analysis:
    """The in-process analysis thread: what a worker's embed task does, in a loop.

    The models are loaded once, before the clock starts (``load``); a worker's task loads
    the CLIP model per task. ``busy_s`` is the wall time spent in each kind's calls.
    Its CPU (``cpu_seconds``) is this thread's plus the threads the loads started (ONNX
    Runtime's and torch's pools): part of the recording process's.
    """

    state: AppState
    mode: str
    embedder: Any = None
    model_load_s: float | None = None
    frames: dict[str, int] = field(default_factory=lambda: {"plates": 0, "embedding": 0})
    busy_s: dict[str, float] = field(default_factory=lambda: {"plates": 0.0, "embedding": 0.0})
    error: str | None = None
    threads: set[int] = field(default_factory=set)

    def load(self) -> None:
        before = {t.id for t in psutil.Process().threads()}
        if self.mode in ("plates", "analysis"):
            from search_api.usecases.plate_watch import shared_reader

            shared_reader()
        if self.mode in ("embed", "analysis"):
            from indexer.reindex import ReindexSettings, load_installed_embedder

            started = time.monotonic()
            self.embedder = load_installed_embedder(
                engine=self.state.engine,
                config=ReindexSettings.from_settings(self.state.settings))
            self.model_load_s = round(time.monotonic() - started, 2)
        self.threads = {t.id for t in psutil.Process().threads()} - before

    def cpu_seconds(self) -> float:
        return sum(t.user_time + t.system_time for t in psutil.Process().threads()
                   if t.id in self.threads)

    def run(self, stop: threading.Event) -> None:
        self.threads.add(threading.get_native_id())
        try:
            self._loop(stop)
        except Exception as exc:  # reported in the JSON; the backlog then shows it
            self.error = f"{type(exc).__name__}: {exc}"
            raise

    def _loop(self, stop: threading.Event) -> None:
        from indexer.reindex import ReindexSettings, reindex
        from search_api.usecases.plate_watch import read_waiting_plates

        config = ReindexSettings.from_settings(self.state.settings)
        while not stop.is_set():
            done = 0
            if self.mode in ("plates", "analysis"):
                started = time.monotonic()
                report, _events = read_waiting_plates(self.state)
                self.busy_s["plates"] += time.monotonic() - started
                self.frames["plates"] += report.frames_read + report.frames_static
                done += report.frames_read + report.frames_static
            if self.embedder is not None:
                started = time.monotonic()
                embedded, _synced = reindex(engine=self.state.engine,
                                            derived=self.state.derived, config=config,
                                            embedder=self.embedder)
                self.busy_s["embedding"] += time.monotonic() - started
                self.frames["embedding"] += embedded.embedded + embedded.linked
                done += embedded.embedded + embedded.linked
            if not done:
                stop.wait(1.0)

    def report(self, elapsed: float) -> dict[str, Any]:
        kinds = {"plates": ("plates", "analysis"), "embedding": ("embed", "analysis")}
        return {"model_load_s": self.model_load_s, "error": self.error,
                "thread_pool_threads": len(self.threads), **{
            kind: {"frames_done": self.frames[kind], "busy_s": round(self.busy_s[kind], 1),
                   "busy_fraction": round(self.busy_s[kind] / elapsed, 2),
                   "frames_per_busy_s": round(self.frames[kind] / self.busy_s[kind], 2)
                   if self.busy_s[kind] else None}
            for kind, modes in kinds.items() if self.mode in modes}}


TASK_LINE = re.compile(r"Task oko\.embed\[[^\]]+\] (succeeded in ([0-9.]+)s|raised)")


def worker_log_summary(text: str) -> dict[str, Any]:
    """The ``oko.embed`` tasks a worker log shows: count, failures, seconds each, backend.

    Each task loads the model (``load_installed_embedder``) before it embeds, so its
    seconds include that load.
    """
    seconds = [float(m.group(2)) for m in TASK_LINE.finditer(text) if m.group(2)]
    failed = sum(1 for m in TASK_LINE.finditer(text) if m.group(1) == "raised")
    return {"embed_tasks": len(seconds) + failed, "embed_tasks_failed": failed,
            "embed_task_s_total": round(sum(seconds), 1),
            "embed_task_s_median": round(statistics.median(seconds), 2) if seconds else None,
            "image_tower_fell_back_to_torch": "image tower runs on torch" in text}


def _trend(samples: list[int]) -> float | None:
    if len(samples) < 4:
        return None
    half = len(samples) // 2
    return round(statistics.mean(samples[half:]) - statistics.mean(samples[:half]), 1)


def lag_summary(values: list[float], *, cameras: int, segment_seconds: float) -> dict[str, Any]:
    """Ingest lags in file-end order: median, max, the first and last N files, growing."""
    tail = values[-cameras:] if len(values) >= 2 * cameras else values[-1:]
    head = values[:cameras] if len(values) >= 2 * cameras else values[:1]
    growing = bool(values) and statistics.mean(tail) > statistics.mean(head) + segment_seconds
    return {"median": round(statistics.median(values), 2) if values else None,
            "max": round(max(values), 2) if values else None,
            "first_files": [round(v, 2) for v in head],
            "last_files": [round(v, 2) for v in tail], "growing": growing}


def backlog_summary(samples: list[int], *, bound: float) -> dict[str, Any]:
    """Frames waiting, sampled every 10 s: first sample, peak, end, trend, and ``drains``."""
    trend = _trend(samples)
    end = samples[-1] if samples else 0
    return {"at_first_sample": samples[0] if samples else 0, "peak": max(samples, default=0),
            "at_end": end, "trend_second_half_minus_first": trend,
            "drains": end <= bound and (trend is None or trend <= bound / 2),
            "samples_every_10s": samples}


def verdict(*, lost: int, lag: dict[str, Any], segment_seconds: float,
            backlogs: list[dict[str, Any]]) -> dict[str, Any]:
    """The checks of ``SUSTAINED_RULE`` and whether all hold."""
    checks = {"nothing_lost": lost == 0,
              "lag_bounded": lag["max"] is not None and lag["max"] < 2 * segment_seconds,
              "lag_not_growing": lag["max"] is not None and not lag["growing"],
              "backlog_drains": all(b["drains"] for b in backlogs)}
    return {"checks": checks, "sustained": all(checks.values())}


__all__ = ["SUSTAINED_RULE", "Analysis", "backlog_summary", "lag_summary", "verdict",
           "worker_log_summary"]
