"""Sightings: one plate's reads over consecutive sampled frames of one camera, merged.

Per camera, frames waiting for plate reading are taken in capture order.

1. **Gate.** A frame that hardly differs from the camera's last read frame
   (``indexer.motion``) is not read again: it is recorded as ``static`` and extends the
   sightings seen in that frame.
2. **Read.** Other frames go through the reader (``indexer.plates.reader``), its
   detector only on the regions that changed since the camera's last read frame; only
   grammar-fitting reads come back. A sighting seen in that last frame whose plate lies
   wholly outside the changed regions is carried: extended to this frame, not re-read.
3. **Vote.** A read joins the camera's open sighting whose plate is within one
   confusion-aware edit of it and was last seen at most ``max_gap_s`` before; otherwise
   it opens a new sighting. The plate is the text with the most votes (summed OCR
   confidence breaks ties); ``confidence`` is its share of the votes times their mean
   OCR confidence; ``alternatives`` counts, per position, each character read there.
4. **Store.** The best read's crop is a derived blob (JPEG), its provenance naming the
   source frame and its hash, the models and the parameters. Sightings and the frames'
   scan rows are written in one transaction per batch, so a crash loses at most one
   batch and a rerun continues; a sighting still open at a batch's end (or at the end
   of a recording) is reopened by the next run when the camera's next frame follows
   within ``max_gap_s``.
5. **Replace.** Frames read by an older reader (another model or parameters) are pending
   again. Such an original is re-read in one transaction that also deletes the older
   reader's sightings over its span (``indexer.plates.supersede``), so search never
   shows both; ``limit`` does not cut such an original short. The older sightings'
   crops that no row names any more are then expired from the derived store, each
   batch's audit entry committed first (``on_crops_expired``).
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy import and_, func, or_
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from indexer.daynight import classify
from indexer.motion import is_static, motion_score, motion_signature
from indexer.plates.grammar import confusion_distance
from indexer.plates.reader import Box, PlateRead, ReaderConfig, ReadStats, outside
from indexer.plates.supersede import (
    OnCropsExpired,
    ReplaceCounts,
    expire_replaced_crops,
    older_sightings,
    original_span,
    replace_sightings,
)
from storage.blobstore import BlobExistsError, BlobStore
from storage.claims import CameraClaims
from storage.db import session_scope
from storage.errors import OkoError
from storage.models.media import Camera, Frame, Original, Segment
from storage.models.plates import PlateFrameScan, PlateSighting
from storage.types import utcnow

READ = "read"
STATIC = "static"
UNREADABLE = "unreadable"
DEFAULT_MAX_GAP_S = 6.0
DEFAULT_BATCH = 32
PENDING_PAGE = 2000
CROP_JPEG_QUALITY = 92
MERGE_DISTANCE = 1.0

ProgressCallback = Callable[[int, int], None]


class FramePlateReader(Protocol):
    """What the queue needs from a reader (``indexer.plates.reader.PlateReader``)."""

    config: ReaderConfig
    identity: dict[str, dict[str, str]]
    key: str

    def read(self, image: Image.Image, stats: ReadStats | None = None,
             source: Callable[[], Image.Image | None] | None = None,
             regions: list[Box] | None = None) -> list[PlateRead]: ...

    def changed_regions(self, image: Image.Image,
                        previous: Image.Image | None) -> list[Box] | None: ...


@dataclass
class PlateReport:
    """What one run of the plate queue did; ``touched`` are the sightings it wrote."""

    reader_key: str
    frames_read: int = 0
    frames_static: int = 0
    frames_unreadable: int = 0
    reads: int = 0
    carried: int = 0  # sightings extended over a frame where their plate did not change
    new_sightings: int = 0
    touched: list[int] = field(default_factory=list)
    # cameras another worker was reading: it takes their frames, this run left them
    cameras_busy: list[str] = field(default_factory=list)
    replaced: ReplaceCounts = field(default_factory=ReplaceCounts)
    stats: ReadStats = field(default_factory=ReadStats)
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return self.frames_read + self.frames_static + self.frames_unreadable

    def as_dict(self) -> dict[str, Any]:
        return {"reader_key": self.reader_key, "frames_read": self.frames_read,
                "frames_static": self.frames_static,
                "frames_unreadable": self.frames_unreadable, "reads": self.reads,
                "sightings_carried": self.carried,
                "frames_region_detected": self.stats.region_frames,
                "new_sightings": self.new_sightings, "sightings_written": len(self.touched),
                "cameras_busy": self.cameras_busy,
                "candidates": self.stats.candidates,
                "rejected_by_grammar": self.stats.rejected_by_grammar,
                "sightings_replaced": self.replaced.sightings_replaced,
                "events_moved": self.replaced.events_moved,
                "events_dropped": self.replaced.events_dropped,
                "crops_expired": self.replaced.crops_expired,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class _PendingFrame:
    id: int
    captured_at_utc: datetime
    thumbnail_sha256: str
    segment_id: int
    offset_in_segment_s: float
    original_id: int
    offset_s: float = 0.0  # in the original
    original_sha256: str = ""  # empty: the original is no larger than the stored copy


@dataclass
class _Best:
    confidence: float
    frame_id: int
    frame_sha256: str
    segment_id: int
    offset_in_segment_s: float
    box: tuple[int, int, int, int]
    crop: Image.Image | None  # None: already stored as ``crop_sha256``
    crop_sha256: str = ""


@dataclass
class _Open:
    """A sighting being built; ``row_id`` is set once it has been written."""

    camera_id: str
    votes: dict[str, list[float]]  # text -> [votes, summed confidence]
    formats: dict[str, str]
    positions: list[Counter[str]]
    first_seen: datetime
    last_seen: datetime
    first_frame_id: int
    last_frame_id: int
    frames: int
    best: _Best
    day_phase: str
    row_id: int | None = None
    dirty: bool = True
    last_box: Box | None = None  # where the plate was in ``last_frame_id``

    @property
    def plate(self) -> str:
        return max(self.votes.items(), key=lambda item: (item[1][0], item[1][1]))[0]

    def add(self, read: PlateRead, frame: _PendingFrame, frame_counted: bool) -> None:
        entry = self.votes.setdefault(read.text, [0.0, 0.0])
        entry[0] += 1
        entry[1] += read.confidence
        self.formats.setdefault(read.text, read.format)
        if len(self.positions) < len(read.text):
            self.positions.extend(Counter() for _ in range(len(read.text) - len(self.positions)))
        for index, char in enumerate(read.text):
            self.positions[index][char] += 1
        self.last_seen, self.last_frame_id = frame.captured_at_utc, frame.id
        self.last_box = read.box
        if not frame_counted:
            self.frames += 1
        if read.confidence > self.best.confidence:
            self.best = _Best(read.confidence, frame.id, frame.thumbnail_sha256,
                              frame.segment_id, frame.offset_in_segment_s, read.box, read.crop)
        self.dirty = True

    def confidence(self) -> float:
        total = sum(v[0] for v in self.votes.values())
        votes, summed = self.votes[self.plate]
        return round((votes / total) * (summed / votes), 4) if total else 0.0


def _open_from_row(row: PlateSighting) -> _Open:
    assert row.id is not None
    provenance = row.crop_provenance
    box = provenance.get("box") or [0, 0, 0, 0]
    return _Open(
        camera_id=row.camera_id,
        votes={text: [float(v[0]), float(v[1])] for text, v in row.reads.items()},
        formats={text: row.plate_format for text in row.reads},
        positions=[Counter({k: int(n) for k, n in pos.items()}) for pos in row.alternatives],
        first_seen=row.first_seen_utc, last_seen=row.last_seen_utc,
        first_frame_id=row.first_frame_id, last_frame_id=row.last_frame_id,
        frames=row.frames, day_phase=row.day_phase, row_id=row.id, dirty=False,
        last_box=(box[0], box[1], box[2], box[3]) if row.last_frame_id == row.best_frame_id
        else None,
        best=_Best(row.best_confidence, row.best_frame_id,
                   str(provenance.get("source_frame_sha256", "")), row.segment_id,
                   row.offset_in_segment_s, (box[0], box[1], box[2], box[3]), None,
                   row.crop_sha256))


def _pending_condition(reader_key: str) -> Any:
    return and_(col(PlateFrameScan.frame_id) == col(Frame.id),
                col(PlateFrameScan.reader_key) == reader_key)


def pending_plate_frames(*, session: Session, reader_key: str) -> int:
    """Frames not yet read with this reader key."""
    query = (select(func.count()).select_from(Frame)
             .outerjoin(PlateFrameScan, _pending_condition(reader_key))
             .where(col(PlateFrameScan.frame_id).is_(None)))
    return int(session.exec(query).one())


def _pending_cameras(session: Session, reader_key: str) -> list[str]:
    query = (select(Frame.camera_id).distinct()
             .outerjoin(PlateFrameScan, _pending_condition(reader_key))
             .where(col(PlateFrameScan.frame_id).is_(None))
             .order_by(col(Frame.camera_id)))
    return list(session.exec(query).all())


def _iter_pending(engine: Engine, reader_key: str, camera_id: str) -> Iterator[_PendingFrame]:
    """A camera's pending frames in capture order, a page at a time (keyset paging)."""
    after: tuple[datetime, int] | None = None
    while True:
        query = (
            sa_select(col(Frame.id), col(Frame.captured_at_utc), col(Frame.thumbnail_sha256),
                      col(Frame.segment_id), col(Frame.offset_s), col(Segment.start_offset_s),
                      col(Frame.original_id), col(Original.sha256), col(Original.width),
                      col(Frame.width))
            .join(Segment, col(Segment.id) == col(Frame.segment_id))
            .join(Original, col(Original.id) == col(Frame.original_id))
            .outerjoin(PlateFrameScan, _pending_condition(reader_key))
            .where(col(PlateFrameScan.frame_id).is_(None), col(Frame.camera_id) == camera_id)
            .order_by(col(Frame.captured_at_utc), col(Frame.id)).limit(PENDING_PAGE))
        if after is not None:
            query = query.where(or_(col(Frame.captured_at_utc) > after[0],
                                    and_(col(Frame.captured_at_utc) == after[0],
                                         col(Frame.id) > after[1])))
        with Session(engine) as session:
            rows = [_PendingFrame(fid, at, sha, seg, round(offset - seg_start, 6), original,
                                  offset, original_sha if full_w > stored_w else "")
                    for fid, at, sha, seg, offset, seg_start, original, original_sha, full_w,
                    stored_w in session.execute(query).all()
                    if fid is not None]
        yield from rows
        if len(rows) < PENDING_PAGE:
            return
        after = (rows[-1].captured_at_utc, rows[-1].id)


