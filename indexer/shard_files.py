"""FAISS shard files: one per camera per local day, written atomically, loaded and searched.

Layout under ``index_dir``::

    cam-<quoted camera id>/<YYYY-MM-DD>.json              sidecar: the commit point
    cam-<quoted camera id>/<YYYY-MM-DD>.<sha16>.npz       ids, vectors (+ FAISS IVF bytes)

The day is the camera's LOCAL calendar day (its IANA time zone), because investigators
ask about local days and nights; a shard records its exact UTC bounds, so time filters
select shards without any time zone arithmetic at query time.

A shard is written atomically: the data file goes to a temp file, is fsynced and renamed
under a content-addressed name, then the JSON sidecar naming it is written the same way.
A crash at any point leaves the previous sidecar and its data file intact. The database
stays the source of truth: ``FrameIndexEntry.shard_key`` is set only after the shard is
committed, and search scores frames whose entry is not yet set exactly from their stored
vectors, so a crash can delay indexing but never hide a frame.

Shards below ``approximate_min_vectors`` are exact (``IndexIDMap(IndexFlatIP)``); larger
ones use an IVF index with 8-bit scalar quantisation whose candidates are re-ranked
exactly against the float32 vectors kept in the shard. Ids are frame ids throughout.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import faiss
import numpy as np

from storage.atomic import write_atomically
from storage.errors import ConflictError, StorageError

SIDECAR_FORMAT = 1
RERANK_FACTOR = 4
EXACT_MAX_ALLOWED = 4096  # narrow filters: score the allowed vectors directly, exactly
IVF_TRAIN_POINTS_PER_LIST = 40
TEMP_SUFFIX = ".tmp"


class ModelMismatchError(ConflictError):
    """Vectors from different models (or dimensions) would be compared in one query."""


@dataclass(frozen=True, order=True)
class ShardKey:
    """Which camera and which local calendar day a shard covers."""

    camera_id: str
    local_day: date

    @property
    def name(self) -> str:
        return f"{self.camera_id}/{self.local_day.isoformat()}"

    @classmethod
    def parse(cls, name: str) -> ShardKey:
        camera_id, _, day = name.rpartition("/")
        return cls(camera_id=camera_id, local_day=date.fromisoformat(day))

    def directory(self, index_dir: Path) -> Path:
        # "cam-" prefix keeps ids such as "." or ".." from naming special directories
        return index_dir / f"cam-{quote(self.camera_id, safe='')}"

    def sidecar_path(self, index_dir: Path) -> Path:
        return self.directory(index_dir) / f"{self.local_day.isoformat()}.json"


def shard_key_for(*, camera_id: str, captured_at_utc: datetime, timezone: str) -> ShardKey:
    local = captured_at_utc.astimezone(ZoneInfo(timezone))
    return ShardKey(camera_id=camera_id, local_day=local.date())


def local_day_bounds_utc(day: date, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day in UTC (23 or 25 hours on DST change days)."""
    zone = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1)
    end = datetime(end.year, end.month, end.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class ShardMeta:
    """The parsed sidecar of a committed shard."""

    key: ShardKey
    timezone: str
    utc_start: datetime
    utc_end: datetime
    preset: str
    weights_sha256: str
    dim: int
    count: int
    kind: str  # "flat" or "ivf"
    data_file: str
    data_sha256: str
    data_bytes: int
    vector_ids: list[int]
    frame_ids: list[int]
    written_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SIDECAR_FORMAT, "key": self.key.name, "camera_id": self.key.camera_id,
            "local_day": self.key.local_day.isoformat(), "timezone": self.timezone,
            "utc_start": self.utc_start.isoformat(), "utc_end": self.utc_end.isoformat(),
            "preset": self.preset, "weights_sha256": self.weights_sha256, "dim": self.dim,
            "count": self.count, "kind": self.kind, "data_file": self.data_file,
            "data_sha256": self.data_sha256, "data_bytes": self.data_bytes,
            "written_at": self.written_at.isoformat(),
            "vector_ids": self.vector_ids, "frame_ids": self.frame_ids,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ShardMeta:
        if raw.get("format") != SIDECAR_FORMAT:
            raise ValueError(f"unknown sidecar format {raw.get('format')!r}")
        return cls(
            key=ShardKey(camera_id=raw["camera_id"],
                         local_day=date.fromisoformat(raw["local_day"])),
            timezone=raw["timezone"], utc_start=datetime.fromisoformat(raw["utc_start"]),
            utc_end=datetime.fromisoformat(raw["utc_end"]), preset=raw["preset"],
            weights_sha256=raw["weights_sha256"], dim=int(raw["dim"]),
            count=int(raw["count"]), kind=raw["kind"], data_file=raw["data_file"],
            data_sha256=raw["data_sha256"], data_bytes=int(raw["data_bytes"]),
            vector_ids=[int(i) for i in raw["vector_ids"]],
            frame_ids=[int(i) for i in raw["frame_ids"]],
            written_at=datetime.fromisoformat(raw["written_at"]),
        )


def read_sidecar(path: Path) -> ShardMeta | None:
    """The shard's metadata, or None when the sidecar or its data file is missing or broken."""
    try:
        meta = ShardMeta.from_json(json.loads(path.read_text(encoding="utf-8")))
        data = path.parent / meta.data_file
        if data.stat().st_size != meta.data_bytes:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    try:
        write_atomically(path, data, temp_suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise StorageError(f"Could not write index file {path.name} ({exc.strerror}).") from exc


def _ivf_lists(count: int) -> int:
    return max(1, round(math.sqrt(count)))


def ivf_nprobe(nlist: int) -> int:
    return min(nlist, max(8, nlist // 8))


def build_ivf(vectors: np.ndarray, ids: np.ndarray) -> faiss.Index:
    """An IVF index with 8-bit scalar quantisation (inner product), trained on a sample."""
    count, dim = vectors.shape
    nlist = _ivf_lists(count)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    sample = min(count, nlist * IVF_TRAIN_POINTS_PER_LIST)
    rng = np.random.default_rng(0)  # deterministic training sample
    rows = np.sort(rng.choice(count, size=sample, replace=False))
    index.train(vectors[rows])
    index.add_with_ids(vectors, ids)
    index.quantizer = quantizer  # keep the Python reference alive with the index
    return index


def write_shard(*, index_dir: Path, key: ShardKey, timezone: str, vector_ids: np.ndarray,
                vectors: np.ndarray, frame_ids: list[int], preset: str, weights_sha256: str,
                approximate_min_vectors: int) -> ShardMeta:
    """Write one shard atomically (data file, then sidecar) and return its metadata.

    Raises ``StorageError`` when the files cannot be written; the old shard then stays.
    """
    order = np.argsort(vector_ids, kind="stable")
    ids = np.ascontiguousarray(vector_ids[order], dtype=np.int64)
    vecs = np.ascontiguousarray(vectors[order], dtype=np.float32)
    kind = "ivf" if len(ids) >= approximate_min_vectors else "flat"
    buffer = io.BytesIO()
    if kind == "ivf":
        np.savez(buffer, ids=ids, vectors=vecs, ivf=faiss.serialize_index(build_ivf(vecs, ids)))
    else:
        np.savez(buffer, ids=ids, vectors=vecs)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    directory = key.directory(index_dir)
    data_file = f"{key.local_day.isoformat()}.{digest[:16]}.npz"
    if not (directory / data_file).is_file():
        atomic_write(directory / data_file, data)
    utc_start, utc_end = local_day_bounds_utc(key.local_day, timezone)
    meta = ShardMeta(
        key=key, timezone=timezone, utc_start=utc_start, utc_end=utc_end, preset=preset,
        weights_sha256=weights_sha256, dim=int(vecs.shape[1]), count=len(ids), kind=kind,
        data_file=data_file, data_sha256=digest, data_bytes=len(data),
        vector_ids=[int(i) for i in ids], frame_ids=sorted(frame_ids),
        written_at=datetime.now(UTC),
    )
    atomic_write(key.sidecar_path(index_dir),
                 json.dumps(meta.to_json(), separators=(",", ":")).encode())
    return meta


def remove_shard(*, index_dir: Path, key: ShardKey) -> None:
    """Drop a shard whose frames are gone: the sidecar first, so no reader sees half."""
    key.sidecar_path(index_dir).unlink(missing_ok=True)


def collect_garbage(index_dir: Path) -> int:
    """Delete temp files and data files no sidecar names; call only under ``index_lock``."""
    removed = 0
    for directory in index_dir.glob("cam-*"):
        live = set()
        for sidecar in directory.glob("*.json"):
            meta = read_sidecar(sidecar)
            if meta is not None:
                live.add(meta.data_file)
        for path in directory.iterdir():
            stale_data = path.suffix == ".npz" and path.name not in live
            if path.name.endswith(TEMP_SUFFIX) or stale_data:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


@contextlib.contextmanager
def index_lock(index_dir: Path) -> Iterator[None]:
    """One writer at a time per index directory (readers never lock)."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with (index_dir / ".lock").open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class ShardHit:
    vector_id: int
    score: float


class LoadedShard:
    """A shard's vectors in memory, searchable with an optional allowed-id set."""

    def __init__(self, meta: ShardMeta, ids: np.ndarray, vectors: np.ndarray,
                 ivf: faiss.Index | None) -> None:
        self.meta = meta
        self.ids = ids
        self.vectors = vectors
        self.ivf = ivf
        self.flat: faiss.Index | None = None
        if ivf is None:
            self.flat = faiss.IndexIDMap(faiss.IndexFlatIP(meta.dim))
            self.flat.add_with_ids(vectors, ids)

    def _exact(self, query: np.ndarray, ids: np.ndarray, k: int) -> list[ShardHit]:
        rows = np.searchsorted(self.ids, ids)
        scores = self.vectors[rows] @ query
        top = np.argsort(-scores, kind="stable")[:k]
        return [ShardHit(int(ids[i]), float(scores[i])) for i in top]

    def search(self, query: np.ndarray, *, k: int,
               allowed: np.ndarray | None = None) -> list[ShardHit]:
        """The ``k`` best vectors among ``allowed`` (all when None), exact scores.

        ``allowed`` is applied inside FAISS (an ``IDSelectorBatch`` in ``SearchParameters``),
        so a filtered-out vector never takes a place in the top ``k``.
        """
        if allowed is not None:
            allowed = np.intersect1d(allowed, self.ids)
            if len(allowed) == 0:
                return []
            if len(allowed) <= EXACT_MAX_ALLOWED:
                return self._exact(query, allowed, k)
        available = len(self.ids) if allowed is None else len(allowed)
        k = min(k, available)
        if k <= 0:
            return []
        selector = faiss.IDSelectorBatch(allowed) if allowed is not None else None
        row = query.reshape(1, -1).astype(np.float32)
        if self.ivf is None:
            assert self.flat is not None
            params: faiss.SearchParameters | None = None
            if selector is not None:
                params = faiss.SearchParameters()
                params.sel = selector
            scores, labels = self.flat.search(row, k, params=params)
            return [ShardHit(int(i), float(s)) for s, i in zip(scores[0], labels[0], strict=True)
                    if i >= 0]
        nlist = faiss.extract_index_ivf(self.ivf).nlist
        ivf_params = faiss.SearchParametersIVF()
        ivf_params.nprobe = ivf_nprobe(nlist)
        if selector is not None:
            ivf_params.sel = selector
        _scores, labels = self.ivf.search(row, min(available, k * RERANK_FACTOR),
                                          params=ivf_params)
        candidates = labels[0][labels[0] >= 0]
        return self._exact(query, np.sort(candidates), k)


class ShardStore:
    """Reads sidecars and keeps loaded shards in memory until their sidecar changes."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._meta: dict[Path, tuple[int, ShardMeta | None]] = {}
        self._loaded: dict[Path, LoadedShard] = {}

    def all_meta(self) -> list[ShardMeta]:
        """Every committed shard; sidecars are re-read only when they change on disk."""
        found: list[ShardMeta] = []
        for sidecar in sorted(self.index_dir.glob("cam-*/*.json")):
            try:
                stamp = sidecar.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            cached = self._meta.get(sidecar)
            if cached is None or cached[0] != stamp:
                cached = (stamp, read_sidecar(sidecar))
                self._meta[sidecar] = cached
                self._loaded.pop(sidecar, None)
            if cached[1] is not None:
                found.append(cached[1])
        return found

    def load(self, meta: ShardMeta) -> LoadedShard:
        """The shard's data in memory. Raises ``StorageError`` when its file is unreadable."""
        sidecar = meta.key.sidecar_path(self.index_dir)
        loaded = self._loaded.get(sidecar)
        if loaded is not None and loaded.meta.data_file == meta.data_file:
            return loaded
        path = sidecar.parent / meta.data_file
        try:
            with np.load(path) as arrays:
                ids = arrays["ids"]
                vectors = arrays["vectors"]
                ivf = faiss.deserialize_index(arrays["ivf"]) if "ivf" in arrays else None
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(f"Index shard {meta.key.name} cannot be read; "
                               "run `oko index rebuild`.") from exc
        loaded = LoadedShard(meta, ids, vectors, ivf)
        self._loaded[sidecar] = loaded
        return loaded

    def forget(self) -> None:
        self._meta.clear()
        self._loaded.clear()


__all__ = [
    "ModelMismatchError",
    "ShardHit",
    "ShardKey",
    "ShardMeta",
    "ShardStore",
    "atomic_write",
    "collect_garbage",
    "index_lock",
    "local_day_bounds_utc",
    "read_sidecar",
    "remove_shard",
    "shard_key_for",
    "write_shard",
]
