"""Fixtures for search tests: a writable copy of the session's indexed sample corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from indexer.shard_files import ShardStore
from search_api.state import AppState
from tests.search_corpus import SearchCorpus, copy_corpus, red_frame_id


@pytest.fixture
def search_state(search_corpus: SearchCorpus, tmp_path: Path) -> Iterator[AppState]:
    state = copy_corpus(search_corpus, tmp_path / "oko-home")
    yield state
    state.engine.dispose()


@pytest.fixture
def session(search_state: AppState) -> Iterator[Session]:
    with Session(search_state.engine, expire_on_commit=False) as db:
        yield db


@pytest.fixture
def shards(search_state: AppState) -> ShardStore:
    return ShardStore(search_state.settings.index_dir)


@pytest.fixture
def red_frame(session: Session) -> int:
    return red_frame_id(session)
