"""Filters-first semantic search over the FAISS shards, grouped into playable moments.

1. Filters choose the cameras (request, districts, and what the user may see) and the
   time range; together they choose shards (camera, local day) before any vector is read.
2. Inside a shard that the filters cover only in part (a time range cutting the day, a day
   phase, a part of the day), the allowed frame ids go into FAISS as an ``IDSelector``, so
   no hit is dropped after ranking and ``k`` always means k matching frames.
3. Frames embedded but not yet in a committed shard are scored exactly from the database.
4. Hits become moments: consecutive hits of one camera within ``moment_gap_s``.

Every answer carries its provenance (model, weights hash, shards, filters, k, timing).
An embedder failure raises ``EmbedderFailedError``; it is never reported as "no results".
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy import Executable, Label, case, func, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from indexer.daynight import DayPhase, classify
from indexer.embed_queue import LINKED, vector_frame_id
from indexer.search.query import HourWindow, parse_query
from indexer.shard_files import ModelMismatchError, ShardMeta, ShardStore
from indexer.shards import chunked, read_thumbnail
from indexer.vectors import vector_from_bytes, vector_view
from storage.blobstore import BlobStore
from storage.errors import InvalidInputError, NotFoundError, OkoError
from storage.models.media import Camera, Frame, Segment
from storage.models.search import FrameEmbedding
from storage.models.search_index import FrameIndexEntry
from storage.types import supported_utc

DEFAULT_K = 50
MAX_K = 500
DEFAULT_MOMENT_GAP_S = 6.0
# Query images: the formats the upload form names, a pixel bound checked on the header
# before decoding (PIL's own bomb limit is 179 million), and the side they are shrunk to.
QUERY_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")
MAX_QUERY_IMAGE_PIXELS = 40_000_000
QUERY_IMAGE_SIDE = 1024


class EmbedderFailedError(OkoError):
    """The model raised while encoding the query; no results were produced."""

    exit_code = 5
    http_status = 503


class InvalidImageError(InvalidInputError):
    """The query image cannot be decoded."""

    http_status = 415


class QueryImageTooLargeError(InvalidInputError):
    """The query image's header claims more pixels than a query image may have."""

    http_status = 413

    def __init__(self, width: int | None, height: int | None) -> None:
        claimed = f" ({width}x{height})" if width is not None else ""
        super().__init__(f"The uploaded image{claimed} has more than "
                         f"{MAX_QUERY_IMAGE_PIXELS // 1_000_000} million pixels; "
                         "send a smaller picture.")


