"""The embedding queue: frames without an embedding for the current weights, embedded in order.

Per camera, pending frames are taken in capture order. Each is compared with the last
embedded frame of that camera (``indexer.motion``); a static frame is *linked* to that
embedding instead of being embedded again. Frames are embedded in batches that span
cameras (many cameras with a few new frames each still fill a batch), and each batch
(with the links that point into it or before it) is written in one transaction,
so a crash loses at most one uncommitted batch and a rerun simply continues: a frame
is pending until its row for the current weights is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image, UnidentifiedImageError
from sqlalchemy import and_, delete, func, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from storage.blobstore import BlobStore
from storage.claims import CameraClaims
from storage.db import session_scope
from storage.errors import OkoError
from storage.models.media import Frame
from storage.models.search import FrameEmbedding
from storage.models.search_index import SearchBacklog

if TYPE_CHECKING:
    import numpy as np

EMBEDDED = "embedded"
LINKED = "linked"


def vector_frame_id(*, frame_id: int, status: str, linked_frame_id: int | None) -> int | None:
    """The frame whose vector stands for this one: itself, or the one a static frame is
    linked to."""
    return frame_id if status == EMBEDDED else linked_frame_id


BACKLOG_CHUNK = 5000


@dataclass(frozen=True)
class BacklogFrame:
    """A frame entering (or staying in) the search backlog."""

    frame_id: int
    camera_id: str
    captured_at_utc: datetime


def add_to_backlog(session: Session, frames: Sequence[BacklogFrame], *, embedded: bool) -> None:
    """Put ``frames`` in the search backlog (``SearchBacklog``), or mark them embedded.

    Ingest adds new frames (``embedded=False``), the embedding queue marks the frames it
    embeds or links, and shard sync puts back frames it could not commit to a shard. The
    caller commits; search then finds these frames with one indexed query.
    """
    for start in range(0, len(frames), BACKLOG_CHUNK):
        part = frames[start:start + BACKLOG_CHUNK]
        existing = {row.frame_id: row for row in session.exec(
            select(SearchBacklog).where(
                col(SearchBacklog.frame_id).in_([f.frame_id for f in part]))).all()}
        for frame in part:
            row = existing.get(frame.frame_id)
            if row is None:
                session.add(SearchBacklog(frame_id=frame.frame_id, camera_id=frame.camera_id,
                                          captured_at_utc=frame.captured_at_utc,
                                          embedded=embedded))
            elif row.embedded != embedded:
                row.embedded = embedded
                session.add(row)


def remove_from_backlog(session: Session, frame_ids: Sequence[int]) -> None:
    """Frames now in a committed shard leave the backlog (in the shard's transaction)."""
    for start in range(0, len(frame_ids), BACKLOG_CHUNK):
        session.execute(delete(SearchBacklog).where(
            col(SearchBacklog.frame_id).in_(list(frame_ids[start:start + BACKLOG_CHUNK]))))


# Flush a chunk of links even while nothing moves, so a long static stretch is not held
# in memory (or lost by a crash) as one huge uncommitted transaction.
LINKS_PER_FLUSH_FACTOR = 8
PENDING_PAGE = 2000

ProgressCallback = Callable[[int, int], None]


class ImageEmbedder(Protocol):
    """What the queue needs from an embedder (``indexer.embeddings.ClipEmbedder``)."""

    @property
    def preset(self) -> str: ...

    @property
    def weights_sha256(self) -> str: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@dataclass(frozen=True)
class EmbedFailure:
    """A frame left pending because its image could not be read."""

    frame_id: int
    reason: str


@dataclass
class EmbedReport:
    """What one run of the queue did; ``skipped_fraction`` is the share motion gating linked."""

    preset: str
    weights_sha256: str
    embedded: int = 0
    linked: int = 0
    failed: list[EmbedFailure] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)
    # cameras another worker was embedding: it takes their frames, this run left them
    cameras_busy: list[str] = field(default_factory=list)

    @property
    def processed(self) -> int:
        return self.embedded + self.linked

    @property
    def skipped_fraction(self) -> float:
        return self.linked / self.processed if self.processed else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset, "weights_sha256": self.weights_sha256,
            "embedded": self.embedded, "linked": self.linked,
            "skipped_fraction": round(self.skipped_fraction, 4), "cameras": self.cameras,
            "cameras_busy": self.cameras_busy,
            "failed": [{"frame_id": f.frame_id, "reason": f.reason} for f in self.failed],
        }


