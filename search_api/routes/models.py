"""GET /api/models: which weights search uses (or why none), and what is installed."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from search_api.deps import UseCaseDep, requires
from search_api.state import EncoderStatus
from search_api.usecases.models import model_overview
from storage.permissions import Permission

router = APIRouter(tags=["models"], dependencies=[Depends(requires(Permission.MANAGE_MODELS))])


class InstalledModelPublic(BaseModel):
    preset: str
    weights_sha256: str
    source: str
    dim: int
    installed_at: datetime


class ModelStatusPublic(BaseModel):
    """``installed`` false: ``message`` says what an administrator must do."""

    preset: str
    installed: bool
    message: str
    source: str
    weights_sha256: str
    pending_frames: int
    models: list[InstalledModelPublic]
    encoder: EncoderStatus


@router.get("/models", response_model=ModelStatusPublic)
def read_model_status(ctx: UseCaseDep) -> ModelStatusPublic:
    overview = model_overview(ctx)
    active = overview.active
    return ModelStatusPublic(
        preset=active.preset, installed=active.installed, message=active.message,
        source=active.source, weights_sha256=active.weights_sha256,
        pending_frames=active.pending_frames,
        models=[InstalledModelPublic.model_validate(m, from_attributes=True)
                for m in overview.installed],
        encoder=ctx.state.encoder_status())


__all__ = ["router"]