class QueryEmbedder(Protocol):
    """What search needs from a CLIP embedder (``indexer.embeddings.ClipEmbedder``)."""

    @property
    def preset(self) -> str: ...
    weights_sha256: str
    dim: int

    def encode_images(self, images: list[Image.Image]) -> np.ndarray: ...
    def encode_text(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class SearchFilters:
    """Filters applied before ranking. Naive times are local to the selected cameras."""

    camera_ids: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    day_phase: DayPhase | None = None


@dataclass(frozen=True)
class SearchRequest:
    text: str | None = None
    image: bytes | None = None
    similar_to_frame_id: int | None = None
    filters: SearchFilters = field(default_factory=SearchFilters)
    k: int = DEFAULT_K
    moment_gap_s: float = DEFAULT_MOMENT_GAP_S


@dataclass(frozen=True)
class AppliedFilter:
    name: str
    value: str | list[str]
    source: str  # "request", "query phrase '...'" or "access policy"


@dataclass
class Moment:
    camera_id: str
    camera_name: str
    district: str
    timezone: str
    start_utc: datetime
    end_utc: datetime
    best_frame_id: int
    best_frame_utc: datetime
    score: float
    segment_id: int
    offset_in_segment_s: float
    frame_ids: list[int]

    @property
    def start_local(self) -> datetime:
        return self.start_utc.astimezone(ZoneInfo(self.timezone))

    @property
    def end_local(self) -> datetime:
        return self.end_utc.astimezone(ZoneInfo(self.timezone))


@dataclass
class Provenance:
    preset: str
    weights_sha256: str
    dim: int
    clip_text: str | None
    image_supplied: bool
    similar_to_frame_id: int | None
    filters: list[AppliedFilter]
    shards_searched: list[str]
    frames_scored_from_database: int
    frames_waiting_for_embedding: int
    k: int
    candidates: int
    truncated: bool
    elapsed_ms: float
    searched_at: datetime


@dataclass
class SearchResult:
    moments: list[Moment]
    provenance: Provenance


@dataclass(frozen=True)
class _Scope:
    cameras: dict[str, Camera]
    start: datetime | None
    end: datetime | None
    day_phase: DayPhase | None
    hours: HourWindow | None

    def admits(self, *, camera_id: str, at: datetime, phase: str | None) -> bool:
        if camera_id not in self.cameras:
            return False
        if (self.start and at < self.start) or (self.end and at > self.end):
            return False
        if self.day_phase is not None and phase != self.day_phase.value:
            return False
        if self.hours is not None:
            local = at.astimezone(ZoneInfo(self.cameras[camera_id].timezone))
            return self.hours.contains(local.hour)
        return True

    def covers_whole(self, meta: ShardMeta) -> bool:
        return (self.day_phase is None and self.hours is None
                and (self.start is None or self.start <= meta.utc_start)
                and (self.end is None or self.end >= meta.utc_end))


def _resolve_cameras(session: Session, filters: SearchFilters,
                     visible: set[str] | None) -> tuple[dict[str, Camera], list[AppliedFilter]]:
    cameras = {c.id: c for c in session.exec(select(Camera)).all()
               if visible is None or c.id in visible}
    applied: list[AppliedFilter] = []
    if filters.camera_ids:
        for camera_id in filters.camera_ids:
            if camera_id not in cameras:  # another agency's camera reads like a missing one
                raise NotFoundError(f"Camera '{camera_id}' does not exist.")
        cameras = {cid: cameras[cid] for cid in filters.camera_ids}
        applied.append(AppliedFilter("cameras", sorted(cameras), "request"))
    if filters.districts:
        wanted = {d.casefold() for d in filters.districts}
        for district in filters.districts:
            if not any(c.district.casefold() == district.casefold() for c in cameras.values()):
                raise NotFoundError(f"No camera you can see is in district '{district}'.")
        cameras = {cid: c for cid, c in cameras.items() if c.district.casefold() in wanted}
        applied.append(AppliedFilter("districts", sorted(filters.districts), "request"))
    if visible is not None and not filters.camera_ids:
        applied.append(AppliedFilter("cameras", sorted(cameras), "access policy"))
    return cameras, applied


def _aware(value: datetime | None, cameras: dict[str, Camera], name: str) -> datetime | None:
    """``value`` in UTC; without an offset it is read in the cameras' (one) time zone.

    Raises ``InvalidInputError`` for a time that has no UTC equivalent inside the years
    1 to 9999 (``0001-01-01T00:00:00+05:00``) or lies outside ``storage.types.SUPPORTED_YEARS``.
    """
    if value is None:
        return None
    zoned = value
    if value.tzinfo is None:
        zones = {c.timezone for c in cameras.values()}
        if len(zones) != 1:
            raise InvalidInputError(
                f"'{name}' has no UTC offset and the cameras searched are in different "
                "time zones; add an offset such as +02:00.")
        zoned = value.replace(tzinfo=ZoneInfo(zones.pop()))
    return supported_utc(zoned, name=name, given=value)


def _decode_image(data: bytes) -> Image.Image:
    """Decode a query image within a memory bound: its header's pixel count is checked
    before any pixel is decoded, JPEGs decode at a reduced scale, and the result is at
    most ``QUERY_IMAGE_SIDE`` pixels on its longer side (CLIP sees 224 or so anyway)."""
    try:
        with Image.open(io.BytesIO(data), formats=QUERY_IMAGE_FORMATS) as image:
            width, height = image.size  # from the header: nothing is decoded yet
            if width * height > MAX_QUERY_IMAGE_PIXELS:
                raise QueryImageTooLargeError(width, height)
            image.draft("RGB", (QUERY_IMAGE_SIDE, QUERY_IMAGE_SIDE))  # JPEG: decode smaller
            image.load()
            decoded = image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # a header past PIL's own bomb limit (or its warning, where warnings are errors)
        raise QueryImageTooLargeError(None, None) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError("The uploaded file is not an image Oko can read "
                                "(use JPEG, PNG or WebP).") from exc
    decoded.thumbnail((QUERY_IMAGE_SIDE, QUERY_IMAGE_SIDE))
    return decoded


def _encode(embedder: QueryEmbedder, *, text: str | None,
            image: Image.Image | None) -> list[np.ndarray]:
    try:
        rows = []
        if text:
            rows.append(embedder.encode_text([text])[0])
        if image is not None:
            rows.append(embedder.encode_images([image])[0])
    except Exception as exc:  # any model failure must surface, never look like no results
        raise EmbedderFailedError(f"The {embedder.preset} model failed to encode the query "
                                  f"({type(exc).__name__}: {exc}); no search was run.") from exc
    return rows


def _similar_embedding(session: Session, frame_id: int,
                       visible: set[str] | None) -> FrameEmbedding:
    """The embedding row whose vector stands for ``frame_id`` (its own or the linked one)."""
    frame = session.get(Frame, frame_id)
    if frame is None or (visible is not None and frame.camera_id not in visible):
        raise NotFoundError(f"Frame {frame_id} does not exist.")
    row = session.get(FrameEmbedding, frame_id)
    if row is not None and row.status == LINKED and row.linked_frame_id is not None:
        row = session.get(FrameEmbedding, row.linked_frame_id)
    if row is None or row.vector is None:
        raise InvalidInputError(f"Frame {frame_id} has not been embedded yet; run `oko reindex` "
                                "and try again.")
    return row


def _query_vector(embedder: QueryEmbedder, *, clip_text: str, image: Image.Image | None,
                  similar: FrameEmbedding | None, similar_id: int | None) -> np.ndarray:
    rows = _encode(embedder, text=clip_text or None, image=image)
    if similar is not None and similar.vector is not None:
        if similar.weights_sha256 != embedder.weights_sha256:
            raise ModelMismatchError(
                f"Frame {similar_id} was embedded with weights {similar.weights_sha256[:12]}, "
                f"not the search model's {embedder.weights_sha256[:12]}; run `oko reindex`.")
        rows.append(vector_from_bytes(similar.vector))
    combined: np.ndarray = np.sum(np.stack(rows).astype(np.float32), axis=0)
    norm = float(np.linalg.norm(combined))
    if not np.isfinite(norm) or norm == 0.0:
        raise EmbedderFailedError("The query vector is zero or not finite; no search was run.")
    return (combined / norm).astype(np.float32)


@dataclass(frozen=True)
class _FrameRow:
    """One embedded frame as search reads it; ``day_phase`` is None until it is indexed."""

    frame_id: int
    camera_id: str
    captured_at_utc: datetime
    status: str
    linked_frame_id: int | None
    weights_sha256: str
    day_phase: str | None
    thumbnail_sha256: str

    @property
    def vector_id(self) -> int | None:
        """The frame whose vector stands for this one (itself, or the linked one)."""
        return vector_frame_id(frame_id=self.frame_id, status=self.status,
                               linked_frame_id=self.linked_frame_id)


# Labelled with _FrameRow's field names; rows are read by name (row._asdict()).
_FRAME_ROW_COLUMNS: tuple[Label[Any], ...] = (
    col(Frame.id).label("frame_id"),
    col(Frame.camera_id).label("camera_id"),
    col(Frame.captured_at_utc).label("captured_at_utc"),
    col(FrameEmbedding.status).label("status"),
    col(FrameEmbedding.linked_frame_id).label("linked_frame_id"),
    col(FrameEmbedding.weights_sha256).label("weights_sha256"),
    col(FrameIndexEntry.day_phase).label("day_phase"),
    col(Frame.thumbnail_sha256).label("thumbnail_sha256"),
)


def _read_frame_rows(session: Session, query: Executable) -> list[_FrameRow]:
    return [_FrameRow(**row._asdict()) for row in session.execute(query)]


def _frame_rows(session: Session, scope: _Scope, *, unindexed: bool,
                present_shards: list[str] | None = None, vector_ids: list[int] | None = None,
                by_entry: bool = False) -> list[_FrameRow]:
    """The embedded frames in scope, or those whose vector is one of ``vector_ids``."""
    if by_entry and vector_ids is not None:
        # inner joins from the indexed vector id; the caller checks the filters
        by_vector = (
            sa_select(*_FRAME_ROW_COLUMNS)
            .select_from(FrameIndexEntry)
            .join(Frame, col(Frame.id) == col(FrameIndexEntry.frame_id))
            .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(FrameIndexEntry.frame_id))
            .where(col(FrameIndexEntry.vector_frame_id).in_(vector_ids)))
        return _read_frame_rows(session, by_vector)
    query = (
        sa_select(*_FRAME_ROW_COLUMNS)
        .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
        .outerjoin(FrameIndexEntry, col(FrameIndexEntry.frame_id) == col(Frame.id))
        .where(col(Frame.camera_id).in_(list(scope.cameras)))
    )
    if scope.start is not None:
        query = query.where(col(Frame.captured_at_utc) >= scope.start)
    if scope.end is not None:
        query = query.where(col(Frame.captured_at_utc) <= scope.end)
    if unindexed:
        query = query.where(or_(col(FrameIndexEntry.frame_id).is_(None),
                                col(FrameIndexEntry.shard_key).is_(None),
                                col(FrameIndexEntry.weights_sha256)
                                != col(FrameEmbedding.weights_sha256),
                                col(FrameIndexEntry.shard_key).not_in(present_shards or [])))
    if vector_ids is not None:
        query = query.where(or_(col(Frame.id).in_(vector_ids),
                                col(FrameEmbedding.linked_frame_id).in_(vector_ids)))
    return _read_frame_rows(session, query)


