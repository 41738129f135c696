"""FAISS shard files: one per camera per local day, written atomically, loaded and searched.

Layout under ``index_dir`` (sidecar format 2)::

    cam-<quoted camera id>/<YYYY-MM-DD>.json             sidecar: the commit point
    cam-<quoted camera id>/<YYYY-MM-DD>.<sha16>.npz      header, per-row arrays, flat
                                                         vectors or FAISS index bytes
    cam-<quoted camera id>/<YYYY-MM-DD>.<sha16>.f16.npy  float16 re-rank vectors
                                                         (approximate index types only)

The ``.npz`` holds, per row in capture order (ties by id): ``ids`` (int64 vector ids),
``captured_at_us`` (int64 UTC microseconds) and ``phases`` (uint8 ``PHASE_CODES``), plus
``frame_ids`` (the frames the shard covers) and a JSON ``header`` (model, dimension,
count, index type) that loading checks against the sidecar. Filters are answered from
these arrays, without SQL; see ``indexer.shard_index`` for the index types.

The day is the camera's LOCAL calendar day (its IANA time zone), because investigators
ask about local days and nights; a shard records its exact UTC bounds, so time filters
select shards without any time zone arithmetic at query time.

A shard is written atomically: each data file goes to a temp file, is fsynced and renamed
under a content-addressed name, then the JSON sidecar naming them is written the same
way. A crash at any point leaves the previous sidecar and its data files intact. The
database stays the source of truth: ``FrameIndexEntry.shard_key`` is set only after the
shard is committed, and search scores frames whose entry is not yet set exactly from
their stored vectors, so a crash can delay indexing but never hide a frame.

A sidecar of format 1 is stale: ``read_sidecar`` returns None (so ``sync_shards``
rewrites the shard and search scores its frames from the database meanwhile) and
``ShardStore.unusable`` gives the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

import faiss
import numpy as np

from indexer.shard_index import (
    APPROXIMATE_MIN_VECTORS,
    COMPRESSED_MIN_VECTORS,
    DEFAULT_POLICY,
    EXACT_MAX_SELECTED,
    FLAT,
    PHASE_CODES,
    PHASE_UNKNOWN,
    IndexPolicy,
    ShardHit,
    ShardSearcher,
    build_index,
    index_params,
)
from storage.atomic import write_atomically
from storage.errors import ConflictError, InvalidInputError, StorageError

SIDECAR_FORMAT = 2  # 1: ids in the sidecar, float32 vectors in the .npz; read as stale
EXACT_MAX_ALLOWED = EXACT_MAX_SELECTED  # the former name
TEMP_SUFFIX = ".tmp"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ModelMismatchError(ConflictError):
    """Vectors from different models (or dimensions) would be compared in one query."""


class ShardUnusableError(StorageError):
    """A shard's files are missing, corrupt or disagree with its sidecar; search skips it.

    ``reason`` is the clause a search records in its provenance for the skipped shard.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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


