"""Fixtures shared by every test package: an isolated data dir and its state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from search_api.state import AppState, build_state
from storage.settings import Settings
from tests.services import PostgresServer, service_unavailable, start_postgres

if TYPE_CHECKING:
    from tests.search_corpus import SearchCorpus

pytest_plugins = ["tests.tsa_fixtures"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh, isolated data dir (never the user's environment)."""
    return Settings(
        home=tmp_path / "oko-home", environment="test", key_passphrase="test-passphrase"
    )


@pytest.fixture
def state(settings: Settings) -> Iterator[AppState]:
    app_state = build_state(settings)
    yield app_state
    app_state.engine.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (skipped, or failed under CI=true, if absent)."""
    try:
        server = start_postgres()
    except (FileNotFoundError, RuntimeError) as exc:
        service_unavailable(f"PostgreSQL is not available: {exc}")
        raise
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2id parameters in tests (production keeps the RFC 9106 profile)."""
    from argon2 import PasswordHasher

    import search_api.security

    monkeypatch.setattr(search_api.security, "_hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture(scope="session")
def search_corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchCorpus]:
    """Sample footage ingested, embedded with the random tiny model and indexed; read-only."""
    from tests.search_corpus import build_search_corpus

    corpus = build_search_corpus(tmp_path_factory.mktemp("search-corpus"))
    yield corpus
    corpus.state.engine.dispose()
