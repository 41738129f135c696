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

from search_api.deps import SessionDep, StateDep, UseCaseDep, client_ip
from search_api.security import CSRF_COOKIE, SESSION_COOKIE, login_name
from search_api.state import AppState
from search_api.usecases.auth import SignedIn, SignInMethod, sign_in, sign_out
from search_api.usecases.auth import who_am_i as identify
from search_api.usecases.context import Actor, UseCaseContext
from storage.models.access import UserPublic

public_router = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(prefix="/auth", tags=["auth"])


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


def _sign_in(session: Session, state: AppState, request: Request, *, username: str,
             password: str, method: SignInMethod) -> SignedIn:
    """The sign-in use case, acting as the name typed from the client's address."""
    ctx = UseCaseContext(session=session, state=state, actor=Actor.unauthenticated(
        attempted_username=login_name(username), ip=client_ip(request)))
    return sign_in(ctx, username=username, password=password, method=method)


@public_router.post("/token", response_model=TokenPublic)
def issue_bearer_token(form: Annotated[OAuth2PasswordRequestForm, Depends()],
                       request: Request, session: SessionDep, state: StateDep) -> TokenPublic:
    """OAuth2 password flow: a bearer token for API clients."""
    issued = _sign_in(session, state, request, username=form.username,
                      password=form.password, method="token").token
    return TokenPublic(access_token=issued.token, expires_at=issued.expires_at)


@public_router.post("/login", response_model=SessionPublic)
def log_in(body: LoginRequest, request: Request, response: Response, session: SessionDep,
           state: StateDep) -> SessionPublic:
    """Web UI sign-in: a Secure, HttpOnly, SameSite=Strict session cookie plus a CSRF token."""
    signed_in = _sign_in(session, state, request, username=body.username,
                         password=body.password, method="cookie")
    issued = signed_in.token
    assert issued.csrf_token is not None
    max_age = state.settings.token_minutes * 60
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=max_age, path="/",
                        secure=True, httponly=True, samesite="strict")
    response.set_cookie(CSRF_COOKIE, issued.csrf_token, max_age=max_age, path="/",
                        secure=True, httponly=False, samesite="strict")
    return SessionPublic(user=UserPublic.model_validate(signed_in.user, from_attributes=True),
                         csrf_token=issued.csrf_token, expires_at=issued.expires_at)


@router.post("/logout", response_model=SignedOutPublic)
def log_out(ctx: UseCaseDep, request: Request, response: Response) -> SignedOutPublic:
    """Revokes the presented token at once and clears the session cookies."""
    sign_out(ctx, claims=getattr(request.state, "token_claims", None))
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name, path="/", secure=True, samesite="strict")
    return SignedOutPublic()


@router.get("/me", response_model=MePublic)
def who_am_i(ctx: UseCaseDep) -> MePublic:
    identity = identify(ctx)
    return MePublic(**UserPublic.model_validate(identity.user, from_attributes=True).model_dump(),
                    permissions=identity.permissions)