def _unindexed_hits(session: Session, scope: _Scope, query: np.ndarray, derived: BlobStore | None,
                    weights_sha256: str, metas: list[ShardMeta],
                    complete: bool) -> tuple[dict[int, float], int]:
    """Exact scores of in-scope frames not in a committed shard (not yet, or its file is gone)."""
    if complete:
        return {}, 0
    rows = _frame_rows(session, scope, unindexed=True,
                       present_shards=[m.key.name for m in metas])
    vector_ids: set[int] = set()
    for row in rows:
        phase = row.day_phase
        if phase is None and (scope.day_phase is not None):
            camera = scope.cameras[row.camera_id]
            phase = classify(latitude=camera.latitude, longitude=camera.longitude,
                             at=row.captured_at_utc,
                             image_bytes=read_thumbnail(derived, row.thumbnail_sha256)).phase.value
        if not scope.admits(camera_id=row.camera_id, at=row.captured_at_utc, phase=phase):
            continue
        if row.weights_sha256 != weights_sha256:
            raise ModelMismatchError(
                f"Frame {row.frame_id} was embedded with weights {row.weights_sha256[:12]}, but "
                f"the query uses {weights_sha256[:12]}; Oko will not rank vectors of two models "
                "together. Run `oko reindex` with one model.")
        vid = row.vector_id
        if vid is not None:
            vector_ids.add(vid)
    scores: dict[int, float] = {}
    for part in chunked(sorted(vector_ids)):
        for fid, blob in session.exec(select(FrameEmbedding.frame_id, FrameEmbedding.vector)
                                      .where(col(FrameEmbedding.frame_id).in_(part))).all():
            if blob is not None:
                scores[int(fid)] = float(vector_view(blob) @ query)
    return scores, len(vector_ids)


