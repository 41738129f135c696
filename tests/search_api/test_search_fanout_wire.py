"""The fan-out's wire format, its settings and its refusals (no worker process needed)."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from benchmarks.search_fanout import write_synthetic_shards
from indexer.search.assignment import shard_owners
from indexer.search.shard_search import ShardQuery, ShardSearchOutcome
from indexer.shard_files import ShardStore
from search_api.cli import main
from search_api.search_fanout import (
    BadSearchMessageError,
    CeleryShardSearcher,
    SearchWorkersUnavailableError,
    decode_hits,
    decode_query,
    decode_reply,
    decode_vector,
    encode_query,
    encode_reply,
    encode_vector,
    shard_searcher_for,
)
from search_api.tasks.app import make_search_celery
from storage.errors import ConfigurationError
from storage.settings import Settings
from tests.services import free_port


def test_a_query_survives_the_wire() -> None:
    vector = np.linspace(-1, 1, 512, dtype=np.float32)
    query = ShardQuery(vector=vector, k=7, time_range_us=(10, 20), phases=frozenset({2, 0}),
                       local_hours=(21, 24))
    wire = encode_query(query)
    assert len(wire["vector"]) == 4 * ((512 * 4 + 2) // 3)  # base64 of 2 KB, not a JSON list
    back = decode_query(wire)
    assert np.array_equal(back.vector, vector)
    assert (back.k, back.time_range_us, back.phases, back.local_hours) == (
        7, (10, 20), frozenset({0, 2}), (21, 24))
    plain = decode_query(encode_query(ShardQuery(vector=vector, k=1, time_range_us=None,
                                                 phases=None)))
    assert (plain.time_range_us, plain.phases, plain.local_hours) == (None, None, None)


def _float32_scores(count: int, seed: int) -> list[float]:
    """Scores as the shards compute them: float32 products, as Python floats."""
    return np.random.default_rng(seed).uniform(-1, 1, count).astype(np.float32).tolist()


def test_a_reply_survives_the_wire() -> None:
    sent = ["CAM-3/2026-11-01", "CAM-1/2026-11-01", "CAM-2/2026-11-01"]
    outcome = ShardSearchOutcome(hits=[(5, 0.9), (3, 0.5)],
                                 searched=["CAM-1/2026-11-01", "CAM-3/2026-11-01"],
                                 missing={"CAM-2/2026-11-01": "gone"}, candidates=12,
                                 index_types={"CAM-1/2026-11-01": "flat",
                                              "CAM-3/2026-11-01": "ivf_pq"})
    outcome = dataclasses.replace(outcome, hits=[(5, _float32_scores(1, 0)[0]), (3, 0.5)])
    wire = encode_reply(outcome, worker="w1", shards=sent, search_ms=1.25, cpu_ms=0.5,
                        started_at=1_700_000_000.25, finished_at=1_700_000_000.5)
    assert "searched" not in wire and wire["index_types"] == {"flat": [0], "ivf_pq": [2]}
    back = decode_reply(wire, sent)
    assert back.outcome == outcome
    assert (back.search_ms, back.cpu_ms, back.started_at, back.finished_at) == (
        1.25, 0.5, 1_700_000_000.25, 1_700_000_000.5)


def test_packed_hits_decode_to_exactly_the_hits_sent() -> None:
    ids = np.random.default_rng(3).integers(0, 2**62, 500).tolist()
    hits = list(zip(ids, _float32_scores(500, 4), strict=True))
    wire = encode_reply(ShardSearchOutcome(hits=hits, searched=[], missing={}), worker="w",
                        shards=[], search_ms=0.0)
    assert len(wire["ids"]) == 4 * ((500 * 8 + 2) // 3)  # 8 + 4 bytes a hit, not JSON
    assert len(wire["scores"]) == 4 * ((500 * 4 + 2) // 3)
    assert decode_hits(wire["ids"], wire["scores"]) == hits  # the same ints and floats
    assert decode_reply(wire, []).outcome.hits == hits


@pytest.mark.parametrize(("ids", "scores"), [
    ("not base64!", ""),
    (base64.b64encode(np.ones(2, "<i8").tobytes()).decode(),
     base64.b64encode(np.ones(3, "<f4").tobytes()).decode()),
    (base64.b64encode(b"abc").decode(), ""),
    (base64.b64encode(np.ones(1, "<i8").tobytes()).decode(),
     base64.b64encode(np.array([np.inf], "<f4").tobytes()).decode()),
])
def test_bad_packed_hits_are_refused(ids: str, scores: str) -> None:
    with pytest.raises(BadSearchMessageError, match="reply is malformed"):
        decode_hits(ids, scores)


@pytest.mark.parametrize(("text", "message"), [
    ("not base64!", "not base64"),
    ("", "not 1 to 4096"),
    (base64.b64encode(b"abc").decode(), "not 1 to 4096"),
    (base64.b64encode(np.zeros(4097, "<f4").tobytes()).decode(), "not 1 to 4096"),
    (encode_vector(np.array([1.0, np.nan], np.float32)), "not finite"),
])
def test_a_bad_vector_is_refused(text: str, message: str) -> None:
    with pytest.raises(BadSearchMessageError, match=message):
        decode_vector(text)


@pytest.mark.parametrize("raw", [
    {"k": 3}, {"vector": encode_vector(np.ones(4, np.float32)), "k": 0},
    {"vector": encode_vector(np.ones(4, np.float32)), "k": "x"},
    {"vector": encode_vector(np.ones(4, np.float32)), "k": 3, "time_range_us": [1]},
])
def test_a_malformed_query_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(BadSearchMessageError):
        decode_query(raw)


@pytest.mark.parametrize("raw", [
    None, [], {"hits": [[1]], "searched": [], "missing": {}},
    {"ids": "", "scores": ""},
    {"ids": "", "scores": "", "missing": {}, "index_types": {"flat": [1]}},  # one shard sent
    {"ids": "", "scores": "", "missing": {}, "at": [1.0]},
])
def test_a_malformed_reply_is_refused(raw: object) -> None:
    with pytest.raises(BadSearchMessageError, match="reply is malformed"):
        decode_reply(raw, ["CAM-1/2026-11-01"])


def test_search_stays_local_without_workers(tmp_path: Path) -> None:
    assert shard_searcher_for(Settings(home=tmp_path)) is None


def test_workers_need_a_redis_broker(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, search_workers=["w1"])  # the SQLite broker default
    with pytest.raises(ConfigurationError, match="need a Redis broker"):
        shard_searcher_for(settings)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing was created


@pytest.mark.parametrize(("value", "message"), [
    ("w1,w1", "names a worker twice"), ("w 1", "not a worker name"), ("-w", "not a worker")])
def test_bad_worker_settings_are_refused(value: str, message: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OKO_SEARCH_WORKERS", value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_an_unreachable_broker_fails_the_search_with_one_sentence(tmp_path: Path) -> None:
    metas = write_synthetic_shards(tmp_path / "index", cameras=1, days=1, rows=10, dim=8)
    settings = Settings(home=tmp_path, broker_url=f"redis://127.0.0.1:{free_port()}/0",
                        search_workers=["w1"])
    searcher = CeleryShardSearcher(make_search_celery(settings), workers=["w1"])
    query = ShardQuery(vector=np.ones(8, np.float32), k=3, time_range_us=None, phases=None)
    with pytest.raises(SearchWorkersUnavailableError, match="cannot be reached") as caught:
        searcher.search(metas, query)
    assert caught.value.http_status == 503
    assert [m.key.name for m in ShardStore(tmp_path / "index").all_meta()] == [
        metas[0].key.name]  # the index is untouched


@pytest.mark.parametrize(("workers", "message"), [
    ("w1,w2", "Search worker 'w9' is not in OKO_SEARCH_WORKERS (which lists w1, w2)"),
    ("", "Search worker 'w9' is not in OKO_SEARCH_WORKERS (which lists nothing)"),
])
def test_a_search_worker_not_listed_is_refused(workers: str, message: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OKO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OKO_SEARCH_WORKERS", workers)
    monkeypatch.setenv("OKO_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["search-worker", "--name", "w9"]) == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "home").exists()  # no data dir, no database was made


def test_a_search_worker_refuses_a_broker_that_is_not_redis(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("OKO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OKO_SEARCH_WORKERS", "w1")
    monkeypatch.delenv("OKO_BROKER_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["search-worker", "--name", "w1"]) == 2
    assert "Search workers need a Redis broker" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_a_search_worker_lists_the_files_of_the_shards_it_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    metas = write_synthetic_shards(home / "index", cameras=3, days=2, rows=10, dim=8)
    monkeypatch.setenv("OKO_HOME", str(home))
    monkeypatch.setenv("OKO_SEARCH_WORKERS", "w1,w2")
    printed: dict[str, list[str]] = {}
    for name in ("w1", "w2"):
        capsys.readouterr()
        assert main(["search-worker", "--name", name, "--list"]) == 0
        printed[name] = capsys.readouterr().out.split()
    for name, lines in printed.items():
        assert all((home / "index" / line).is_file() for line in lines)
        held = [m for m in metas if shard_owners(m.key.name, ["w1", "w2"])[0] == name]
        assert len(lines) == 2 * len(held)  # the sidecar and the data file of each
    assert sorted(printed["w1"] + printed["w2"]) == sorted(
        str(path.relative_to(home / "index")) for path in (home / "index").glob("cam-*/*"))


def test_a_search_worker_runs_openblas_with_one_thread(tmp_path: Path) -> None:
    from indexer.search.shard_search import blas_threads, limit_blas_threads
    from search_api.tasks import search as worker_tasks

    before = blas_threads()
    limit_blas_threads(2)
    try:
        worker_tasks.install_worker_shards(worker_tasks.WorkerShards(tmp_path, name="w1"))
        assert before and set(blas_threads().values()) == {worker_tasks.WORKER_BLAS_THREADS}
    finally:
        worker_tasks._shards.clear()
        limit_blas_threads(max(before.values(), default=1))
