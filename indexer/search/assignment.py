"""Which search worker holds which shard: rendezvous (highest-random-weight) hashing.

Each shard is named by its key, ``camera/day`` (``ShardKey.name``), so all of one
camera's day sits on one worker and a scoped question ("this camera, last night") costs
one task. For every (worker, shard) pair a weight is drawn from a keyed hash; a shard
belongs to the workers with the highest weights (``replicas`` of them, best first).

Because a pair's weight depends on nothing but the pair, adding a worker moves only the
shards the new worker now wins (about 1/n of them), and removing one moves only the
shards it held; every other shard stays where it was. The functions here are pure: the
same names give the same answer on every machine and in every process.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence

from storage.errors import ConfigurationError

WORKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_REPLICAS = 3


def check_worker_names(workers: Sequence[str]) -> None:
    """Raises ``ConfigurationError`` for an empty list, a bad name or a name given twice."""
    if not workers:
        raise ConfigurationError("No search workers are configured; name at least one in"
                                 " OKO_SEARCH_WORKERS.")
    seen: set[str] = set()
    for name in workers:
        if WORKER_NAME.fullmatch(name) is None:
            raise ConfigurationError(
                f"Search worker name '{name[:64]}' is not valid; use 1 to 64 letters, digits,"
                " '-' or '_', starting with a letter or digit.")
        if name in seen:
            raise ConfigurationError(f"Search worker '{name}' is named twice in"
                                     " OKO_SEARCH_WORKERS.")
        seen.add(name)


def _weight(worker: str, shard: str) -> int:
    digest = hashlib.blake2b(f"{worker}\x00{shard}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_owners(shard: str, workers: Sequence[str], *, replicas: int = 1) -> list[str]:
    """The workers that hold ``shard``, best first (``min(replicas, len(workers))`` of them).

    Raises ``ConfigurationError`` for bad worker names or a replica count outside 1 to
    ``MAX_REPLICAS``.
    """
    check_worker_names(workers)
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ConfigurationError(f"A shard can be held by 1 to {MAX_REPLICAS} search workers;"
                                 f" {replicas} were asked for.")
    ranked = sorted(workers, key=lambda worker: (_weight(worker, shard), worker), reverse=True)
    return ranked[:replicas]


def assign_shards(shards: Iterable[str], workers: Sequence[str], *,
                  replicas: int = 1) -> dict[str, list[str]]:
    """Every worker's shards (sorted), for copying shard files to the workers that hold them.

    A worker that wins no shard maps to an empty list. Raises as ``shard_owners``.
    """
    check_worker_names(workers)
    held: dict[str, list[str]] = {worker: [] for worker in workers}
    for shard in sorted(set(shards)):
        for worker in shard_owners(shard, workers, replicas=replicas):
            held[worker].append(shard)
    return held


def route_shards(shards: Iterable[str], workers: Sequence[str], *, replicas: int = 1,
                 avoid: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Which worker to ask for each shard in one query: its best owner not in ``avoid``.

    ``avoid`` names workers that recently failed to answer; a shard all of whose owners
    are avoided still goes to its best owner (asking is then the only way to find out
    whether it is back). Returns worker -> shards, only for workers that get any.
    """
    routed: dict[str, list[str]] = {}
    for shard in sorted(set(shards)):
        owners = shard_owners(shard, workers, replicas=replicas)
        target = next((owner for owner in owners if owner not in avoid), owners[0])
        routed.setdefault(target, []).append(shard)
    return routed


__all__ = [
    "MAX_REPLICAS",
    "WORKER_NAME",
    "assign_shards",
    "check_worker_names",
    "route_shards",
    "shard_owners",
]
