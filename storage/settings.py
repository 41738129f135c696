"""Oko configuration, read from ``OKO_*`` environment variables.

The class is defined here but instantiated only where a program starts
(``search_api.cli.main`` and ``search_api.app.create_app``). Lower layers take
the values they need as arguments and never read the environment themselves.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.atomic import PRIVATE_DIR_MODE, make_private_dirs


class Settings(BaseSettings):
    """All of Oko's settings; see docs/operations.md for each one."""

    model_config = SettingsConfigDict(env_prefix="OKO_", extra="ignore")

    home: Path = Field(default=Path("./oko-data"), description="Data dir")
    database_url: str | None = Field(default=None, description="Defaults to SQLite in home")
    broker_url: str | None = Field(default=None, description="Defaults to SQLite broker in home")
    db_pool_size: int = Field(default=40, ge=1, description="Database connections each process"
                              " keeps; the default matches the API's 40 request threads")
    db_pool_timeout_seconds: float = Field(default=10.0, gt=0, description="How long a"
                                           " request waits for a free connection before the"
                                           " API answers 503 busy")
    organisation: str = "Oko municipal CCTV"
    environment: str = "production"

    # ingest
    segment_seconds: float = 10.0
    sample_interval_seconds: float = 2.0
    frame_max_side: int = 448
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Absolute folders (comma- or os.pathsep-separated)"
        " that POST /api/ingest may read; empty: the API ingests no server path")

    # recording (see docs/operations.md, "Recording" and "Watch folders")
    record_segment_seconds: float = Field(default=60.0, gt=0, description="Length of each"
                                          " file the recorder writes from a stream")
    record_spool_dir: Path | None = Field(default=None, description="Where recordings are"
                                          " written before ingest; empty: spool/ in home")
    record_min_free_mb: int = Field(default=1024, ge=0, description="Below this much free"
                                    " space in the spool dir or the blob stores recording"
                                    " stops (disk_full) until space returns")
    record_backoff_seconds: float = Field(default=1.0, gt=0, description="First wait"
                                          " before reconnecting; doubles each failure")
    record_backoff_max_seconds: float = Field(default=60.0, gt=0)
    record_timeout_seconds: float = Field(default=10.0, gt=0, description="A stream silent"
                                          " this long counts as dropped")
    watch_settle_seconds: float = Field(default=5.0, ge=0, description="A watched file is"
                                        " ingested once its size held still this long")
    serve_recorders: bool = Field(default=True, description="oko serve also records every"
                                  " camera with a stream URL")

    # retention (see docs/operations.md, "Retention")
    retention_days: int | None = Field(default=None, ge=1, description="Days originals are"
                                       " kept after their recording ends, unless a camera"
                                       " sets its own; empty: kept forever")
    retention_interval_minutes: float = Field(default=60.0, gt=0, description="How often"
                                              " the worker and oko serve run the sweep")

    # jobs (see docs/operations.md, "Jobs and workers")
    job_lease_seconds: float = Field(default=30.0, gt=0, description="A running job whose"
                                     " heartbeat is older than this is re-queued")
    job_max_attempts: int = Field(default=3, ge=1)
    worker_concurrency: int = Field(default=1, ge=1, le=8)

    # embeddings and search
    clip_preset: str = "ViT-B-32"
    clip_weights: Path | None = None
    motion_threshold: float = 0.02
    embed_batch_size: int = 32
    # index type by shard size (see docs/scaling.md, "Search memory per index type")
    approximate_index_min_vectors: int = Field(default=50_000, ge=0, description="Shards"
                                               " of fewer vectors are searched exactly"
                                               " (flat, float32 in RAM); from here IVF-SQ8")
    pq_index_min_vectors: int = Field(default=200_000, ge=0, description="Shards of at"
                                      " least this many vectors use IVF-PQ (128 bytes per"
                                      " 512-d vector in RAM instead of SQ8's 512)")
    sq8_rerank_factor: int = Field(default=4, ge=1, le=256, description="An IVF-SQ8"
                                   " shard re-ranks this many times k candidates exactly")
    pq_rerank_factor: int = Field(default=16, ge=1, le=256, description="An IVF-PQ shard"
                                  " re-ranks this many times k candidates exactly")
    # query encoder in the API process (see docs/operations.md, "Query encoder")
    text_encoder: Literal["onnx", "torch"] = Field(default="onnx", description="Runtime"
                                                    " of the CLIP text tower; onnx falls back"
                                                    " to torch (logged) when export fails")
    image_encoder: Literal["torch", "onnx"] = Field(default="torch", description="Runtime"
                                                     " of the CLIP image tower at embedding"
                                                     " time")
    onnx_threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads;"
                              " 0: one per core")
    query_cache_size: int = Field(default=1024, ge=0, description="Text query embeddings"
                                  " kept in memory (LRU); 0: no cache")
    warm_encoder: bool = Field(default=True, description="oko serve loads the query"
                               " encoder at startup, in the background")
    # search across machines (see docs/scaling.md, "Adding a search worker")
    search_workers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated search worker names; empty:"
        " the API searches its own shards")
    search_replicas: int = Field(default=1, ge=1, le=3, description="Search workers that"
                                 " hold each shard")
    search_deadline_ms: int = Field(default=2000, ge=50, le=60_000, description="How long"
                                    " a query waits for the search workers; shards of one"
                                    " that has not answered by then are reported missing")
    search_worker_concurrency: int = Field(default=4, ge=1, le=32, description="Queries"
                                           " one search worker runs at once (threads)")

    # evidence
    key_passphrase: str | None = None
    # first admin, created by `oko init` (prompted for on a terminal when unset)
    first_admin_username: str = "admin"
    first_admin_agency: str = "city"
    first_admin_password: str | None = None
    full_original_max_bytes: int = 2 * 1024**3
    scratch_dir: Path | None = Field(default=None, description="Where bundles are extracted"
                                     " to be verified (may be another filesystem); empty:"
                                     " tmp/ in the data dir")

    # access control
    token_minutes: int = 60
    max_upload_bytes: int = 20 * 1024**2
    exports_need_approval: bool = False
    login_window_minutes: int = 15
    login_max_failures_per_user: int = Field(default=5, ge=1, description="Failures for one"
                                             " user from one address before that pair waits")
    login_max_failures_per_account: int = Field(default=50, ge=1, description="Failures for"
                                                " one user from all addresses before the"
                                                " account waits")
    login_max_failures_per_ip: int = Field(default=20, ge=1)
    trusted_proxies: str = Field(default="", description="Comma-separated IPs or CIDRs whose"
                                 " X-Forwarded-For is believed; empty: the TCP peer is the"
                                 " client")
    audit_checkpoint_entries: int = 100
    audit_checkpoint_minutes: int = 10
    # copies outside the data dir (see docs/operations.md, "The audit log")
    audit_checkpoint_log: Path | None = Field(default=None, description="File outside the"
                                              " data dir each signed checkpoint is appended"
                                              " to; empty: none")
    audit_key_file: Path | None = Field(default=None, description="The audit HMAC key;"
                                        " empty: keys/audit-mac.key in the data dir")
    audit_checkpoint_syslog: str | None = Field(default=None, description="Also send each"
                                                " checkpoint to syslog: udp://HOST:PORT,"
                                                " tcp://HOST:PORT or unix:/dev/log")
    # trusted timestamps (see docs/operations.md, "Trusted timestamps")
    tsa_url: str | None = Field(default=None, description="RFC 3161 time-stamping"
                                " authority; each export and audit checkpoint gets a token;"
                                " empty: no trusted time")
    tsa_ca_cert: Path | None = Field(default=None, description="PEM of the CA that vouches"
                                     " for the TSA (required with OKO_TSA_URL)")
    tsa_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    @field_validator("pq_index_min_vectors")
    @classmethod
    def _pq_after_approximate(cls, value: int, info: ValidationInfo) -> int:
        approximate = info.data.get("approximate_index_min_vectors")
        if approximate is not None and value < approximate:
            raise ValueError(f"{value} is below OKO_APPROXIMATE_INDEX_MIN_VECTORS"
                             f" ({approximate}); shards go flat, then IVF-SQ8, then IVF-PQ, so"
                             " the IVF-PQ threshold must be at least the approximate one")
        return value

    @field_validator("tsa_url", mode="before")
    @classmethod
    def _tsa_url(cls, value: object) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        text = str(value).strip()
        if not text.startswith(("http://", "https://")):
            raise ValueError(f"OKO_TSA_URL is '{text[:100]}', not an http:// or https:// URL")
        return text

    @field_validator("audit_checkpoint_log", "audit_key_file", "scratch_dir", "tsa_ca_cert",
                     mode="before")
    @classmethod
    def _optional_absolute_path(cls, value: object) -> Path | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return Path(str(value)).expanduser().resolve()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"OKO_TRUSTED_PROXIES lists '{entry[:64]}', which is not an"
                                 " IP address or network such as 10.0.0.0/8") from None
        return ",".join(entries)

    @property
    def trusted_proxy_list(self) -> list[str]:
        """The proxies whose X-Forwarded-For names the client (none by default)."""
        return [entry for entry in self.trusted_proxies.split(",") if entry]

    @field_validator("search_workers", mode="before")
    @classmethod
    def _search_workers(cls, value: object) -> list[str]:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple):
            raise ValueError("OKO_SEARCH_WORKERS must list worker names, comma-separated")
        names = [str(entry).strip() for entry in value if str(entry).strip()]
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name):
                raise ValueError(f"OKO_SEARCH_WORKERS lists '{name[:64]}', which is not a"
                                 " worker name (letters, digits, '-' and '_')")
        if len(set(names)) != len(names):
            raise ValueError("OKO_SEARCH_WORKERS names a worker twice")
        return names

    @field_validator("ingest_roots", mode="before")
    @classmethod
    def _ingest_roots(cls, value: object) -> list[Path]:
        if isinstance(value, str):
            value = [entry for part in value.split(",") for entry in part.split(os.pathsep)]
        if not isinstance(value, list | tuple):
            raise ValueError("OKO_INGEST_ROOTS must list absolute folders")
        roots = [Path(str(entry).strip()) for entry in value if str(entry).strip()]
        for root in roots:
            if not root.is_absolute():
                raise ValueError(f"OKO_INGEST_ROOTS lists '{str(root)[:200]}', which is not"
                                 " an absolute folder")
        return roots

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'oko.db'}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"sqla+sqlite:///{self.home / 'broker.db'}"

    @property
    def blobs_dir(self) -> Path:
        """Write-once originals, keyed by SHA-256."""
        return self.home / "blobs"

    @property
    def derived_dir(self) -> Path:
        """Write-once derived files (segments, thumbnails, clips), keyed by SHA-256."""
        return self.home / "derived"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def onnx_dir(self) -> Path:
        """ONNX exports of the CLIP towers, derived from and keyed by the weights' SHA-256."""
        return self.models_dir / "onnx"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def exports_dir(self) -> Path:
        """Evidence bundles built by export jobs, served for download."""
        return self.home / "exports"

    @property
    def spool_dir(self) -> Path:
        return self.record_spool_dir or self.home / "spool"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space on the same filesystem as the stores, so renames are atomic."""
        return self.home / "tmp"

    @property
    def verify_scratch_dir(self) -> Path:
        """Where bundles are extracted for verification: ``OKO_SCRATCH_DIR``, else tmp/."""
        return self.scratch_dir or self.tmp_dir

    def ensure_dirs(self) -> None:
        """Create the data dir and its stores, owner-only (0700) whatever the umask.

        The data dir and the stores are Oko's own, so one found with a wider mode (made by
        hand, or by an older Oko) is narrowed to 0700 too; the folders above it are not
        touched.
        """
        for path in (self.home, self.blobs_dir, self.derived_dir, self.models_dir,
                     self.index_dir, self.keys_dir, self.tmp_dir):
            make_private_dirs(path)
            if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR_MODE:
                os.chmod(path, PRIVATE_DIR_MODE)
