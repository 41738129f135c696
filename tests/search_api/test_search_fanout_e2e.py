"""A whole search (engine, database, moments) fanned out to real search workers.

The workers read the session's search corpus (sample footage, embedded and indexed);
the answer must equal the local one, and a worker that is down must make it partial,
naming its shards in the provenance.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from sqlmodel import Session

from benchmarks.search_fanout import search_workers, wait_until_answering
from indexer.search.assignment import shard_owners
from indexer.search.engine import SearchRequest, SearchResult, search
from indexer.search.shard_search import ShardQuery, ShardSearcher
from indexer.shard_files import ShardStore
from search_api.search_fanout import shard_searcher_for
from storage.settings import Settings
from tests.search_corpus import SearchCorpus, red_frame_id
from tests.services_redis import redis_url  # noqa: F401  (session fixture used below)

RUNNING = ["a", "b"]
DEAD_CANDIDATES = ["c", "d", "e", "f", "g", "h"]


def _dead_worker(names: list[str]) -> str:
    """A worker name that, listed beside ``RUNNING``, owns at least one corpus shard."""
    for dead in DEAD_CANDIDATES:
        if any(shard_owners(name, [*RUNNING, dead])[0] == dead for name in names):
            return dead
    raise AssertionError("no candidate owns a shard")


@pytest.fixture(scope="module")
def workers(search_corpus: SearchCorpus, redis_url: str,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    settings = search_corpus.settings
    names = [m.key.name for m in ShardStore(settings.index_dir).all_meta()]
    listed = [*RUNNING, _dead_worker(names)]
    with search_workers(RUNNING, home=settings.home, broker_url=redis_url, workers=listed,
                        log_dir=tmp_path_factory.mktemp("fanout-e2e-logs")) as running:
        searcher = shard_searcher_for(_settings(search_corpus, redis_url, RUNNING))
        assert searcher is not None
        metas = ShardStore(settings.index_dir).all_meta()
        probe = ShardQuery(vector=search_corpus.embedder.encode_text(["a car"])[0], k=5,
                           time_range_us=None, phases=None)
        try:
            wait_until_answering(searcher, metas, probe)
        except RuntimeError:
            pytest.fail("\n".join(w.log() for w in running.values()))
        yield listed[-1]


def _settings(corpus: SearchCorpus, broker: str, names: list[str],
              deadline_ms: int = 6000) -> Settings:
    return corpus.settings.model_copy(update={"broker_url": broker, "search_workers": names,
                                              "search_deadline_ms": deadline_ms})


def _similar(corpus: SearchCorpus, searcher: ShardSearcher | None) -> SearchResult:
    with Session(corpus.state.engine) as session:
        frame = red_frame_id(session)
        return search(session=session, get_embedder=lambda: corpus.embedder,
                      shards=ShardStore(corpus.settings.index_dir),
                      request=SearchRequest(similar_to_frame_id=frame, k=200),
                      derived=corpus.state.derived, searcher=searcher)


def _moments(result: SearchResult) -> list[tuple[int, float, list[int]]]:
    return [(m.best_frame_id, m.score, m.frame_ids) for m in result.moments]


def test_a_fanned_out_search_answers_as_the_local_one(search_corpus: SearchCorpus,
                                                      redis_url: str,  # noqa: F811
                                                      workers: str) -> None:
    local = _similar(search_corpus, None)
    fanned = _similar(search_corpus,
                      shard_searcher_for(_settings(search_corpus, redis_url, RUNNING)))
    assert _moments(fanned) == _moments(local) and fanned.moments
    assert fanned.provenance.shards_searched == local.provenance.shards_searched
    assert not fanned.provenance.partial and fanned.provenance.shards_left_out == {}


def test_a_worker_that_is_down_makes_the_answer_partial_and_names_its_shards(
        search_corpus: SearchCorpus, redis_url: str, workers: str) -> None:  # noqa: F811
    dead = workers
    listed = [*RUNNING, dead]
    searcher = shard_searcher_for(_settings(search_corpus, redis_url, listed, 2500))
    result = _similar(search_corpus, searcher)
    prov = result.provenance
    lost = sorted(name for name in prov.shards_left_out)
    expected = sorted(m.key.name for m in ShardStore(search_corpus.settings.index_dir).all_meta()
                      if shard_owners(m.key.name, listed)[0] == dead)
    assert prov.partial and lost == expected
    assert set(prov.shards_left_out.values()) == {
        f"search worker {dead} did not answer within 2500 ms"}
    assert not set(prov.shards_searched) & set(lost)
    lost_cameras = {name.split("/")[0] for name in lost}
    assert all(m.camera_id not in lost_cameras for m in result.moments)
