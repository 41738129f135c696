"""Use cases: the retention sweep (``oko retention run``, the worker's and ``oko serve``'s
periodic run) and a camera's own retention period.

``run_retention`` wires ``indexer.retention`` to this install: the evidence lock is
``evidence.cases.locked_original_ids`` (any case clip), the default period
``OKO_RETENTION_DAYS``. Each deletion writes a ``retention_delete`` audit entry naming
the original's hash, camera, span and rule, in the transaction of its custody entry.
``set_retention_days`` writes ``camera_change`` with ``change="retention_days"``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlmodel import Session

from evidence.cases import locked_original_ids
from indexer.retention import (
    RETENTION_ACTOR,
    ExpiredOriginal,
    RetentionReport,
    RetentionStores,
    RetentionSweep,
    Step,
)
from search_api.audit import AuditAction, record_event
from search_api.state import AppState
from search_api.usecases.context import UseCaseContext
from storage.errors import InvalidInputError, OkoError
from storage.models.media import Camera
from storage.permissions import Permission

logger = logging.getLogger(__name__)
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class _Auditor:
    state: AppState
    actor: str
    agency: str
    ip: str

    def __call__(self, session: Session, original: ExpiredOriginal) -> None:
        record_event(session, state=self.state, actor=self.actor, agency=self.agency,
                     ip=self.ip, action=AuditAction.RETENTION_DELETE,
                     details={"original_id": original.original_id,
                              "original_sha256": original.sha256,
                              "camera_id": original.camera_id,
                              "start_utc": original.start_utc.isoformat(),
                              "end_utc": original.end_utc.isoformat(),
                              "retention_days": original.retention_days,
                              "rule": original.rule})


def build_sweep(state: AppState, *, actor: str = RETENTION_ACTOR, agency: str = "",
                ip: str = "worker", step: Step | None = None) -> RetentionSweep:
    """The sweep of this install; ``step`` is called after each step (tests raise in it)."""
    settings = state.settings
    return RetentionSweep(
        engine=state.engine,
        stores=RetentionStores(originals=state.originals, derived=state.derived,
                               index_dir=settings.index_dir),
        locked_ids=locked_original_ids,
        on_deleted=_Auditor(state=state, actor=actor, agency=agency, ip=ip), step=step)


def run_retention(ctx: UseCaseContext, *, dry_run: bool = False,
                  step: Step | None = None) -> RetentionReport:
    """Delete (or with ``dry_run`` list) every expired original not under evidence lock.

    Raises ``PermissionDeniedError`` unless the actor manages cameras, and
    ``StorageError`` when a blob cannot be removed (the next run finishes it).
    """
    ctx.require(Permission.MANAGE_CAMERAS)
    sweep = build_sweep(ctx.state, actor=ctx.actor.name, agency=ctx.actor.agency,
                        ip=ctx.actor.ip, step=step)
    return sweep.run(default_days=ctx.settings.retention_days, dry_run=dry_run)


def sweep_now(state: AppState) -> RetentionReport | None:
    """The periodic sweep (worker, ``oko serve``); a failure is logged, never raised."""
    try:
        report = build_sweep(state).run(default_days=state.settings.retention_days)
    except OkoError as exc:
        logger.error("retention sweep failed: %s", exc.message)
        return None
    if report.deleted or report.kept_locked:
        logger.info("retention: %d original(s) deleted, %d kept under evidence lock",
                    len(report.deleted), len(report.kept_locked))
    return report


class RetentionLoop:
    """Runs ``sweep_now`` every ``OKO_RETENTION_INTERVAL_MINUTES`` in a daemon thread."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        interval = self.state.settings.retention_interval_minutes * 60
        while not self._stop.is_set():
            try:
                sweep_now(self.state)
            except Exception:  # a database hiccup must not end the loop
                logger.exception("retention sweep failed; trying again later")
            self._stop.wait(interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="retention")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def set_retention_days(ctx: UseCaseContext, *, camera_id: str, days: int | None) -> Camera:
    """Keep ``camera_id``'s originals ``days`` after their recording ends (None: the
    installation's default). Raises ``PermissionDeniedError`` unless the actor manages
    cameras, ``NotFoundError`` for an unknown camera and ``InvalidInputError`` for a
    period under 1 day or over 100 years; the camera is left as it was then."""
    ctx.require(Permission.MANAGE_CAMERAS)
    if days is not None and not 1 <= days <= MAX_RETENTION_DAYS:
        raise InvalidInputError(f"A retention period is 1 to {MAX_RETENTION_DAYS} days, "
                                f"not {days}.")
    camera = ctx.visible_camera(camera_id)
    camera.retention_days = days
    ctx.session.add(camera)
    ctx.session.flush()
    ctx.audit(AuditAction.CAMERA_CHANGE, change="retention_days", camera_id=camera.id,
              retention_days=days)
    ctx.commit()
    return camera


__all__ = ["MAX_RETENTION_DAYS", "RetentionLoop", "build_sweep", "run_retention",
           "set_retention_days", "sweep_now"]