def _load(derived: BlobStore, sha256: str) -> tuple[Image.Image, bytes]:
    with derived.open(sha256) as handle:
        data = handle.read()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("RGB"), data


def _store_crop(derived: BlobStore, crop: Image.Image) -> str:
    buffer = io.BytesIO()
    crop.save(buffer, format="JPEG", quality=CROP_JPEG_QUALITY)
    try:
        return derived.put_bytes(buffer.getvalue()).sha256
    except BlobExistsError as exc:
        return exc.sha256


class _CameraRun:
    """One camera's open sightings and uncommitted scan rows."""

    def __init__(self, *, engine: Engine, derived: BlobStore, reader: FramePlateReader,
                 camera: Camera, max_gap_s: float, report: PlateReport,
                 on_crops_expired: OnCropsExpired) -> None:
        self.engine, self.derived, self.reader = engine, derived, reader
        self.on_crops_expired = on_crops_expired
        self.camera, self.max_gap_s, self.report = camera, max_gap_s, report
        self.open: list[_Open] = []
        self.closed: list[_Open] = []
        self.scans: list[PlateFrameScan] = []
        self.original_id: int | None = None
        self.replacing: tuple[datetime, datetime] | None = None  # span whose old reads go

    def begin_original(self, original_id: int) -> None:
        """Start an original's frames; one read by an older reader is replaced whole."""
        self.original_id = original_id
        with Session(self.engine) as session:
            span = original_span(session, original_id)
            old = span is not None and bool(older_sightings(
                session, camera_id=self.camera.id, reader_key=self.reader.key, span=span))
        self.replacing = span if old else None

    def reopen(self, first: datetime) -> None:
        """Sightings of this camera that the first pending frame may continue."""
        with Session(self.engine) as session:
            rows = session.exec(select(PlateSighting).where(
                PlateSighting.camera_id == self.camera.id,
                PlateSighting.reader_key == self.reader.key,
                col(PlateSighting.last_seen_utc) <= first,
                col(PlateSighting.last_seen_utc) >= _minus(first, self.max_gap_s))).all()
        self.open = [_open_from_row(row) for row in rows]

    def _expire(self, now: datetime) -> None:
        for sighting in list(self.open):
            if (now - sighting.last_seen).total_seconds() > self.max_gap_s:
                self.open.remove(sighting)
                self.closed.append(sighting)

    def static(self, frame: _PendingFrame, reference_id: int | None) -> None:
        self._expire(frame.captured_at_utc)
        for sighting in self.open:
            if sighting.last_frame_id == reference_id:
                sighting.last_seen, sighting.last_frame_id = frame.captured_at_utc, frame.id
                sighting.dirty = True
        self.scans.append(PlateFrameScan(frame_id=frame.id, reader_key=self.reader.key,
                                         status=STATIC))
        self.report.frames_static += 1

    def unreadable(self, frame: _PendingFrame) -> None:
        self.scans.append(PlateFrameScan(frame_id=frame.id, reader_key=self.reader.key,
                                         status=UNREADABLE))
        self.report.frames_unreadable += 1

    def read(self, frame: _PendingFrame, image: Image.Image, data: bytes,
             originals: BlobStore | None,
             reference: tuple[int, Image.Image] | None = None) -> None:
        """Read ``frame``; ``reference`` is the camera's last read frame (id, image)."""
        self._expire(frame.captured_at_utc)
        regions = self.reader.changed_regions(image, reference[1] if reference else None)
        source = None
        if originals is not None and frame.original_sha256:
            def source() -> Image.Image | None:  # decoded only when there are candidates
                from indexer.plates.source import decode_frame_at

                return decode_frame_at(originals.path_for(frame.original_sha256),
                                       frame.offset_s)
        reads = self.reader.read(image, self.report.stats, source=source, regions=regions)
        taken: set[int] = set()
        for read in sorted(reads, key=lambda r: -r.confidence):
            match = None
            for sighting in self.open:
                if id(sighting) in taken:
                    continue
                if confusion_distance(read.text, sighting.plate) <= MERGE_DISTANCE:
                    match = sighting
                    break
            if match is None:
                phase = classify(latitude=self.camera.latitude,
                                 longitude=self.camera.longitude,
                                 at=frame.captured_at_utc, image_bytes=data).phase
                match = _Open(
                    camera_id=self.camera.id, votes={}, formats={}, positions=[],
                    first_seen=frame.captured_at_utc, last_seen=frame.captured_at_utc,
                    first_frame_id=frame.id, last_frame_id=frame.id, frames=0,
                    day_phase=str(phase),
                    best=_Best(-1.0, frame.id, frame.thumbnail_sha256, frame.segment_id,
                               frame.offset_in_segment_s, read.box, read.crop))
                self.open.append(match)
                self.report.new_sightings += 1
            match.add(read, frame, frame_counted=False)
            taken.add(id(match))
        if reference is not None and regions is not None:
            for sighting in self.open:  # unchanged plates: carried, not re-read
                if (id(sighting) not in taken and sighting.last_frame_id == reference[0]
                        and sighting.last_box is not None
                        and outside(sighting.last_box, regions)):
                    sighting.last_seen, sighting.last_frame_id = (frame.captured_at_utc,
                                                                  frame.id)
                    sighting.dirty = True
                    self.report.carried += 1
        self.scans.append(PlateFrameScan(frame_id=frame.id, reader_key=self.reader.key,
                                         status=READ, reads=len(reads)))
        self.report.frames_read += 1
        self.report.reads += len(reads)

    def flush(self) -> None:
        """Write the scans and every changed sighting in one transaction."""
        changed = [s for s in [*self.closed, *self.open] if s.dirty]
        for sighting in changed:  # content-addressed: a crash leaves at most a spare blob
            if sighting.best.crop is not None:
                sighting.best.crop_sha256 = _store_crop(self.derived, sighting.best.crop)
                sighting.best.crop = None
        replaced_crops: set[str] = set()
        replaced_keys: set[str] = set()
        with session_scope(self.engine) as session:
            for scan in self.scans:
                existing = session.get(PlateFrameScan, scan.frame_id)
                if existing is None:
                    session.add(scan)
                else:  # read with earlier models: replace
                    existing.reader_key, existing.status = scan.reader_key, scan.status
                    existing.reads, existing.scanned_at = scan.reads, scan.scanned_at
            old = [] if self.replacing is None else older_sightings(
                session, camera_id=self.camera.id, reader_key=self.reader.key,
                span=self.replacing)
            rows = [self._write(session, sighting) for sighting in changed]
            session.flush()
            for sighting, row in zip(changed, rows, strict=True):
                sighting.row_id, sighting.dirty = row.id, False
                if row.id is not None and row.id not in self.report.touched:
                    self.report.touched.append(row.id)
            if old:
                replaced_crops = {row.crop_sha256 for row in old}
                replaced_keys = {row.reader_key for row in old}
                counts = replace_sightings(session, old=old, reader_key=self.reader.key)
                self.report.replaced.sightings_replaced += counts.sightings_replaced
                self.report.replaced.events_moved += counts.events_moved
                self.report.replaced.events_dropped += counts.events_dropped
        if replaced_crops:  # committed: the old reader's crops no row names go
            with Session(self.engine) as session:
                self.report.replaced.crops_expired += expire_replaced_crops(
                    session, derived=self.derived, crops=replaced_crops,
                    camera_id=self.camera.id, replaced_reader_keys=replaced_keys,
                    reader_key=self.reader.key, on_expired=self.on_crops_expired)
        self.scans, self.closed = [], []

    def _write(self, session: Session, sighting: _Open) -> PlateSighting:
        row = session.get(PlateSighting, sighting.row_id) if sighting.row_id else None
        if row is None:
            row = PlateSighting(camera_id=sighting.camera_id, plate="", plate_format="",
                                confidence=0.0, votes=0, frames=0,
                                first_seen_utc=sighting.first_seen,
                                last_seen_utc=sighting.last_seen,
                                first_frame_id=sighting.first_frame_id,
                                last_frame_id=sighting.last_frame_id,
                                best_frame_id=sighting.best.frame_id,
                                segment_id=sighting.best.segment_id,
                                offset_in_segment_s=0.0, day_phase=sighting.day_phase,
                                best_confidence=0.0, crop_sha256="",
                                reader_key=self.reader.key)
        plate = sighting.plate
        best = sighting.best
        row.plate, row.plate_format = plate, sighting.formats.get(plate, "")
        row.confidence = sighting.confidence()
        row.votes = int(sighting.votes[plate][0])
        row.frames = sighting.frames
        row.last_seen_utc, row.last_frame_id = sighting.last_seen, sighting.last_frame_id
        row.best_frame_id, row.segment_id = best.frame_id, best.segment_id
        row.offset_in_segment_s, row.best_confidence = best.offset_in_segment_s, best.confidence
        row.reads = {text: [int(v[0]), round(v[1], 4)] for text, v in sighting.votes.items()}
        row.alternatives = [dict(counter) for counter in sighting.positions]
        row.crop_sha256 = best.crop_sha256
        row.crop_provenance = {
            "source_frame_id": best.frame_id, "source_frame_sha256": best.frame_sha256,
            "box": list(best.box), "models": self.reader.identity,
            "parameters": self.reader.config.as_dict(), "reader_key": self.reader.key,
            "format": "image/jpeg", "jpeg_quality": CROP_JPEG_QUALITY,
        }
        row.updated_at = utcnow()
        session.add(row)
        return row


