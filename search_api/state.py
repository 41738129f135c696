"""Long-lived collaborators built once per process and shared by the API, the CLI and tasks.

``AppState`` holds typed fields only. The expensive or secret ones (the query embedder,
the shard cache, the token secret, the audit key, the installation signer) are built on
first use under one lock, so a command that never searches never loads
torch, and one that never signs never reads the signing key.

The query embedder has its own lock, so loading it (seconds) never holds up a sign-in.
It runs its text tower on ONNX Runtime when ``OKO_TEXT_ENCODER`` is onnx (falling back
to torch, with the reason in ``encoder_status``), and answers repeated text queries
from an LRU (``OKO_QUERY_CACHE_SIZE``). ``oko serve`` warms it at startup in the
background (``warm_encoder_in_background``), so the first query does not pay the load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.engine import Engine

from evidence.audit import MAC_KEY_FILENAME, load_audit_mac_key_file
from evidence.keys import CERT_FILE, CRL_FILE, KEY_FILE, Signer, load_signer
from storage.blobstore import BlobStore
from storage.db import make_engine, migrate
from storage.errors import OkoError
from storage.settings import Settings
from storage.types import utcnow

if TYPE_CHECKING:
    from indexer.embeddings import ClipEmbedder
    from indexer.query_cache import CachedQueryEmbedder
    from indexer.reindex import LoadedEmbedder
    from indexer.search.engine import QueryEmbedder
    from indexer.shard_files import ShardStore

log = logging.getLogger(__name__)

class JobQueue(Protocol):
    """Where use cases hand work to the background worker (Celery in production)."""

    def enqueue_ingest(self, job_ids: Sequence[int]) -> None: ...

    def enqueue_export(self, job_id: int) -> None: ...

    def enqueue_redaction(self, redaction_id: int) -> None: ...

    def enqueue_embed(self) -> None: ...


@dataclass(frozen=True)
class EncoderStatus:
    """Whether the query encoder is loaded, on which runtimes, and how its cache does.

    Also the API's answer (``GET /api/models``). ``text_backend`` / ``image_backend``:
    "torch", "onnx-fp32" or "onnx-int8"; empty while not loaded. ``note`` says why it is
    not loaded (no weights, an error) or why a tower that was asked to run on ONNX Runtime
    stayed on torch; empty when all is as configured.
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


