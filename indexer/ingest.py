"""Ingest one recording: hash and store it write-once, probe, segment, sample frames.

The source file is probed once to refuse bad input before anything is written, and the
stored copy is probed again after hashing: its codec, size and duration are the ones
recorded, so a file swapped after it was hashed cannot pass for another. Folders are
walked by ``walk_folder`` (bounded in files, entries and depth), in the worker's job,
never in a request.

``ingest_file`` is idempotent and crash-safe. Everything a kill -9 can interrupt is either
content-addressed (blobs: storing the same bytes again is a no-op) or written in one
final transaction (all Segment and Frame rows, the Original turning ``ready`` and its
acquisition custody entry), so a re-run after a crash finishes the job without
duplicating or losing rows. Bad input is refused before anything is written.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from indexer.embed_queue import BacklogFrame, add_to_backlog
from indexer.media import (
    DecodeReport,
    MediaError,
    MediaInfo,
    SegmentRun,
    cut_segments,
    probe,
    tool_version,
)
from indexer.sampling import choose_sampling, sample_recording
from storage.blobstore import BlobExistsError, BlobStore
from storage.cameras import get_camera_or_raise
from storage.custody import acquisition_entry, append_custody_entry
from storage.db import session_scope
from storage.errors import InvalidInputError, NotFoundError
from storage.models.media import Camera, Frame, Original, Segment

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".ts")
FILENAME_START = re.compile(r"_(\d{8}T\d{6})(?:\D|$)")
# a decodable tail shorter than the container claims by more than this is damage
DAMAGE_TOLERANCE_S = 0.5
# a folder walk gives up, with one sentence, past any of these
MAX_WALK_FILES = 10_000
MAX_WALK_ENTRIES = 200_000
MAX_WALK_DEPTH = 32
# derived blobs are fsynced one by one; a few at once keep the disk's queue busy
STORE_THREADS = 4

Progress = Callable[[str, float], None]


class MissingStartTimeError(InvalidInputError):
    def __init__(self, path: Path) -> None:
        super().__init__(
            f"Cannot tell when '{path.name}' was recorded: it has no container timestamp and "
            "its name has no valid CAMERA_YYYYMMDDTHHMMSS time; pass --start.")


@dataclass(frozen=True)
class IngestOptions:
    segment_seconds: float = 10.0
    sample_interval_seconds: float = 2.0
    frame_max_side: int = 448
    jpeg_quality: int = 90


@dataclass(frozen=True)
class IngestOutcome:
    original_id: int
    sha256: str
    duplicate: bool
    damaged: bool
    decodable_duration_s: float
    damage_reason: str
    segment_count: int
    frame_count: int
    recording_start_utc: datetime
    start_source: str
    message: str
    sampling: str = ""


def parse_start(text: str, tz: str | ZoneInfo = "Europe/Kyiv") -> datetime:
    """Parse an ISO 8601 time; a time without an offset is local to ``tz`` (the camera's).

    Raises ``InvalidInputError`` when ``text`` is not ISO 8601.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInputError(
            f"Cannot parse start time '{text}': use ISO 8601, e.g. "
            "2026-01-25T21:00:00+02:00.") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz) if isinstance(tz, str) else tz)
    return value.astimezone(UTC)


class FolderTooLargeError(InvalidInputError):
    """A folder walk passed one of its limits; nothing was queued for it."""


@dataclass(frozen=True)
class FolderWalk:
    """The video files found under a folder (resolved, sorted) and folders not readable."""

    files: list[Path]
    unreadable: list[Path]


def resolve_source(path: Path, *, roots: Sequence[Path] | None = None) -> Path:
    """``path`` with symlinks and ``..`` resolved, checked to exist (and to lie in ``roots``).

    With ``roots`` the answer is the same whether the path is outside every root or does
    not exist, so a caller cannot learn which files exist elsewhere on the server. Raises
    ``NotFoundError``.
    """
    outside = NotFoundError(f"'{path}' is not under an ingest root or does not exist.")
    missing = outside if roots is not None else NotFoundError(f"Path '{path}' does not exist.")
    try:
        real = Path(os.path.realpath(path))
        inside = roots is None or any(
            real.is_relative_to(os.path.realpath(root)) for root in roots)
        if not inside:
            raise outside
        if not (real.is_file() or real.is_dir()):
            raise missing
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a loop
        raise missing from exc
    return real