def _minus(at: datetime, seconds: float) -> datetime:
    from datetime import timedelta

    return at - timedelta(seconds=seconds)


def read_pending_plates(
    *, engine: Engine, derived: BlobStore, reader: FramePlateReader,
    motion_threshold: float, on_crops_expired: OnCropsExpired,
    originals: BlobStore | None = None, max_gap_s: float = DEFAULT_MAX_GAP_S,
    batch: int = DEFAULT_BATCH, progress: ProgressCallback | None = None,
    limit: int | None = None,
) -> PlateReport:
    """Read every frame still waiting for ``reader``'s key; returns what was done.

    Commits per ``batch`` frames (an original read before by an older reader: once, with
    the older sightings over its span deleted) and is safe to rerun after a crash. A
    frame whose image is gone is recorded ``unreadable`` (not retried by this key). With
    ``originals``, plate candidates are cut from the frame decoded from its original at
    full resolution (``indexer.plates.source``; the stored copy when that fails).
    ``on_crops_expired`` writes the audit entry of each batch of replaced crops that is
    expired (``indexer.plates.supersede``), committed before the files go.
    """
    started = time.perf_counter()
    report = PlateReport(reader_key=reader.key)
    with Session(engine) as session:
        total = pending_plate_frames(session=session, reader_key=reader.key)
        cameras = _pending_cameras(session, reader.key)
        camera_rows = {c.id: c for c in session.exec(
            select(Camera).where(col(Camera.id).in_(cameras))).all()}
    if limit is not None:
        total = min(total, limit)
    done = 0
    queue = list(cameras)
    with CameraClaims(engine, f"plates:{reader.key}") as claims:
        while queue and done < total:
            camera_id = queue.pop(0)
            if not claims.try_claim(camera_id):
                if camera_id not in report.cameras_busy:
                    report.cameras_busy.append(camera_id)
                continue
            done = _read_camera(engine=engine, derived=derived, originals=originals,
                                on_crops_expired=on_crops_expired,
                                reader=reader, camera=camera_rows[camera_id],
                                max_gap_s=max_gap_s, motion_threshold=motion_threshold,
                                batch=batch, report=report, done=done, total=total,
                                progress=progress)
            claims.release(camera_id)
            # Frames a worker that found this camera claimed left behind: committed before
            # it tried, so seen here, after the release.
            waiting = _pending_in_camera(engine, reader.key, camera_id)
            if waiting and limit is None:
                total = done + waiting + sum(_pending_in_camera(engine, reader.key, c)
                                             for c in queue)
                queue.append(camera_id)
    report.seconds = time.perf_counter() - started
    return report


