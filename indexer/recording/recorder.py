"""Record one camera's stream continuously: supervise ffmpeg, ingest each finished file.

A ``CameraRecorder`` runs in its own thread:

1. Files a previous run left in the camera's spool dir are ingested first (each
   session dir notes when its stream started), so nothing already written is dropped.
2. ffmpeg (``indexer.recording.ffmpeg``) connects and copies the stream into fixed-length
   MPEG-TS files. The first progress report anchors the stream's timeline to the wall
   clock; each file's start is that anchor plus the file's start on the timeline.
3. Each finished file is ingested as an original (hashed, stored write-once, segmented,
   sampled) with that start, then removed from the spool. A file that cannot be
   ingested, or whose start lies before footage already recorded (the clock went
   back), is moved to ``quarantine/`` and named in the camera's status, never deleted.
4. When the stream drops, a gap opens at the end of the last file; ffmpeg is restarted
   with exponential backoff, and the gap is closed at the new anchor. Nothing is
   invented for the gap.
5. Before and while recording, the free space of the spool dir and of the blob stores
   is checked; below the minimum the current file is closed properly, recording stops
   (state ``disk_full``, logged at error, ``on_disk`` told once) and resumes when space
   returns. A finished file the stores have no room for stays in the spool and is
   ingested once they do: footage already recorded is never dropped.

The stream URL's secrets never reach a log line, a status message or a gap reason.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy.engine import Engine

from indexer.ingest import IngestOutcome
from indexer.media import MediaError
from indexer.recording.ffmpeg import (
    STREAM_COPY_CODECS,
    ListedSegment,
    Progress,
    input_codec,
    parse_progress_line,
    read_segment_list,
    record_command,
    stop_cause,
)
from indexer.recording.state import camera_state, update_state
from storage.db import session_scope
from storage.errors import OkoError
from storage.gaps import (
    GapReason,
    close_gap,
    describe_gap_reason,
    gap_reason,
    open_gap,
    record_gap,
)
from storage.state_messages import Said, StateMessage, said
from storage.stream_urls import redact_stream_url, scrub

log = logging.getLogger("oko.recorder")
# a new file may start this much before the last one ended (anchor jitter) without
# counting as a clock that went back
CLOCK_TOLERANCE = timedelta(seconds=2)
STATS_EVERY_S = 2.0
STOP_GRACE_S = 10.0
# a recorded file this small that ffmpeg finds no video in holds no footage
NO_FOOTAGE_BYTES = 64 * 1024


class Ingest(Protocol):
    def __call__(self, path: Path, *, camera_id: str, start: datetime) -> IngestOutcome: ...


Clock = Callable[[], datetime]
FreeBytes = Callable[[Path], int]
DiskAlert = Callable[[bool, str], None]
"""Told ``(True, sentence)`` when recording stops for space, ``(False, sentence)`` when
it resumes."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def disk_free_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class RecorderConfig:
    spool_dir: Path
    segment_seconds: float = 60.0
    timeout_s: float = 10.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    min_free_bytes: int = 1024**3
    poll_s: float = 0.25
    store_dirs: tuple[Path, ...] = ()
    """The blob stores ingest writes to; their free space is guarded as the spool's."""


@dataclass
class _Session:
    directory: Path
    spawn_utc: datetime
    anchor_utc: datetime | None = None
    frozen: bool = False
    announced: bool = False
    blocks_seen: int = 0
    done: set[str] = field(default_factory=set)
    last_end_s: float = 0.0
    recorded: bool = False
    codec: str | None = None
    log_tail: list[str] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def anchor(self) -> datetime:
        return self.anchor_utc or self.spawn_utc

    def save(self) -> None:
        (self.directory / "session.json").write_text(json.dumps({
            "spawn_utc": self.spawn_utc.isoformat(),
            "anchor_utc": self.anchor_utc.isoformat() if self.anchor_utc else None}))


