"""GET /api/models: which weights search uses (or why none), and what is installed."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from search_api.deps import UseCaseDep, requires
from search_api.usecases.models import model_overview
from storage.permissions import Permission

router = APIRouter(tags=["models"], dependencies=[Depends(requires(Permission.MANAGE_MODELS))])


class InstalledModelPublic(BaseModel):
    preset: str
    weights_sha256: str
    source: str
    dim: int
    installed_at: datetime


class EncoderStatusPublic(BaseModel):
    """The query encoder in this API process: loaded (``warm``) or not, and on what runtime.

    ``text_backend`` / ``image_backend``: "torch", "onnx-fp32" or "onnx-int8"; empty while
    not loaded. ``note``: why it is not loaded, or why a tower stayed on torch.
    """

    warm: bool
    loading: bool
    preset: str
    weights_sha256: str
    text_backend: str
    image_backend: str
    note: str
    cache_entries: int
    cache_max_entries: int
    cache_hits: int
    cache_misses: int


class ModelStatusPublic(BaseModel):
    """``installed`` false: ``message`` says what an administrator must do."""

    preset: str
    installed: bool
    message: str
    source: str
    weights_sha256: str
    pending_frames: int
    models: list[InstalledModelPublic]
    encoder: EncoderStatusPublic


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
        encoder=EncoderStatusPublic.model_validate(ctx.state.encoder_status(),
                                                   from_attributes=True))


__all__ = ["router"]
