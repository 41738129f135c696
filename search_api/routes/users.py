"""User management (admins only): list, create, change role, disable or re-enable."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from search_api.deps import DbId, UseCaseDep, requires
from search_api.usecases import users as usecases
from storage.models.access import User, UserCreate, UserPublic, UserUpdate
from storage.permissions import Permission

router = APIRouter(prefix="/users", tags=["users"],
                   dependencies=[Depends(requires(Permission.MANAGE_USERS))])


@router.get("", response_model=list[UserPublic])
def list_all_users(ctx: UseCaseDep) -> list[User]:
    return usecases.list_users(ctx)


@router.post("", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
def add_user(body: UserCreate, ctx: UseCaseDep) -> User:
    return usecases.create_user(ctx, new=body)


@router.patch("/{user_id}", response_model=UserPublic)
def update_user(user_id: DbId, body: UserUpdate, ctx: UseCaseDep) -> User:
    """Change role, disable (effective at once for live tokens) or reset the password."""
    return usecases.update_user(ctx, user_id=user_id, changes=body)
