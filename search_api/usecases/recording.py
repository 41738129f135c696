"""Use cases: record camera streams and watch folders, and report each camera's health.

``build_recorder_pool`` wires ``indexer.recording`` to this install's store and
settings (``oko recorder`` and ``oko serve`` run it); ``build_watcher`` does the same for
``oko watch``. Every file either ingests is an original with an acquisition custody
entry, its actor ``recorder`` or ``watch``. ``camera_status`` is what ``oko cameras
status`` and ``GET /api/cameras/{id}/status`` show: state, last file time, ingest lag,
bitrate, fps and the gaps of the last 24 hours, with the stream URL redacted; ``state``
is ``disk_full`` (the message names the full dir) while recording waits for space, which
is also a ``disk_alert`` audit entry when it starts and when it ends. ``camera_gaps``
gives a camera's gaps in a time window (``GET /api/cameras/{id}/gaps``), for the
moment page's timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from indexer.ingest import IngestOutcome, ingest_file
from indexer.recording.pool import RecorderPool
from indexer.recording.recorder import (
    CameraRecorder,
    Clock,
    FreeBytes,
    RecorderConfig,
    disk_free_bytes,
)
from indexer.recording.watch import FolderWatcher
from search_api.audit import AuditAction, record_event
from search_api.state import AppState
from search_api.usecases.context import UseCaseContext
from search_api.usecases.ingest import ingest_options
from storage.cameras import list_cameras
from storage.db import session_scope
from storage.errors import InvalidInputError, OkoError
from storage.gaps import GapView, describe_gap_reason, gaps_between, recent_gaps
from storage.models.media import Camera
from storage.models.recording import RecorderState
from storage.permissions import Permission
from storage.settings import Settings
from storage.state_messages import Said, StateMessage, public_args, said, stored_message
from storage.stream_urls import redact_stream_url
from storage.types import utcnow

logger = logging.getLogger(__name__)
RECORDER_ACTOR = "system:recorder"
# a recorder that has not written its state for this long is taken for gone
STALE_AFTER = timedelta(minutes=5)


def recorder_config(settings: Settings) -> RecorderConfig:
    return RecorderConfig(
        spool_dir=settings.spool_dir, segment_seconds=settings.record_segment_seconds,
        timeout_s=settings.record_timeout_seconds, backoff_s=settings.record_backoff_seconds,
        backoff_max_s=settings.record_backoff_max_seconds,
        min_free_bytes=settings.record_min_free_mb * 2**20,
        store_dirs=(settings.blobs_dir, settings.derived_dir))


def queue_embedding(state: AppState, outcome: IngestOutcome) -> None:
    """Ask the worker to embed and plate-read a new original's frames, as an ingest job's
    end does; a broker that cannot be reached only delays it (the next run takes them)."""
    if outcome.duplicate or not outcome.frame_count or state.job_queue is None:
        return  # no queue: a process built without one (a test) embeds by its own run
    try:
        state.jobs().enqueue_embed()
    except OkoError as exc:
        logger.warning("%s", exc.message)


class RecordedFileIngest:
    """Ingests one file the recorder finished, its start from the stream's clock, and
    queues the embedding of its frames."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def __call__(self, path: Path, *, camera_id: str, start: datetime) -> IngestOutcome:
        outcome = ingest_file(engine=self.state.engine, originals=self.state.originals,
                              derived=self.state.derived, path=path, camera_id=camera_id,
                              start=start, options=ingest_options(self.state.settings),
                              actor="recorder", start_source="stream_clock")
        queue_embedding(self.state, outcome)
        return outcome


class DiskAlertAudit:
    """Writes a ``disk_alert`` audit entry when a camera's recording stops for want of
    space (``state="disk_full"``) and when it resumes (``state="resumed"``)."""

    def __init__(self, state: AppState, camera_id: str) -> None:
        self.state = state
        self.camera_id = camera_id

    def __call__(self, full: bool, sentence: str) -> None:
        try:
            with session_scope(self.state.engine) as session:
                camera = session.get(Camera, self.camera_id)
                record_event(session, state=self.state, actor=RECORDER_ACTOR,
                             agency=camera.agency if camera else "", ip="recorder",
                             action=AuditAction.DISK_ALERT,
                             details={"camera_id": self.camera_id,
                                      "state": "disk_full" if full else "resumed",
                                      "message": sentence})
        except OkoError as exc:  # the alert is also logged; recording must go on
            logger.error("the disk alert could not be audited: %s", exc.message)


