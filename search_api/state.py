"""Long-lived collaborators built once per process and shared by the API and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from storage.blobstore import BlobStore
from storage.db import make_engine, migrate
from storage.settings import Settings


@dataclass
class AppState:
    """What a request handler or CLI command needs; built by ``build_state``."""

    settings: Settings
    engine: Engine
    originals: BlobStore
    derived: BlobStore
    extras: dict[str, Any] = field(default_factory=dict)


def build_state(settings: Settings, *, run_migrations: bool = True) -> AppState:
    settings.ensure_dirs()
    engine = make_engine(settings.resolved_database_url)
    if run_migrations:
        migrate(engine)
    return AppState(
        settings=settings,
        engine=engine,
        originals=BlobStore(settings.blobs_dir, settings.tmp_dir),
        derived=BlobStore(settings.derived_dir, settings.tmp_dir),
    )
