"""Sign-in (bearer token or cookie session), sign-out and "who am I".

``public_router`` holds the only routes reachable without a user: it is the declared
exemption from the app's deny-by-default guard (see ``search_api.routes``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, Field
from sqlmodel import Session

from search_api.audit import AuditAction, client_ip, record
from search_api.deps import CurrentUser, SessionDep, SettingsDep, get_token_secret
from search_api.policy import ROLE_PERMISSIONS
from search_api.security import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    LoginLimits,
    RateLimitedError,
    authenticate_password,
    issue_token,
    revoke_token,
)
from storage.errors import AuthenticationError
from storage.models.access import User, UserPublic
from storage.settings import Settings

public_router = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(prefix="/auth", tags=["auth"])
TokenSecret = Annotated[bytes, Depends(get_token_secret)]


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenPublic(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth2 token type)
    expires_at: datetime


class SessionPublic(BaseModel):
    """A cookie session: send ``csrf_token`` as X-CSRF-Token on unsafe requests."""

    user: UserPublic
    csrf_token: str
    expires_at: datetime


class MePublic(UserPublic):
    permissions: list[str]


class SignedOutPublic(BaseModel):
    signed_out: bool = True


def _sign_in(session: Session, request: Request, settings: Settings, *, username: str,
             password: str, method: str) -> User:
    """Checks the password under the rate limits; audits success and failure alike."""
    limits = LoginLimits(settings.login_window_minutes, settings.login_max_failures_per_user,
                         settings.login_max_failures_per_ip)
    try:
        user = authenticate_password(session, username=username, password=password,
                                     ip=client_ip(request), limits=limits)
    except (AuthenticationError, RateLimitedError) as exc:
        record(session, request, username.strip().lower()[:64], AuditAction.LOGIN_FAILED,
               method=method, reason=exc.message)
        session.commit()
        raise
    record(session, request, user, AuditAction.LOGIN, method=method)
    session.commit()
    return user


@public_router.post("/token", response_model=TokenPublic)
def issue_bearer_token(form: Annotated[OAuth2PasswordRequestForm, Depends()],
                       request: Request, session: SessionDep, settings: SettingsDep,
                       secret: TokenSecret) -> TokenPublic:
    """OAuth2 password flow: a bearer token for API clients."""
    user = _sign_in(session, request, settings, username=form.username,
                    password=form.password, method="token")
    issued = issue_token(user=user, secret=secret, minutes=settings.token_minutes)
    return TokenPublic(access_token=issued.token, expires_at=issued.expires_at)


@public_router.post("/login", response_model=SessionPublic)
def log_in(body: LoginRequest, request: Request, response: Response, session: SessionDep,
           settings: SettingsDep, secret: TokenSecret) -> SessionPublic:
    """Web UI sign-in: a Secure, HttpOnly, SameSite=Strict session cookie plus a CSRF token."""
    user = _sign_in(session, request, settings, username=body.username,
                    password=body.password, method="cookie")
    issued = issue_token(user=user, secret=secret, minutes=settings.token_minutes,
                         with_csrf=True)
    assert issued.csrf_token is not None
    max_age = settings.token_minutes * 60
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=max_age, path="/",
                        secure=True, httponly=True, samesite="strict")
    response.set_cookie(CSRF_COOKIE, issued.csrf_token, max_age=max_age, path="/",
                        secure=True, httponly=False, samesite="strict")
    return SessionPublic(user=UserPublic.model_validate(user, from_attributes=True),
                         csrf_token=issued.csrf_token, expires_at=issued.expires_at)


@router.post("/logout", response_model=SignedOutPublic)
def log_out(user: CurrentUser, request: Request, response: Response,
            session: SessionDep) -> SignedOutPublic:
    """Revokes the presented token at once and clears the session cookies."""
    claims = getattr(request.state, "token_claims", None)
    if claims is not None:
        revoke_token(session, claims=claims)
    record(session, request, user, AuditAction.LOGOUT)
    session.commit()
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=True, samesite="strict")
    return SignedOutPublic()


@router.get("/me", response_model=MePublic)
def who_am_i(user: CurrentUser) -> MePublic:
    permissions = sorted(p.value for p in ROLE_PERMISSIONS.get(user.role, frozenset()))
    return MePublic(**UserPublic.model_validate(user, from_attributes=True).model_dump(),
                    permissions=permissions)
