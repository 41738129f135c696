"""Routes for cases: the user's own and shared cases, clips, shares, exports, custody.

Each handler parses, calls one use case (``search_api.usecases.cases|exports|verify``)
and returns its ``*Public`` model. A case the user may not see is a 404, like a missing
one; the permission each route declares is checked before its body is read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from search_api.deps import MAX_DB_ID, DbId, UseCaseDep, requires
from search_api.routes.verify import receive_upload
from search_api.usecases import cases, exports
from search_api.usecases.cases import (
    CLIENT_PROVENANCE_KEYS,
    CLIENT_PROVENANCE_REFUSED,
    CaseDetailPublic,
    CasePublic,
    ClientProvenanceError,
    ClipPublic,
    CustodyPublic,
)
from search_api.usecases.exports import ExportJobPublic
from search_api.usecases.verify import VerificationPublic, receive_bundle
from storage.permissions import Permission

router = APIRouter(tags=["cases"])


class CaseCreate(BaseModel):
    number: str = Field(max_length=64)
    title: str
    legal_basis: str


class ClipCreate(BaseModel):
    """A camera's time range; from a search, also the search and the moment's frame.

    The server copies the provenance from its audit record of that search; a body that
    carries provenance of its own (``search_provenance``, ``score``, ...) is refused with
    ``ClientProvenanceError`` (422), and any other unknown field with a 422 too.
    """

    model_config = ConfigDict(extra="forbid")

    camera_id: str
    start_utc: datetime
    end_utc: datetime
    note: str = ""
    search_id: int | None = Field(default=None, ge=1, le=MAX_DB_ID, description=(
        "The search the clip was taken from: its answer's search_id"))
    frame_id: int | None = Field(default=None, ge=1, le=MAX_DB_ID, description=(
        "The moment's best_frame_id in that search's answer"))

    @model_validator(mode="before")
    @classmethod
    def _refuse_client_provenance(cls, data: Any) -> Any:
        if isinstance(data, dict) and CLIENT_PROVENANCE_KEYS & data.keys():
            # an OkoError, not a ValueError: it passes through pydantic to the 422 handler
            raise ClientProvenanceError(CLIENT_PROVENANCE_REFUSED)
        return data


class ShareCreate(BaseModel):
    username: str


class ExportCreate(BaseModel):
    """Options of a new export; the body may be left out."""

    model_config = ConfigDict(extra="forbid")

    no_timestamp: bool = Field(default=False, description=(
        "Export without the TSA's trusted timestamp (recorded in the bundle); otherwise a "
        "configured TSA that cannot be reached fails the export"))
    lang: str = Field(default="uk", max_length=8, description=(
        "The report's language: uk (Ukrainian, the default) or en (English); another "
        "value is refused with 422 unsupported_language"))


class TransferCreate(BaseModel):
    recipient: str
    export_id: int = Field(ge=1, le=MAX_DB_ID)
    note: str = ""


def _requires(permission: Permission) -> list[Any]:
    return [Depends(requires(permission))]


@router.get("/cases", response_model=list[CasePublic],
            dependencies=_requires(Permission.READ_CASES))
def read_cases(ctx: UseCaseDep) -> list[CasePublic]:
    return cases.list_cases(ctx)


@router.post("/cases", response_model=CasePublic, status_code=status.HTTP_201_CREATED,
             dependencies=_requires(Permission.MANAGE_CASES))
def create_case_route(body: CaseCreate, ctx: UseCaseDep) -> CasePublic:
    return cases.create_case(ctx, number=body.number, title=body.title,
                             legal_basis=body.legal_basis)


@router.get("/cases/{case_id}", response_model=CaseDetailPublic)
def read_case(case_id: DbId, ctx: UseCaseDep) -> CaseDetailPublic:
    return cases.read_case(ctx, case_id=case_id)


@router.post("/cases/{case_id}/clips", response_model=ClipPublic,
             status_code=status.HTTP_201_CREATED,
             dependencies=_requires(Permission.MANAGE_CASES))
def add_clip_route(case_id: DbId, body: ClipCreate, ctx: UseCaseDep) -> ClipPublic:
    return cases.add_clip(ctx, case_id=case_id, camera_id=body.camera_id,
                          start_utc=body.start_utc, end_utc=body.end_utc, note=body.note,
                          search_id=body.search_id, frame_id=body.frame_id)


@router.post("/cases/{case_id}/shares", response_model=CasePublic,
             dependencies=_requires(Permission.MANAGE_CASES))
def share_case_route(case_id: DbId, body: ShareCreate, ctx: UseCaseDep) -> CasePublic:
    return cases.share_case(ctx, case_id=case_id, username=body.username).case


@router.post("/cases/{case_id}/exports", response_model=ExportJobPublic,
             status_code=status.HTTP_202_ACCEPTED, dependencies=_requires(Permission.EXPORT))
def start_export(case_id: DbId, ctx: UseCaseDep,
                 body: ExportCreate | None = None) -> ExportJobPublic:
    options = body or ExportCreate()
    return exports.request_export(ctx, case_id=case_id, no_timestamp=options.no_timestamp,
                                  lang=options.lang)


@router.post("/cases/{case_id}/exports/{export_id}/approve", response_model=ExportJobPublic,
             dependencies=_requires(Permission.APPROVE_EXPORT))
def approve_export_route(case_id: DbId, export_id: DbId, ctx: UseCaseDep) -> ExportJobPublic:
    return exports.approve_export(ctx, case_id=case_id, export_id=export_id)


@router.get("/cases/{case_id}/exports/{export_id}", response_model=ExportJobPublic)
def read_export(case_id: DbId, export_id: DbId, ctx: UseCaseDep) -> ExportJobPublic:
    return exports.read_export(ctx, case_id=case_id, export_id=export_id)


@router.get("/cases/{case_id}/exports/{export_id}/download", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}})
def download_export(case_id: DbId, export_id: DbId, ctx: UseCaseDep) -> FileResponse:
    download = exports.download_export(ctx, case_id=case_id, export_id=export_id)
    return FileResponse(download.path, media_type="application/zip",
                        filename=download.path.name)


@router.post("/cases/{case_id}/transfers", response_model=CustodyPublic,
             status_code=status.HTTP_201_CREATED, dependencies=_requires(Permission.EXPORT))
def transfer_route(case_id: DbId, body: TransferCreate, ctx: UseCaseDep) -> CustodyPublic:
    return exports.transfer_case(ctx, case_id=case_id, recipient=body.recipient,
                                 export_id=body.export_id, note=body.note)


@router.post("/cases/{case_id}/receipts", response_model=VerificationPublic,
             status_code=status.HTTP_201_CREATED,
             dependencies=_requires(Permission.RECEIVE_BUNDLE))
def receipt_route(case_id: DbId, ctx: UseCaseDep,
                  bundle: Annotated[UploadFile, File()]) -> VerificationPublic:
    """Verify the received bundle against this installation's certificates; log receipt."""
    cases.get_visible_case(ctx, case_id)  # a 404 before the upload is read
    with receive_upload(bundle, settings=ctx.settings) as (path, sha256):
        receipt = receive_bundle(ctx, case_id=case_id, bundle=path, bundle_sha256=sha256)
    return receipt.verification


__all__ = ["router"]
