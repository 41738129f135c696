"""Passwords (argon2), signed bearer/session tokens (JWT), login rate limits, CSRF.

Tokens are HS256 JWTs signed with a per-installation secret kept in the data dir
(``keys/token-secret``), never in the database. A token names the user by id; every
request reloads the user, so disabling an account takes effect at once, and logout
revokes the token's ``jti`` until it would have expired anyway.
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
from sqlalchemy import func
from sqlmodel import Session, col, select

from storage.errors import AuthenticationError, OkoError, PermissionDeniedError
from storage.models.access import LoginAttempt, RevokedToken, User
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
    """Too many failed logins for a user or from an address."""

    http_status = 429


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
    claims: dict[str, Any] = {"sub": str(user.id), "jti": jti, "iat": now, "exp": expires_at}
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
    """The live user a token names; refuses revoked tokens and disabled accounts."""
    claims = decode_token(token, secret)
    if session.get(RevokedToken, claims["jti"]) is not None:
        raise AuthenticationError("This session was signed out; sign in again.")
    user = session.get(User, int(claims["sub"])) if str(claims["sub"]).isdigit() else None
    if user is None:
        raise AuthenticationError("Your session has expired or is invalid; sign in again.")
    if user.disabled:
        raise AuthenticationError("This account is disabled.")
    return user, claims


def check_csrf(*, claims: dict[str, Any], header_value: str | None) -> None:
    """Cookie sessions must echo their CSRF token in a header on unsafe requests."""
    expected = claims.get("csrf")
    if not expected or not header_value or not hmac.compare_digest(expected, header_value):
        raise PermissionDeniedError(
            f"Missing or wrong {CSRF_HEADER} header; reload the page and try again.")


def revoke_token(session: Session, *, claims: dict[str, Any]) -> None:
    """Ends a session before it expires; flushes, the caller commits."""
    expires_at = datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo)
    if session.get(RevokedToken, claims["jti"]) is None:
        session.add(RevokedToken(jti=claims["jti"], expires_at=expires_at))
        session.flush()


@dataclass(frozen=True)
class LoginLimits:
    window_minutes: int = 15
    max_failures_per_user: int = 5
    max_failures_per_ip: int = 20


def _recent_failures(session: Session, since: datetime, *conditions: Any) -> int:
    query = select(func.count()).select_from(LoginAttempt).where(
        col(LoginAttempt.succeeded).is_(False), col(LoginAttempt.attempted_at) >= since,
        *conditions)
    return int(session.exec(query).one())


def authenticate_password(session: Session, *, username: str, password: str, ip: str,
                          limits: LoginLimits) -> User:
    """The user these credentials name; every try is recorded for the rate limits.

    Raises ``RateLimitedError`` (429) when the user or the address has too many recent
    failures, and ``AuthenticationError`` (401) for a wrong name, password or a disabled
    account. Flushes the attempt; the caller commits (also on failure).
    """
    username = username.strip().lower()[:64]
    since = utcnow() - timedelta(minutes=limits.window_minutes)
    too_many = ""
    if _recent_failures(session, since, col(LoginAttempt.username) == username) \
            >= limits.max_failures_per_user:
        too_many = "for this user"
    elif _recent_failures(session, since, col(LoginAttempt.ip) == ip) \
            >= limits.max_failures_per_ip:
        too_many = "from this address"
    attempt = LoginAttempt(username=username, ip=ip, succeeded=False)
    session.add(attempt)
    if too_many:
        session.flush()
        raise RateLimitedError(f"Too many failed sign-ins {too_many}; try again in "
                               f"{limits.window_minutes} minutes.")
    user = session.exec(select(User).where(User.username == username)).first()
    valid = verify_password(user.password_hash if user else _dummy_hash(), password)
    if user is None or not valid:
        session.flush()
        raise AuthenticationError("Wrong username or password.")
    if user.disabled:
        session.flush()
        raise AuthenticationError("This account is disabled.")
    attempt.succeeded = True
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
    "authenticate_password",
    "check_csrf",
    "decode_token",
    "hash_password",
    "issue_token",
    "load_token_secret",
    "revoke_token",
    "user_for_token",
    "verify_password",
]
