"""FAISS shards: one per camera per local day, atomic, rebuildable, crash-consistent."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import delete, func, update
from sqlmodel import Session, col, select

from indexer.embed_queue import BacklogFrame, add_to_backlog
from indexer.search.engine import SearchFilters, SearchRequest, search
from indexer.shard_files import (
    EXACT_MAX_ALLOWED,
    LoadedShard,
    ShardKey,
    ShardStore,
    local_day_bounds_utc,
    read_sidecar,
    shard_key_for,
    write_shard,
)
from indexer.shards import rebuild_shards, sync_shards
from search_api.state import AppState
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry, SearchBacklog, SearchShard
from tests.search_corpus import SearchCorpus

KYIV = "Europe/Kyiv"


def sidecars(index_dir: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["key"]: json.loads(p.read_text())
            for p in sorted(index_dir.glob("cam-*/*.json"))}


def loaded(index_dir: Path, name: str) -> LoadedShard:
    meta = read_sidecar(ShardKey.parse(name).sidecar_path(index_dir))
    assert meta is not None
    return ShardStore(index_dir).load(meta)


def similar_frames(state: AppState, corpus: SearchCorpus, frame_id: int) -> list[list[int]]:
    with Session(state.engine) as session:
        result = search(session=session, get_embedder=lambda: corpus.embedder,
                        shards=ShardStore(state.settings.index_dir),
                        request=SearchRequest(similar_to_frame_id=frame_id, k=500))
    return [m.frame_ids for m in result.moments]


def test_local_day_decides_the_shard() -> None:
    late = datetime(2026, 1, 25, 23, 30, tzinfo=ZoneInfo(KYIV))
    after_midnight = datetime(2026, 1, 26, 0, 30, tzinfo=ZoneInfo(KYIV))  # 22:30 UTC on the 25th
    assert after_midnight.astimezone(UTC).date() == date(2026, 1, 25)
    keys = {shard_key_for(camera_id="CAM-001", captured_at_utc=t.astimezone(UTC), timezone=KYIV)
            for t in (late, after_midnight)}
    assert keys == {ShardKey("CAM-001", date(2026, 1, 25)), ShardKey("CAM-001", date(2026, 1, 26))}
    start, end = local_day_bounds_utc(date(2026, 3, 29), KYIV)  # clocks go forward
    assert (end - start).total_seconds() == 23 * 3600


def test_sidecar_records_model_dimension_and_frames(search_state: AppState,
                                                    search_corpus: SearchCorpus,
                                                    session: Session) -> None:
    found = sidecars(search_state.settings.index_dir)
    assert sorted(found) == ["CAM-001/2026-01-25", "CAM-002/2026-01-25", "CAM-003/2026-01-25"]
    embedder = search_corpus.embedder
    for key, meta in found.items():
        camera_id = key.split("/")[0]
        rows = session.exec(select(FrameEmbedding).join(Frame, col(Frame.id)
                                                        == col(FrameEmbedding.frame_id))
                            .where(Frame.camera_id == camera_id)).all()
        assert meta["preset"] == "test-tiny" and meta["dim"] == embedder.dim
        assert meta["weights_sha256"] == embedder.weights_sha256
        shard = loaded(search_state.settings.index_dir, key)
        assert meta["index_type"] == "flat" and meta["count"] == len(shard.ids)
        assert shard.frame_ids.tolist() == sorted(r.frame_id for r in rows)
        assert sorted(shard.ids.tolist()) \
            == sorted(r.frame_id for r in rows if r.status == "embedded")
        assert (search_state.settings.index_dir / f"cam-{camera_id}" / meta["data_file"]).is_file()


def test_sync_is_idempotent_and_adds_only_what_is_missing(search_state: AppState,
                                                          session: Session) -> None:
    index_dir = search_state.settings.index_dir
    before = sidecars(index_dir)
    assert sync_shards(engine=search_state.engine, index_dir=index_dir).shards_written == []
    cam2 = [f.id for f in session.exec(select(Frame).where(Frame.camera_id == "CAM-002"))]
    session.execute(update(FrameIndexEntry).where(col(FrameIndexEntry.frame_id).in_(cam2[:3]))
                    .values(shard_key=None))
    session.commit()
    report = sync_shards(engine=search_state.engine, index_dir=index_dir,
                         derived=search_state.derived)
    assert report.shards_written == ["CAM-002/2026-01-25"]
    after = sidecars(index_dir)
    assert {k: v["data_sha256"] for k, v in after.items()} \
        == {k: v["data_sha256"] for k, v in before.items()}  # same ids and frames
    assert after["CAM-002/2026-01-25"]["data_file"] == before["CAM-002/2026-01-25"]["data_file"]
    session.expire_all()
    assert all(e.shard_key for e in session.exec(select(FrameIndexEntry)))


def test_rebuild_from_the_database_restores_the_same_index(search_state: AppState,
                                                           search_corpus: SearchCorpus,
                                                           red_frame: int) -> None:
    index_dir = search_state.settings.index_dir
    before = sidecars(index_dir)
    baseline = similar_frames(search_state, search_corpus, red_frame)
    shutil.rmtree(index_dir)
    orphan = ShardKey("CAM-003", date(2025, 12, 31))  # a shard whose frames are gone
    write_shard(index_dir=index_dir, key=orphan, timezone=KYIV,
                vector_ids=np.array([10**9]), vectors=np.ones((1, 32), np.float32),
                captured_at_us=np.array([0]), phases=np.array([0]), frame_ids=[10**9],
                preset="test-tiny", weights_sha256="0" * 64,
                approximate_min_vectors=50_000)
    report = rebuild_shards(engine=search_state.engine, index_dir=index_dir,
                            derived=search_state.derived)
    assert report.shards_removed == [orphan.name] and len(report.shards_written) == 3
    after = sidecars(index_dir)
    assert {k: (v["count"], v["frame_count"], v["data_sha256"]) for k, v in after.items()} \
        == {k: (v["count"], v["frame_count"], v["data_sha256"]) for k, v in before.items()}
    assert similar_frames(search_state, search_corpus, red_frame) == baseline
    assert not list(index_dir.glob("cam-CAM-003/2025-12-31*"))


CRASH_SCRIPT = """
import os, sys, time
from pathlib import Path
from storage.db import make_engine
from indexer.shards import sync_shards

