"""A shard's FAISS index, chosen by its size, and the search over one loaded shard.

Index types, by the number of vectors in the shard (the thresholds and re-rank factors
are an ``IndexPolicy``, built from the ``OKO_*_INDEX_*`` settings at the entry point;
docs/scaling.md explains what to set):

- ``flat``: fewer than ``approximate_min_vectors``. No FAISS index; the float32 vectors
  are held in RAM and every query scores them exactly (one matrix-vector product).
- ``ivf_sq8``: up to ``pq_min_vectors``. IVF with 8-bit scalar quantisation
  (1 byte per dimension in RAM).
- ``ivf_pq``: larger. IVF with 4-bit fast-scan product quantisation of the residuals
  (vector minus its IVF centroid), ``dim / 2`` sub-quantisers of 2 dimensions each
  (128 bytes per 512-d vector in RAM). Without the residual, or with 4-dimension
  sub-quantisers, the codes cannot tell CCTV's near-duplicate frames apart and the
  exact top 10 was mostly missing from the candidates (recall@10 0.21 at 1M).

The approximate types return ``rerank_factor × k`` candidates that are re-ranked exactly
against float16 copies of the vectors in a separate ``.npy`` file opened with
``np.load(mmap_mode="r")``: only the pages a query touches are read, so those vectors
do not count toward the resident memory of a search process.

Indexes are trained single-threaded: FAISS's k-means over many small sub-spaces ran
~18x slower with two OpenMP threads on two shared cores than with one.

FAISS labels are row numbers. Rows are in capture order (ties by id), so a time range is
a contiguous row range found by binary search (``np.searchsorted``): it becomes an
``IDSelectorRange``, and combined with day phases or an allowed-id set a bitmap
(``IDSelectorBitmap``). A selection of at most ``EXACT_MAX_SELECTED`` rows is scored
exactly over those rows, without FAISS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from indexer.daynight import DayPhase
from storage.errors import ConfigurationError

if TYPE_CHECKING:
    from storage.settings import Settings

FLAT = "flat"
IVF_SQ8 = "ivf_sq8"
IVF_PQ = "ivf_pq"
INDEX_TYPES = (FLAT, IVF_SQ8, IVF_PQ)

APPROXIMATE_MIN_VECTORS = 50_000  # below: flat (exact, float32 in RAM)
COMPRESSED_MIN_VECTORS = 200_000  # from here: IVF-PQ; between the two: IVF-SQ8
MIN_TRAIN_VECTORS = 1024  # fewer vectors cannot train an IVF/PQ index: always flat
EXACT_MAX_SELECTED = 4096  # narrow selections: score the selected rows directly, exactly
IVF_TRAIN_POINTS_PER_LIST = 40
PQ_TRAIN_POINTS_PER_CENTROID = 128  # 4-bit sub-quantisers have 16 centroids each
PQ_TRAIN_POINTS = 16 * PQ_TRAIN_POINTS_PER_CENTROID
PQ_TRAIN_ITERATIONS = 10  # k-means rounds per sub-quantiser (FAISS's 25: 2.4x the time)
RERANK_FACTOR = {IVF_SQ8: 4, IVF_PQ: 16}
MAX_RERANK_FACTOR = 256
BUILD_THREADS = 1
ADD_CHUNK = 65_536

PHASE_CODES: dict[str, int] = {DayPhase.DAY.value: 0, DayPhase.DUSK.value: 1,
                               DayPhase.NIGHT.value: 2}
PHASE_UNKNOWN = 255  # a frame whose day phase was not computed


@dataclass(frozen=True)
class IndexPolicy:
    """Which index type a shard gets by its size, and how many candidates each re-ranks.

    Built once where the program starts (``from_settings``) and passed down to
    ``write_shard``; recorded in each shard's sidecar (``index_params["policy"]``).
    Raises ``ConfigurationError`` for thresholds out of order or factors out of range.
    """

    approximate_min_vectors: int = APPROXIMATE_MIN_VECTORS
    pq_min_vectors: int = COMPRESSED_MIN_VECTORS
    sq8_rerank_factor: int = RERANK_FACTOR[IVF_SQ8]
    pq_rerank_factor: int = RERANK_FACTOR[IVF_PQ]

    def __post_init__(self) -> None:
        if self.approximate_min_vectors < 0:
            raise ConfigurationError("The approximate index threshold "
                                     f"({self.approximate_min_vectors}) is negative.")
        if self.pq_min_vectors < self.approximate_min_vectors:
            raise ConfigurationError(
                f"The IVF-PQ threshold ({self.pq_min_vectors} vectors) is below the "
                f"approximate index threshold ({self.approximate_min_vectors}); set it at "
                "or above, so shards grow from flat to IVF-SQ8 to IVF-PQ.")
        for index_type, factor in ((IVF_SQ8, self.sq8_rerank_factor),
                                   (IVF_PQ, self.pq_rerank_factor)):
            if not 1 <= factor <= MAX_RERANK_FACTOR:
                raise ConfigurationError(f"The {index_type} re-rank factor is {factor}, not "
                                         f"between 1 and {MAX_RERANK_FACTOR}.")

    @classmethod
    def from_settings(cls, settings: Settings) -> IndexPolicy:
        """The policy ``OKO_APPROXIMATE_INDEX_MIN_VECTORS`` … ``OKO_PQ_RERANK_FACTOR`` set."""
        return cls(approximate_min_vectors=settings.approximate_index_min_vectors,
                   pq_min_vectors=settings.pq_index_min_vectors,
                   sq8_rerank_factor=settings.sq8_rerank_factor,
                   pq_rerank_factor=settings.pq_rerank_factor)

    def choose(self, count: int) -> str:
        """The index type for a shard of ``count`` vectors."""
        return choose_index_type(count, approximate_min_vectors=self.approximate_min_vectors,
                                 compressed_min_vectors=self.pq_min_vectors)

    def rerank_factor(self, index_type: str) -> int:
        return self.pq_rerank_factor if index_type == IVF_PQ else self.sq8_rerank_factor

    def to_json(self) -> dict[str, int]:
        return {"approximate_min_vectors": self.approximate_min_vectors,
                "pq_min_vectors": self.pq_min_vectors,
                "sq8_rerank_factor": self.sq8_rerank_factor,
                "pq_rerank_factor": self.pq_rerank_factor}


DEFAULT_POLICY = IndexPolicy()


def choose_index_type(count: int, *, approximate_min_vectors: int = APPROXIMATE_MIN_VECTORS,
                      compressed_min_vectors: int = COMPRESSED_MIN_VECTORS) -> str:
    """The index type for a shard of ``count`` vectors."""
    if count < max(approximate_min_vectors, MIN_TRAIN_VECTORS):
        return FLAT
    if count < compressed_min_vectors:
        return IVF_SQ8
    return IVF_PQ


def ivf_lists(count: int) -> int:
    return max(1, round(math.sqrt(count)))


def ivf_nprobe(nlist: int) -> int:
    return min(nlist, max(8, nlist // 8))


def pq_subquantizers(dim: int) -> int:
    """The largest even divisor of ``dim`` that is at most ``dim / 2`` (256 for 512-d)."""
    return max([m for m in range(2, max(2, dim // 2) + 1, 2) if dim % m == 0] or [2])


def index_params(index_type: str, *, count: int, dim: int,
                 policy: IndexPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """The parameters an index of this type gets; recorded in the sidecar (provenance)."""
    if index_type == FLAT:
        return {"vectors_dtype": "float32", "policy": policy.to_json()}
    nlist = ivf_lists(count)
    params: dict[str, Any] = {"nlist": nlist, "nprobe": ivf_nprobe(nlist),
                              "rerank_factor": policy.rerank_factor(index_type),
                              "rerank_dtype": "float16", "policy": policy.to_json()}
    if index_type == IVF_SQ8:
        params["factory"] = f"IVF{nlist},SQ8"
    else:
        params.update(pq_m=pq_subquantizers(dim), pq_nbits=4, by_residual=True,
                      pq_train_iterations=PQ_TRAIN_ITERATIONS)
        params["factory"] = f"IVF{nlist},PQ{params['pq_m']}x4fsr"  # r: by residual
    return params


def train_sample_rows(index_type: str, *, count: int, nlist: int) -> np.ndarray:
    """Which rows train the index: a deterministic sample, sorted (cheap on a memmap)."""
    wanted = nlist * IVF_TRAIN_POINTS_PER_LIST
    if index_type == IVF_PQ:
        wanted = max(wanted, PQ_TRAIN_POINTS)
    sample = min(count, wanted)
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(count, size=sample, replace=False))


def build_index(index_type: str, params: dict[str, Any], vectors: np.ndarray) -> faiss.Index:
    """Train an IVF index on a sample of ``vectors`` and add them all, labels = rows.

    ``vectors`` may be a memmap (float16 or float32); rows are added in chunks. FAISS
    runs on ``BUILD_THREADS`` OpenMP threads meanwhile (restored afterwards).
    """
    count, dim = vectors.shape
    index = faiss.index_factory(dim, params["factory"], faiss.METRIC_INNER_PRODUCT)
    if "pq_train_iterations" in params:
        pq_index: Any = faiss.downcast_index(index)
        pq_index.pq.cp.niter = int(params["pq_train_iterations"])
        pq_index.pq.cp.max_points_per_centroid = PQ_TRAIN_POINTS_PER_CENTROID
    rows = train_sample_rows(index_type, count=count, nlist=int(params["nlist"]))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(BUILD_THREADS)
    try:
        index.train(np.ascontiguousarray(vectors[rows], dtype=np.float32))
        for start in range(0, count, ADD_CHUNK):
            index.add(np.ascontiguousarray(vectors[start:start + ADD_CHUNK],
                                           dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(threads)
    faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
    return index


@dataclass(frozen=True)
class ShardHit:
    """One vector of a shard and its exact score (inner product with the query)."""

    vector_id: int
    score: float
    captured_at_us: int = 0
    phase: int = PHASE_UNKNOWN


class ShardSearcher:
    """The search over one shard's rows; ``LoadedShard`` adds its metadata.

    ``exact`` holds the vectors exact scores come from: float32 in RAM for a flat shard,
    a float16 memmap for an approximate one (``index`` is then its FAISS index).
    """

    def __init__(self, *, ids: np.ndarray, captured_at_us: np.ndarray, phases: np.ndarray,
                 exact: np.ndarray, index: faiss.Index | None, rerank_factor: int) -> None:
        self.ids = ids
        self.captured_at_us = captured_at_us
        self.phases = phases
        self.exact = exact
        self.index = index
        self.rerank_factor = rerank_factor
        self._unique_ids = len(np.unique(ids)) == len(ids)

    def row_range(self, time_range_us: tuple[int, int] | None) -> tuple[int, int]:
        """Rows [lo, hi) captured within ``[start, end]`` (both ends included)."""
        if time_range_us is None:
            return 0, len(self.ids)
        start, end = time_range_us
        lo = int(np.searchsorted(self.captured_at_us, start, side="left"))
        hi = int(np.searchsorted(self.captured_at_us, end, side="right"))
        return lo, max(lo, hi)

    def selection(self, *, allowed: np.ndarray | None, time_range_us: tuple[int, int] | None,
                  phases: frozenset[int] | None) -> tuple[int, int, np.ndarray | None]:
        """The row range and, when phases or ids narrow it, a mask over that range."""
        lo, hi = self.row_range(time_range_us)
        mask: np.ndarray | None = None
        if phases is not None and len(phases) == 1:  # np.isin costs more than the scan
            mask = self.phases[lo:hi] == next(iter(phases))
        elif phases is not None:
            codes = np.fromiter(phases, dtype=np.uint8, count=len(phases))
            mask = np.isin(self.phases[lo:hi], codes)
        if allowed is not None:
            by_id = np.isin(self.ids[lo:hi], np.asarray(allowed, dtype=np.int64))
            mask = by_id if mask is None else mask & by_id
        return lo, hi, mask

    def search(self, query: np.ndarray, *, k: int, allowed: np.ndarray | None = None,
               time_range_us: tuple[int, int] | None = None,
               phases: frozenset[int] | None = None) -> list[ShardHit]:
        """The ``k`` best rows passing every filter, best first, with exact scores.

        ``allowed`` (vector ids), ``time_range_us`` (UTC microseconds, both ends included)
        and ``phases`` (``PHASE_CODES`` values) combine with AND; a filtered-out vector
        never takes a place in the top ``k``.
        """
        if k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        lo, hi, mask = self.selection(allowed=allowed, time_range_us=time_range_us,
                                      phases=phases)
        selected = (hi - lo) if mask is None else int(np.count_nonzero(mask))
        if selected == 0:
            return []
        if self.index is None:
            scores = self.exact[lo:hi] @ q
            rows = np.arange(lo, hi)
            if mask is not None:
                rows, scores = rows[mask], scores[mask]
            return self._top(rows, scores, k)
        if selected <= EXACT_MAX_SELECTED:
            rows = np.arange(lo, hi) if mask is None else lo + np.flatnonzero(mask)
            return self._rerank(q, rows, k)
        return self._approximate(q, k=k, lo=lo, hi=hi, mask=mask, selected=selected)

    def _approximate(self, q: np.ndarray, *, k: int, lo: int, hi: int,
                     mask: np.ndarray | None, selected: int) -> list[ShardHit]:
        assert self.index is not None
        params = faiss.SearchParametersIVF()
        params.nprobe = faiss.extract_index_ivf(self.index).nprobe
        bitmap: np.ndarray | None = None  # must outlive the search: FAISS reads it
        if mask is not None:
            full = np.zeros(len(self.ids), dtype=bool)
            full[lo:hi] = mask
            bitmap = np.packbits(full, bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(full), faiss.swig_ptr(bitmap))
        elif (lo, hi) != (0, len(self.ids)):
            params.sel = faiss.IDSelectorRange(lo, hi)
        wanted = min(selected, k * self.rerank_factor)
        _scores, labels = self.index.search(q.reshape(1, -1), wanted, params=params)
        del bitmap
        rows = np.sort(labels[0][labels[0] >= 0])
        return self._rerank(q, rows, k)

    def _rerank(self, q: np.ndarray, rows: np.ndarray, k: int) -> list[ShardHit]:
        if len(rows) == 0:
            return []
        # np.take gathers from a memmap ~3x faster than fancy indexing; touches only these pages
        vectors = np.take(self.exact, rows, axis=0).astype(np.float32, copy=False)
        return self._top(rows, vectors @ q, k)

    def _top(self, rows: np.ndarray, scores: np.ndarray, k: int) -> list[ShardHit]:
        if self._unique_ids and len(rows) > 4 * k:
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = np.flatnonzero(scores >= kth)  # every tie at the k-th score stays
            rows, scores = rows[keep], scores[keep]
        ids = self.ids[rows]
        order = np.lexsort((ids, -scores))  # best score first, ties by id
        hits: list[ShardHit] = []
        seen: set[int] = set()
        for i in order:
            vector_id = int(ids[i])
            if not self._unique_ids:
                if vector_id in seen:
                    continue
                seen.add(vector_id)
            row = int(rows[i])
            hits.append(ShardHit(vector_id, float(scores[i]), int(self.captured_at_us[row]),
                                 int(self.phases[row])))
            if len(hits) == k:
                break
        return hits


__all__ = [
    "APPROXIMATE_MIN_VECTORS",
    "COMPRESSED_MIN_VECTORS",
    "DEFAULT_POLICY",
    "EXACT_MAX_SELECTED",
    "FLAT",
    "INDEX_TYPES",
    "IVF_PQ",
    "IVF_SQ8",
    "PHASE_CODES",
    "PHASE_UNKNOWN",
    "RERANK_FACTOR",
    "IndexPolicy",
    "ShardHit",
    "ShardSearcher",
    "build_index",
    "choose_index_type",
    "index_params",
    "ivf_nprobe",
]
