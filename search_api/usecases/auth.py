"""Use cases: sign in, sign out, and who am I.

Signing in first counts the try against the rate limits, atomically, and commits it
(so parallel tries count against each other); then it checks the password, outside any
lock, and writes ``login`` (as the user) or ``login_failed`` (under the name typed, with
the reason, never the password) with the try's outcome. A try refused by a limit writes
no attempt; its ``login_failed`` entry is written once per limit, subject and window,
later refusals are only counted. The adapter sets cookies or returns the token; it never
sees a password check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from search_api.audit import AuditAction
from search_api.security import (
    IssuedToken,
    LoginLimits,
    RateLimitedError,
    check_login_password,
    issue_token,
    reserve_login_attempt,
    revoke_token,
)
from search_api.usecases.context import Actor, UseCaseContext
from storage.errors import AuthenticationError
from storage.models.access import User
from storage.permissions import ROLE_PERMISSIONS

SignInMethod = Literal["token", "cookie"]


@dataclass(frozen=True)
class SignedIn:
    user: User
    token: IssuedToken  # cookie sign-ins also carry the CSRF token to echo


def sign_in(ctx: UseCaseContext, *, username: str, password: str,
            method: SignInMethod) -> SignedIn:
    """Check the password and issue a token (with a CSRF token for ``method="cookie"``).

    ``ctx.actor`` is ``Actor.unauthenticated`` (the name typed, the client's address).
    Raises ``RateLimitedError`` (429) after too many recent failures for the user from
    this address, for the account from everywhere, or from the address; and
    ``AuthenticationError`` (401) for a wrong name or password or a disabled account.
    Each failure is committed before it is raised, and audited (a refusal once a window).
    """
    settings = ctx.settings
    limits = LoginLimits(window_minutes=settings.login_window_minutes,
                         max_failures_per_user=settings.login_max_failures_per_user,
                         max_failures_per_ip=settings.login_max_failures_per_ip,
                         max_failures_per_account=settings.login_max_failures_per_account)
    try:
        attempt = reserve_login_attempt(ctx.session, username=username, ip=ctx.actor.ip,
                                        limits=limits)
    except RateLimitedError as exc:
        if exc.first_in_window:
            ctx.audit(AuditAction.LOGIN_FAILED, method=method, reason=exc.message)
        ctx.commit()
        raise
    ctx.commit()  # the try counts from here on, and the limits' lock is released
    try:
        user = check_login_password(ctx.session, attempt=attempt, password=password)
    except AuthenticationError as exc:
        ctx.audit(AuditAction.LOGIN_FAILED, method=method, reason=exc.message)
        ctx.commit()
        raise
    signed_in = replace(ctx, actor=Actor.of_user(user, ip=ctx.actor.ip))
    signed_in.audit(AuditAction.LOGIN, method=method)
    signed_in.commit()
    token = issue_token(user=user, secret=ctx.state.token_secret(),
                        minutes=settings.token_minutes, with_csrf=method == "cookie")
    return SignedIn(user=user, token=token)


def sign_out(ctx: UseCaseContext, *, claims: dict[str, Any] | None) -> None:
    """Revoke the presented token (``claims``, when there is one) at once and audit it.

    Raises ``PermissionDeniedError`` for the CLI operator, who has no session.
    """
    ctx.require_named_user("Signing out")
    if claims is not None:
        revoke_token(ctx.session, claims=claims)
    ctx.audit(AuditAction.LOGOUT)
    ctx.commit()


@dataclass(frozen=True)
class Identity:
    user: User
    permissions: list[str]  # sorted values of the role's permissions


def who_am_i(ctx: UseCaseContext) -> Identity:
    """The signed-in user and what their role may do.

    Raises ``PermissionDeniedError`` for the CLI operator without ``--as USER``.
    """
    user = ctx.require_named_user("Who am I")
    permissions = sorted(p.value for p in ROLE_PERMISSIONS.get(user.role, frozenset()))
    return Identity(user=user, permissions=permissions)


__all__ = ["Identity", "SignInMethod", "SignedIn", "sign_in", "sign_out", "who_am_i"]
