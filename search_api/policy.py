"""Authorization in one place: what an actor may do, and which cameras and cases it sees.

The role table is ``storage.permissions.ROLE_PERMISSIONS``. Use cases ask
``ctx.require(Permission.X)``; routes may also declare ``requires(Permission.X)`` (in
``search_api.deps``) so a refused request is answered before its body is read. Nothing
else tests roles.
"""

from __future__ import annotations

from sqlmodel import Session, select

from storage.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from storage.models.access import User
from storage.models.media import Camera
from storage.permissions import ROLE_PERMISSIONS, Permission, role_may


def has_permission(user: User, permission: Permission) -> bool:
    return role_may(user.role, permission)


def require_permission(user: User | None, permission: Permission) -> None:
    """Raises ``PermissionDeniedError`` (403) unless the user's role grants ``permission``.

    ``None`` is the local operator, who holds every permission.
    """
    if user is not None and not has_permission(user, permission):
        action = permission.value.replace("_", " ")
        raise PermissionDeniedError(f"Your role ({user.role.value}) may not {action}.")


def visible_camera_ids(session: Session, user: User | None) -> set[str]:
    """Cameras the user's agency owns or is allowed to search; camera managers see all.

    ``None`` is the local operator of the CLI, who runs with the data dir's own rights.
    Managers (admins) still cannot search or view footage: those actions need
    ``Permission.SEARCH`` / ``VIEW_FOOTAGE`` first, which admins do not have.
    """
    cameras = session.exec(select(Camera)).all()
    if user is None or has_permission(user, Permission.MANAGE_CAMERAS):
        return {c.id for c in cameras}
    return {c.id for c in cameras if c.agency == user.agency or user.agency in c.allowed_agencies}


def get_visible_camera_or_404(session: Session, user: User | None, camera_id: str) -> Camera:
    """Another agency's camera answers exactly like a missing one, so ids don't leak."""
    camera = session.get(Camera, camera_id)
    if camera is None or camera.id not in visible_camera_ids(session, user):
        raise NotFoundError(f"Camera '{camera_id}' does not exist.")
    return camera


class PurposeRequiredError(InvalidInputError):
    """A search was run without stating why."""


PURPOSE_MIN_CHARS = 3


def require_search_purpose(purpose: str | None) -> str:
    """Every search states a purpose (a case number or a reason); returns it trimmed."""
    stated = (purpose or "").strip()
    if len(stated) < PURPOSE_MIN_CHARS:
        raise PurposeRequiredError(
            "Every search must state its purpose: a case number or a reason, "
            f"at least {PURPOSE_MIN_CHARS} characters.")
    return stated


__all__ = [
    "ROLE_PERMISSIONS",
    "Permission",
    "PurposeRequiredError",
    "get_visible_camera_or_404",
    "has_permission",
    "require_permission",
    "require_search_purpose",
    "visible_camera_ids",
]