def walk_folder(folder: Path) -> FolderWalk:
    """The video files under ``folder``, sorted; symlinks leading out of it are left out.

    Folder symlinks are not followed and dot files are skipped (OS litter such as macOS
    "._clip.mp4"). Raises ``FolderTooLargeError`` past ``MAX_WALK_FILES`` video files,
    ``MAX_WALK_ENTRIES`` entries or ``MAX_WALK_DEPTH`` levels of folders, and
    ``NotFoundError`` when ``folder`` is gone.
    """
    top = Path(os.path.realpath(folder))
    if not top.is_dir():
        raise NotFoundError(f"Folder '{folder}' does not exist.")
    advice = "ingest its subfolders one at a time."
    files: list[Path] = []
    unreadable: list[Path] = []
    entries = 0
    pending: list[tuple[Path, int]] = [(top, 0)]
    while pending:
        current, depth = pending.pop()
        try:
            listing = os.scandir(current)
        except OSError:
            unreadable.append(current)
            continue
        with listing:
            for child in listing:
                entries += 1
                if entries > MAX_WALK_ENTRIES:
                    raise FolderTooLargeError(f"'{folder}' holds more than {MAX_WALK_ENTRIES}"
                                              f" files and folders to look through; {advice}")
                _walk_entry(child, depth=depth, top=top, files=files, pending=pending)
                if len(files) > MAX_WALK_FILES:
                    raise FolderTooLargeError(f"'{folder}' holds more than {MAX_WALK_FILES}"
                                              f" video files; {advice}")
    return FolderWalk(files=sorted(dict.fromkeys(files)), unreadable=sorted(unreadable))


def _walk_entry(child: os.DirEntry[str], *, depth: int, top: Path, files: list[Path],
                pending: list[tuple[Path, int]]) -> None:
    """One entry of a walk: queue a folder (depth-checked), keep a video file."""
    if child.name.startswith("."):
        return
    try:
        if child.is_dir(follow_symlinks=False):
            if depth + 1 > MAX_WALK_DEPTH:
                raise FolderTooLargeError(f"'{top}' nests folders more than {MAX_WALK_DEPTH}"
                                          " deep; ingest its subfolders one at a time.")
            pending.append((Path(child.path), depth + 1))
        elif Path(child.name).suffix.lower() in VIDEO_EXTENSIONS:
            real = Path(os.path.realpath(child.path))
            if real.is_relative_to(top) and real.is_file():
                files.append(real)
    except OSError:
        return  # vanished or unreadable while walking: not a file to queue


def recording_start(*, path: Path, info: MediaInfo, camera: Camera,
                    start: datetime | None, given_source: str = "cli") -> tuple[datetime, str]:
    """The recording start in UTC and where it came from: cli, container or filename.

    A ``start`` passed in wins and is recorded as ``given_source`` (``cli``, or
    ``stream_clock`` for a file the recorder wrote).
    """
    zone = ZoneInfo(camera.timezone)
    if start is not None:
        aware = start if start.tzinfo is not None else start.replace(tzinfo=zone)
        return aware.astimezone(UTC), given_source
    if info.creation_time_utc is not None:
        return info.creation_time_utc, "container"
    match = FILENAME_START.search(path.stem)
    if match:
        try:
            local = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=zone)
        except ValueError as exc:  # e.g. month 13: the pattern matched but is no date
            raise MissingStartTimeError(path) from exc
        return local.astimezone(UTC), "filename"
    raise MissingStartTimeError(path)


def _store(store: BlobStore, *, path: Path | None = None, data: bytes | None = None) -> str:
    """Store write-once and return the SHA-256; content already stored is simply reused."""
    try:
        stored = store.put_file(path) if path is not None else store.put_bytes(data or b"")
    except BlobExistsError as exc:
        return exc.sha256
    return stored.sha256