@dataclass(frozen=True)
class _PendingFrame:
    id: int
    captured_at_utc: datetime
    thumbnail_sha256: str


def _pending_condition(weights_sha256: str) -> Any:
    return and_(col(FrameEmbedding.frame_id) == col(Frame.id),
                col(FrameEmbedding.weights_sha256) == weights_sha256)


def pending_frame_count(*, session: Session, weights_sha256: str) -> int:
    """Frames that have no embedding (or link) for these weights yet."""
    query = (
        select(func.count()).select_from(Frame)
        .outerjoin(FrameEmbedding, _pending_condition(weights_sha256))
        .where(col(FrameEmbedding.frame_id).is_(None))
    )
    return int(session.exec(query).one())


def _iter_pending_frames(
    engine: Engine, weights_sha256: str, camera_id: str
) -> Iterator[_PendingFrame]:
    """A camera's pending frames in capture order, read a page at a time (keyset paging)."""
    page = PENDING_PAGE
    after: tuple[datetime, int] | None = None
    while True:
        query = (
            select(Frame.id, Frame.captured_at_utc, Frame.thumbnail_sha256)
            .outerjoin(FrameEmbedding, _pending_condition(weights_sha256))
            .where(col(FrameEmbedding.frame_id).is_(None), Frame.camera_id == camera_id)
            .order_by(col(Frame.captured_at_utc), col(Frame.id))
            .limit(page)
        )
        if after is not None:
            query = query.where(or_(col(Frame.captured_at_utc) > after[0],
                                    and_(col(Frame.captured_at_utc) == after[0],
                                         col(Frame.id) > after[1])))
        with Session(engine) as session:
            rows = [_PendingFrame(i, t, s) for i, t, s in session.exec(query).all()
                    if i is not None]  # stored frames always have an id
        yield from rows
        if len(rows) < page:
            return
        after = (rows[-1].captured_at_utc, rows[-1].id)


def _pending_cameras(session: Session, weights_sha256: str) -> list[str]:
    query = (
        select(Frame.camera_id).distinct()
        .outerjoin(FrameEmbedding, _pending_condition(weights_sha256))
        .where(col(FrameEmbedding.frame_id).is_(None))
        .order_by(col(Frame.camera_id))
    )
    return list(session.exec(query).all())


def _load_image(derived: BlobStore, sha256: str) -> Image.Image:
    with derived.open(sha256) as handle:
        image = Image.open(handle)
        image.load()
    return image.convert("RGB")


def _reference_frame(
    session: Session, weights_sha256: str, camera_id: str, before: datetime
) -> tuple[int, str] | None:
    """The camera's last frame embedded with these weights at or before ``before``."""
    query = (
        select(Frame.id, Frame.thumbnail_sha256)
        .join(FrameEmbedding, col(FrameEmbedding.frame_id) == col(Frame.id))
        .where(Frame.camera_id == camera_id, FrameEmbedding.weights_sha256 == weights_sha256,
               FrameEmbedding.status == EMBEDDED, col(Frame.captured_at_utc) <= before)
        .order_by(col(Frame.captured_at_utc).desc(), col(Frame.id).desc())
        .limit(1)
    )
    row = session.exec(query).first()
    if row is None or row[0] is None:
        return None
    return row[0], row[1]


def _starting_reference(
    engine: Engine, derived: BlobStore, weights_sha256: str, camera_id: str, before: datetime
) -> tuple[int | None, np.ndarray | None]:
    """Id and motion signature of the frame gating compares a camera's first pending frame to."""
    from indexer.motion import motion_signature  # numpy: not for ingest, which adds frames

    with Session(engine) as session:
        reference = _reference_frame(session, weights_sha256, camera_id, before)
    if reference is None:
        return None, None
    try:
        return reference[0], motion_signature(_load_image(derived, reference[1]))
    except (OkoError, OSError, UnidentifiedImageError):
        return None, None  # its image is gone: embed the next frame afresh


