"""Routes for cameras: list and read the cameras a user may see, register new ones (one,
or a CSV file of them: all or none)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile, status

from search_api.deps import UseCaseDep, requires
from search_api.routes.verify import receive_upload
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


@router.post("/cameras/import", response_model=list[CameraPublic],
             status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(requires(Permission.MANAGE_CAMERAS))])
def import_cameras_csv(ctx: UseCaseDep, file: Annotated[UploadFile, File(description=(
        "CSV with the columns id,name,district,latitude,longitude,agency,timezone "
        "and optionally allowed_agencies (separated by ;)"))],
        ) -> list[CameraPublic]:
    """Register every camera of an uploaded CSV, or none (the first bad row is named)."""
    with receive_upload(file, settings=ctx.settings) as (path, _sha256):
        return [CameraPublic.of(c) for c in usecases.import_cameras(ctx, path=path)]