def _register_original(engine: Engine, *, sha256: str, path: Path, size_bytes: int,
                       camera: Camera, info: MediaInfo, start_utc: datetime,
                       start_source: str, sampling: str) -> Original:
    """The Original row for ``sha256``, created as ``processing`` unless it exists."""
    with session_scope(engine) as session:
        existing = session.exec(select(Original).where(Original.sha256 == sha256)).first()
        if existing is not None:
            return existing
        row = Original(
            sha256=sha256, camera_id=camera.id, filename=path.name,
            size_bytes=size_bytes, container=info.container,
            video_codec=info.video_codec, width=info.width, height=info.height, fps=info.fps,
            variable_frame_rate=info.variable_frame_rate, duration_s=info.duration_s,
            creation_time_utc=info.creation_time_utc, recording_start_utc=start_utc,
            timezone=camera.timezone, start_source=start_source, status="processing",
            sampling=sampling,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            # another worker registered the same file a moment ago
            session.rollback()
            return session.exec(select(Original).where(Original.sha256 == sha256)).one()
        return row


def _outcome(original: Original, *, duplicate: bool, segments: int, frames: int,
             message: str) -> IngestOutcome:
    assert original.id is not None
    return IngestOutcome(
        original_id=original.id, sha256=original.sha256, duplicate=duplicate,
        damaged=original.damaged, decodable_duration_s=original.decodable_duration_s,
        damage_reason=original.damage_reason, segment_count=segments, frame_count=frames,
        recording_start_utc=original.recording_start_utc, start_source=original.start_source,
        message=message, sampling=original.sampling,
    )


def _counts(session: Session, original_id: int) -> tuple[int, int]:
    segments = session.exec(select(Segment.id).where(Segment.original_id == original_id)).all()
    frames = session.exec(select(Frame.id).where(Frame.original_id == original_id)).all()
    return len(segments), len(frames)


def _damage(info: MediaInfo, report: DecodeReport) -> tuple[bool, float, str]:
    """Whether the recording is damaged, its decodable duration, and why (one clause each)."""
    decodable = round(min(report.decoded_until_s, info.duration_s or report.decoded_until_s), 3)
    reasons: list[str] = []
    if info.duration_s - report.decoded_until_s > DAMAGE_TOLERANCE_S:
        reasons.append(f"only {decodable:.1f} s of {info.duration_s:.1f} s could be decoded")
    if info.demux_error:
        reasons.append(info.demux_error)
    if report.errors:
        reasons.append(f"{len(report.errors)} corrupt packet(s) skipped ({report.errors[0]})")
    if not reasons:
        return False, round(info.duration_s, 3), ""
    return True, decodable, "; ".join(reasons)


def _work_dir(tmp_dir: Path, sha256: str) -> Path:
    """A scratch dir for this run, after removing those of killed runs on this host.

    Names carry host and pid, so only dirs whose process is gone on this very host are
    removed; a dir of a live ingest, or of another machine sharing the data dir, is left.
    """
    host = socket.gethostname()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    for stale in tmp_dir.glob(f"ingest-{sha256[:12]}-*@{host}-*"):
        pid = stale.name.split("-")[2].split("@")[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"ingest-{sha256[:12]}-{os.getpid()}@{host}-",
                                 dir=tmp_dir))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ingest_file(*, engine: Engine, originals: BlobStore, derived: BlobStore, path: Path,
                camera_id: str, start: datetime | None, options: IngestOptions,
                progress: Progress | None = None, actor: str = "system",
                start_source: str = "cli") -> IngestOutcome:
    """Ingest one recording for ``camera_id``; safe to re-run after any crash.

    A given ``start`` is recorded with ``start_source`` as where it came from. Frames are
    sampled from keyframes alone when every sample interval holds one, else by threaded
    reduced-size decoding (``indexer.sampling``); the path taken is kept on the original.

    Raises ``NotFoundError`` (missing path, unknown camera), ``InvalidInputError``
    (not a video, no decodable video stream, empty file, no recording start) and
    ``StorageError`` (disk full, permissions) before anything is written.
    """
    report_progress = progress or (lambda _stage, _fraction: None)
    if not path.is_file():
        raise NotFoundError(f"Path '{path}' does not exist.")
    with Session(engine, expire_on_commit=False) as session:
        camera = get_camera_or_raise(session, camera_id)
    report_progress("probing", 0.0)
    # refuse bad input before anything is written; the stored copy is probed again below
    recording_start(path=path, info=probe(path, scan=False), camera=camera, start=start,
                    given_source=start_source)

    report_progress("hashing", 0.0)
    sha256 = _store(originals, path=path)
    # from here on, work from the stored copy: exactly the bytes that were hashed
    stored_path = originals.path_for(sha256)
    info = _probe_stored(stored_path, name=path.name)
    start_utc, source = recording_start(path=path, info=info, camera=camera, start=start,
                                        given_source=start_source)
    sampling = choose_sampling(info, interval_s=options.sample_interval_seconds)
    original = _register_original(engine, sha256=sha256, path=path,
                                  size_bytes=stored_path.stat().st_size, camera=camera,
                                  info=info, start_utc=start_utc, start_source=source,
                                  sampling=sampling)
    assert original.id is not None
    if original.status == "ready":
        with Session(engine) as session:
            segment_count, frame_count = _counts(session, original.id)
        return _outcome(original, duplicate=True, segments=segment_count, frames=frame_count,
                        message=f"{path.name} was already ingested (original {original.id}, "
                                f"camera {original.camera_id}); nothing changed.")

    work_dir = _work_dir(originals.tmp_dir, sha256)
    report = DecodeReport()
    try:
        run, segment_blobs, frames = _segment_and_sample(
            stored_path, work_dir=work_dir, info=info, derived=derived, options=options,
            sampling=original.sampling or sampling, report=report, progress=report_progress)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    report_progress("saving", 0.0)
    damaged, decodable, reason = _damage(info, report)
    with session_scope(engine) as session:
        row = session.get(Original, original.id)
        assert row is not None
        _save_rows(session, original=row, run=run, segment_blobs=segment_blobs,
                   frames=frames)
        row.damaged, row.decodable_duration_s, row.damage_reason = damaged, decodable, reason
        row.status = "ready"
        session.add(row)
        if acquisition_entry(session, row.id or 0) is None:
            append_custody_entry(session, action="acquisition", actor=actor,
                                 original_id=row.id, details={
                                     "sha256": sha256, "filename": path.name,
                                     "size_bytes": row.size_bytes, "camera_id": camera.id})
        session.flush()
        original = row
    report_progress("done", 1.0)
    note = (f" Damaged recording: {reason}; ingested the decodable {decodable:.1f} s."
            if damaged else "")
    return _outcome(original, duplicate=False, segments=len(run.files), frames=len(frames),
                    message=f"Ingested {path.name} as original {original.id}: "
                            f"{len(run.files)} segment(s), {len(frames)} frame(s).{note}")


