"""Routes for cameras: list and read the cameras a user may see, register new ones."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request, status

from search_api.audit import AuditAction, record
from search_api.deps import CurrentUser, SessionDep, requires
from search_api.policy import Permission, get_visible_camera_or_404, visible_camera_ids
from storage.cameras import CameraCreate, add_camera, list_cameras
from storage.models.media import CameraBase

router = APIRouter(tags=["cameras"])


class CameraPublic(CameraBase):
    """A camera as the API shows it."""

    allowed_agencies: list[str]
    created_at: datetime


@router.get("/cameras", response_model=list[CameraPublic],
            dependencies=[Depends(requires(Permission.LIST_CAMERAS))])
def read_cameras(session: SessionDep, user: CurrentUser) -> list[CameraPublic]:
    visible = visible_camera_ids(session, user)
    return [CameraPublic.model_validate(c, from_attributes=True)
            for c in list_cameras(session) if c.id in visible]


@router.get("/cameras/{camera_id}", response_model=CameraPublic,
            dependencies=[Depends(requires(Permission.LIST_CAMERAS))])
def read_camera(camera_id: str, session: SessionDep, user: CurrentUser) -> CameraPublic:
    camera = get_visible_camera_or_404(session, user, camera_id)
    return CameraPublic.model_validate(camera, from_attributes=True)


@router.post("/cameras", response_model=CameraPublic, status_code=status.HTTP_201_CREATED,
             dependencies=[Depends(requires(Permission.MANAGE_CAMERAS))])
def create_camera(body: CameraCreate, session: SessionDep, user: CurrentUser,
                  request: Request) -> CameraPublic:
    camera = add_camera(session, camera=body)
    record(session, request, user, AuditAction.CAMERA_CHANGE, change="create",
           camera_id=camera.id, owner=camera.agency, allowed_agencies=camera.allowed_agencies)
    session.commit()
    return CameraPublic.model_validate(camera, from_attributes=True)