class CameraRecorder:
    """Records ``camera_id`` from ``url`` until ``stop`` is set (see the module doc)."""

    def __init__(self, *, camera_id: str, url: str, engine: Engine, ingest: Ingest,
                 config: RecorderConfig, clock: Clock = _utc_now,
                 free_bytes: FreeBytes = disk_free_bytes,
                 on_disk: DiskAlert | None = None) -> None:
        self.camera_id = camera_id
        self.url = url
        self.shown_url = redact_stream_url(url)
        self.engine = engine
        self.ingest = ingest
        self.config = config
        self.clock = clock
        self.free_bytes = free_bytes
        self.on_disk = on_disk
        self.disk_full = False
        self.camera_dir = config.spool_dir / camera_id
        self.quarantine_dir = self.camera_dir / "quarantine"
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._process: subprocess.Popen[str] | None = None

    # -- state -------------------------------------------------------------------------

    def _state(self, state: str, message: Said, **fields: object) -> None:
        message = message.scrubbed(lambda text: scrub(text, self.url))
        with session_scope(self.engine) as session:
            update_state(session, camera_id=self.camera_id, state=state,
                         worker=self.worker, **message.row_fields(), **fields)
        log.info("camera %s: %s: %s", self.camera_id, state, message.english())

    def _last_end(self) -> datetime | None:
        with session_scope(self.engine) as session:
            row = camera_state(session, self.camera_id)
            return row.last_file_end_utc if row is not None else None

    # -- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Record until ``stop`` is set; never raises for a stream's or a file's trouble."""
        self.camera_dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        failures = 0
        while not stop.is_set():
            if not self._space_ok():
                self._pause_for_space()
                stop.wait(min(self.config.backoff_max_s, 5.0))
                continue
            if self.disk_full:
                self._space_returned()
            recorded, reason, bad_codec = self._record_session(stop)
            if stop.is_set():
                break
            failures = 0 if recorded else failures + 1
            delay = min(self.config.backoff_s * 2 ** max(failures - 1, 0),
                        self.config.backoff_max_s)
            if bad_codec:
                self._state("failed", said(StateMessage.CODEC_NOT_COPYABLE, codec=bad_codec,
                                           delay=float(delay)))
            else:
                self._state("reconnecting", said(StateMessage.RECONNECTING, reason=reason,
                                                 delay=float(delay), attempt=failures + 1))
            stop.wait(delay)
        self._stopped()

    def _stopped(self) -> None:
        last_end = self._last_end()
        with session_scope(self.engine) as session:
            if last_end is not None:
                open_gap(session, camera_id=self.camera_id, start=last_end,
                         reason=gap_reason(GapReason.RECORDER_STOPPED))
            update_state(session, camera_id=self.camera_id, state="idle",
                         worker=self.worker, **said(StateMessage.STOPPED).row_fields())

    def stop_process(self) -> None:
        """Ask the running ffmpeg (if any) to finish its file and exit."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)

    # -- one connection ------------------------------------------------------------------

    def _record_session(self, stop: threading.Event) -> tuple[bool, str, str]:
        """Run ffmpeg once; returns (recorded anything, why it stopped as a stored gap
        reason, the codec when the stream's video cannot be stream-copied, else "")."""
        spawn = self.clock()
        directory = self.camera_dir / f"session-{time.time_ns()}-{os.getpid()}"
        directory.mkdir(parents=True)
        session = _Session(directory=directory, spawn_utc=spawn)
        session.save()
        command = record_command(self.url, directory, camera_id=self.camera_id,
                                 segment_seconds=self.config.segment_seconds,
                                 timeout_s=self.config.timeout_s)
        self._state("connecting", said(StateMessage.CONNECTING, url=self.shown_url))
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, errors="replace")
        self._process = process
        readers = [threading.Thread(target=self._read_progress, args=(process.stdout, session),
                                    daemon=True),
                   threading.Thread(target=self._read_log, args=(process.stderr, session),
                                    daemon=True)]
        for reader in readers:
            reader.start()
        bad_codec = ""
        last_stats = 0.0
        while process.poll() is None:
            if stop.wait(self.config.poll_s):
                self._finish(process)
                break
            codec = session.codec
            if codec is not None and codec not in STREAM_COPY_CODECS and not bad_codec:
                bad_codec = codec
                self._finish(process)
                break
            self._anchor(session)
            self._finalize_listed(session)
            if not self._space_ok():
                self._finish(process)
                break
            if time.monotonic() - last_stats > STATS_EVERY_S and session.anchor_utc:
                last_stats = time.monotonic()
                self._stats(session)
        process.wait()
        for reader in readers:
            reader.join(timeout=5)
        self._process = None
        if bad_codec:
            shutil.rmtree(directory, ignore_errors=True)  # nothing of it was accepted
            return False, "", bad_codec
        self._anchor(session)
        self._finalize_listed(session)
        self._finalize_rest(session)
        self._clear_session(directory)
        code, detail = stop_cause(session.log_tail, returncode=process.returncode,
                                  timeout_s=self.config.timeout_s)
        stored = gap_reason(code, scrub(detail, self.url))
        if not self._space_ok():
            stored, _message = self._space_shortage()
        if stop.is_set():
            stored = gap_reason(GapReason.RECORDER_STOPPED)
        last_end = self._last_end()
        if session.recorded and last_end is not None:
            with session_scope(self.engine) as db:
                open_gap(db, camera_id=self.camera_id, start=last_end, reason=stored)
        log.info("camera %s: stream stopped: %s", self.camera_id,
                 describe_gap_reason(stored))
        return session.recorded, stored, ""

    def _finish(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # ffmpeg closes and lists its last file
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()

    def _read_progress(self, stream: IO[str] | None, session: _Session) -> None:
        if stream is None:
            return
        for line in stream:
            with session.lock:
                parse_progress_line(line, session.progress)

    def _read_log(self, stream: IO[str] | None, session: _Session) -> None:
        if stream is None:
            return
        seen_input = False
        for raw in stream:
            line = scrub(raw.rstrip("\n"), self.url)
            if line.startswith("Input #0"):
                seen_input = True
            elif line.startswith("Output #0"):
                seen_input = False
            if seen_input and session.codec is None:
                session.codec = input_codec(line)
            session.log_tail = [*session.log_tail[-29:], line]

    def _anchor(self, session: _Session) -> None:
        """Tie the stream's timeline to the wall clock, from ffmpeg's progress reports.

        Each report gives ``now - out_time``: when the stream's time zero happened. A
        burst of buffered footage at connection makes it too early, so the latest
        (largest) value is kept until the first file is finished, then it is fixed.
        """
        if session.frozen:
            return
        with session.lock:
            out_time = session.progress.out_time_s
            blocks = session.progress.blocks
        if blocks == session.blocks_seen or out_time <= 0:
            return
        session.blocks_seen = blocks
        candidate = self.clock() - timedelta(seconds=out_time)
        if session.anchor_utc is None or candidate > session.anchor_utc:
            session.anchor_utc = candidate
            session.save()
        self._announce(session)

    def _announce(self, session: _Session) -> None:
        if session.announced:
            return
        session.announced = True
        with session_scope(self.engine) as db:
            update_state(db, camera_id=self.camera_id, state="recording", worker=self.worker,
                         connected_at=session.anchor(),
                         **said(StateMessage.RECORDING, url=self.shown_url).row_fields())
        log.info("camera %s: recording %s", self.camera_id, self.shown_url)

    def _freeze(self, session: _Session) -> None:
        """Fix the anchor before the first file is named by it; close the open gap there."""
        if session.frozen:
            return
        self._anchor(session)
        session.frozen = True
        session.save()
        self._announce(session)
        self._connected(session.anchor())

    def _connected(self, anchor: datetime) -> None:
        last_end = self._last_end()
        with session_scope(self.engine) as db:
            closed = close_gap(db, camera_id=self.camera_id, end=anchor)
            if closed is None and last_end is not None and anchor - last_end > CLOCK_TOLERANCE:
                record_gap(db, camera_id=self.camera_id, start=last_end, end=anchor,
                           reason=gap_reason(GapReason.NO_RECORDER))

    def _stats(self, session: _Session) -> None:
        with session.lock:
            fps, bitrate = session.progress.fps, session.progress.bitrate_bps
        with session_scope(self.engine) as db:
            update_state(db, camera_id=self.camera_id, fps=fps, bitrate_bps=bitrate)

    # -- files -------------------------------------------------------------------------

    def _finalize_listed(self, session: _Session) -> None:
        for listed in read_segment_list(session.directory):
            if listed.name not in session.done:
                self._finalize(session, listed)

    def _finalize_rest(self, session: _Session) -> None:
        """Files ffmpeg did not list (it was killed mid-file): they start where the last ended."""
        for path in sorted(session.directory.glob("seg-*.ts")):
            if path.name not in session.done:
                self._finalize(session, ListedSegment(name=path.name,
                                                      start_s=session.last_end_s,
                                                      end_s=-1.0))

    def _finalize(self, session: _Session, listed: ListedSegment) -> None:
        session.done.add(listed.name)
        path = session.directory / listed.name
        if listed.end_s >= 0:
            session.last_end_s = max(session.last_end_s, listed.end_s)
        if not path.exists():
            return
        if path.stat().st_size == 0:
            path.unlink()
            return
        session.recorded = True
        self._freeze(session)
        start = session.anchor() + timedelta(seconds=listed.start_s)
        stamp = start.strftime("%Y%m%dT%H%M%S.") + f"{start.microsecond // 1000:03d}Z"
        named = path.with_name(f"{self.camera_id}_{stamp}.ts")
        path.rename(named)
        self._ingest_file(named, start=start, planned_end_s=listed.end_s - listed.start_s)

    def _ingest_file(self, path: Path, *, start: datetime, planned_end_s: float) -> None:
        last_end = self._last_end()
        if last_end is not None and start < last_end - CLOCK_TOLERANCE:
            kept = self._quarantine(path)
            self._state("clock_error", said(
                StateMessage.CLOCK_WENT_BACK, start_utc=start.isoformat(),
                seconds=f"{(last_end - start).total_seconds():.0f}",
                last_end_utc=last_end.isoformat(), kept=kept))
            return
        if self._low_space(self.config.store_dirs) is not None:
            log.error("camera %s: %s stays in the spool until the stores have room",
                      self.camera_id, path.name)
            return
        try:
            outcome = self.ingest(path, camera_id=self.camera_id, start=start)
        except MediaError as exc:
            if path.stat().st_size < NO_FOOTAGE_BYTES:
                # the stub ffmpeg opened as the stream ended: headers, not one frame
                log.info("camera %s: left out %s (%d bytes, no video frame: %s)",
                         self.camera_id, path.name, path.stat().st_size, exc.message)
                path.unlink()
                return
            kept = self._quarantine(path)
            self._state("recording", said(StateMessage.FILE_NOT_INGESTED, error=exc.message,
                                          kept=kept))
            return
        except OkoError as exc:
            if self._low_space(self.config.store_dirs) is not None:
                log.error("camera %s: %s stays in the spool until the stores have room (%s)",
                          self.camera_id, path.name, scrub(exc.message, self.url))
                return
            kept = self._quarantine(path)
            self._state("recording", said(StateMessage.FILE_NOT_INGESTED, error=exc.message,
                                          kept=kept))
            return
        seconds = outcome.decodable_duration_s or max(planned_end_s, 0.0)
        end = start + timedelta(seconds=seconds)
        now = self.clock()
        with session_scope(self.engine) as db:
            previous = camera_state(db, self.camera_id)
            update_state(db, camera_id=self.camera_id,
                         last_file_end_utc=max(end, last_end) if last_end else end,
                         last_ingested_at=now,
                         ingest_lag_s=round(max((now - end).total_seconds(), 0.0), 3),
                         files_recorded=(previous.files_recorded if previous else 0) + 1)
        path.unlink(missing_ok=True)

    def _quarantine(self, path: Path) -> Path:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        target = self.quarantine_dir / path.name
        path.rename(target)
        return target

    def _recover(self) -> None:
        """Ingest what earlier runs left in the spool, oldest session first."""
        for directory in sorted(self.camera_dir.glob("session-*")):
            try:
                saved = json.loads((directory / "session.json").read_text())
                spawn = datetime.fromisoformat(saved["spawn_utc"])
                anchor = saved.get("anchor_utc")
            except (OSError, ValueError, KeyError):
                spawn, anchor = datetime.fromtimestamp(directory.stat().st_mtime, UTC), None
            session = _Session(directory=directory, spawn_utc=spawn, frozen=True,
                               anchor_utc=datetime.fromisoformat(anchor) if anchor else None)
            for named in sorted(directory.glob(f"{self.camera_id}_*Z.ts")):
                self._recover_named(named)
            self._finalize_listed(session)
            self._finalize_rest(session)
            self._clear_session(directory)

    def _clear_session(self, directory: Path) -> None:
        """Remove a session dir once each of its files is ingested or quarantined; files
        waiting for space in the stores keep it (the next recovery ingests them)."""
        if any(directory.glob("*.ts")):
            return
        shutil.rmtree(directory, ignore_errors=True)

    def _recover_named(self, path: Path) -> None:
        stamp = path.stem.removeprefix(f"{self.camera_id}_").removesuffix("Z")
        try:
            start = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
        except ValueError:
            self._quarantine(path)
            return
        self._ingest_file(path, start=start, planned_end_s=0.0)

    # -- space -------------------------------------------------------------------------

    def _low_space(self, directories: tuple[Path, ...]) -> tuple[Path, int] | None:
        """The first of ``directories`` with less free space than the minimum, if any."""
        for directory in directories:
            free = self.free_bytes(directory)
            if free < self.config.min_free_bytes:
                return directory, free
        return None

    def _space_ok(self) -> bool:
        return self._low_space((self.config.spool_dir, *self.config.store_dirs)) is None

    def _space_shortage(self) -> tuple[str, Said]:
        """What low space stops: the stored gap reason (``spool_low``/``store_low``) and
        the state message, both from one look at the disks."""
        low = self._low_space((self.config.spool_dir, *self.config.store_dirs))
        directory, free = low or (self.config.spool_dir, self.free_bytes(self.config.spool_dir))
        spool = directory == self.config.spool_dir
        reason = gap_reason(GapReason.SPOOL_LOW if spool else GapReason.STORE_LOW,
                            str(directory))
        return reason, said(StateMessage.SPOOL_LOW if spool else StateMessage.STORE_LOW_RECORDING,
                            directory=directory, free_mib=free // 2**20,
                            need_mib=self.config.min_free_bytes // 2**20)

    def _pause_for_space(self) -> None:
        reason, message = self._space_shortage()
        sentence = message.english()
        if self.disk_full:  # said once; only keep the state fresh (not "stale")
            with session_scope(self.engine) as db:
                update_state(db, camera_id=self.camera_id, state="disk_full",
                             worker=self.worker, **message.row_fields())
            return
        self.disk_full = True
        last_end = self._last_end()
        log.error("camera %s: %s", self.camera_id, sentence)
        # the alert is on record before the state says disk_full, so whoever sees the
        # state also finds the alert
        if self.on_disk is not None:
            self.on_disk(True, sentence)
        with session_scope(self.engine) as db:
            if last_end is not None:
                open_gap(db, camera_id=self.camera_id, start=last_end,
                         reason=reason)
            update_state(db, camera_id=self.camera_id, state="disk_full",
                         worker=self.worker, **message.row_fields())

    def _space_returned(self) -> None:
        """Space is back: ingest what waited in the spool, then record again."""
        self.disk_full = False
        message = said(StateMessage.SPACE_RETURNED)
        if self.on_disk is not None:  # on record before the state changes, as above
            self.on_disk(False, message.english())
        self._state("connecting", message)
        self._recover()


__all__ = ["CameraRecorder", "Clock", "DiskAlert", "FreeBytes", "Ingest", "RecorderConfig",
           "disk_free_bytes"]
