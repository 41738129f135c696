"""Passwords (argon2), signed bearer/session tokens (JWT), login rate limits, CSRF.

Tokens are HS256 JWTs signed with a per-installation secret kept in the data dir
(``keys/token-secret``), never in the database. A token names the user by id; every
request reloads the user, so disabling an account takes effect at once, a password
reset or a disable ends every token issued before it (``User.tokens_valid_after``), and
logout revokes the token's ``jti`` until it would have expired anyway.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, text
from sqlmodel import Session, col, select

from storage.errors import AuthenticationError, OkoError, PermissionDeniedError
from storage.models.access import LoginAttempt, LoginRefusal, RevokedToken, User
from storage.secret_files import load_or_create_secret
from storage.types import utcnow

TOKEN_SECRET_FILENAME = "token-secret"  # noqa: S105 (a file name)
TOKEN_ALGORITHM = "HS256"  # noqa: S105 (an algorithm name)
SESSION_COOKIE = "oko_session"
CSRF_COOKIE = "oko_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_hasher = PasswordHasher()  # argon2id with the RFC 9106 low-memory profile


class RateLimitedError(OkoError):
    """Too many failed logins for a user or from an address.

    ``first_in_window``: the first refusal of its limit and subject in this window (the
    one that is audited; later ones are only counted).
    """

    http_status = 429

    def __init__(self, message: str, *, first_in_window: bool = True) -> None:
        super().__init__(message)
        self.first_in_window = first_in_window


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so both paths cost the same time."""
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def load_token_secret(keys_dir: Path) -> bytes:
    """The installation's token-signing secret, created on first use."""
    return load_or_create_secret(keys_dir / TOKEN_SECRET_FILENAME)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime
    csrf_token: str | None


def issue_token(*, user: User, secret: bytes, minutes: int,
                with_csrf: bool = False) -> IssuedToken:
    """A token for ``user``; cookie sessions also carry the CSRF token they must echo."""
    now = utcnow()
    expires_at = now + timedelta(minutes=minutes)
    jti = secrets.token_hex(16)
    csrf = secrets.token_urlsafe(32) if with_csrf else None
    # iat to the microsecond, so a token issued just after a password reset still counts
    claims: dict[str, Any] = {"sub": str(user.id), "jti": jti,
                              "iat": round(now.timestamp(), 6), "exp": expires_at}
    if csrf is not None:
        claims["csrf"] = csrf
    return IssuedToken(jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM), jti, expires_at,
                       csrf)


def decode_token(token: str, secret: bytes) -> dict[str, Any]:
    """The token's claims; raises ``AuthenticationError`` if expired, forged or malformed."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[TOKEN_ALGORITHM],
            options={"require": ["sub", "jti", "exp", "iat"]})
    except jwt.PyJWTError as exc:
        raise AuthenticationError("Your session has expired or is invalid; sign in again.") \
            from exc
    return claims


def user_for_token(session: Session, *, token: str, secret: bytes) -> tuple[User, dict[str, Any]]:
    """The live user a token names; refuses revoked tokens, disabled accounts and tokens
    issued before the account's ``tokens_valid_after`` (a password reset, a disable)."""
    claims = decode_token(token, secret)
    if session.get(RevokedToken, claims["jti"]) is not None:
        raise AuthenticationError("This session was signed out; sign in again.")
    user = session.get(User, int(claims["sub"])) if str(claims["sub"]).isdigit() else None
    if user is None:
        raise AuthenticationError("Your session has expired or is invalid; sign in again.")
    if user.disabled:
        raise AuthenticationError("This account is disabled.")
    if user.tokens_valid_after is not None \
            and float(claims["iat"]) < user.tokens_valid_after.timestamp():
        raise AuthenticationError(
            "This session ended when the account's password was reset or it was disabled;"
            " sign in again.")
    return user, claims