url, index_dir, suffix = sys.argv[1:4]
real_replace = os.replace

def replace_then_hang(src, dst):
    if str(dst).endswith(suffix):
        print("about to commit " + str(dst), flush=True)
        time.sleep(600)
    real_replace(src, dst)

os.replace = replace_then_hang
sync_shards(engine=make_engine(url), index_dir=Path(index_dir))
"""


@pytest.mark.parametrize("crash_before", [".npz", ".json"])
def test_index_stays_consistent_after_sigkill_mid_write(
        search_state: AppState, search_corpus: SearchCorpus, session: Session,
        red_frame: int, crash_before: str) -> None:
    index_dir = search_state.settings.index_dir
    baseline = similar_frames(search_state, search_corpus, red_frame)
    shutil.rmtree(index_dir)
    index_dir.mkdir()
    # every frame embedded, none in a shard: the state before the first sync
    session.execute(update(FrameIndexEntry).values(shard_key=None, indexed_at=None))
    session.execute(delete(SearchShard))
    add_to_backlog(session, [BacklogFrame(f.id or 0, f.camera_id, f.captured_at_utc)
                             for f in session.exec(select(Frame))], embedded=True)
    session.commit()
    writer = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, search_state.settings.resolved_database_url,
         str(index_dir), crash_before],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[3])
    assert writer.stdout is not None
    line = writer.stdout.readline()
    assert line.startswith("about to commit"), line
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)

    leftovers = [p.name for p in index_dir.rglob("*.tmp")]
    assert leftovers  # the half-done write is visible on disk ...
    assert ShardStore(index_dir).all_meta() == []  # ... but no shard was committed
    session.expire_all()
    assert all(e.shard_key is None for e in session.exec(select(FrameIndexEntry)))
    assert similar_frames(search_state, search_corpus, red_frame) == baseline

    report = sync_shards(engine=search_state.engine, index_dir=index_dir)
    assert len(report.shards_written) == 3 and report.garbage_removed >= 1
    assert not list(index_dir.rglob("*.tmp"))
    assert similar_frames(search_state, search_corpus, red_frame) == baseline
    with Session(search_state.engine) as fresh:
        result = search(session=fresh, get_embedder=lambda: search_corpus.embedder,
                        shards=ShardStore(index_dir),
                        request=SearchRequest(similar_to_frame_id=red_frame))
    assert result.provenance.frames_scored_from_database == 0
    assert session.exec(select(func.count()).select_from(SearchBacklog)).one() == 0


def test_frames_of_two_models_in_one_day_are_not_mixed(search_state: AppState,
                                                       search_corpus: SearchCorpus,
                                                       session: Session) -> None:
    cam3 = [f.id for f in session.exec(select(Frame).where(Frame.camera_id == "CAM-003"))]
    session.execute(update(FrameEmbedding).where(col(FrameEmbedding.frame_id).in_(cam3[:2]))
                    .values(weights_sha256="f" * 64))
    session.commit()
    report = sync_shards(engine=search_state.engine, index_dir=search_state.settings.index_dir)
    assert report.mixed_model_shards == ["CAM-003/2026-01-25"]
    shards = ShardStore(search_state.settings.index_dir)
    assert [m.key.name for m in shards.all_meta()] == ["CAM-001/2026-01-25",
                                                       "CAM-002/2026-01-25"]
    mixed = search(session=session, get_embedder=lambda: search_corpus.embedder,
                   shards=shards, request=SearchRequest(text="bus"))
    # the day's frames of the query's model are scored from the database, the others not
    prov = mixed.provenance
    assert prov.frames_of_another_model == 2 and prov.partial
    assert prov.frames_scored_from_database > 0
    assert not {f for m in mixed.moments for f in m.frame_ids} & set(cam3[:2])
    fine = search(session=session, get_embedder=lambda: search_corpus.embedder, shards=shards,
                  request=SearchRequest(text="bus", filters=SearchFilters(
                      camera_ids=("CAM-001", "CAM-002"))))
    assert fine.moments


def _clustered(count: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, count)] + 0.35 * rng.normal(size=(count, dim))
    vectors = vectors.astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _exact_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> set[int]:
    return {int(ids[i]) for i in np.argsort(-(vectors @ query))[:k]}


@pytest.mark.parametrize("filtered", [False, True])
def test_large_shards_are_approximate_with_exact_rerank(tmp_path: Path, filtered: bool) -> None:
    count, dim = 12_000, 32
    vectors = _clustered(count, dim, seed=1)
    ids = np.arange(1000, 1000 + count, dtype=np.int64)
    meta = write_shard(index_dir=tmp_path, key=ShardKey("CAM-X", date(2026, 1, 25)),
                       timezone=KYIV, vector_ids=ids, vectors=vectors, captured_at_us=ids,
                       phases=np.zeros(count, np.uint8),
                       frame_ids=[int(i) for i in ids], preset="test-tiny",
                       weights_sha256="a" * 64, approximate_min_vectors=10_000)
    assert meta.index_type == "ivf_sq8"
    shard = ShardStore(tmp_path).load(meta)
    allowed = ids[::2] if filtered else None
    assert allowed is None or len(allowed) > EXACT_MAX_ALLOWED  # the IVF selector path
    queries = _clustered(50, dim, seed=2)
    recalls = []
    for query in queries:
        hits = shard.search(query, k=10, allowed=allowed)
        got = {h.vector_id for h in hits}
        pool_ids = ids if allowed is None else allowed
        pool = vectors if allowed is None else vectors[::2]
        recalls.append(len(got & _exact_top(pool, pool_ids, query, 10)) / 10)
        if allowed is not None:
            assert got <= set(allowed.tolist())
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        rows = np.searchsorted(ids, [h.vector_id for h in hits])
        assert np.allclose(scores, vectors[rows] @ query, atol=5e-4)  # exact float16 re-rank
    assert float(np.mean(recalls)) >= 0.95


def test_flat_shard_applies_the_id_selector_inside_faiss(tmp_path: Path) -> None:
    count, dim = 6000, 32
    vectors = _clustered(count, dim, seed=3)
    ids = np.arange(count, dtype=np.int64) * 3 + 7
    meta = write_shard(index_dir=tmp_path, key=ShardKey("CAM-Y", date(2026, 1, 25)),
                       timezone=KYIV, vector_ids=ids, vectors=vectors, captured_at_us=ids,
                       phases=np.zeros(count, np.uint8),
                       frame_ids=[int(i) for i in ids], preset="test-tiny",
                       weights_sha256="b" * 64, approximate_min_vectors=50_000)
    shard = ShardStore(tmp_path).load(meta)
    allowed = ids[: EXACT_MAX_ALLOWED + 500]
    query = vectors[-1]  # its own best match is NOT allowed
    hits = shard.search(query, k=20, allowed=allowed)
    assert len(hits) == 20 and {h.vector_id for h in hits} <= set(allowed.tolist())
    assert {h.vector_id for h in hits} == _exact_top(vectors[: len(allowed)], allowed, query, 20)
