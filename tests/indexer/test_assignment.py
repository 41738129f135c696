"""Rendezvous assignment of (camera, day) shards to search workers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from indexer.search.assignment import (
    assign_shards,
    check_worker_names,
    route_shards,
    shard_owners,
)
from indexer.shard_files import ShardKey
from storage.errors import ConfigurationError

# 150 cameras x 20 days: a realistic month's worth of shard names
SHARDS = [ShardKey(camera_id=f"CAM-{camera:03d}",
                   local_day=date(2026, 11, 1) + timedelta(days=day)).name
          for camera in range(150) for day in range(20)]


def _owner_map(workers: list[str], replicas: int = 1) -> dict[str, tuple[str, ...]]:
    return {shard: tuple(shard_owners(shard, workers, replicas=replicas)) for shard in SHARDS}


def test_every_shard_has_one_owner_and_the_load_is_even() -> None:
    held = assign_shards(SHARDS, ["w1", "w2", "w3"])
    assert sorted(s for shards in held.values() for s in shards) == sorted(SHARDS)
    for shards in held.values():
        # 3000 shards over 3 workers: each within 15% of 1000
        assert 850 <= len(shards) <= 1150


def test_the_answer_is_the_same_whatever_order_the_workers_are_listed_in() -> None:
    assert _owner_map(["w1", "w2", "w3"]) == _owner_map(["w3", "w1", "w2"])


def test_adding_a_worker_moves_only_the_shards_it_takes() -> None:
    before = _owner_map(["w1", "w2", "w3"])
    after = _owner_map(["w1", "w2", "w3", "w4"])
    moved = [shard for shard in SHARDS if before[shard] != after[shard]]
    assert all(after[shard] == ("w4",) for shard in moved)  # nothing moves between old ones
    assert 0.18 * len(SHARDS) <= len(moved) <= 0.32 * len(SHARDS)  # about 1/4


def test_removing_a_worker_moves_only_its_own_shards() -> None:
    before = _owner_map(["w1", "w2", "w3", "w4"])
    after = _owner_map(["w1", "w2", "w4"])
    for shard in SHARDS:
        if before[shard] != ("w3",):
            assert after[shard] == before[shard]
        else:
            assert after[shard] != ("w3",)


def test_replicas_are_distinct_and_the_first_is_the_single_owner() -> None:
    single = _owner_map(["w1", "w2", "w3"])
    double = _owner_map(["w1", "w2", "w3"], replicas=2)
    for shard in SHARDS:
        assert len(set(double[shard])) == 2
        assert double[shard][0] == single[shard][0]
    held = assign_shards(SHARDS, ["w1", "w2", "w3"], replicas=2)
    assert sum(len(shards) for shards in held.values()) == 2 * len(SHARDS)


def test_adding_a_worker_with_replicas_keeps_every_old_copy_but_the_one_it_displaces() -> None:
    before = _owner_map(["w1", "w2", "w3"], replicas=2)
    after = _owner_map(["w1", "w2", "w3", "w4"], replicas=2)
    for shard in SHARDS:
        kept = set(before[shard]) & set(after[shard])
        assert len(kept) >= 1
        assert set(after[shard]) - set(before[shard]) <= {"w4"}


def test_more_replicas_than_workers_gives_every_worker() -> None:
    assert sorted(shard_owners(SHARDS[0], ["w1", "w2"], replicas=3)) == ["w1", "w2"]


def test_route_avoids_a_failed_owner_when_a_replica_exists() -> None:
    workers = ["w1", "w2", "w3"]
    routed = route_shards(SHARDS, workers, replicas=2, avoid=frozenset({"w2"}))
    assert "w2" not in routed
    assert sorted(s for shards in routed.values() for s in shards) == sorted(SHARDS)
    for worker, shards in routed.items():
        assert all(worker in shard_owners(s, workers, replicas=2) for s in shards)


def test_route_without_replicas_still_asks_the_only_owner() -> None:
    workers = ["w1", "w2"]
    routed = route_shards(SHARDS, workers, avoid=frozenset({"w1"}))
    plain = route_shards(SHARDS, workers)
    assert routed == plain
    assert set(routed) == {"w1", "w2"}


@pytest.mark.parametrize(("workers", "message"), [
    ([], "No search workers are configured"),
    (["w1", "w1"], "named twice"),
    (["w 1"], "is not valid"),
    (["-w"], "is not valid"),
    (["w" * 65], "is not valid"),
])
def test_bad_worker_lists_are_refused(workers: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        check_worker_names(workers)
    with pytest.raises(ConfigurationError, match=message):
        assign_shards(SHARDS[:3], workers)


@pytest.mark.parametrize("replicas", [0, 4])
def test_a_replica_count_out_of_range_is_refused(replicas: int) -> None:
    with pytest.raises(ConfigurationError, match="1 to 3 search workers"):
        shard_owners(SHARDS[0], ["w1", "w2"], replicas=replicas)