def _count(session: Session, query: Any) -> int:
    return int(session.exec(query).one())


def _index_complete(session: Session, weights_sha256: str, present: list[str]) -> bool:
    """Cheap proof that every embedding is of one model and sits in a committed shard.

    Embeddings are only ever added or replaced, never deleted, so equal counts mean no
    frame is missing; otherwise the per-frame query finds the ones that are.
    """
    total = _count(session, select(func.count()).select_from(FrameEmbedding))
    same_model = _count(session, select(func.count()).select_from(FrameEmbedding)
                        .where(FrameEmbedding.weights_sha256 == weights_sha256))
    # entries need no weights check: a shard holds one model, and its sidecar is checked
    indexed = _count(session, select(func.count()).select_from(FrameIndexEntry)
                     .where(col(FrameIndexEntry.shard_key).in_(present)))
    return total == same_model == indexed


def _waiting_count(session: Session, scope: _Scope) -> int:
    frames = _count(session, select(func.count()).select_from(Frame))
    if frames == _count(session, select(func.count()).select_from(FrameEmbedding)):
        return 0
    query = (select(func.count()).select_from(Frame)
             .outerjoin(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
             .where(col(FrameEmbedding.frame_id).is_(None),
                    col(Frame.camera_id).in_(list(scope.cameras))))
    if scope.start is not None:
        query = query.where(col(Frame.captured_at_utc) >= scope.start)
    if scope.end is not None:
        query = query.where(col(Frame.captured_at_utc) <= scope.end)
    return _count(session, query)


def _allowed_vector_ids(session: Session, scope: _Scope, meta: ShardMeta,
                        window: tuple[datetime, datetime]) -> np.ndarray:
    """Vector ids of the shard's frames that pass every filter (phase and window in SQL)."""
    vector_id = case((col(FrameEmbedding.status) == "embedded", col(Frame.id)),
                     else_=col(FrameEmbedding.linked_frame_id))
    query = (select(vector_id, col(Frame.captured_at_utc))
             .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
             .join(FrameIndexEntry, col(FrameIndexEntry.frame_id) == col(Frame.id))
             .where(FrameIndexEntry.shard_key == meta.key.name,
                    col(Frame.captured_at_utc) >= window[0],
                    col(Frame.captured_at_utc) <= window[1]))
    if scope.day_phase is not None:
        query = query.where(FrameIndexEntry.day_phase == scope.day_phase.value)
    rows = session.exec(query).all()
    if scope.hours is not None:
        zone, hours = ZoneInfo(meta.timezone), scope.hours
        rows = [(vid, at) for vid, at in rows if hours.contains(at.astimezone(zone).hour)]
    ids = np.fromiter((vid for vid, _at in rows if vid is not None), dtype=np.int64)
    return np.unique(ids)


def _shard_hits(session: Session, scope: _Scope, shards: ShardStore, all_metas: list[ShardMeta],
                query: np.ndarray, k: int,
                embedder: QueryEmbedder) -> tuple[dict[int, float], list[str], int]:
    metas = [m for m in all_metas if m.key.camera_id in scope.cameras
             and (scope.start is None or m.utc_end > scope.start)
             and (scope.end is None or m.utc_start <= scope.end)]
    for meta in metas:
        if meta.weights_sha256 != embedder.weights_sha256 or meta.dim != embedder.dim:
            raise ModelMismatchError(
                f"Shard {meta.key.name} holds {meta.preset} vectors (weights "
                f"{meta.weights_sha256[:12]}, {meta.dim}-d) but the query uses {embedder.preset} "
                f"(weights {embedder.weights_sha256[:12]}, {embedder.dim}-d); Oko will not mix "
                "models. Run `oko reindex` and `oko index rebuild` with one model.")
    scores: dict[int, float] = {}
    searched: list[str] = []
    candidates = 0
    for meta in sorted(metas, key=lambda m: m.key):
        allowed: np.ndarray | None = None
        if not scope.covers_whole(meta):
            window = (max(scope.start or meta.utc_start, meta.utc_start),
                      min(scope.end or meta.utc_end, meta.utc_end))
            allowed = _allowed_vector_ids(session, scope, meta, window)
            if len(allowed) == 0:
                continue
        loaded = shards.load(meta)
        candidates += len(loaded.ids) if allowed is None else len(allowed)
        for hit in loaded.search(query, k=k, allowed=allowed):
            scores[hit.vector_id] = max(hit.score, scores.get(hit.vector_id, -2.0))
        searched.append(meta.key.name)
    return scores, searched, candidates


@dataclass(frozen=True)
class _Hit:
    """A frame in scope whose vector scored ``score``."""

    frame_id: int
    camera_id: str
    at: datetime
    score: float


def _moments(session: Session, scope: _Scope, hits: dict[int, float], gap_s: float,
             index_complete: bool) -> list[Moment]:
    found: list[_Hit] = []
    for part in chunked(sorted(hits)):
        for row in _frame_rows(session, scope, unindexed=False, vector_ids=list(part),
                               by_entry=index_complete):
            vid = row.vector_id
            if vid is not None and vid in hits and scope.admits(
                    camera_id=row.camera_id, at=row.captured_at_utc, phase=row.day_phase):
                found.append(_Hit(frame_id=row.frame_id, camera_id=row.camera_id,
                                  at=row.captured_at_utc, score=hits[vid]))
    by_camera: dict[str, list[_Hit]] = defaultdict(list)
    for hit in sorted(found, key=lambda h: (h.camera_id, h.at, h.frame_id)):
        by_camera[hit.camera_id].append(hit)
    groups: list[list[_Hit]] = []
    for camera_hits in by_camera.values():
        for hit in camera_hits:
            if groups and groups[-1][-1].camera_id == hit.camera_id \
                    and (hit.at - groups[-1][-1].at).total_seconds() <= gap_s:
                groups[-1].append(hit)
            else:
                groups.append([hit])
    bests = [max(group, key=lambda h: (h.score, -h.at.timestamp())) for group in groups]
    frames = {f.id: f for part in chunked([b.frame_id for b in bests])
              for f in session.exec(select(Frame).where(col(Frame.id).in_(part)))}
    segment_ids = sorted({f.segment_id for f in frames.values()})
    segments = {s.id: s for part in chunked(segment_ids)
                for s in session.exec(select(Segment).where(col(Segment.id).in_(part)))}
    moments: list[Moment] = []
    for group, best in zip(groups, bests, strict=True):
        frame = frames[best.frame_id]
        segment = segments[frame.segment_id]
        camera = scope.cameras[best.camera_id]
        moments.append(Moment(
            camera_id=camera.id, camera_name=camera.name, district=camera.district,
            timezone=camera.timezone, start_utc=group[0].at, end_utc=group[-1].at,
            best_frame_id=best.frame_id, best_frame_utc=best.at, score=round(best.score, 6),
            segment_id=frame.segment_id,
            offset_in_segment_s=round(max(0.0, frame.offset_s - segment.start_offset_s), 3),
            frame_ids=[h.frame_id for h in group]))
    moments.sort(key=lambda m: (-m.score, m.start_utc, m.camera_id))
    return moments


def search(*, session: Session, get_embedder: Callable[[], QueryEmbedder], shards: ShardStore,
           request: SearchRequest, visible_camera_ids: set[str] | None = None,
           derived: BlobStore | None = None) -> SearchResult:
    """Run one search. ``visible_camera_ids`` None means every camera (local CLI use).

    ``get_embedder`` is called once, after the request is validated, so bad input gets
    its own error even where no model is installed (then ``NoModelError`` propagates).

    Raises ``InvalidInputError`` (no query, k out of range, from after to, conflicting
    phases), ``InvalidImageError``, ``NotFoundError`` (unknown camera, district or frame),
    ``ModelMismatchError`` (vectors of another model in scope) and ``EmbedderFailedError``.
    """
    started = time.perf_counter()
    if not 1 <= request.k <= MAX_K:
        raise InvalidInputError(f"k must be between 1 and {MAX_K}; got {request.k}.")
    parsed = parse_query(request.text.strip()) if request.text and request.text.strip() else None
    clip_text = parsed.clip_text if parsed else ""
    if not clip_text and request.image is None and request.similar_to_frame_id is None:
        if parsed and parsed.phrases:
            raise InvalidInputError("The query only names a time of day; say what to look "
                                    "for, or give an image.")
        raise InvalidInputError("Give a text query, an image, or a frame to find similar "
                                "ones; the query is empty.")
    filters = request.filters
    cameras, applied = _resolve_cameras(session, filters, visible_camera_ids)
    start = _aware(filters.start, cameras, "from")
    end = _aware(filters.end, cameras, "to")
    if start and end and start > end:
        raise InvalidInputError(f"'from' ({start.isoformat()}) is later than 'to' "
                                f"({end.isoformat()}).")
    phase = filters.day_phase
    if parsed and parsed.day_phase is not None:
        if phase is not None and phase != parsed.day_phase:
            raise InvalidInputError(f"The query says {parsed.day_phase.value} but the "
                                    f"{phase.value} filter is set; choose one.")
        applied.append(AppliedFilter("day_phase", parsed.day_phase.value,
                                     f"query phrase '{', '.join(parsed.phrases)}'"))
        phase = parsed.day_phase
    elif phase is not None:
        applied.append(AppliedFilter("day_phase", phase.value, "request"))
    hours = parsed.hours if parsed else None
    if hours is not None:
        assert parsed is not None
        applied.append(AppliedFilter("hours", f"{hours.name} ({hours.start_hour:02d}:00-"
                                     f"{hours.end_hour:02d}:00 local)",
                                     f"query phrase '{', '.join(parsed.phrases)}'"))
    if start:
        applied.append(AppliedFilter("from", start.isoformat(), "request"))
    if end:
        applied.append(AppliedFilter("to", end.isoformat(), "request"))
    scope = _Scope(cameras=cameras, start=start, end=end, day_phase=phase, hours=hours)

    image = _decode_image(request.image) if request.image is not None else None
    similar = (_similar_embedding(session, request.similar_to_frame_id, visible_camera_ids)
               if request.similar_to_frame_id is not None else None)
    embedder = get_embedder()
    query = _query_vector(embedder, clip_text=clip_text, image=image, similar=similar,
                          similar_id=request.similar_to_frame_id)
    metas = shards.all_meta()
    scores, searched, candidates = (
        _shard_hits(session, scope, shards, metas, query, request.k, embedder)
        if cameras else ({}, [], 0))
    complete = _index_complete(session, embedder.weights_sha256, [m.key.name for m in metas])
    extra, extra_count = (_unindexed_hits(session, scope, query, derived,
                                          embedder.weights_sha256, metas, complete)
                          if cameras else ({}, 0))
    for vid, score in extra.items():
        scores[vid] = max(score, scores.get(vid, -2.0))
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    top = dict(ranked[:request.k])
    moments = _moments(session, scope, top, request.moment_gap_s, complete)
    total = candidates + extra_count
    provenance = Provenance(
        preset=embedder.preset, weights_sha256=embedder.weights_sha256, dim=embedder.dim,
        clip_text=clip_text or None, image_supplied=request.image is not None,
        similar_to_frame_id=request.similar_to_frame_id, filters=applied,
        shards_searched=searched, frames_scored_from_database=extra_count,
        frames_waiting_for_embedding=_waiting_count(session, scope) if cameras else 0,
        k=request.k, candidates=total, truncated=len(ranked) > request.k or total > request.k,
        elapsed_ms=round((time.perf_counter() - started) * 1000.0, 2),
        searched_at=datetime.now(UTC),
    )
    return SearchResult(moments=moments, provenance=provenance)


__all__ = [
    "DEFAULT_K",
    "DEFAULT_MOMENT_GAP_S",
    "MAX_K",
    "AppliedFilter",
    "EmbedderFailedError",
    "InvalidImageError",
    "Moment",
    "Provenance",
    "QueryEmbedder",
    "QueryImageTooLargeError",
    "SearchFilters",
    "SearchRequest",
    "SearchResult",
    "search",
]
