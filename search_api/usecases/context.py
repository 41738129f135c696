"""Who acts, in which transaction, with which collaborators: what every use case takes.

A use case is one action a person takes (search, add a clip, approve an export). It
receives a ``UseCaseContext``, authorizes through ``search_api.policy`` only, calls the
domain packages, records its audit entry with ``ctx.audit`` and commits once, so the
action and its entry land together. Routes, CLI commands and tasks only build the
context, call one use case and render its answer.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from search_api.audit import AuditAction, record_event
from search_api.policy import (
    get_visible_camera_or_404,
    has_permission,
    require_permission,
    visible_camera_ids,
)
from search_api.state import AppState
from storage.errors import InvalidInputError, PermissionDeniedError
from storage.models.access import AuditEvent, User
from storage.models.media import Camera
from storage.permissions import Permission
from storage.settings import Settings

MAX_ACTOR_CHARS = 64
OPERATOR_ENV = "OKO_OPERATOR"
"""The Oko user the CLI's operator acts as when ``oko --as USER`` is not given."""


class OperatorNotNamedError(InvalidInputError):
    """The CLI's operator acts as nobody, for an action the custody log records."""


def os_account_name() -> str:
    """The account of the process's real uid (the uid number if it has no entry).

    Never ``LOGNAME``/``USER``, which whoever runs the command can set to any name.
    """
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@dataclass(frozen=True)
class Actor:
    """A signed-in user, or the local operator of the CLI (``user`` is then None).

    The operator runs with the data dir's own rights and appears in the audit log as
    ``cli:<os user>`` (the real uid's account, ``os_account_name``); with
    ``oko --as USER`` (or ``OKO_OPERATOR=USER``) the operator acts as that user instead,
    with that user's role. Actions the custody log records need the named user
    (``UseCaseContext.custody_actor``): a court reads who handled the evidence.
    """

    name: str
    agency: str
    ip: str
    user: User | None = None

    @classmethod
    def of_user(cls, user: User, *, ip: str) -> Actor:
        return cls(name=user.username, agency=user.agency, ip=ip, user=user)

    @classmethod
    def local_operator(cls, *, as_user: User | None = None) -> Actor:
        if as_user is not None:
            return cls.of_user(as_user, ip="cli")
        return cls(name=f"cli:{os_account_name()}", agency="", ip="cli")

    @classmethod
    def unauthenticated(cls, *, attempted_username: str, ip: str) -> Actor:
        """Someone trying to sign in: recorded under the name they typed."""
        return cls(name=attempted_username.strip().lower()[:MAX_ACTOR_CHARS], agency="", ip=ip)

    def may(self, permission: Permission) -> bool:
        return self.user is None or has_permission(self.user, permission)


@dataclass
class UseCaseContext:
    """The acting party, its session (one transaction per use case) and the app state."""

    session: Session
    state: AppState
    actor: Actor

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def user(self) -> User | None:
        return self.actor.user

    def require(self, permission: Permission) -> None:
        """Raises ``PermissionDeniedError`` (403) unless the actor's role grants it."""
        require_permission(self.actor.user, permission)

    def require_named_user(self, action: str) -> User:
        """Actions that a person answers for (an approval) need a named Oko user."""
        if self.actor.user is None:
            raise PermissionDeniedError(
                f"{action} needs a named Oko user: run the command with --as USERNAME.")
        return self.actor.user

    def custody_actor(self, action: str) -> str:
        """The name a custody entry records for this action: the user's username.

        Raises ``OperatorNotNamedError`` (exit 2) for the CLI's operator acting as
        nobody; the worker (which acts for the requester) is not asked.
        """
        if self.actor.user is None and self.actor.ip == "cli":
            raise OperatorNotNamedError(
                f"{action} is recorded in the custody log, which names a person: run the "
                f"command with --as USERNAME or set {OPERATOR_ENV}=USERNAME.")
        return self.actor.name

    def visible_camera_ids(self) -> set[str]:
        return visible_camera_ids(self.session, self.actor.user)

    def visible_camera(self, camera_id: str) -> Camera:
        """Raises ``NotFoundError`` for a missing camera and for one the actor may not see."""
        return get_visible_camera_or_404(self.session, self.actor.user, camera_id)

    def audit(self, action: AuditAction, **details: Any) -> AuditEvent:
        """Append the actor's audit entry in this transaction; ``commit`` lands both."""
        return record_event(self.session, state=self.state, actor=self.actor.name,
                            agency=self.actor.agency, ip=self.actor.ip, action=action,
                            details=details)

    def commit(self) -> None:
        self.session.commit()


__all__ = ["OPERATOR_ENV", "Actor", "OperatorNotNamedError", "UseCaseContext",
           "os_account_name"]