@dataclass
class AppState:
    """What a use case needs besides its session; built by ``build_state``.

    The entry point (app factory, CLI, worker) supplies ``job_queue``; tests may set
    ``embedder`` or ``job_queue`` to inject their own.
    """

    settings: Settings
    engine: Engine
    originals: BlobStore
    derived: BlobStore
    embedder: QueryEmbedder | None = None
    job_queue: JobQueue | None = None
    _shard_store: ShardStore | None = field(default=None, repr=False)
    _token_secret: bytes | None = field(default=None, repr=False)
    _audit_mac_key: bytes | None = field(default=None, repr=False)
    _signer: Signer | None = field(default=None, repr=False)
    _signer_stamp: tuple[int | None, ...] | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _embedder_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cached_embedder: CachedQueryEmbedder | None = field(default=None, repr=False)
    _encoder_note: str = field(default="", repr=False)
    _warm_thread: threading.Thread | None = field(default=None, repr=False)
    _image_embedder: LoadedEmbedder | None = field(default=None, repr=False)

    def query_embedder(self) -> QueryEmbedder:
        """The CLIP model that encodes queries, loaded on first call, behind the query cache.

        ``embedder`` (set by tests, or loaded here) is wrapped; the cache lives as long as
        the embedder it fronts. Raises ``NoModelError`` (HTTP 503, its own exit code)
        when no weights are installed.
        """
        from indexer.query_cache import CachedQueryEmbedder, QueryCache

        with self._embedder_lock:
            if self.embedder is None:
                self.embedder = self._load_query_embedder()
            inner = self.embedder
            if self._cached_embedder is None or self._cached_embedder.inner is not inner:
                self._cached_embedder = CachedQueryEmbedder(
                    inner, QueryCache(self.settings.query_cache_size))
            return self._cached_embedder

    def image_embedder(self) -> LoadedEmbedder:
        """The image model embed tasks share in this process (loaded on first use, kept)."""
        from indexer.reindex import LoadedEmbedder  # torch loads only when a task embeds

        with self._lock:
            if self._image_embedder is None:
                self._image_embedder = LoadedEmbedder()
            return self._image_embedder

    def _load_query_embedder(self) -> ClipEmbedder:
        from indexer.reindex import (  # torch loads only for a search
            ReindexSettings,
            load_installed_embedder,
        )

        embedder = load_installed_embedder(
            engine=self.engine, config=ReindexSettings.from_settings(self.settings))
        self._encoder_note = ""
        if self.settings.text_encoder == "onnx":
            from indexer.onnx_towers import use_onnx_towers

            reasons = use_onnx_towers(embedder, towers=("text",), cache_dir=self.settings.onnx_dir,
                                      threads=self.settings.onnx_threads, release_torch_text=True)
            self._encoder_note = reasons.get("text", "")
        return embedder

    def warm_encoder_in_background(self) -> threading.Thread:
        """Load the query encoder (and run it once) on a daemon thread; returns the thread.

        A failure (no weights installed) is not raised: it is logged and shown as
        ``encoder_status().note``, and the first search reports it as usual.
        """
        def warm() -> None:
            try:
                self.query_embedder()
                if self.embedder is not None:  # one run, outside the cache: sessions allocate
                    self.embedder.encode_text(["warm-up"])
            except OkoError as exc:
                self._encoder_note = exc.message
                log.info("The query encoder was not warmed: %s", exc.message)
            except Exception as exc:  # a model failure: search reports it, startup goes on
                self._encoder_note = f"Loading the query encoder failed ({exc})."
                log.exception("Loading the query encoder failed")

        thread = threading.Thread(target=warm, name="oko-warm-encoder", daemon=True)
        self._warm_thread = thread
        thread.start()
        return thread

    def encoder_status(self) -> EncoderStatus:
        """What ``GET /api/models`` shows about the query encoder; never loads anything."""
        embedder, cached = self.embedder, self._cached_embedder
        stats = cached.cache.stats() if cached is not None and cached.inner is embedder \
            else None
        return EncoderStatus(
            warm=embedder is not None,
            loading=self._warm_thread is not None and self._warm_thread.is_alive(),
            preset=embedder.preset if embedder is not None else self.settings.clip_preset,
            weights_sha256=embedder.weights_sha256 if embedder is not None else "",
            text_backend=str(getattr(embedder, "text_backend", "torch")) if embedder else "",
            image_backend=str(getattr(embedder, "image_backend", "torch")) if embedder else "",
            note=self._encoder_note,
            cache_entries=stats.entries if stats else 0,
            cache_max_entries=self.settings.query_cache_size,
            cache_hits=stats.hits if stats else 0, cache_misses=stats.misses if stats else 0,
        )

    def shard_store(self) -> ShardStore:
        """The process-wide cache of loaded shards (reloads a shard when its sidecar changes)."""
        from indexer.shard_files import ShardStore  # faiss loads only for a search

        with self._lock:
            if self._shard_store is None:
                self._shard_store = ShardStore(self.settings.index_dir)
            return self._shard_store

    def token_secret(self) -> bytes:
        from search_api.security import load_token_secret  # the API's; the CLI rarely asks

        with self._lock:
            if self._token_secret is None:
                self._token_secret = load_token_secret(self.settings.keys_dir)
            return self._token_secret

    def audit_mac_key(self) -> bytes:
        """The audit HMAC key from ``OKO_AUDIT_KEY_FILE`` (default keys/audit-mac.key).

        Raises ``ConfigurationError`` for an empty key file, ``StorageError`` when it
        cannot be read or created.
        """
        with self._lock:
            if self._audit_mac_key is None:
                self._audit_mac_key = load_audit_mac_key_file(
                    self.settings.audit_key_file or self.settings.keys_dir / MAC_KEY_FILENAME)
            return self._audit_mac_key

    def signer(self) -> Signer:
        """The installation's evidence-signing key (needs OKO_KEY_PASSPHRASE).

        Read again whenever the key, its certificate chain or the CRL changed, so a
        long-running worker signs with the new key from the first export after
        ``oko keys rotate`` and never with one ``oko keys revoke`` revoked. Raises
        ``ConfigurationError`` when the key is missing, does not decrypt, or its
        certificate has expired or been revoked.
        """
        keys_dir = self.settings.keys_dir
        with self._lock:
            stamp = tuple(_mtime(keys_dir / name) for name in (KEY_FILE, CERT_FILE, CRL_FILE))
            if self._signer is not None and self._signer.certificate.not_valid_after_utc \
                    < utcnow():
                self._signer = None  # expired while cached: load_signer says so
            if self._signer is None or stamp != self._signer_stamp:
                self._signer = load_signer(keys_dir=self.settings.keys_dir,
                                           passphrase=self.settings.key_passphrase)
                self._signer_stamp = stamp
            return self._signer

    def jobs(self) -> JobQueue:
        """The background job queue the program's entry point put here."""
        if self.job_queue is None:
            raise RuntimeError("This process was built without a job queue.")
        return self.job_queue


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None  # load_signer says how to create what is missing


def build_state(settings: Settings, *, run_migrations: bool = True,
                job_queue: JobQueue | None = None) -> AppState:
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url, pool_size=settings.db_pool_size,
                         pool_timeout=settings.db_pool_timeout_seconds)
    if run_migrations:
        migrate(engine)
    return AppState(
        settings=settings,
        engine=engine,
        originals=BlobStore(settings.blobs_dir, settings.tmp_dir),
        derived=BlobStore(settings.derived_dir, settings.tmp_dir),
        job_queue=job_queue,
    )


__all__ = ["AppState", "EncoderStatus", "JobQueue", "build_state"]