class _Batcher:
    """Collects gating decisions, of one camera after another, and writes them a batch at
    a time: a batch spans cameras, so many cameras with a few new frames each still fill
    the model's batches. A link's reference is in its own batch or an earlier one."""

    def __init__(self, *, engine: Engine, embedder: ImageEmbedder, batch_size: int,
                 report: EmbedReport) -> None:
        self.engine = engine
        self.captured: dict[int, tuple[str, datetime]] = {}  # frame -> camera, capture time
        self.embedder = embedder
        self.batch_size = batch_size
        self.report = report
        self.to_embed: list[tuple[int, Image.Image, float]] = []
        self.to_link: list[tuple[int, int, float]] = []

    def add_embed(self, frame_id: int, image: Image.Image, score: float, *,
                  camera_id: str, at: datetime) -> None:
        self.captured[frame_id] = (camera_id, at)
        self.to_embed.append((frame_id, image, score))
        self._maybe_flush()

    def add_link(self, frame_id: int, reference_id: int, score: float, *,
                 camera_id: str, at: datetime) -> None:
        self.captured[frame_id] = (camera_id, at)
        self.to_link.append((frame_id, reference_id, score))
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if (len(self.to_embed) >= self.batch_size
                or len(self.to_link) >= self.batch_size * LINKS_PER_FLUSH_FACTOR):
            self.flush()

    def flush(self) -> None:
        from indexer.vectors import vector_to_bytes

        if not self.to_embed and not self.to_link:
            return
        vectors = self.embedder.encode_images([image for _, image, _ in self.to_embed])
        sha = self.embedder.weights_sha256
        rows: list[FrameEmbedding] = [
            FrameEmbedding(frame_id=fid, weights_sha256=sha, preset=self.embedder.preset,
                           status=EMBEDDED, vector=vector_to_bytes(vec),
                           motion_score=score)
            for (fid, _, score), vec in zip(self.to_embed, vectors, strict=True)
        ] + [
            FrameEmbedding(frame_id=fid, weights_sha256=sha, preset=self.embedder.preset,
                           status=LINKED, linked_frame_id=ref, motion_score=score)
            for fid, ref, score in self.to_link
        ]
        with session_scope(self.engine) as session:
            existing = {
                row.frame_id: row for row in session.exec(
                    select(FrameEmbedding).where(
                        col(FrameEmbedding.frame_id).in_([r.frame_id for r in rows]))
                ).all()
            }
            for row in rows:
                old = existing.get(row.frame_id)
                if old is None:
                    session.add(row)
                elif old.weights_sha256 != sha:  # embedded by earlier weights: replace
                    for name in ("weights_sha256", "preset", "status", "vector",
                                 "linked_frame_id", "motion_score", "created_at"):
                        setattr(old, name, getattr(row, name))
            # searchable now, exactly from the database, until shard sync commits them
            add_to_backlog(session, [BacklogFrame(r.frame_id, *self.captured[r.frame_id])
                                     for r in rows], embedded=True)
        self.report.embedded += len(self.to_embed)
        self.report.linked += len(self.to_link)
        self.to_embed, self.to_link = [], []
        self.captured.clear()