def _segment_and_sample(stored_path: Path, *, work_dir: Path, info: MediaInfo,
                        derived: BlobStore, options: IngestOptions, sampling: str,
                        report: DecodeReport, progress: Progress,
                        ) -> tuple[SegmentRun, list[tuple[str, int]],
                                   list[tuple[float, int, int, str]]]:
    """Cut segments (an ffmpeg process) while frames are sampled, and store both.

    The two overlap: ffmpeg copies the stream in its own process while this one decodes,
    and derived blobs are stored (each one fsynced) from a few threads. Raises what
    ``cut_segments`` or the blob store raise, after every thread has finished.
    """
    def segments() -> tuple[SegmentRun, list[tuple[str, int]]]:
        run = cut_segments(stored_path, work_dir, seconds=options.segment_seconds, info=info)
        return run, [(_store(derived, path=f.path), f.path.stat().st_size) for f in run.files]

    with ThreadPoolExecutor(max_workers=STORE_THREADS + 1,
                            thread_name_prefix="ingest") as pool:
        progress("segmenting", 0.0)
        cutting = pool.submit(segments)
        progress("sampling", 0.0)
        stored: list[tuple[float, int, int, Future[str]]] = []
        for sampled in sample_recording(
                stored_path, sampling=sampling, origin_s=info.start_time_s,
                interval_s=options.sample_interval_seconds, max_side=options.frame_max_side,
                jpeg_quality=options.jpeg_quality, report=report, duration_s=info.duration_s,
                progress=lambda fraction: progress("sampling", fraction)):
            stored.append((sampled.offset_s, sampled.width, sampled.height,
                           pool.submit(_store, derived, data=sampled.jpeg)))
        frames = [(offset, width, height, blob.result())
                  for offset, width, height, blob in stored]
        run, segment_blobs = cutting.result()
    return run, segment_blobs, frames