def utc_microseconds(at: datetime) -> int:
    """``at`` as int64-ready UTC microseconds since the epoch (naive means UTC)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(microseconds=1)


def local_day_bounds_utc(day: date, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day in UTC (23 or 25 hours on DST change days)."""
    zone = ZoneInfo(timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1)
    end = datetime(end.year, end.month, end.day, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class ShardMeta:
    """The parsed sidecar of a committed shard (format 2).

    The per-row arrays (ids, capture times, day phases) live in the data file, not here,
    so listing shards stays cheap at any shard size.
    """

    key: ShardKey
    timezone: str
    utc_start: datetime
    utc_end: datetime
    preset: str
    weights_sha256: str
    dim: int
    count: int
    frame_count: int
    index_type: str  # "flat", "ivf_sq8" or "ivf_pq"
    index_params: dict[str, Any]
    data_file: str
    data_sha256: str
    data_bytes: int
    rerank_file: str | None  # float16 vectors, memory-mapped (approximate types only)
    rerank_sha256: str | None
    rerank_bytes: int
    first_captured_us: int
    last_captured_us: int
    written_at: datetime

    @property
    def files(self) -> list[str]:
        """The data files this sidecar names (what garbage collection keeps)."""
        return [self.data_file] + ([self.rerank_file] if self.rerank_file else [])

    def to_json(self) -> dict[str, Any]:
        return {
            "format": SIDECAR_FORMAT, "key": self.key.name, "camera_id": self.key.camera_id,
            "local_day": self.key.local_day.isoformat(), "timezone": self.timezone,
            "utc_start": self.utc_start.isoformat(), "utc_end": self.utc_end.isoformat(),
            "preset": self.preset, "weights_sha256": self.weights_sha256, "dim": self.dim,
            "count": self.count, "frame_count": self.frame_count,
            "index_type": self.index_type, "index_params": self.index_params,
            "data_file": self.data_file, "data_sha256": self.data_sha256,
            "data_bytes": self.data_bytes, "rerank_file": self.rerank_file,
            "rerank_sha256": self.rerank_sha256, "rerank_bytes": self.rerank_bytes,
            "first_captured_us": self.first_captured_us,
            "last_captured_us": self.last_captured_us,
            "written_at": self.written_at.isoformat(),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ShardMeta:
        if raw.get("format") != SIDECAR_FORMAT:
            raise StaleSidecarError(f"sidecar format {raw.get('format')!r}")
        return cls(
            key=ShardKey(camera_id=raw["camera_id"],
                         local_day=date.fromisoformat(raw["local_day"])),
            timezone=raw["timezone"], utc_start=datetime.fromisoformat(raw["utc_start"]),
            utc_end=datetime.fromisoformat(raw["utc_end"]), preset=raw["preset"],
            weights_sha256=raw["weights_sha256"], dim=int(raw["dim"]),
            count=int(raw["count"]), frame_count=int(raw["frame_count"]),
            index_type=str(raw["index_type"]), index_params=dict(raw["index_params"]),
            data_file=raw["data_file"], data_sha256=raw["data_sha256"],
            data_bytes=int(raw["data_bytes"]), rerank_file=raw["rerank_file"],
            rerank_sha256=raw["rerank_sha256"], rerank_bytes=int(raw["rerank_bytes"]),
            first_captured_us=int(raw["first_captured_us"]),
            last_captured_us=int(raw["last_captured_us"]),
            written_at=datetime.fromisoformat(raw["written_at"]),
        )


class StaleSidecarError(ValueError):
    """A sidecar of another format: the shard is rebuilt by the next sync, never searched."""


def inspect_sidecar(path: Path) -> tuple[ShardMeta | None, str | None]:
    """The shard's metadata, or None and why it cannot be used (None, None: no sidecar).

    A sidecar of an older format, or whose data files are missing or of the wrong size,
    gives a reason; ``sync_shards`` rewrites such a shard because ``read_sidecar`` is None.
    """
    name = _shard_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"The sidecar of shard {name} cannot be read ({exc.strerror})."
    try:
        meta = ShardMeta.from_json(json.loads(text))
    except StaleSidecarError as exc:
        return None, (f"Shard {name} was written in an older index format ({exc}); "
                      "the next `oko index sync` or `oko index rebuild` rewrites it.")
    except (ValueError, KeyError, TypeError):
        return None, f"The sidecar of shard {name} is corrupt; `oko index rebuild` rewrites it."
    sizes = [(meta.data_file, meta.data_bytes)]
    if meta.rerank_file:
        sizes.append((meta.rerank_file, meta.rerank_bytes))
    for file_name, size in sizes:
        try:
            actual = (path.parent / file_name).stat().st_size
        except OSError:
            return None, f"Data file {file_name} of shard {name} is missing."
        if actual != size:
            return None, (f"Data file {file_name} of shard {name} has {actual} bytes, "
                          f"not the {size} its sidecar records.")
    return meta, None


def read_sidecar(path: Path) -> ShardMeta | None:
    """The shard's metadata, or None when the sidecar is missing, stale or broken."""
    return inspect_sidecar(path)[0]


def _shard_name(sidecar: Path) -> str:
    camera = unquote(sidecar.parent.name.removeprefix("cam-"))
    return f"{camera}/{sidecar.stem}"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    try:
        write_atomically(path, data, temp_suffix=TEMP_SUFFIX)
    except OSError as exc:
        raise StorageError(f"Could not write index file {path.name} ({exc.strerror}).") from exc


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _check_rows(vector_ids: np.ndarray, vectors: np.ndarray, captured_at_us: np.ndarray,
                phases: np.ndarray) -> None:
    count = len(vector_ids)
    if vectors.ndim != 2 or len(vectors) != count or len(captured_at_us) != count \
            or len(phases) != count or count == 0:
        raise InvalidInputError(
            f"A shard needs one vector, capture time and day phase per id; got {count} ids, "
            f"{len(vectors)} vectors, {len(captured_at_us)} times and {len(phases)} phases.")
    known = set(PHASE_CODES.values()) | {PHASE_UNKNOWN}
    unknown = set(np.unique(phases).tolist()) - known
    if unknown:
        raise InvalidInputError(f"Day phase codes {sorted(unknown)} are not among "
                                f"{sorted(known)} (indexer.shard_index.PHASE_CODES).")


def write_shard(*, index_dir: Path, key: ShardKey, timezone: str, vector_ids: np.ndarray,
                vectors: np.ndarray, captured_at_us: np.ndarray, phases: np.ndarray,
                frame_ids: list[int], preset: str, weights_sha256: str,
                policy: IndexPolicy = DEFAULT_POLICY,
                approximate_min_vectors: int | None = None,
                compressed_min_vectors: int | None = None) -> ShardMeta:
    """Write one shard atomically (re-rank file, data file, then sidecar); its metadata.

    Row ``i`` is vector ``vector_ids[i]`` captured at ``captured_at_us[i]`` (int64 UTC
    microseconds) in day phase ``phases[i]`` (a ``PHASE_CODES`` value, or
    ``PHASE_UNKNOWN``). Rows are stored in capture order, ties by id. The index type
    follows the row count and ``policy`` (see ``indexer.shard_index``);
    ``approximate_min_vectors`` and ``compressed_min_vectors`` (the IVF-PQ threshold),
    when given, replace the policy's thresholds.

    Raises ``InvalidInputError`` when the arrays disagree (nothing is written) and
    ``StorageError`` when the files cannot be written; the old shard then stays.
    """
    if approximate_min_vectors is not None or compressed_min_vectors is not None:
        policy = replace(policy, approximate_min_vectors=(
            policy.approximate_min_vectors if approximate_min_vectors is None
            else approximate_min_vectors), pq_min_vectors=(
            policy.pq_min_vectors if compressed_min_vectors is None
            else compressed_min_vectors))
    _check_rows(vector_ids, vectors, captured_at_us, phases)
    order = np.lexsort((np.asarray(vector_ids), np.asarray(captured_at_us)))
    ids = np.ascontiguousarray(np.asarray(vector_ids)[order], dtype=np.int64)
    times = np.ascontiguousarray(np.asarray(captured_at_us)[order], dtype=np.int64)
    codes = np.ascontiguousarray(np.asarray(phases)[order], dtype=np.uint8)
    vecs = np.ascontiguousarray(vectors[order], dtype=np.float32)
    count, dim = vecs.shape
    index_type = policy.choose(count)
    params = index_params(index_type, count=count, dim=dim, policy=policy)
    header = {"format": SIDECAR_FORMAT, "preset": preset, "weights_sha256": weights_sha256,
              "dim": dim, "count": count, "index_type": index_type}
    arrays: dict[str, np.ndarray] = {
        "header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
        "ids": ids, "captured_at_us": times, "phases": codes,
        "frame_ids": np.array(sorted(frame_ids), dtype=np.int64)}
    directory = key.directory(index_dir)
    day = key.local_day.isoformat()
    rerank_file: str | None = None
    rerank_sha256: str | None = None
    rerank_bytes = 0
    if index_type == FLAT:
        arrays["vectors"] = vecs
    else:
        arrays["index"] = faiss.serialize_index(build_index(index_type, params, vecs))
        rerank = _npy_bytes(vecs.astype(np.float16))
        rerank_sha256 = hashlib.sha256(rerank).hexdigest()
        rerank_file, rerank_bytes = f"{day}.{rerank_sha256[:16]}.f16.npy", len(rerank)
        if not (directory / rerank_file).is_file():
            atomic_write(directory / rerank_file, rerank)
        del rerank
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    data_file = f"{day}.{digest[:16]}.npz"
    if not (directory / data_file).is_file():
        atomic_write(directory / data_file, data)
    utc_start, utc_end = local_day_bounds_utc(key.local_day, timezone)
    meta = ShardMeta(
        key=key, timezone=timezone, utc_start=utc_start, utc_end=utc_end, preset=preset,
        weights_sha256=weights_sha256, dim=dim, count=count, frame_count=len(frame_ids),
        index_type=index_type, index_params=params, data_file=data_file,
        data_sha256=digest, data_bytes=len(data), rerank_file=rerank_file,
        rerank_sha256=rerank_sha256, rerank_bytes=rerank_bytes,
        first_captured_us=int(times[0]), last_captured_us=int(times[-1]),
        written_at=datetime.now(UTC),
    )
    atomic_write(key.sidecar_path(index_dir),
                 json.dumps(meta.to_json(), separators=(",", ":")).encode())
    return meta


def remove_shard(*, index_dir: Path, key: ShardKey) -> None:
    """Drop a shard whose frames are gone: the sidecar first, so no reader sees half."""
    key.sidecar_path(index_dir).unlink(missing_ok=True)


def collect_garbage(index_dir: Path) -> int:
    """Delete temp files and data files no sidecar names; call only under ``index_lock``.

    A sidecar of an older format still protects the files it names until it is rewritten.
    """
    removed = 0
    for directory in index_dir.glob("cam-*"):
        live: set[str] = set()
        for sidecar in directory.glob("*.json"):
            meta = read_sidecar(sidecar)
            if meta is not None:
                live.update(meta.files)
            else:
                live.update(_named_files(sidecar))
        for path in directory.iterdir():
            stale_data = path.suffix in (".npz", ".npy") and path.name not in live
            if path.name.endswith(TEMP_SUFFIX) or stale_data:
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def _named_files(sidecar: Path) -> set[str]:
    """File names an unusable sidecar still refers to (kept until it is rewritten)."""
    try:
        raw = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(raw, dict):
        return set()
    return {v for k, v in raw.items() if k in ("data_file", "rerank_file") and isinstance(v, str)}


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


class LoadedShard(ShardSearcher):
    """A committed shard ready to search: its sidecar plus the arrays of its data file.

    ``ids``, ``captured_at_us`` (int64 UTC microseconds) and ``phases`` (uint8
    ``PHASE_CODES``) are per row, in capture order; ``frame_ids`` are the frames the
    shard covers (sorted). ``search`` is ``ShardSearcher.search``.
    """

    def __init__(self, meta: ShardMeta, *, ids: np.ndarray, captured_at_us: np.ndarray,
                 phases: np.ndarray, frame_ids: np.ndarray, exact: np.ndarray,
                 index: faiss.Index | None) -> None:
        super().__init__(ids=ids, captured_at_us=captured_at_us, phases=phases, exact=exact,
                         index=index,
                         rerank_factor=int(meta.index_params.get("rerank_factor", 1)))
        self.meta = meta
        self.frame_ids = frame_ids


def _unusable(meta: ShardMeta, reason: str) -> ShardUnusableError:
    return ShardUnusableError(f"Index shard {meta.key.name} was left out: {reason}; "
                              "`oko index rebuild` rewrites it.", reason=reason)


def load_shard(index_dir: Path, meta: ShardMeta) -> LoadedShard:
    """Read a shard's data file and map its re-rank file; checks both against the sidecar.

    Raises ``ShardUnusableError`` when a file is missing, corrupt or truncated, or holds
    another model, dimension or row count than the sidecar records.
    """
    directory = meta.key.directory(index_dir)
    try:
        raw = (directory / meta.data_file).read_bytes()
    except OSError as exc:
        raise _unusable(meta, f"its data file {meta.data_file} cannot be read "
                              f"({exc.strerror})") from exc
    if len(raw) != meta.data_bytes or hashlib.sha256(raw).hexdigest() != meta.data_sha256:
        raise _unusable(meta, f"its data file {meta.data_file} is corrupt or truncated "
                              "(its SHA-256 differs from the sidecar's)")
    try:
        with np.load(io.BytesIO(raw)) as arrays:
            header = json.loads(arrays["header"].tobytes())
            ids, times = arrays["ids"], arrays["captured_at_us"]
            phases, frame_ids = arrays["phases"], arrays["frame_ids"]
            vectors = arrays.get("vectors")
            index = faiss.deserialize_index(arrays["index"]) if "index" in arrays else None
    except (OSError, ValueError, KeyError, RuntimeError, EOFError,
            zipfile.BadZipFile) as exc:
        raise _unusable(meta, f"its data file {meta.data_file} cannot be parsed") from exc
    del raw
    recorded = {"weights_sha256": meta.weights_sha256, "dim": meta.dim, "count": meta.count,
                "index_type": meta.index_type}
    for field_name, expected in recorded.items():
        if header.get(field_name) != expected:
            raise _unusable(meta, f"its data file holds {field_name} "
                                  f"{header.get(field_name)!r}, not the sidecar's {expected!r}")
    if not len(ids) == len(times) == len(phases) == meta.count:
        raise _unusable(meta, "its data file's arrays do not have one row per vector")
    exact = vectors if index is None else _map_rerank(directory, meta)
    if exact is None or exact.shape != (meta.count, meta.dim) \
            or (index is not None and (index.d != meta.dim or index.ntotal != meta.count)):
        raise _unusable(meta, f"its vectors are not {meta.count} × {meta.dim}")
    return LoadedShard(meta, ids=ids, captured_at_us=times, phases=phases,
                       frame_ids=frame_ids, exact=exact, index=index)


def _map_rerank(directory: Path, meta: ShardMeta) -> np.ndarray:
    if meta.rerank_file is None:
        raise _unusable(meta, "its sidecar names no re-rank file")
    path = directory / meta.rerank_file
    try:
        size = path.stat().st_size
        mapped: np.ndarray = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise _unusable(meta, f"its re-rank file {meta.rerank_file} cannot be read") from exc
    if size != meta.rerank_bytes or mapped.dtype != np.float16:
        raise _unusable(meta, f"its re-rank file {meta.rerank_file} is truncated or "
                              "not float16")
    return mapped


class ShardStore:
    """Reads sidecars and keeps loaded shards in memory until their sidecar changes.

    ``unusable`` maps each shard whose sidecar exists but cannot be used (older format,
    broken, data file missing) to the reason, as of the last ``all_meta``.
    """

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._meta: dict[Path, tuple[int, ShardMeta | None, str | None]] = {}
        self._loaded: dict[Path, LoadedShard] = {}
        self.unusable: dict[str, str] = {}

    def all_meta(self) -> list[ShardMeta]:
        """Every committed, usable shard; sidecars are re-read only when they change."""
        found: list[ShardMeta] = []
        unusable: dict[str, str] = {}
        for sidecar in sorted(self.index_dir.glob("cam-*/*.json")):
            try:
                stamp = sidecar.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            cached = self._meta.get(sidecar)
            if cached is None or cached[0] != stamp:
                cached = (stamp, *inspect_sidecar(sidecar))
                self._meta[sidecar] = cached
                self._loaded.pop(sidecar, None)
            if cached[1] is not None:
                found.append(cached[1])
            elif cached[2] is not None:
                unusable[_shard_name(sidecar)] = cached[2]
        self.unusable = unusable
        return found

    def load(self, meta: ShardMeta) -> LoadedShard:
        """The shard ready to search. Raises ``ShardUnusableError`` (see ``load_shard``)."""
        sidecar = meta.key.sidecar_path(self.index_dir)
        loaded = self._loaded.get(sidecar)
        if loaded is not None and loaded.meta.data_file == meta.data_file:
            return loaded
        loaded = load_shard(self.index_dir, meta)
        self._loaded[sidecar] = loaded
        return loaded

    def forget(self) -> None:
        self._meta.clear()
        self._loaded.clear()


__all__ = [
    "APPROXIMATE_MIN_VECTORS",
    "COMPRESSED_MIN_VECTORS",
    "DEFAULT_POLICY",
    "EXACT_MAX_SELECTED",
    "PHASE_CODES",
    "PHASE_UNKNOWN",
    "IndexPolicy",
    "LoadedShard",
    "ModelMismatchError",
    "ShardHit",
    "ShardKey",
    "ShardMeta",
    "ShardStore",
    "ShardUnusableError",
    "atomic_write",
    "collect_garbage",
    "index_lock",
    "inspect_sidecar",
    "load_shard",
    "local_day_bounds_utc",
    "read_sidecar",
    "remove_shard",
    "shard_key_for",
    "utc_microseconds",
    "write_shard",
]
