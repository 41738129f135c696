"""Reindexing: embed every pending frame with the installed weights, then sync the shards.

This is what ``oko reindex`` runs, and what a worker runs after ingest. It sits above
the embedding queue (``indexer.embed_queue``), the model store and the shard writer
(``indexer.shards``), which do not know about each other. torch and open_clip load only
when ``load_installed_embedder`` builds a model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from indexer.embed_queue import EmbedReport, ImageEmbedder, ProgressCallback, embed_pending_frames
from indexer.model_store import find_checkpoint, record_weights, resolve_weights
from indexer.shard_index import DEFAULT_POLICY, IndexPolicy
from indexer.shards import SyncReport, sync_shards
from storage.blobstore import BlobStore
from storage.db import session_scope
from storage.settings import Settings

if TYPE_CHECKING:
    from indexer.embeddings import ClipEmbedder


@dataclass(frozen=True)
class ReindexSettings:
    """The settings ``reindex`` needs, passed down from the program's ``Settings``."""

    preset: str
    env_weights: Path | None
    models_dir: Path
    index_dir: Path
    batch_size: int
    motion_threshold: float
    approximate_min_vectors: int
    image_encoder: str = "torch"  # "onnx": the image tower on ONNX Runtime (indexer.onnx_towers)
    onnx_dir: Path | None = None
    onnx_threads: int = 0
    index_policy: IndexPolicy = DEFAULT_POLICY

    @classmethod
    def from_settings(cls, settings: Settings) -> ReindexSettings:
        return cls(preset=settings.clip_preset, env_weights=settings.clip_weights,
                   models_dir=settings.models_dir, index_dir=settings.index_dir,
                   batch_size=settings.embed_batch_size,
                   motion_threshold=settings.motion_threshold,
                   approximate_min_vectors=settings.approximate_index_min_vectors,
                   image_encoder=settings.image_encoder, onnx_dir=settings.onnx_dir,
                   onnx_threads=settings.onnx_threads,
                   index_policy=IndexPolicy.from_settings(settings))


def load_installed_embedder(*, engine: Engine, config: ReindexSettings) -> ClipEmbedder:
    """Load the weights ``resolve_weights`` picks, recording them in ``EmbeddingModel``.

    Raises ``NoModelError`` when no weights are installed.
    """
    # torch and open_clip (seconds, ~1 GB) load only when a model is really needed
    from indexer.embeddings import load_embedder

    with session_scope(engine) as session:
        weights = resolve_weights(preset=config.preset, env_weights=config.env_weights,
                                  models_dir=config.models_dir, session=session)
        record_weights(weights=weights, models_dir=config.models_dir, session=session)
    embedder = load_embedder(preset=config.preset, weights=weights, batch_size=config.batch_size)
    if config.image_encoder == "onnx" and config.onnx_dir is not None:
        from indexer.onnx_towers import use_onnx_towers  # falls back to torch, logged

        use_onnx_towers(embedder, towers=("image",), cache_dir=config.onnx_dir,
                        threads=config.onnx_threads)
    return embedder


def installed_weights_key(*, engine: Engine, config: ReindexSettings) -> tuple[object, ...]:
    """What names the model ``load_installed_embedder`` would load now, without hashing it.

    Weights from OKO_CLIP_WEIGHTS are named by path, size and modification time; installed
    models by their recorded hash. Raises ``NoModelError`` when no weights are installed.
    """
    if config.env_weights is not None:
        checkpoint = find_checkpoint(config.env_weights).resolve()
        stat = checkpoint.stat()
        identity: tuple[object, ...] = (str(checkpoint), stat.st_size, stat.st_mtime_ns)
    else:
        with session_scope(engine) as session:
            weights = resolve_weights(preset=config.preset, env_weights=None,
                                      models_dir=config.models_dir, session=session)
        identity = (weights.sha256, str(weights.path))
    return (config.preset, config.image_encoder, str(config.onnx_dir), config.onnx_threads,
            *identity)


class LoadedEmbedder:
    """One process's image embedder, kept across embed tasks.

    Loading ViT-B-32 (hashing its checkpoint, building the model, opening an ONNX session)
    takes seconds, longer than a task's work; the model is loaded again only when the
    installed weights or the encoder settings change.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[object, ...] | None = None
        self._embedder: ClipEmbedder | None = None
        self.loads = 0

    def get(self, *, engine: Engine, config: ReindexSettings) -> ClipEmbedder:
        key = installed_weights_key(engine=engine, config=config)
        with self._lock:
            if self._embedder is None or key != self._key:
                self._embedder = None  # the old model's memory goes before the new one loads
                self._embedder = load_installed_embedder(engine=engine, config=config)
                self._key = key
                self.loads += 1
            return self._embedder


def reindex(
    *, engine: Engine, derived: BlobStore, config: ReindexSettings,
    embedder: ImageEmbedder | None = None, progress: ProgressCallback | None = None,
    limit: int | None = None,
) -> tuple[EmbedReport, SyncReport]:
    """Embed every pending frame with the installed weights, then sync the FAISS shards.

    Raises ``NoModelError`` when no weights are installed (the frames simply keep
    waiting); pass ``embedder`` (from ``load_installed_embedder``) to reuse a loaded model.
    """
    chosen: ImageEmbedder = embedder or load_installed_embedder(engine=engine, config=config)
    report = embed_pending_frames(
        engine=engine, derived=derived, embedder=chosen, batch_size=config.batch_size,
        motion_threshold=config.motion_threshold, progress=progress, limit=limit)
    synced = sync_shards(engine=engine, index_dir=config.index_dir, derived=derived,
                         policy=config.index_policy,
                         approximate_min_vectors=config.approximate_min_vectors)
    return report, synced


__all__ = [
    "LoadedEmbedder",
    "ReindexSettings",
    "installed_weights_key",
    "load_installed_embedder",
    "reindex",
]
