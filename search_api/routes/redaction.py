"""Routes for redacted disclosure copies: propose, review, preview, approve, export.

Thin: each parses, calls one ``search_api.usecases.redaction`` function and returns its
``*Public`` model. Every route needs ``Permission.EXPORT``; the use cases check the
case's visibility and its cameras too (an invisible case is a 404).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from search_api.deps import DbId, UseCaseDep, requires
from search_api.usecases import redaction
from search_api.usecases.exports import ExportJobPublic
from search_api.usecases.redaction import RedactionPublic
from storage.permissions import Permission

router = APIRouter(tags=["redaction"], dependencies=[Depends(requires(Permission.EXPORT))])
CASE = "/cases/{case_id}"
ONE = CASE + "/redactions/{redaction_id}"


class RedactionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clip_number: int = Field(ge=1, le=10_000, description="The clip's number in the case")
    targets: str = Field(default="faces,plates", max_length=40)
    style: Literal["blur", "fill"] = "blur"
    mute_audio: bool = False


class ManualBoxIn(BaseModel):
    x: int = Field(ge=-100_000, le=100_000)
    y: int = Field(ge=-100_000, le=100_000)
    w: int = Field(ge=0, le=100_000)
    h: int = Field(ge=0, le=100_000)
    start_s: float = Field(ge=0, le=86_400)
    end_s: float = Field(ge=0, le=86_400)


class DecisionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["exclude_track", "include_track", "manual_box"]
    track_id: str | None = Field(default=None, max_length=40)
    reason: str = Field(default="", max_length=2000)
    box: ManualBoxIn | None = None


class DisclosureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redact: str = Field(default="faces,plates", max_length=40,
                        description="What to mask: faces, plates or faces,plates")
    lang: str = Field(default="uk", max_length=8, description=(
        "The report's language: uk (Ukrainian, the default) or en (English)"))


@router.get(CASE + "/redactions", response_model=list[RedactionPublic])
def list_redactions(case_id: DbId, ctx: UseCaseDep) -> list[RedactionPublic]:
    return redaction.list_redactions(ctx, case_id=case_id)


@router.post(CASE + "/redactions", response_model=RedactionPublic,
             status_code=status.HTTP_202_ACCEPTED)
def propose(case_id: DbId, body: RedactionCreate, ctx: UseCaseDep) -> RedactionPublic:
    """Queue the detection; poll the redaction until its status is proposed (or failed)."""
    return redaction.propose_redaction(ctx, case_id=case_id, clip_number=body.clip_number,
                                       targets=body.targets, style=body.style,
                                       mute_audio=body.mute_audio)


@router.get(ONE, response_model=RedactionPublic)
def read(case_id: DbId, redaction_id: DbId, ctx: UseCaseDep) -> RedactionPublic:
    return redaction.read_redaction(ctx, case_id=case_id, redaction_id=redaction_id)


@router.post(ONE + "/decisions", response_model=RedactionPublic,
             status_code=status.HTTP_201_CREATED)
def decide(case_id: DbId, redaction_id: DbId, body: DecisionCreate,
           ctx: UseCaseDep) -> RedactionPublic:
    if body.kind == "manual_box":
        box: dict[str, Any] = body.box.model_dump() if body.box else {
            "x": 0, "y": 0, "w": 0, "h": 0, "start_s": 0.0, "end_s": 0.0}
        return redaction.add_manual_box(ctx, case_id=case_id, redaction_id=redaction_id,
                                        reason=body.reason, **box)
    return redaction.exclude_track(ctx, case_id=case_id, redaction_id=redaction_id,
                                   track_id=body.track_id or "", reason=body.reason,
                                   include=body.kind == "include_track")


@router.get(ONE + "/preview", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
def preview(case_id: DbId, redaction_id: DbId, ctx: UseCaseDep,
            at_s: Annotated[float, Query(ge=0, le=86_400)] = 0.0) -> Response:
    image = redaction.preview_redaction(ctx, case_id=case_id, redaction_id=redaction_id,
                                        at_s=at_s)
    return Response(image, media_type="image/jpeg")


@router.post(ONE + "/approve", response_model=RedactionPublic)
def approve(case_id: DbId, redaction_id: DbId, ctx: UseCaseDep) -> RedactionPublic:
    return redaction.approve_redaction(ctx, case_id=case_id, redaction_id=redaction_id)


@router.post(CASE + "/disclosures", response_model=ExportJobPublic,
             status_code=status.HTTP_202_ACCEPTED)
def export(case_id: DbId, body: DisclosureCreate, ctx: UseCaseDep) -> ExportJobPublic:
    """Queue the disclosure export (awaiting a supervisor's approval when exports need
    it); poll it and download it as any export: /api/cases/{id}/exports/{export_id}."""
    return redaction.request_disclosure(ctx, case_id=case_id, redact=body.redact,
                                        lang=body.lang)


@router.get(CASE + "/disclosures/{name}", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}})
def download(case_id: DbId, name: Annotated[str, PathParam(max_length=200)],
             ctx: UseCaseDep) -> FileResponse:
    path = redaction.disclosure_file(ctx, case_id=case_id, name=name)
    return FileResponse(path, media_type="application/zip", filename=path.name)
