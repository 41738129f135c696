"""Storage tests run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.settings import Settings
from tests.services import DATABASE_BACKENDS, database_url_for


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url_for(request, tmp_path)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "oko-home", database_url=database_url, environment="test",
                    key_passphrase="test-passphrase")
