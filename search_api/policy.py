"""Authorization in one place: what each role may do, and which cameras a user may see.

Routes declare a permission with ``dependencies=[Depends(requires(Permission.X))]`` or
take ``user: CurrentUser`` and call the helpers here; they never test roles themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from sqlmodel import Session, select

from search_api.deps import CurrentUser
from storage.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from storage.models.access import Role, User
from storage.models.media import Camera


class Permission(StrEnum):
    SEARCH = "search"
    VIEW_FOOTAGE = "view_footage"
    INGEST = "ingest"
    MANAGE_CASES = "manage_cases"
    READ_CASES = "read_cases"
    EXPORT = "export"
    APPROVE_EXPORT = "approve_export"
    RECEIVE_BUNDLE = "receive_bundle"
    VERIFY = "verify"
    READ_AUDIT = "read_audit"
    MANAGE_USERS = "manage_users"
    MANAGE_CAMERAS = "manage_cameras"
    LIST_CAMERAS = "list_cameras"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset({Permission.MANAGE_USERS, Permission.MANAGE_CAMERAS,
                          Permission.LIST_CAMERAS, Permission.INGEST}),
    Role.INVESTIGATOR: frozenset({Permission.SEARCH, Permission.VIEW_FOOTAGE,
                                  Permission.MANAGE_CASES, Permission.READ_CASES,
                                  Permission.EXPORT,
                                  Permission.LIST_CAMERAS, Permission.VERIFY}),
    Role.SUPERVISOR: frozenset({Permission.SEARCH, Permission.VIEW_FOOTAGE,
                                Permission.MANAGE_CASES, Permission.READ_CASES,
                                Permission.EXPORT,
                                Permission.APPROVE_EXPORT, Permission.LIST_CAMERAS,
                                Permission.VERIFY}),
    Role.PROSECUTOR: frozenset({Permission.RECEIVE_BUNDLE, Permission.READ_CASES,
                                Permission.VERIFY}),
    Role.AUDITOR: frozenset({Permission.READ_AUDIT, Permission.VERIFY}),
}


def has_permission(user: User, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(user.role, frozenset())


def requires(permission: Permission) -> Callable[[User], User]:
    """A dependency that admits only users whose role grants ``permission`` (else 403)."""

    def _check(user: CurrentUser) -> User:
        if not has_permission(user, permission):
            action = permission.value.replace("_", " ")
            raise PermissionDeniedError(f"Your role ({user.role.value}) may not {action}.")
        return user

    return _check


def require_permission(user: User, permission: Permission) -> User:
    return requires(permission)(user)


def visible_camera_ids(session: Session, user: User) -> set[str]:
    """Cameras the user's agency owns or is allowed to search; camera managers see all.

    Managers (admins) still cannot search or view footage: those routes need
    ``Permission.SEARCH`` / ``VIEW_FOOTAGE`` first, which admins do not have.
    """
    cameras = session.exec(select(Camera)).all()
    if has_permission(user, Permission.MANAGE_CAMERAS):
        return {c.id for c in cameras}
    return {c.id for c in cameras if c.agency == user.agency or user.agency in c.allowed_agencies}


def get_visible_camera_or_404(session: Session, user: User, camera_id: str) -> Camera:
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
    "requires",
    "visible_camera_ids",
]