def _probe_stored(stored_path: Path, *, name: str) -> MediaInfo:
    """Probe the stored blob; a refusal names the file the user gave, not the hash.

    The blob has no extension, so QuickTime's demuxer (MP4 and MOV alike) is told
    apart by the given name, as for the source file.
    """
    try:
        info = probe(stored_path)
    except MediaError as exc:
        raise MediaError(exc.message.replace(f"'{stored_path.name}'", f"'{name}'")) from exc
    if info.container == "mp4" and Path(name).suffix.lower() == ".mov":
        info = replace(info, container="mov")
    return info


def _save_rows(session: Session, *, original: Original, run: SegmentRun,
               segment_blobs: list[tuple[str, int]],
               frames: list[tuple[float, int, int, str]]) -> None:
    """Replace any leftovers of an interrupted run with the complete set of rows."""
    assert original.id is not None
    session.execute(delete(Frame).where(col(Frame.original_id) == original.id))
    session.execute(delete(Segment).where(col(Segment.original_id) == original.id))
    version = tool_version()
    start = original.recording_start_utc
    segments: list[Segment] = []
    for piece, (sha, size) in zip(run.files, segment_blobs, strict=True):
        segment = Segment(
            original_id=original.id, index=piece.index, start_offset_s=piece.start_offset_s,
            duration_s=piece.duration_s,
            start_utc=start + timedelta(seconds=piece.start_offset_s),
            sha256=sha, size_bytes=size,
            method=run.method, tool="ffmpeg", tool_version=version,
            parameters={**run.parameters, "source_sha256": original.sha256,
                        "frame_count": piece.frame_count},
        )
        session.add(segment)
        segments.append(segment)
    session.flush()
    stored: list[Frame] = []
    for offset, width, height, thumb in frames:
        owner = _segment_for(segments, offset)
        assert owner.id is not None
        stored.append(Frame(
            original_id=original.id, segment_id=owner.id, camera_id=original.camera_id,
            offset_s=offset, captured_at_utc=start + timedelta(seconds=offset),
            width=width, height=height, thumbnail_sha256=thumb))
        session.add(stored[-1])
    session.flush()
    # new frames wait in the search backlog until they are embedded and sharded
    add_to_backlog(session, [BacklogFrame(f.id, f.camera_id, f.captured_at_utc)
                             for f in stored if f.id is not None], embedded=False)
    session.flush()


def _segment_for(segments: list[Segment], offset: float) -> Segment:
    """The segment whose span holds ``offset`` (the last one starting before it)."""
    owner = segments[0]
    for segment in segments:
        if segment.start_offset_s <= offset + 1e-6:
            owner = segment
    return owner


__all__ = [
    "MAX_WALK_DEPTH",
    "MAX_WALK_ENTRIES",
    "MAX_WALK_FILES",
    "VIDEO_EXTENSIONS",
    "FolderTooLargeError",
    "FolderWalk",
    "IngestOptions",
    "IngestOutcome",
    "MissingStartTimeError",
    "ingest_file",
    "parse_start",
    "recording_start",
    "resolve_source",
    "walk_folder",
]
