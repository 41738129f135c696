"""Shard format 2: filter arrays, index types by size, unusable and stale shards."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from indexer.shard_files import (
    EXACT_MAX_SELECTED,
    PHASE_CODES,
    ShardKey,
    ShardMeta,
    ShardStore,
    ShardUnusableError,
    collect_garbage,
    read_sidecar,
    write_shard,
)
from storage.errors import InvalidInputError

KYIV = "Europe/Kyiv"
KEY = ShardKey("CAM-7", date(2026, 1, 25))
DAY_US = 86_400_000_000
THRESHOLDS = {"flat": (10**9, 10**9), "ivf_sq8": (1000, 10**9), "ivf_pq": (1000, 1000)}


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _rows(count: int, dim: int, seed: int) -> tuple[np.ndarray, ...]:
    """Ids, vectors (clustered), capture times (shuffled) and phase codes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(32, dim))
    vectors = _unit(centres[rng.integers(0, 32, count)] + 0.4 * rng.normal(size=(count, dim)))
    ids = rng.permutation(np.arange(10, 10 + count, dtype=np.int64) * 3)
    times = rng.integers(0, DAY_US, count).astype(np.int64)
    times[:20] = times[0]  # ties: ordered by id
    phases = rng.choice(np.array(list(PHASE_CODES.values()), dtype=np.uint8), count)
    return ids, vectors, times, phases


def _write(index_dir: Path, ids: np.ndarray, vectors: np.ndarray, times: np.ndarray,
           phases: np.ndarray, index_type: str = "flat", weights: str = "a" * 64) -> ShardMeta:
    approximate, compressed = THRESHOLDS[index_type]
    return write_shard(index_dir=index_dir, key=KEY, timezone=KYIV, vector_ids=ids,
                       vectors=vectors, captured_at_us=times, phases=phases,
                       frame_ids=sorted(ids.tolist()), preset="test-tiny",
                       weights_sha256=weights, approximate_min_vectors=approximate,
                       compressed_min_vectors=compressed)


def _brute(ids: np.ndarray, vectors: np.ndarray, times: np.ndarray, phases: np.ndarray,
           query: np.ndarray, k: int, *, time_range: tuple[int, int] | None = None,
           codes: frozenset[int] | None = None, allowed: np.ndarray | None = None) -> list[int]:
    keep = np.ones(len(ids), dtype=bool)
    if time_range is not None:
        keep &= (times >= time_range[0]) & (times <= time_range[1])
    if codes is not None:
        keep &= np.isin(phases, list(codes))
    if allowed is not None:
        keep &= np.isin(ids, allowed)
    scores = vectors[keep] @ query
    order = np.lexsort((ids[keep], -scores))[:k]
    return [int(i) for i in ids[keep][order]]


def test_filter_arrays_round_trip_in_capture_order(tmp_path: Path) -> None:
    ids, vectors, times, phases = _rows(3000, 16, seed=1)
    meta = _write(tmp_path, ids, vectors, times, phases)
    raw = json.loads(KEY.sidecar_path(tmp_path).read_text())
    assert raw["format"] == 2 and raw["index_type"] == "flat" and "vector_ids" not in raw
    shard = ShardStore(tmp_path).load(meta)
    order = np.lexsort((ids, times))
    assert shard.ids.tolist() == ids[order].tolist()
    assert shard.captured_at_us.tolist() == times[order].tolist()
    assert shard.phases.tolist() == phases[order].tolist()
    assert shard.captured_at_us.dtype == np.int64 and shard.phases.dtype == np.uint8
    assert shard.frame_ids.tolist() == sorted(ids.tolist())
    assert np.array_equal(shard.exact, vectors[order])
    assert (meta.first_captured_us, meta.last_captured_us) == (times.min(), times.max())