def check_csrf(*, claims: dict[str, Any], header_value: str | None) -> None:
    """Cookie sessions must echo their CSRF token in a header on unsafe requests.

    The two are compared as UTF-8 bytes: ``compare_digest`` refuses ``str`` with
    non-ASCII characters, and a header may carry any byte (Starlette reads it as Latin-1).
    """
    expected = claims.get("csrf")
    if (not isinstance(expected, str) or not expected or not header_value
            or not hmac.compare_digest(expected.encode("utf-8", "replace"),
                                       header_value.encode("utf-8", "replace"))):
        raise PermissionDeniedError(
            f"Missing or wrong {CSRF_HEADER} header; reload the page and try again.")


def revoke_token(session: Session, *, claims: dict[str, Any]) -> None:
    """Ends a session before it expires; flushes, the caller commits."""
    expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo)
    if session.get(RevokedToken, claims["jti"]) is None:
        session.add(RevokedToken(jti=claims["jti"], expires_at=expires_at))
        session.flush()


MAX_LOGIN_NAME_CHARS = 64


@dataclass(frozen=True)
class LoginLimits:
    """Failures within ``window_minutes`` after which sign-ins wait (HTTP 429).

    A user is locked out from one address after ``max_failures_per_user``, and from
    everywhere only after ``max_failures_per_account``, so a stranger who knows a
    username cannot lock its owner out from the owner's own address.
    """

    window_minutes: int = 15
    max_failures_per_user: int = 5  # for one user from one address
    max_failures_per_ip: int = 20
    max_failures_per_account: int = 50  # for one user from every address together


def login_name(typed: str) -> str:
    """The name a sign-in is counted and audited under: trimmed, lowercase, printable, short."""
    name = "".join(c if c.isprintable() else "?" for c in typed.strip().lower())
    return name[:MAX_LOGIN_NAME_CHARS]