def build_recorder(state: AppState, *, camera_id: str, url: str,
                   clock: Clock | None = None,
                   free_bytes: FreeBytes | None = None) -> CameraRecorder:
    """A recorder of ``camera_id``; ``clock`` and ``free_bytes`` replace the real ones."""
    recorder = CameraRecorder(camera_id=camera_id, url=url, engine=state.engine,
                              ingest=RecordedFileIngest(state),
                              config=recorder_config(state.settings),
                              on_disk=DiskAlertAudit(state, camera_id))
    if clock is not None:
        recorder.clock = clock
    if free_bytes is not None:
        recorder.free_bytes = free_bytes
    return recorder


def build_recorder_pool(state: AppState, *, camera_ids: list[str] | None = None,
                        refresh_s: float = 10.0) -> RecorderPool:
    """A pool recording every camera with a stream URL (or only ``camera_ids``)."""
    return RecorderPool(engine=state.engine, camera_ids=camera_ids, refresh_s=refresh_s,
                        factory=lambda camera_id, url: build_recorder(
                            state, camera_id=camera_id, url=url))


def build_watcher(ctx: UseCaseContext, *, folder: Path, camera_id: str | None,
                  mapping: Sequence[tuple[str, str]] = (),
                  poll_s: float = 1.0) -> FolderWatcher:
    """A watcher of ``folder`` for ``camera_id`` (or the cameras ``mapping`` names).

    Raises ``PermissionDeniedError`` unless the actor may ingest and ``NotFoundError``
    for a camera it cannot see.
    """
    ctx.require(Permission.INGEST)
    for camera in [camera_id] if camera_id else sorted({c for _, c in mapping}):
        ctx.visible_camera(camera)
    state = ctx.state

    def ingest(path: Path, camera: str) -> IngestOutcome:
        outcome = ingest_file(engine=state.engine, originals=state.originals,
                              derived=state.derived, path=path, camera_id=camera,
                              start=None, options=ingest_options(state.settings),
                              actor="watch")
        queue_embedding(state, outcome)
        return outcome

    return FolderWatcher(folder=folder, engine=state.engine, ingest=ingest,
                         camera_id=camera_id, mapping=mapping,
                         settle_s=state.settings.watch_settle_seconds, poll_s=poll_s,
                         low_space=store_space_check(state.settings))


