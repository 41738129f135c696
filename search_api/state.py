"""Long-lived collaborators built once per process and shared by the API, the CLI and tasks.

``AppState`` holds typed fields only. The expensive or secret ones (the query embedder,
the shard cache, the token secret, the audit key, the installation signer) are built on
first use under one lock, so a command that never searches never loads
torch, and one that never signs never reads the signing key.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.engine import Engine

from evidence.audit import MAC_KEY_FILENAME, load_audit_mac_key_file
from evidence.keys import CERT_FILE, CRL_FILE, KEY_FILE, Signer, load_signer
from search_api.security import load_token_secret
from storage.blobstore import BlobStore
from storage.db import make_engine, migrate
from storage.settings import Settings
from storage.types import utcnow

if TYPE_CHECKING:
    from indexer.search.engine import QueryEmbedder
    from indexer.shard_files import ShardStore

class JobQueue(Protocol):
    """Where use cases hand work to the background worker (Celery in production)."""

    def enqueue_ingest(self, job_ids: Sequence[int]) -> None: ...

    def enqueue_export(self, job_id: int) -> None: ...

    def enqueue_embed(self) -> None: ...


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

    def query_embedder(self) -> QueryEmbedder:
        """The CLIP model that encodes queries, loaded on first call.

        Raises ``NoModelError`` (HTTP 503, its own exit code) when no weights are installed.
        """
        with self._lock:
            if self.embedder is None:
                from indexer.reindex import (  # torch loads only for a search
                    ReindexSettings,
                    load_installed_embedder,
                )

                self.embedder = load_installed_embedder(
                    engine=self.engine, config=ReindexSettings.from_settings(self.settings))
            return self.embedder

    def shard_store(self) -> ShardStore:
        """The process-wide cache of loaded shards (reloads a shard when its sidecar changes)."""
        from indexer.shard_files import ShardStore  # faiss loads only for a search

        with self._lock:
            if self._shard_store is None:
                self._shard_store = ShardStore(self.settings.index_dir)
            return self._shard_store

    def token_secret(self) -> bytes:
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


__all__ = ["AppState", "JobQueue", "build_state"]
