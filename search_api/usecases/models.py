"""Use cases: install CLIP weights, embed the frames that wait for them, maintain shards.

Installing weights changes what every later search finds, so it is audited like a
camera change. Embedding and shard maintenance only derive data from the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from indexer.embed_queue import EmbedReport, pending_frame_count
from indexer.model_store import (
    NoModelError,
    download_model,
    import_model,
    installed_models,
    resolve_weights,
)
from indexer.reindex import ReindexSettings, load_installed_embedder, reindex
from indexer.shard_index import IndexPolicy
from indexer.shards import SyncReport, rebuild_shards, sync_shards
from search_api.audit import AuditAction
from search_api.usecases.context import UseCaseContext
from storage.models.search import EmbeddingModel
from storage.permissions import Permission


@dataclass(frozen=True)
class ActiveModel:
    """The weights search uses now, or why there are none."""

    preset: str
    installed: bool
    message: str = ""
    source: str = ""
    weights_sha256: str = ""
    path: str = ""
    pending_frames: int = 0


@dataclass(frozen=True)
class ModelOverview:
    active: ActiveModel
    installed: list[EmbeddingModel]


def model_overview(ctx: UseCaseContext) -> ModelOverview:
    """What is installed and which weights search uses, with the frames still waiting."""
    settings = ctx.settings
    rows = installed_models(session=ctx.session)
    try:
        weights = resolve_weights(preset=settings.clip_preset, env_weights=settings.clip_weights,
                                  models_dir=settings.models_dir, session=ctx.session)
    except NoModelError as exc:
        return ModelOverview(ActiveModel(settings.clip_preset, False, message=exc.message), rows)
    return ModelOverview(ActiveModel(
        settings.clip_preset, True, source=weights.source, weights_sha256=weights.sha256,
        path=str(weights.path),
        pending_frames=pending_frame_count(session=ctx.session,
                                           weights_sha256=weights.sha256)), rows)


def _installed(ctx: UseCaseContext, row: EmbeddingModel, how: str) -> EmbeddingModel:
    ctx.audit(AuditAction.MODEL_CHANGE, change=how, preset=row.preset,
              weights_sha256=row.weights_sha256, source=row.source)
    ctx.commit()
    return row


def import_weights(ctx: UseCaseContext, *, file: Path, preset: str | None) -> EmbeddingModel:
    """Copy a checkpoint into the data dir once it loads into the preset.

    Raises ``NotFoundError``, ``ConflictError`` (already installed) or
    ``ModelImportError``; nothing is left behind then.
    """
    ctx.require(Permission.MANAGE_MODELS)
    row = import_model(source_file=file, preset=preset or ctx.settings.clip_preset,
                       models_dir=ctx.settings.models_dir, session=ctx.session)
    return _installed(ctx, row, "import")


def download_weights(ctx: UseCaseContext, *, preset: str | None) -> EmbeddingModel:
    """Fetch the preset's weights from Hugging Face. Raises ``ModelDownloadError``."""
    ctx.require(Permission.MANAGE_MODELS)
    row = download_model(preset=preset or ctx.settings.clip_preset,
                         models_dir=ctx.settings.models_dir, session=ctx.session)
    return _installed(ctx, row, "download")


def embed_waiting_frames(
    ctx: UseCaseContext, *, limit: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[EmbedReport, SyncReport]:
    """Embed every frame waiting for the current weights, then sync the shards.

    Raises ``NoModelError`` when no weights are installed.
    """
    ctx.require(Permission.MANAGE_MODELS)
    state = ctx.state
    config = ReindexSettings.from_settings(ctx.settings)
    embedder = load_installed_embedder(engine=state.engine, config=config)
    return reindex(engine=state.engine, derived=state.derived, config=config,
                   embedder=embedder, limit=limit, progress=progress)


def maintain_shards(ctx: UseCaseContext, *, rebuild: bool) -> SyncReport:
    """Write shards for frames not yet in one, or (``rebuild``) rewrite every shard."""
    ctx.require(Permission.MANAGE_MODELS)
    state, settings = ctx.state, ctx.settings
    write = rebuild_shards if rebuild else sync_shards
    return write(engine=state.engine, index_dir=settings.index_dir, derived=state.derived,
                 policy=IndexPolicy.from_settings(settings))


__all__ = [
    "ActiveModel",
    "ModelOverview",
    "download_weights",
    "embed_waiting_frames",
    "import_weights",
    "maintain_shards",
    "model_overview",
]