def store_space_check(settings: Settings, free_bytes: FreeBytes = disk_free_bytes
                      ) -> Callable[[], Said | None]:
    """None while both blob stores have OKO_RECORD_MIN_FREE_MB free, else what to say."""
    need = settings.record_min_free_mb * 2**20

    def low() -> Said | None:
        for directory in (settings.blobs_dir, settings.derived_dir):
            free = free_bytes(directory)
            if free < need:
                return said(StateMessage.STORE_LOW_INGEST, directory=directory,
                            free_mib=free // 2**20, need_mib=need // 2**20)
        return None

    return low


class GapPublic(BaseModel):
    """A recording gap; ``reason_code`` is a ``storage.gaps.GapReason`` (None for a reason
    stored as free text before codes, then in ``reason_detail``), ``reason`` English."""

    start_utc: datetime
    end_utc: datetime | None
    seconds: float | None
    reason_code: str | None
    reason_detail: str
    reason: str

    @classmethod
    def of(cls, gap: GapView) -> GapPublic:
        return cls(start_utc=gap.start_utc, end_utc=gap.end_utc, seconds=gap.seconds,
                   reason_code=gap.reason_code, reason_detail=gap.reason_detail,
                   reason=describe_gap_reason(gap.reason))


class CameraStatus(BaseModel):
    """A camera's recording health; the stream URL only ever redacted."""

    camera_id: str
    stream_url: str | None
    state: str
    message: str
    message_code: str
    message_args: dict[str, str]
    updated_at: datetime | None
    last_file_end_utc: datetime | None
    ingest_lag_s: float | None
    bitrate_bps: float | None
    fps: float | None
    files_recorded: int
    gaps_last_24h: list[GapPublic]
    gap_seconds_last_24h: float


def _status(ctx: UseCaseContext, camera: Camera) -> CameraStatus:
    row = ctx.session.get(RecorderState, camera.id)
    gaps = recent_gaps(ctx.session, camera_id=camera.id)
    now = utcnow()
    state = row.state if row else ("idle" if camera.stream_url else "no_stream")
    message = stored_message(row.message_code, row.message_args) if row else None
    if row is None:
        message = said(StateMessage.NOT_STARTED if camera.stream_url
                       else StateMessage.NO_STREAM_URL)
    if row and row.state not in ("idle", "watching") and now - row.updated_at > STALE_AFTER:
        state = "stale"
        message = said(StateMessage.RECORDER_SILENT, worker=row.worker,
                       since_utc=row.updated_at.isoformat())
    day_ago = now - timedelta(hours=24)
    covered = sum(((g.end_utc or now) - max(g.start_utc, day_ago)).total_seconds()
                  for g in gaps)
    return CameraStatus(
        camera_id=camera.id,
        stream_url=redact_stream_url(camera.stream_url) if camera.stream_url else None,
        state=state,
        # a row written before codes keeps its English sentence, with no code
        message=message.english() if message else (row.message if row else ""),
        message_code=message.code.value if message else "",
        message_args=public_args(message.args) if message else {},
        updated_at=row.updated_at if row else None,
        last_file_end_utc=row.last_file_end_utc if row else None,
        ingest_lag_s=row.ingest_lag_s if row else None,
        bitrate_bps=row.bitrate_bps if row else None, fps=row.fps if row else None,
        files_recorded=row.files_recorded if row else 0,
        gaps_last_24h=[GapPublic.of(g) for g in gaps],
        gap_seconds_last_24h=round(max(covered, 0.0), 3))


def camera_status(ctx: UseCaseContext, *, camera_id: str) -> CameraStatus:
    """Raises ``NotFoundError`` for a missing camera or one the actor may not see."""
    ctx.require(Permission.LIST_CAMERAS)
    return _status(ctx, ctx.visible_camera(camera_id))


MAX_GAP_WINDOW = timedelta(days=31)


def camera_gaps(ctx: UseCaseContext, *, camera_id: str, start: datetime,
                end: datetime) -> list[GapPublic]:
    """The camera's recording gaps overlapping ``start``..``end``, oldest first (an open
    gap has no end: the camera is still down), for the web app's timelines.

    Raises ``NotFoundError`` for a missing camera or one the actor may not see and
    ``InvalidInputError`` for a window without a time zone, ending before it starts or
    longer than 31 days.
    """
    ctx.require(Permission.LIST_CAMERAS)
    camera = ctx.visible_camera(camera_id)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInputError("The window's start and end need a time zone (e.g. Z).")
    if end <= start:
        raise InvalidInputError("The window ends before it starts.")
    if end - start > MAX_GAP_WINDOW:
        raise InvalidInputError("The window is longer than 31 days; ask for a shorter one.")
    return [GapPublic.of(g)
            for g in gaps_between(ctx.session, camera_id=camera.id, start=start, end=end)]


def cameras_status(ctx: UseCaseContext) -> list[CameraStatus]:
    """The status of every camera the actor may see, by id."""
    ctx.require(Permission.LIST_CAMERAS)
    visible = ctx.visible_camera_ids()
    return [_status(ctx, c) for c in list_cameras(ctx.session) if c.id in visible]


__all__ = [
    "CameraStatus",
    "GapPublic",
    "RecordedFileIngest",
    "build_recorder",
    "build_recorder_pool",
    "build_watcher",
    "camera_gaps",
    "camera_status",
    "cameras_status",
    "recorder_config",
    "store_space_check",
]