def _serialise_logins(session: Session, *keys: str) -> None:
    """Hold sign-ins that count against the same user or address until this one commits.

    PostgreSQL: transaction-scoped advisory locks, always taken in the same order, so
    two sign-ins never wait for each other in a cycle. SQLite: the write lock, taken
    before the first read (``BEGIN IMMEDIATE``), so the counts below cannot go stale.
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        for key in sorted(set(keys)):
            session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                            {"key": key})
    elif connection.dialect.name == "sqlite":
        dbapi_connection: Any = connection.connection.dbapi_connection
        if dbapi_connection is not None and not dbapi_connection.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def prune_login_records(session: Session, *, window_minutes: int,
                        now: datetime | None = None) -> int:
    """Delete login attempts and refusals older than the window, and revoked tokens that
    have expired anyway; returns how many rows went. Flushes, the caller commits.

    Cheap enough for every sign-in (indexed ranges, usually empty); on PostgreSQL only
    one sign-in at a time prunes, the others skip it.
    """
    if session.connection().dialect.name == "postgresql" and not session.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended('oko-login:prune', 0))")
    ).scalar():
        return 0
    now = now or utcnow()
    cutoff = now - timedelta(minutes=window_minutes)
    deleted = 0
    for statement in (delete(LoginAttempt).where(col(LoginAttempt.attempted_at) < cutoff),
                      delete(LoginRefusal).where(col(LoginRefusal.first_at) < cutoff),
                      delete(RevokedToken).where(col(RevokedToken.expires_at) < now)):
        result: Any = session.execute(statement)
        deleted += int(result.rowcount or 0)
    session.flush()
    return deleted


def _recent_failures(session: Session, since: datetime, *conditions: Any) -> int:
    query = select(func.count()).select_from(LoginAttempt).where(
        col(LoginAttempt.succeeded).is_(False), col(LoginAttempt.attempted_at) >= since,
        *conditions)
    return int(session.exec(query).one())


def _limit_reached(session: Session, *, username: str, ip: str, since: datetime,
                   limits: LoginLimits) -> tuple[str, str, str] | None:
    """The limit this try would break, as (scope, subject, sentence), or None."""
    wait = f"try again in {limits.window_minutes} minutes."
    same_user = col(LoginAttempt.username) == username
    if _recent_failures(session, since, same_user, col(LoginAttempt.ip) == ip) \
            >= limits.max_failures_per_user:
        return ("user_address", f"{username}|{ip}",
                f"Too many failed sign-ins for this user from this address; {wait}")
    if _recent_failures(session, since, same_user) >= limits.max_failures_per_account:
        return "account", username, f"Too many failed sign-ins for this user; {wait}"
    if _recent_failures(session, since, col(LoginAttempt.ip) == ip) \
            >= limits.max_failures_per_ip:
        return "address", ip, f"Too many failed sign-ins from this address; {wait}"
    return None


def _count_refusal(session: Session, *, scope: str, subject: str, since: datetime,
                   now: datetime) -> bool:
    """Count one refused try; True when it is the first of its window (to be audited)."""
    current = session.exec(
        select(LoginRefusal).where(LoginRefusal.scope == scope, LoginRefusal.subject == subject,
                                   col(LoginRefusal.first_at) >= since)
        .order_by(col(LoginRefusal.id).desc())).first()
    if current is not None:
        current.refused += 1
        current.last_at = now
        session.add(current)
        session.flush()
        return False
    session.add(LoginRefusal(scope=scope, subject=subject, first_at=now, last_at=now))
    session.flush()
    return True


def reserve_login_attempt(session: Session, *, username: str, ip: str,
                          limits: LoginLimits) -> LoginAttempt:
    """Count a try against the limits, atomically, before its password is checked.

    The try is recorded as failed; ``check_login_password`` marks it succeeded. The
    caller commits at once (which ends the lock) and checks the password afterwards, so
    parallel tries for one user or address count against each other and the slow hash
    runs outside the lock. Old rows are pruned on the way.

    Raises ``RateLimitedError`` (429) when a limit is reached; nothing but a per-limit
    counter is written then, and ``first_in_window`` says whether to audit it.
    """
    username = login_name(username)
    now = utcnow()
    since = now - timedelta(minutes=limits.window_minutes)
    _serialise_logins(session, f"oko-login:user:{username}", f"oko-login:ip:{ip}")
    prune_login_records(session, window_minutes=limits.window_minutes, now=now)
    reached = _limit_reached(session, username=username, ip=ip, since=since, limits=limits)
    if reached is not None:
        scope, subject, sentence = reached
        first = _count_refusal(session, scope=scope, subject=subject, since=since, now=now)
        raise RateLimitedError(sentence, first_in_window=first)
    attempt = LoginAttempt(username=username, ip=ip, attempted_at=now, succeeded=False)
    session.add(attempt)
    session.flush()
    return attempt


def check_login_password(session: Session, *, attempt: LoginAttempt, password: str) -> User:
    """The user a reserved try names, if the password is right; marks the try succeeded.

    Raises ``AuthenticationError`` (401) for a wrong name or password or a disabled
    account. The caller has committed the reserved try; this ends the read before the
    slow hash check, so no database connection is held while hashing. Flushes; the caller
    commits (also on failure).
    """
    user = session.exec(select(User).where(User.username == attempt.username)).first()
    session.commit()  # nothing pending: only hands the connection back to the pool
    valid = verify_password(user.password_hash if user else _dummy_hash(), password)
    if user is None or not valid:
        raise AuthenticationError("Wrong username or password.")
    if user.disabled:
        raise AuthenticationError("This account is disabled.")
    attempt.succeeded = True
    session.add(attempt)
    session.flush()
    return user


__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "IssuedToken",
    "LoginLimits",
    "RateLimitedError",
    "check_csrf",
    "check_login_password",
    "decode_token",
    "hash_password",
    "issue_token",
    "load_token_secret",
    "login_name",
    "prune_login_records",
    "reserve_login_attempt",
    "revoke_token",
    "user_for_token",
    "verify_password",
]
