"""Routes for cameras: list and read the cameras a user may see, register new ones (one,
or a CSV file of them: all or none), set a camera's stream URL or retention period and read
its recording status and its recording gaps in a time window. A stream URL goes in but
only ever comes out redacted."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile, status
from pydantic import BaseModel, Field

from search_api.deps import UseCaseDep, requires
from search_api.routes.verify import receive_upload
from search_api.usecases import cameras as usecases
from search_api.usecases import recording, retention
from search_api.usecases.recording import CameraStatus, GapPublic
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


class StreamUrlUpdate(BaseModel):
    """The stream the recorder reads this camera from; null stops recording it."""

    stream_url: str | None = Field(default=None, max_length=2048)


@router.put("/cameras/{camera_id}/stream", response_model=CameraStatus,
            dependencies=[Depends(requires(Permission.MANAGE_CAMERAS))])
def update_stream_url(camera_id: str, body: StreamUrlUpdate, ctx: UseCaseDep) -> CameraStatus:
    """Set the stream URL; the answer is the camera's status, with the URL redacted."""
    usecases.set_stream_url(ctx, camera_id=camera_id, stream_url=body.stream_url)
    return recording.camera_status(ctx, camera_id=camera_id)


class RetentionUpdate(BaseModel):
    """How long this camera's footage is kept after recording; null: the default."""

    retention_days: int | None = Field(default=None, description="1 to 36500; null: "
                                       "OKO_RETENTION_DAYS (empty: kept forever)")


@router.put("/cameras/{camera_id}/retention", response_model=CameraPublic,
            dependencies=[Depends(requires(Permission.MANAGE_CAMERAS))])
def update_retention(camera_id: str, body: RetentionUpdate, ctx: UseCaseDep) -> CameraPublic:
    """Set the camera's retention period; footage under evidence lock is always kept."""
    return CameraPublic.of(retention.set_retention_days(ctx, camera_id=camera_id,
                                                        days=body.retention_days))


@router.get("/cameras/{camera_id}/status", response_model=CameraStatus,
            dependencies=[Depends(requires(Permission.LIST_CAMERAS))])
def read_camera_status(camera_id: str, ctx: UseCaseDep) -> CameraStatus:
    """State, last file time, ingest lag, bitrate, fps and the gaps of the last 24 h."""
    return recording.camera_status(ctx, camera_id=camera_id)


@router.get("/cameras/{camera_id}/gaps", response_model=list[GapPublic],
            dependencies=[Depends(requires(Permission.LIST_CAMERAS))])
def read_camera_gaps(camera_id: str, ctx: UseCaseDep,
                     start: Annotated[datetime, Query(description="ISO 8601, with zone")],
                     end: Annotated[datetime, Query(description="ISO 8601, with zone")],
                     ) -> list[GapPublic]:
    """The camera's recording gaps overlapping start..end (at most 31 days), oldest first."""
    return recording.camera_gaps(ctx, camera_id=camera_id, start=start, end=end)
