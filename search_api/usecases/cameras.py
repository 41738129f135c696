"""Use cases: list and read the cameras an actor may see, register one, import a CSV,
set a camera's stream URL.

Each registered camera writes one ``camera_change`` entry in the same transaction:
``change="create", camera_id, owner, allowed_agencies``. A CSV import registers every
camera or none, and so writes every entry or none. Setting a stream URL writes
``change="stream_url", camera_id, stream_url`` with the URL redacted: its password
reaches neither the audit log nor any answer.
"""

from __future__ import annotations

from pathlib import Path

from search_api.audit import AuditAction
from search_api.usecases.context import UseCaseContext
from storage.cameras import CameraCreate, add_camera, import_cameras_csv, list_cameras
from storage.models.media import Camera
from storage.permissions import Permission
from storage.stream_urls import redact_stream_url, validate_stream_url


def list_visible_cameras(ctx: UseCaseContext) -> list[Camera]:
    """The cameras the actor's agency owns or may search (all, for managers), by id.

    Raises ``PermissionDeniedError`` for a role that may not list cameras.
    """
    ctx.require(Permission.LIST_CAMERAS)
    visible = ctx.visible_camera_ids()
    return [c for c in list_cameras(ctx.session) if c.id in visible]


def read_camera(ctx: UseCaseContext, *, camera_id: str) -> Camera:
    """One camera; raises ``NotFoundError`` for a missing one and for one the actor may
    not see (the same answer, so ids don't leak), ``PermissionDeniedError`` for a role
    that may not list cameras."""
    ctx.require(Permission.LIST_CAMERAS)
    return ctx.visible_camera(camera_id)


def _audit_created(ctx: UseCaseContext, camera: Camera) -> None:
    ctx.audit(AuditAction.CAMERA_CHANGE, change="create", camera_id=camera.id,
              owner=camera.agency, allowed_agencies=camera.allowed_agencies)


def register_camera(ctx: UseCaseContext, *, camera: CameraCreate,
                    stream_url: str | None = None) -> Camera:
    """Register one camera (recorded from ``stream_url`` when given) and audit it.

    Raises ``PermissionDeniedError`` unless the actor manages cameras,
    ``InvalidStreamUrlError`` for a malformed stream URL and ``ConflictError`` when the
    id is already registered; nothing is written then.
    """
    ctx.require(Permission.MANAGE_CAMERAS)
    url = validate_stream_url(stream_url) if stream_url is not None else None
    row = add_camera(ctx.session, camera=camera)
    _audit_created(ctx, row)
    if url is not None:
        _set_url(ctx, row, url)
    ctx.commit()
    return row


def _set_url(ctx: UseCaseContext, camera: Camera, url: str | None) -> None:
    camera.stream_url = url
    ctx.session.add(camera)
    ctx.session.flush()
    ctx.audit(AuditAction.CAMERA_CHANGE, change="stream_url", camera_id=camera.id,
              stream_url=redact_stream_url(url) if url else None)


def set_stream_url(ctx: UseCaseContext, *, camera_id: str, stream_url: str | None) -> Camera:
    """Set (or with None, remove) the URL the recorder reads ``camera_id`` from.

    A running recorder picks the change up within its refresh interval. Raises
    ``PermissionDeniedError`` unless the actor manages cameras, ``NotFoundError`` for an
    unknown camera and ``InvalidStreamUrlError`` for a malformed URL (its secrets
    redacted); the camera is left as it was then.
    """
    ctx.require(Permission.MANAGE_CAMERAS)
    url = validate_stream_url(stream_url) if stream_url is not None else None
    camera = ctx.visible_camera(camera_id)
    _set_url(ctx, camera, url)
    ctx.commit()
    return camera


def import_cameras(ctx: UseCaseContext, *, path: Path) -> list[Camera]:
    """Register every camera in a CSV file, or none of them.

    Raises ``PermissionDeniedError`` unless the actor manages cameras, ``NotFoundError``
    for a missing file, ``InvalidInputError`` naming the first bad row and
    ``ConflictError`` for an id already registered or repeated in the file.
    """
    ctx.require(Permission.MANAGE_CAMERAS)
    rows = import_cameras_csv(ctx.session, path=path)
    for row in rows:
        _audit_created(ctx, row)
    ctx.commit()
    return rows


__all__ = ["import_cameras", "list_visible_cameras", "read_camera", "register_camera",
           "set_stream_url"]
