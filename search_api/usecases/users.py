"""Use cases: manage user accounts (list, create, change role, disable, reset a password).

Every change writes one ``user_change`` entry in the same transaction, in the shape the
API has always written, whichever adapter asked:

- create: ``change="create", username, agency, role``;
- update: ``change="update", username, password_reset`` plus each changed field
  (``role``, ``disabled``), never the password itself.
"""

from __future__ import annotations

from search_api import accounts
from search_api.audit import AuditAction
from search_api.usecases.context import UseCaseContext
from storage.models.access import Role, User, UserCreate, UserUpdate
from storage.permissions import Permission


def list_users(ctx: UseCaseContext) -> list[User]:
    """Every user, by username. Raises ``PermissionDeniedError`` unless the actor manages users."""
    ctx.require(Permission.MANAGE_USERS)
    return accounts.list_users(ctx.session)


def _audit_created(ctx: UseCaseContext, user: User) -> None:
    ctx.audit(AuditAction.USER_CHANGE, change="create", username=user.username,
              agency=user.agency, role=user.role.value)


def create_user(ctx: UseCaseContext, *, new: UserCreate) -> User:
    """Create an enabled user and audit it.

    Raises ``PermissionDeniedError`` unless the actor manages users, ``InvalidInputError``
    for a bad username, agency or short password, and ``ConflictError`` for a taken name.
    """
    ctx.require(Permission.MANAGE_USERS)
    user = accounts.create_user(ctx.session, username=new.username, password=new.password,
                                agency=new.agency, role=new.role, full_name=new.full_name)
    _audit_created(ctx, user)
    ctx.commit()
    return user


def has_admin(ctx: UseCaseContext) -> bool:
    """Whether any admin account exists (``oko init`` asks before prompting for one)."""
    ctx.require(Permission.MANAGE_USERS)
    return any(u.role == Role.ADMIN for u in accounts.list_users(ctx.session))


def create_first_admin(ctx: UseCaseContext, *, username: str, password: str, agency: str,
                       full_name: str = "") -> User | None:
    """The first admin of a new installation; None (nothing written) when an admin exists.

    Raises like ``create_user``.
    """
    ctx.require(Permission.MANAGE_USERS)
    user = accounts.ensure_first_admin(ctx.session, username=username, password=password,
                                       agency=agency, full_name=full_name)
    if user is None:
        return None
    _audit_created(ctx, user)
    ctx.commit()
    return user


def _apply(ctx: UseCaseContext, user: User, changes: UserUpdate) -> User:
    if changes.role is not None:
        accounts.set_role(ctx.session, user=user, role=changes.role)
    if changes.disabled is not None:
        accounts.set_disabled(ctx.session, user=user, disabled=changes.disabled)
    if changes.password is not None:
        accounts.set_password(ctx.session, user=user, password=changes.password)
    ctx.audit(AuditAction.USER_CHANGE, change="update", username=user.username,
              password_reset=changes.password is not None,
              **changes.model_dump(mode="json", exclude_none=True, exclude={"password"}))
    ctx.commit()
    return user


def update_user(ctx: UseCaseContext, *, user_id: int, changes: UserUpdate) -> User:
    """Change role, disable (effective at once for live tokens) or reset the password.

    Raises ``PermissionDeniedError`` unless the actor manages users, ``NotFoundError`` for
    an unknown id, ``ConflictError`` when it would leave no active admin, and
    ``InvalidInputError`` for a short password.
    """
    ctx.require(Permission.MANAGE_USERS)
    return _apply(ctx, accounts.get_user_by_id_or_raise(ctx.session, user_id=user_id), changes)


def update_user_named(ctx: UseCaseContext, *, username: str, changes: UserUpdate) -> User:
    """``update_user`` for a username (case-insensitive); raises the same errors."""
    ctx.require(Permission.MANAGE_USERS)
    return _apply(ctx, accounts.get_user_or_raise(ctx.session, username=username), changes)


__all__ = [
    "create_first_admin",
    "create_user",
    "has_admin",
    "list_users",
    "update_user",
    "update_user_named",
]