def embed_pending_frames(
    *, engine: Engine, derived: BlobStore, embedder: ImageEmbedder, batch_size: int,
    motion_threshold: float, progress: ProgressCallback | None = None, limit: int | None = None,
) -> EmbedReport:
    """Embed (or link) every frame still pending for ``embedder``'s weights.

    Commits one transaction per batch and is safe to rerun after a crash. Frames whose
    image cannot be read stay pending and are listed in ``report.failed``. A camera
    another worker is embedding is left to it (``report.cameras_busy``). Callers sync
    the FAISS shards afterwards with ``indexer.shards.sync_shards`` (``indexer.reindex``
    does both).
    """
    sha = embedder.weights_sha256
    report = EmbedReport(preset=embedder.preset, weights_sha256=sha)
    with Session(engine) as session:
        total = pending_frame_count(session=session, weights_sha256=sha)
        cameras = _pending_cameras(session, sha)
    if limit is not None:
        total = min(total, limit)
    done = 0
    while cameras and done < total:
        claimed, done = _embed_round(engine=engine, derived=derived, embedder=embedder,
                                     batch_size=batch_size, motion_threshold=motion_threshold,
                                     cameras=cameras, report=report, done=done, total=total,
                                     progress=progress)
        # Frames a worker that found a camera claimed left behind: committed before it
        # tried, so seen here, after this run released the camera. Unreadable frames stay
        # pending and are not tried again in this run.
        failed = _failures_by_camera(engine, report)
        waiting = {c: _pending_count(engine, sha, c) - failed.get(c, 0) for c in sorted(claimed)}
        cameras = [c for c, count in waiting.items() if count > 0]
        if limit is None:
            total = done + sum(waiting[c] for c in cameras)
    return report


def _embed_round(
    *, engine: Engine, derived: BlobStore, embedder: ImageEmbedder, batch_size: int,
    motion_threshold: float, cameras: list[str], report: EmbedReport, done: int, total: int,
    progress: ProgressCallback | None,
) -> tuple[set[str], int]:
    """One pass over ``cameras``; returns the cameras it claimed and the frames done.

    A camera stays claimed until the batch holding its last frames is committed, since
    a batch spans cameras.
    """
    from indexer.motion import is_static, motion_score, motion_signature

    sha = embedder.weights_sha256
    claimed: set[str] = set()
    with CameraClaims(engine, f"embed:{sha}") as claims:
        batcher = _Batcher(engine=engine, embedder=embedder, batch_size=batch_size,
                           report=report)
        for camera_id in cameras:
            if done >= total:
                break
            if not claims.try_claim(camera_id):
                if camera_id not in report.cameras_busy:
                    report.cameras_busy.append(camera_id)
                continue
            claimed.add(camera_id)
            if camera_id not in report.cameras:
                report.cameras.append(camera_id)
            reference_id: int | None = None
            reference_sig: np.ndarray | None = None
            failed_before = {failure.frame_id for failure in report.failed}
            frames = (f for f in _iter_pending_frames(engine, sha, camera_id)
                      if f.id not in failed_before)
            for number, frame in enumerate(frames):
                if done >= total:
                    break
                if number == 0:
                    reference_id, reference_sig = _starting_reference(
                        engine, derived, sha, camera_id, frame.captured_at_utc)
                done += 1
                try:
                    image = _load_image(derived, frame.thumbnail_sha256)
                except (OkoError, OSError, UnidentifiedImageError) as exc:
                    report.failed.append(EmbedFailure(frame.id,
                                                      f"frame image unreadable: {exc}"))
                    continue
                signature = motion_signature(image)
                score = motion_score(signature, reference_sig)
                if reference_id is not None and is_static(score, threshold=motion_threshold):
                    batcher.add_link(frame.id, reference_id, score, camera_id=camera_id,
                                     at=frame.captured_at_utc)
                else:
                    batcher.add_embed(frame.id, image, score, camera_id=camera_id,
                                      at=frame.captured_at_utc)
                    reference_id, reference_sig = frame.id, signature
                if progress is not None:
                    progress(done, total)
        batcher.flush()
    return claimed, done


def _failures_by_camera(engine: Engine, report: EmbedReport) -> dict[str, int]:
    if not report.failed:
        return {}
    with Session(engine) as session:
        rows = session.exec(select(Frame.camera_id).where(
            col(Frame.id).in_([failure.frame_id for failure in report.failed]))).all()
    counts: dict[str, int] = {}
    for camera_id in rows:
        counts[camera_id] = counts.get(camera_id, 0) + 1
    return counts


def _pending_count(engine: Engine, weights_sha256: str, camera_id: str) -> int:
    with Session(engine) as session:
        query = (select(func.count()).select_from(Frame)
                 .outerjoin(FrameEmbedding, _pending_condition(weights_sha256))
                 .where(col(FrameEmbedding.frame_id).is_(None), Frame.camera_id == camera_id))
        return int(session.exec(query).one())