@pytest.mark.parametrize("index_type", ["flat", "ivf_sq8", "ivf_pq"])
def test_each_index_type_is_chosen_at_its_size_and_finds_the_exact_top_k(
        tmp_path: Path, index_type: str) -> None:
    ids, _clustered, times, phases = _rows(6000, 32, seed=2)
    rng = np.random.default_rng(9)  # easy: groups of 5 near-duplicates of random bases
    bases = np.repeat(_unit(rng.normal(size=(1200, 32))), 5, axis=0)
    vectors = _unit(bases + 0.02 * rng.normal(size=bases.shape))
    meta = _write(tmp_path, ids, vectors, times, phases, index_type)
    assert meta.index_type == index_type
    assert read_sidecar(KEY.sidecar_path(tmp_path)) == meta  # recorded for provenance
    if index_type != "flat":
        assert meta.index_params["rerank_dtype"] == "float16" and meta.rerank_file
        assert meta.index_params["nprobe"] <= meta.index_params["nlist"]
    shard = ShardStore(tmp_path).load(meta)
    for row in (5, 700, 4000):  # a stored vector finds itself and its near-duplicates
        hits = shard.search(vectors[row], k=5)
        assert hits[0].vector_id == ids[row]
        assert [h.vector_id for h in hits] == _brute(ids, vectors, times, phases,
                                                     vectors[row], 5)
        assert np.isclose(hits[0].score, 1.0, atol=1e-3)
        assert hits[0].captured_at_us == times[row] and hits[0].phase == phases[row]


@pytest.mark.parametrize("index_type", ["flat", "ivf_sq8", "ivf_pq"])
def test_time_range_phase_and_id_filters_equal_a_brute_force_reference(
        tmp_path: Path, index_type: str) -> None:
    ids, vectors, times, phases = _rows(6000, 32, seed=3)
    shard = ShardStore(tmp_path).load(_write(tmp_path, ids, vectors, times, phases,
                                             index_type))
    rng = np.random.default_rng(4)
    night = frozenset({PHASE_CODES["night"]})
    narrow = (int(times[100]), int(times[100]) + DAY_US // 8)  # ~750 rows: scored exactly
    wide = (DAY_US // 10, DAY_US)  # ~5400 rows: through the FAISS selector
    cases: list[dict] = [
        {"time_range_us": narrow}, {"time_range_us": narrow, "phases": night},
        {"phases": night, "allowed": ids[::3]}, {"time_range_us": wide},
        {"time_range_us": wide, "phases": night},
        {"time_range_us": (int(times[0]), int(times[0]))},  # one instant, both ends included
        {"time_range_us": (DAY_US + 1, 2 * DAY_US)},  # nothing
    ]
    overlaps = []
    for case in cases:
        near_data = vectors[rng.integers(0, len(ids), 5)] + 0.3 * rng.normal(size=(5, 32))
        for query in _unit(near_data):
            hits = shard.search(query, k=10, **case)
            reference = _brute(ids, vectors, times, phases, query, 10,
                               time_range=case.get("time_range_us"),
                               codes=case.get("phases"), allowed=case.get("allowed"))
            got = [h.vector_id for h in hits]
            selected = len(_brute(ids, vectors, times, phases, query, 10**6,
                                  time_range=case.get("time_range_us"),
                                  codes=case.get("phases"), allowed=case.get("allowed")))
            if index_type == "flat" or selected <= EXACT_MAX_SELECTED:
                assert got == reference, case
            else:  # approximate: only admitted rows, exact scores, good recall
                overlaps.append(len(set(got) & set(reference)) / 10)
            by_id = dict(zip(ids.tolist(), range(len(ids)), strict=True))
            for hit in hits:
                row = by_id[hit.vector_id]
                assert np.isclose(hit.score, vectors[row] @ query, atol=1e-3)
                if "time_range_us" in case:
                    low, high = case["time_range_us"]
                    assert low <= times[row] <= high
                if "phases" in case:
                    assert phases[row] in case["phases"]
    assert not overlaps or float(np.mean(overlaps)) >= 0.8  # recall: benchmarks/index_types


def test_bad_arrays_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    ids, vectors, times, phases = _rows(100, 16, seed=5)
    with pytest.raises(InvalidInputError, match="one vector, capture time and day phase"):
        _write(tmp_path, ids, vectors, times[:-1], phases)
    bad_phases = phases.copy()
    bad_phases[3] = 9
    with pytest.raises(InvalidInputError, match=r"Day phase codes \[9\]"):
        _write(tmp_path, ids, vectors, times, bad_phases)
    assert not list(tmp_path.rglob("*.*"))


def _approximate_shard(index_dir: Path) -> ShardMeta:
    ids, vectors, times, phases = _rows(3000, 16, seed=6)
    return _write(index_dir, ids, vectors, times, phases, "ivf_sq8")


def _flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flipped", "truncated", "missing", "rerank_truncated",
                                    "other_model"])
