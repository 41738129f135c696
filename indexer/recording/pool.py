"""Run one ``CameraRecorder`` thread per camera that has a stream URL, and keep them current.

Every ``refresh_s`` the camera table is read again: a camera given a stream URL starts
recording, one whose URL changed restarts with the new URL, one whose URL was removed
stops (its gap stays open until it records again).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from indexer.recording.recorder import CameraRecorder
from storage.models.media import Camera

log = logging.getLogger("oko.recorder")

RecorderFactory = Callable[[str, str], CameraRecorder]


@dataclass
class _Running:
    url: str
    recorder: CameraRecorder
    stop: threading.Event
    thread: threading.Thread


class RecorderPool:
    """The recorders of every camera with a stream URL (optionally only ``camera_ids``)."""

    def __init__(self, *, engine: Engine, factory: RecorderFactory,
                 camera_ids: list[str] | None = None, refresh_s: float = 10.0) -> None:
        self.engine = engine
        self.factory = factory
        self.camera_ids = camera_ids
        self.refresh_s = refresh_s
        self.running: dict[str, _Running] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def wanted(self) -> dict[str, str]:
        with Session(self.engine) as session:
            rows = session.exec(select(Camera).where(col(Camera.stream_url).is_not(None))).all()
        return {c.id: c.stream_url for c in rows if c.stream_url and (
            self.camera_ids is None or c.id in self.camera_ids)}

    def refresh(self) -> None:
        wanted = self.wanted()
        for camera_id, running in list(self.running.items()):
            if wanted.get(camera_id) != running.url or not running.thread.is_alive():
                self._stop_one(camera_id)
        for camera_id, url in wanted.items():
            if camera_id not in self.running:
                recorder = self.factory(camera_id, url)
                stop = threading.Event()
                thread = threading.Thread(target=recorder.run, args=(stop,), daemon=True,
                                          name=f"recorder-{camera_id}")
                self.running[camera_id] = _Running(url=url, recorder=recorder, stop=stop,
                                                   thread=thread)
                thread.start()
                log.info("camera %s: recorder started", camera_id)

    def _stop_one(self, camera_id: str) -> None:
        running = self.running.pop(camera_id)
        running.stop.set()
        running.recorder.stop_process()
        running.thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # a database hiccup must not end recording
                log.exception("refreshing the recorders failed; trying again")
            self._stop.wait(self.refresh_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="recorders")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for running in self.running.values():  # all at once: each ffmpeg closes its file
            running.stop.set()
            running.recorder.stop_process()
        for camera_id in list(self.running):
            self._stop_one(camera_id)


__all__ = ["RecorderFactory", "RecorderPool"]
