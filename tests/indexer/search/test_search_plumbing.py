"""The plumbing that keeps a search cheap: shards searched side by side on threads that
run FAISS with one OpenMP thread, and the top-k's rows read by position."""

from __future__ import annotations

import dataclasses

import faiss
from sqlmodel import Session

from indexer.search.moments import HIT_FRAME_COLUMNS, HitFrame, indexed_frames_of
from indexer.search.shard_search import (
    SHARD_SEARCH_THREADS,
    LocalShardSearcher,
    ShardQuery,
    merge_hits,
    search_loaded_shard,
    shard_search_pool,
)
from indexer.shard_files import ShardStore
from tests.search_corpus import SearchCorpus


def test_the_pool_threads_run_faiss_with_one_openmp_thread() -> None:
    pool = shard_search_pool()
    counts = {pool.submit(faiss.omp_get_max_threads).result()
              for _ in range(2 * SHARD_SEARCH_THREADS)}
    assert counts == {1}
    assert shard_search_pool() is pool  # one pool per process


def test_shards_searched_side_by_side_answer_as_one_after_another(
        shards: ShardStore, search_corpus: SearchCorpus) -> None:
    metas = shards.all_meta()
    assert len(metas) >= 3
    vector = search_corpus.embedder.encode_text(["red car"])[0]
    for k in (1, 5, 500):
        query = ShardQuery(vector=vector, k=k, time_range_us=None, phases=None)
        outcome = LocalShardSearcher(shards).search(metas, query)
        one_by_one = [search_loaded_shard(shards.load(m), query)
                      for m in sorted(metas, key=lambda m: m.key)]
        assert outcome.hits == merge_hits([hits for hits, _n in one_by_one], k)
        assert outcome.candidates == sum(n for _hits, n in one_by_one)
        assert outcome.searched == sorted(m.key.name for m in metas)
        assert outcome.missing == {}


def test_hit_rows_are_read_in_the_field_order_of_hit_frame(
        session: Session, red_frame: int, search_corpus: SearchCorpus) -> None:
    assert [c.name for c in HIT_FRAME_COLUMNS] == [f.name for f in dataclasses.fields(HitFrame)]
    frames = indexed_frames_of(session, [red_frame], search_corpus.embedder.weights_sha256)
    assert red_frame in {f.frame_id for f in frames}
    found = next(f for f in frames if f.frame_id == red_frame)
    assert found.vector_id == red_frame and found.camera_id.startswith("CAM-")
    assert found.captured_at_utc.tzinfo is not None
