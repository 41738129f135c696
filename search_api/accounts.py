"""User accounts: create, list, disable, change role, and the first admin made by ``oko init``.

Mutating functions flush and leave the commit to the caller, who records the audit entry
in the same transaction.
"""

from __future__ import annotations

import re

from sqlalchemy import func
from sqlmodel import Session, col, select

from search_api.security import hash_password
from storage.errors import ConflictError, InvalidInputError, NotFoundError
from storage.models.access import Role, User
from storage.types import utcnow

USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
AGENCY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MIN_PASSWORD_LENGTH = 10


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(
            f"Passwords must be at least {MIN_PASSWORD_LENGTH} characters long.")


def create_user(session: Session, *, username: str, password: str, agency: str, role: Role,
                full_name: str = "") -> User:
    """A new, enabled user. Raises ``InvalidInputError`` or ``ConflictError`` (duplicate)."""
    username, agency = username.strip().lower(), agency.strip().lower()
    if not USERNAME_PATTERN.match(username):
        raise InvalidInputError(
            f"Usernames are 2-64 lowercase letters, digits, '.', '_' or '-', not '{username}'.")
    if not AGENCY_PATTERN.match(agency):
        raise InvalidInputError(
            f"Agencies are short lowercase names such as 'police', not '{agency}'.")
    _check_password(password)
    if session.exec(select(User).where(User.username == username)).first() is not None:
        raise ConflictError(f"A user named '{username}' already exists.")
    user = User(username=username, full_name=full_name.strip(), agency=agency, role=role,
                password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def ensure_first_admin(session: Session, *, username: str, password: str,
                       agency: str, full_name: str = "") -> User | None:
    """Create the first admin; None (and nothing written) when an admin already exists."""
    if session.exec(select(User).where(User.role == Role.ADMIN)).first() is not None:
        return None
    return create_user(session, username=username, password=password, agency=agency,
                       role=Role.ADMIN, full_name=full_name)


def list_users(session: Session) -> list[User]:
    return list(session.exec(select(User).order_by(col(User.username))).all())


def get_user_or_raise(session: Session, *, username: str) -> User:
    user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFoundError(f"User '{username}' does not exist.")
    return user


def get_user_by_id_or_raise(session: Session, *, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFoundError(f"User #{user_id} does not exist.")
    return user


def _refuse_losing_last_admin(session: Session, user: User) -> None:
    if user.role != Role.ADMIN or user.disabled:
        return
    active_admins = session.exec(select(func.count()).select_from(User).where(
        User.role == Role.ADMIN, col(User.disabled).is_(False))).one()
    if active_admins <= 1:
        raise ConflictError("This is the last active admin; create another admin first.")


def set_disabled(session: Session, *, user: User, disabled: bool) -> User:
    """Disable (or re-enable) a user; a disabled user's tokens stop working at once.

    Disabling also ends every token issued so far, so re-enabling the account later
    does not bring them back.
    """
    if disabled:
        _refuse_losing_last_admin(session, user)
        user.tokens_valid_after = utcnow()
    user.disabled = disabled
    session.add(user)
    session.flush()
    return user


def set_role(session: Session, *, user: User, role: Role) -> User:
    if role != Role.ADMIN:
        _refuse_losing_last_admin(session, user)
    user.role = role
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, *, user: User, password: str) -> User:
    """A new password; every token issued before it stops working. Raises
    ``InvalidInputError`` for a short password."""
    _check_password(password)
    user.password_hash = hash_password(password)
    user.tokens_valid_after = utcnow()
    session.add(user)
    session.flush()
    return user


__all__ = [
    "create_user",
    "ensure_first_admin",
    "get_user_by_id_or_raise",
    "get_user_or_raise",
    "list_users",
    "set_disabled",
    "set_password",
    "set_role",
]
