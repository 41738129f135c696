"""User management (admins only): list, create, change role, disable or re-enable."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, status

from search_api.accounts import (
    create_user,
    get_user_by_id_or_raise,
    list_users,
    set_disabled,
    set_password,
    set_role,
)
from search_api.audit import AuditAction, record
from search_api.deps import CurrentUser, DbId, SessionDep, requires
from search_api.policy import Permission
from storage.models.access import User, UserCreate, UserPublic, UserUpdate

router = APIRouter(prefix="/users", tags=["users"],
                   dependencies=[Depends(requires(Permission.MANAGE_USERS))])


@router.get("", response_model=list[UserPublic])
def list_all_users(session: SessionDep) -> list[User]:
    return list_users(session)


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def add_user(body: UserCreate, admin: CurrentUser, request: Request,
             session: SessionDep) -> User:
    user = create_user(session, username=body.username, password=body.password,
                       agency=body.agency, role=body.role, full_name=body.full_name)
    record(session, request, admin, AuditAction.USER_CHANGE, change="create",
           username=user.username, agency=user.agency, role=user.role.value)
    session.commit()
    return user


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(user_id: DbId, body: UserUpdate, admin: CurrentUser, request: Request,
                session: SessionDep) -> User:
    """Change role, disable (effective at once for live tokens) or reset the password."""
    user = get_user_by_id_or_raise(session, user_id=user_id)
    if body.role is not None:
        set_role(session, user=user, role=body.role)
    if body.disabled is not None:
        set_disabled(session, user=user, disabled=body.disabled)
    if body.password is not None:
        set_password(session, user=user, password=body.password)
    changes = body.model_dump(exclude_none=True, exclude={"password"})
    record(session, request, admin, AuditAction.USER_CHANGE, change="update",
           username=user.username, password_reset=body.password is not None, **changes)
    session.commit()
    return user