def test_unusable_data_file_raises_with_a_reason(tmp_path: Path, damage: str) -> None:
    meta = _approximate_shard(tmp_path)
    directory = KEY.directory(tmp_path)
    data, rerank = directory / meta.data_file, directory / str(meta.rerank_file)
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p != data}
    if damage == "flipped":
        _flip_byte(data, meta.data_bytes // 2)
        expected = "corrupt or truncated"
    elif damage == "truncated":
        data.write_bytes(data.read_bytes()[:-100])
        expected = "corrupt or truncated"
    elif damage == "missing":
        data.unlink()
        expected = "cannot be read"
    elif damage == "rerank_truncated":
        rerank.write_bytes(rerank.read_bytes()[:-64])
        expected = "re-rank file .* cannot be read|truncated"
    else:  # a sidecar claiming another model than the data file holds
        meta = ShardMeta(**{**meta.__dict__, "weights_sha256": "f" * 64})
        expected = "holds weights_sha256 'a{64}', not the sidecar's 'f{64}'"
    with pytest.raises(ShardUnusableError, match=expected) as caught:
        ShardStore(tmp_path).load(meta)
    assert caught.value.reason and str(caught.value).startswith(f"Index shard {KEY.name}")
    after = {p.name: p.read_bytes() for p in directory.iterdir() if p != data}
    if damage != "rerank_truncated":
        assert after == before  # loading wrote nothing


def test_damaged_sizes_hide_the_shard_from_listing_with_a_reason(tmp_path: Path) -> None:
    meta = _approximate_shard(tmp_path)
    rerank = KEY.directory(tmp_path) / str(meta.rerank_file)
    rerank.write_bytes(rerank.read_bytes()[:-64])
    store = ShardStore(tmp_path)
    assert store.all_meta() == [] and read_sidecar(KEY.sidecar_path(tmp_path)) is None
    assert "has" in store.unusable[KEY.name] and str(meta.rerank_file) in store.unusable[KEY.name]


def test_old_format_sidecar_is_stale_not_a_crash(tmp_path: Path) -> None:
    directory = KEY.directory(tmp_path)
    directory.mkdir(parents=True)
    old_data = directory / "2026-01-25.0123456789abcdef.npz"
    np.savez(old_data, ids=np.arange(3), vectors=np.ones((3, 4), np.float32))
    KEY.sidecar_path(tmp_path).write_text(json.dumps({
        "format": 1, "key": KEY.name, "camera_id": KEY.camera_id, "local_day": "2026-01-25",
        "kind": "flat", "data_file": old_data.name, "vector_ids": [0, 1, 2]}))
    store = ShardStore(tmp_path)
    assert store.all_meta() == []
    assert read_sidecar(KEY.sidecar_path(tmp_path)) is None  # sync_shards rewrites it
    assert "older index format (sidecar format 1)" in store.unusable[KEY.name]
    assert collect_garbage(tmp_path) == 0 and old_data.exists()  # kept until rewritten
    ids, vectors, times, phases = _rows(50, 4, seed=7)
    meta = _write(tmp_path, ids, vectors, times, phases)
    assert store.all_meta() == [meta] and store.unusable == {}
    assert collect_garbage(tmp_path) == 1 and not old_data.exists()


def test_garbage_collection_keeps_both_files_of_a_committed_shard(tmp_path: Path) -> None:
    first = _approximate_shard(tmp_path)
    ids, vectors, times, phases = _rows(2500, 16, seed=8)
    second = _write(tmp_path, ids, vectors, times, phases, "ivf_sq8")
    assert set(first.files).isdisjoint(second.files)
    assert collect_garbage(tmp_path) == 2  # the first shard's .npz and .f16.npy
    names = {p.name for p in KEY.directory(tmp_path).iterdir()}
    assert names == {*second.files, KEY.sidecar_path(tmp_path).name}
    assert ShardStore(tmp_path).load(second).search(vectors[0], k=1)[0].vector_id == ids[0]
