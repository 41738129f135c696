"""Watch folders: ingest each video file an NVR drops in a folder, once it stopped growing.

1. Every ``poll_s`` the folder is walked (``indexer.ingest.walk_folder``: bounded, no
   links out of it, dot files skipped).
2. A file whose size and modification time held still for ``settle_s`` is due. Its
   camera is the watch's camera, or the first ``(pattern, camera)`` whose glob pattern
   matches the file's name.
3. A due file already in ``WatchedFile`` (same folder, relative name, size and mtime) is
   skipped, so each file is ingested once, even across restarts; otherwise it is
   ingested (its start from the container or its name) and remembered, with the
   refusal's sentence if ingest refused it.
4. A folder that disappears is reported in the cameras' status with one sentence and
   watched for until it returns; nothing else changes.
5. While ``low_space`` names a disk with too little room (the blob stores), nothing is
   ingested and nothing remembered: the cameras' state is ``disk_full`` with that
   sentence, and the files are ingested once there is room.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from indexer.ingest import IngestOutcome, walk_folder
from indexer.recording.state import update_state
from storage.db import session_scope
from storage.errors import NotFoundError, OkoError
from storage.models.recording import WatchedFile
from storage.state_messages import Said, StateMessage, said

log = logging.getLogger("oko.watch")

IngestPath = Callable[[Path, str], IngestOutcome]
Monotonic = Callable[[], float]
LowSpace = Callable[[], Said | None]
"""None while there is room to ingest, else the message naming the full disk."""


@dataclass(frozen=True)
class WatchResult:
    name: str
    camera_id: str
    status: str  # ingested, duplicate, failed, or waiting (for room on the disk)
    message: str


class FolderWatcher:
    """Watches ``folder`` (see the module doc); ``ingest(path, camera_id)`` ingests a file."""

    def __init__(self, *, folder: Path, engine: Engine, ingest: IngestPath,
                 camera_id: str | None = None,
                 mapping: Sequence[tuple[str, str]] = (), settle_s: float = 5.0,
                 poll_s: float = 1.0, monotonic: Monotonic = time.monotonic,
                 low_space: LowSpace | None = None) -> None:
        if camera_id is None and not mapping:
            raise ValueError("a watch needs a camera or a pattern mapping")
        self.folder = Path(os.path.abspath(folder))
        self.engine = engine
        self.ingest = ingest
        self.camera_id = camera_id
        self.mapping = list(mapping)
        self.settle_s = settle_s
        self.poll_s = poll_s
        self.monotonic = monotonic
        self.low_space = low_space or (lambda: None)
        self._seen: dict[str, tuple[int, int, float]] = {}
        self._missing = False
        self._full = False

    def cameras(self) -> list[str]:
        return [self.camera_id] if self.camera_id else sorted({c for _, c in self.mapping})

    def camera_for(self, name: str) -> str | None:
        if self.camera_id is not None:
            return self.camera_id
        base = Path(name).name
        return next((camera for pattern, camera in self.mapping
                     if fnmatch.fnmatch(base, pattern)), None)

    def _state(self, state: str, message: Said) -> None:
        with session_scope(self.engine) as session:
            for camera in self.cameras():
                update_state(session, camera_id=camera, state=state, **message.row_fields())

    def scan_once(self) -> list[WatchResult]:
        """One pass: ingest every file that is due. Never raises for a missing folder."""
        try:
            walk = walk_folder(self.folder)
        except NotFoundError:
            if not self._missing:
                self._missing = True
                gone = said(StateMessage.WATCH_FOLDER_GONE, folder=self.folder)
                self._state("watching", gone)
                log.warning(gone.english())
            return []
        if self._missing:
            self._missing = False
            self._state("watching", said(StateMessage.WATCHING, folder=self.folder))
        full = self.low_space()
        if full is not None:
            if not self._full:
                self._full = True
                self._state("disk_full", full)
                log.error("watch %s: %s", self.folder, full.english())
            return []
        if self._full:
            self._full = False
            self._state("watching", said(StateMessage.WATCHING, folder=self.folder))
        now = self.monotonic()
        results: list[WatchResult] = []
        present: set[str] = set()
        for path in walk.files:
            name = str(path.relative_to(self.folder))
            present.add(name)
            result = self._consider(path, name, now)
            if result is not None:
                results.append(result)
        self._seen = {k: v for k, v in self._seen.items() if k in present}
        return results

    def _consider(self, path: Path, name: str, now: float) -> WatchResult | None:
        try:
            info = path.stat()
        except OSError:
            return None
        key = (info.st_size, info.st_mtime_ns)
        seen = self._seen.get(name)
        if seen is None or (seen[0], seen[1]) != key:
            self._seen[name] = (*key, now)
            return None
        if now - seen[2] < self.settle_s or info.st_size == 0:
            return None
        camera = self.camera_for(name)
        if camera is None:
            return None
        with Session(self.engine) as session:
            done = session.exec(select(WatchedFile.id).where(
                WatchedFile.folder == str(self.folder), WatchedFile.name == name,
                WatchedFile.size_bytes == key[0], WatchedFile.mtime_ns == key[1])).first()
        if done is not None:
            return None
        return self._ingest(path, name, camera, key)

    def _ingest(self, path: Path, name: str, camera: str,
                key: tuple[int, int]) -> WatchResult:
        row = WatchedFile(folder=str(self.folder), name=name, size_bytes=key[0],
                          mtime_ns=key[1], camera_id=camera, status="failed")
        try:
            outcome = self.ingest(path, camera)
        except OkoError as exc:
            full = self.low_space()
            if full is not None:  # the disk filled during ingest: try again once there is room
                log.error("watch %s: %s waits: %s", self.folder, name, full.english())
                return WatchResult(name=name, camera_id=camera, status="waiting",
                                   message=full.english())
            row.message = exc.message
        else:
            row.status = "duplicate" if outcome.duplicate else "ingested"
            row.sha256, row.original_id, row.message = (outcome.sha256, outcome.original_id,
                                                        outcome.message)
        try:
            with session_scope(self.engine) as session:
                session.add(row)
        except IntegrityError:
            pass  # another watcher of the same folder remembered it first
        log.info("watch %s: %s %s: %s", self.folder, row.status, name, row.message)
        return WatchResult(name=name, camera_id=camera, status=row.status, message=row.message)

    def run(self, stop: threading.Event) -> None:
        self._state("watching", said(StateMessage.WATCHING, folder=self.folder))
        while not stop.is_set():
            self.scan_once()
            stop.wait(self.poll_s)


__all__ = ["FolderWatcher", "IngestPath", "LowSpace", "WatchResult"]
