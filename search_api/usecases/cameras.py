"""Use cases: list and read the cameras an actor may see, register one, import a CSV.

Each registered camera writes one ``camera_change`` entry in the same transaction:
``change="create", camera_id, owner, allowed_agencies``. A CSV import registers every
camera or none, and so writes every entry or none.
"""

from __future__ import annotations

from pathlib import Path

from search_api.audit import AuditAction
from search_api.usecases.context import UseCaseContext
from storage.cameras import CameraCreate, add_camera, import_cameras_csv, list_cameras
from storage.models.media import Camera
from storage.permissions import Permission


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


def register_camera(ctx: UseCaseContext, *, camera: CameraCreate) -> Camera:
    """Register one camera and audit it.

    Raises ``PermissionDeniedError`` unless the actor manages cameras and
    ``ConflictError`` when the id is already registered.
    """
    ctx.require(Permission.MANAGE_CAMERAS)
    row = add_camera(ctx.session, camera=camera)
    _audit_created(ctx, row)
    ctx.commit()
    return row


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


__all__ = ["import_cameras", "list_visible_cameras", "read_camera", "register_camera"]
