"""Search across machines: real ``oko search-worker`` processes on a real Redis.

One index dir of real shards (``write_shard``) is shared by the test (the local
reference) and the workers. Workers w1-w3 run for the whole module; w4 is listed but
never started; tests that kill a worker start their own.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import redis

from benchmarks.search_fanout import (
    TIMEZONE,
    SearchWorkerProcess,
    search_workers,
    start_search_worker,
    synthetic_queries,
    wait_until_answering,
    write_synthetic_shards,
)
from indexer.search.assignment import shard_owners
from indexer.search.shard_search import LocalShardSearcher, ShardQuery, ShardSearchOutcome
from indexer.shard_files import ShardMeta, ShardStore, local_day_bounds_utc
from search_api.search_fanout import CeleryShardSearcher
from search_api.tasks.app import make_search_celery
from storage.settings import Settings
from tests.services_redis import redis_url  # noqa: F401  (session fixture used below)

DIM = 32
RUNNING = ["w1", "w2", "w3"]
LISTED = [*RUNNING, "w4", "wk"]  # w4 never starts; wk is started (and killed) per test
# live workers answer in well under a second even on a loaded 2-core machine
DEADLINE_MS = 6000


@dataclasses.dataclass
class Cluster:
    home: Path
    broker_url: str
    metas: list[ShardMeta]
    local: LocalShardSearcher
    workers: dict[str, SearchWorkerProcess]
    log_dir: Path

    def searcher(self, workers: list[str], *, replicas: int = 1,
                 deadline_ms: int = DEADLINE_MS) -> CeleryShardSearcher:
        settings = Settings(home=self.home, broker_url=self.broker_url,
                            search_workers=workers, search_replicas=replicas)
        return CeleryShardSearcher(make_search_celery(settings), workers=workers,
                                   replicas=replicas, deadline_ms=deadline_ms)

    def shards_of(self, worker: str, workers: list[str]) -> list[str]:
        return sorted(m.key.name for m in self.metas
                      if shard_owners(m.key.name, workers)[0] == worker)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            redis_url: str) -> Iterator[Cluster]:  # noqa: F811
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    client.close()
    home = tmp_path_factory.mktemp("fanout") / "home"
    metas = write_synthetic_shards(home / "index", cameras=4, days=3, rows=300, dim=DIM)
    log_dir = home.parent / "logs"
    with search_workers(RUNNING, home=home, broker_url=redis_url, workers=LISTED,
                        log_dir=log_dir) as workers:
        made = Cluster(home=home, broker_url=redis_url, metas=metas,
                       local=LocalShardSearcher(ShardStore(home / "index")),
                       workers=workers, log_dir=log_dir)
        probe = synthetic_queries(count=1, dim=DIM, k=10)[0]
        try:
            wait_until_answering(made.searcher(RUNNING), metas, probe)
        except RuntimeError:
            pytest.fail("search workers never answered:\n"
                        + "\n".join(w.log() for w in workers.values()))
        yield made


def _queries() -> list[ShardQuery]:
    plain = synthetic_queries(count=3, dim=DIM, k=25, seed=7)
    first = plain[0]
    day_start = int(local_day_bounds_utc(date(2026, 11, 1), TIMEZONE)[0].timestamp() * 1e6)
    return [
        *plain,
        dataclasses.replace(first, k=5),
        dataclasses.replace(first, time_range_us=(day_start + 3_600_000_000,
                                                  day_start + 40 * 3_600_000_000)),
        dataclasses.replace(first, phases=frozenset({2})),
        dataclasses.replace(first, local_hours=(5, 12)),
    ]


def _same(fanned: ShardSearchOutcome, local: ShardSearchOutcome) -> None:
    assert fanned.missing == {}
    assert fanned.searched == local.searched
    assert fanned.candidates == local.candidates
    assert [fid for fid, _ in fanned.hits] == [fid for fid, _ in local.hits]
    assert np.allclose([s for _, s in fanned.hits], [s for _, s in local.hits], atol=1e-6)


def test_fan_out_over_three_workers_equals_the_local_top_k(cluster: Cluster) -> None:
    searcher = cluster.searcher(RUNNING)
    for query in _queries():
        fanned = searcher.search(cluster.metas, query)
        local = cluster.local.search(cluster.metas, query)
        assert len(local.hits) == query.k or query.time_range_us or query.phases \
            or query.local_hours
        _same(fanned, local)
    timings = searcher.last_timings
    assert {t.worker for t in timings} == set(RUNNING)
    for t in timings:  # each worker's own account, on one clock: in order
        assert t.sent_at and t.started_at and t.finished_at and t.received_at
        assert t.search_ms is not None and t.cpu_ms is not None and t.task_id
        assert t.sent_at <= t.started_at + 0.001 <= t.finished_at + 0.002
        assert t.finished_at <= t.received_at + 0.001


def test_adding_a_worker_keeps_the_answer(cluster: Cluster) -> None:
    query = _queries()[0]
    two = cluster.searcher(["w1", "w2"]).search(cluster.metas, query)
    three = cluster.searcher(RUNNING).search(cluster.metas, query)
    _same(two, cluster.local.search(cluster.metas, query))
    assert three.hits == two.hits and three.searched == two.searched
    # and the new worker took only shards that moved to it
    moved = [m.key.name for m in cluster.metas
             if shard_owners(m.key.name, ["w1", "w2"]) != shard_owners(m.key.name, RUNNING)]
    assert moved and all(shard_owners(name, RUNNING) == ["w3"] for name in moved)


def test_a_worker_that_never_started_gives_a_partial_answer_naming_its_shards(
        cluster: Cluster) -> None:
    workers = [*RUNNING, "w4"]
    lost = cluster.shards_of("w4", workers)
    assert lost
    query = _queries()[0]
    outcome = cluster.searcher(workers, deadline_ms=2500).search(cluster.metas, query)
    assert sorted(outcome.missing) == lost
    assert set(outcome.missing.values()) == {"search worker w4 did not answer within 2500 ms"}
    rest = [m for m in cluster.metas if m.key.name not in lost]
    _same(dataclasses.replace(outcome, missing={}), cluster.local.search(rest, query))


def test_a_worker_killed_mid_query_leaves_its_shards_missing_then_replicas_take_over(
        cluster: Cluster) -> None:
    workers = [*RUNNING, "wk"]
    killed = start_search_worker("wk", home=cluster.home, broker_url=cluster.broker_url,
                                 workers=LISTED, log_dir=cluster.log_dir)
    try:
        query = _queries()[0]
        # wk's first answers may miss a deadline while it starts: a searcher of its own waits
        wait_until_answering(cluster.searcher(workers), cluster.metas, query)
        searcher = cluster.searcher(workers, replicas=2, deadline_ms=3000)
        lost = cluster.shards_of("wk", workers)
        assert lost
        # frozen, the worker cannot take the query; it is killed while the query waits
        killed.signal(signal.SIGSTOP)
        answer: list[ShardSearchOutcome] = []
        asking = threading.Thread(target=lambda: answer.append(
            searcher.search(cluster.metas, query)))
        asking.start()
        killed.kill()
        asking.join(timeout=60)
        assert answer, "the query never returned"
        partial = answer[0]
        assert sorted(partial.missing) == lost
        assert set(partial.missing.values()) == {
            "search worker wk did not answer within 3000 ms"}
        rest = [m for m in cluster.metas if m.key.name not in lost]
        _same(dataclasses.replace(partial, missing={}), cluster.local.search(rest, query))
        # the next query sends wk's shards to their second holder: complete again
        _same(searcher.search(cluster.metas, query), cluster.local.search(cluster.metas, query))
    finally:
        killed.kill()


def test_a_shard_of_another_version_is_missing_with_its_reason(cluster: Cluster) -> None:
    query = _queries()[0]
    stale = dataclasses.replace(cluster.metas[0], data_sha256="0" * 64)
    metas = [stale, *cluster.metas[1:]]
    owner = shard_owners(stale.key.name, RUNNING)[0]
    outcome = cluster.searcher(RUNNING).search(metas, query)
    assert outcome.missing == {stale.key.name: (
        f"search worker {owner} holds another version of this shard; copy the current one"
        " to it")}
    _same(dataclasses.replace(outcome, missing={}),
          cluster.local.search(cluster.metas[1:], query))


def test_a_shard_the_worker_has_no_copy_of_is_missing(cluster: Cluster,
                                                      tmp_path: Path) -> None:
    elsewhere = write_synthetic_shards(tmp_path / "index", cameras=1, days=1, rows=50,
                                       dim=DIM, first_day=date(2026, 10, 1))
    query = _queries()[0]
    outcome = cluster.searcher(RUNNING).search([*cluster.metas, *elsewhere], query)
    name = elsewhere[0].key.name
    owner = shard_owners(name, RUNNING)[0]
    assert outcome.missing == {name: f"search worker {owner} has no copy of this shard"}
    _same(dataclasses.replace(outcome, missing={}), cluster.local.search(cluster.metas, query))


def test_no_shards_sends_nothing(cluster: Cluster) -> None:
    searcher = cluster.searcher(RUNNING)
    outcome = searcher.search([], _queries()[0])
    assert outcome == ShardSearchOutcome(hits=[], searched=[], missing={})
    assert searcher.last_timings == []


def test_a_corrupt_shard_on_a_worker_is_missing_with_its_reason(cluster: Cluster) -> None:
    extra = write_synthetic_shards(cluster.home / "index", cameras=1, days=1, rows=40,
                                   dim=DIM, first_day=date(2026, 9, 1), seed=5)[0]
    data = extra.key.directory(cluster.home / "index") / extra.data_file
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 64] = b"\xff" * 64  # same size: the sidecar still reads
    data.write_bytes(bytes(raw))
    query = _queries()[0]
    outcome = cluster.searcher(RUNNING).search([*cluster.metas, extra], query)
    owner = shard_owners(extra.key.name, RUNNING)[0]
    assert list(outcome.missing) == [extra.key.name]
    reason = outcome.missing[extra.key.name]
    assert extra.key.name in reason and reason.endswith(f"(on search worker {owner})")
    _same(dataclasses.replace(outcome, missing={}), cluster.local.search(cluster.metas, query))


def test_a_task_that_fails_on_its_worker_leaves_that_worker_s_shards_missing(
        cluster: Cluster) -> None:
    bad = dataclasses.replace(_queries()[0], k=0)  # the workers refuse k below 1
    outcome = cluster.searcher(RUNNING).search(cluster.metas, bad)
    assert sorted(outcome.missing) == sorted(m.key.name for m in cluster.metas)
    assert {reason.split(" failed ")[0] for reason in outcome.missing.values()} == {
        f"search worker {w}" for w in RUNNING}
    assert all(reason.endswith("(BadSearchMessageError)")
               for reason in outcome.missing.values())
    assert outcome.hits == [] and outcome.searched == []
