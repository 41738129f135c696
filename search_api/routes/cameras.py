"""Routes for cameras: list and read the cameras a user may see, register new ones."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from search_api.deps import UseCaseDep, requires
from search_api.usecases import cameras as usecases
from storage.cameras import CameraCreate, CameraPublic
from storage.permissions import Permission

router = APIRouter(tags=["cameras"])


@router.get("/cameras", response_model=list[CameraPublic],
            dependencies=[Depends(requires(Permission.LIST_CAMERAS))])
def read_cameras(ctx: UseCaseDep) -> list[CameraPublic]:
    return [CameraPublic.of(c) for c in usecases.list_visible_cameras(ctx)]


@router.get("/cameras/{camera_id}", response_model=CameraPublic,
            dependencies=[Depends(requires(Permission.LIST_CAMERAS))])
def read_camera(camera_id: str, ctx: UseCaseDep) -> CameraPublic:
    return CameraPublic.of(usecases.read_camera(ctx, camera_id=camera_id))


@router.post("/cameras", response_model=CameraPublic, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(requires(Permission.MANAGE_CAMERAS))])
def create_camera(body: CameraCreate, ctx: UseCaseDep) -> CameraPublic:
    return CameraPublic.of(usecases.register_camera(ctx, camera=body))