def _pending_in_camera(engine: Engine, reader_key: str, camera_id: str) -> int:
    with Session(engine) as session:
        query = (select(func.count()).select_from(Frame)
                 .outerjoin(PlateFrameScan, _pending_condition(reader_key))
                 .where(col(PlateFrameScan.frame_id).is_(None), Frame.camera_id == camera_id))
        return int(session.exec(query).one())


def _read_camera(
    *, engine: Engine, derived: BlobStore, originals: BlobStore | None,
    on_crops_expired: OnCropsExpired,
    reader: FramePlateReader, camera: Camera, max_gap_s: float, motion_threshold: float,
    batch: int, report: PlateReport, done: int, total: int,
    progress: ProgressCallback | None,
) -> int:
    """Read one claimed camera's waiting frames; returns the frames done so far."""
    camera_id = camera.id
    run = _CameraRun(engine=engine, derived=derived, reader=reader,
                     camera=camera, max_gap_s=max_gap_s, report=report,
                     on_crops_expired=on_crops_expired)
    reference: tuple[int, np.ndarray, Image.Image] | None = None
    for number, frame in enumerate(_iter_pending(engine, reader.key, camera_id)):
        same = frame.original_id == run.original_id
        if done >= total and not (same and run.replacing is not None):
            break  # an original being replaced is finished past the limit
        if number == 0:
            run.reopen(frame.captured_at_utc)
        if not same:
            run.flush()  # the previous original's replacement commits whole
            run.begin_original(frame.original_id)
        done += 1
        try:
            image, data = _load(derived, frame.thumbnail_sha256)
        except (OkoError, OSError, UnidentifiedImageError):
            run.unreadable(frame)
        else:
            signature = motion_signature(image)
            score = motion_score(signature, reference[1] if reference else None)
            if reference is not None and is_static(score, threshold=motion_threshold):
                run.static(frame, reference[0])
            else:
                run.read(frame, image, data, originals,
                         reference=(reference[0], reference[2]) if reference else None)
                reference = (frame.id, signature, image)
        if len(run.scans) >= batch and run.replacing is None:
            run.flush()
        if progress is not None:
            progress(min(done, total), total)
    run.flush()
    return done


__all__ = [
    "DEFAULT_MAX_GAP_S",
    "FramePlateReader",
    "PlateReport",
    "pending_plate_frames",
    "read_pending_plates",
]
