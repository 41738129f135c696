"""Use cases: plate search, a plate's journey, the watch list and its events, plate reading.

Plate search needs no CLIP model. Filters (the actor's visible cameras, cameras,
districts, time range, day phase) select sightings in SQL first; the plate query is
matched among them: exact (after grammar fixes), wildcards (``*`` and ``?``), and for a
query without wildcards the nearest sightings by confusion-aware edit distance, ranked
below the exact ones. With text ("red car") and a CLIP model, the hits of each match kind
are ranked by the text's best CLIP similarity over each sighting's stored frame
embeddings; without a model the plate order stays and the answer says the text was not
applied. Time-of-day phrases in the text ("вночі", "at night", "in the morning",
"21:00–23:00") become filters first, as in a text search (``indexer.search.query``): a
day phase on the sightings, local hours on their first read; only the rest of the words
go to CLIP. Every search and journey states a purpose and is audited like a
text search (``AuditAction.SEARCH``, with ``plate`` in the entry). Reading is queued
beside embedding: ``read_waiting_plates`` reads every frame not yet read with the
current models, then raises an event (audited) for each new sighting of a listed plate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement
from sqlmodel import Session, col, select

from indexer.daynight import DayPhase
from indexer.plates.grammar import (
    PlateQuery,
    PlateQueryError,
    confusion_distance,
    fit,
    format_plate,
    fuzzy_limit,
    parse_query,
)
from indexer.plates.sightings import pending_plate_frames
from indexer.search.query import HourWindow
from indexer.search.query import parse_query as parse_time_phrases
from search_api.audit import AuditAction
from search_api.policy import require_search_purpose
from search_api.search_support import (
    AppliedFilterPublic,
    MomentPublic,
    ProvenancePublic,
    SearchResultPublic,
    thumbnail_url,
    video_url,
)
from search_api.usecases.context import UseCaseContext
from storage.errors import InvalidInputError, NotFoundError
from storage.models.media import Camera
from storage.models.plates import PlateSighting
from storage.permissions import Permission
from storage.types import supported_utc, utcnow

if TYPE_CHECKING:
    from indexer.search.types import QueryEmbedder

MAX_PLATE_RESULTS = 500
DEFAULT_PLATE_RESULTS = 100
FUZZY_SCAN_LIMIT = 50_000  # sightings a fuzzy query compares, after the filters
READER_NAME = "rapidocr PP-OCRv4"
MatchKind = Literal["exact", "wildcard", "fuzzy"]
MATCH_RANK = {"exact": 0, "wildcard": 1, "fuzzy": 2}
MAX_TEXT_CHARS = 500
NO_MODEL_NOTE = ("No CLIP model is installed, so the text '{text}' was not applied: the "
                 "sightings are in plate order.")


class PlateSearchQuery(BaseModel):
    """A plate search: the plate (full, with ``*``/``?``, or close), plus filters."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    plate: str = Field(description="e.g. 'AE 1234 KX', 'AE12??KX', '*34KX'; Cyrillic or "
                                   "Latin look-alike letters")
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description=(
        "Words ('red car'): rank the plate hits by CLIP similarity where a model exists"))
    cameras: list[str] = Field(default_factory=list)
    districts: list[str] = Field(default_factory=list)
    from_: datetime | None = Field(default=None, alias="from",
                                   description="Without an offset: the cameras' local time")
    to: datetime | None = None
    day_phase: DayPhase | None = None
    fuzzy: bool = Field(default=True, description="Also return near matches (below exact)")
    limit: int = Field(default=DEFAULT_PLATE_RESULTS, ge=1, le=MAX_PLATE_RESULTS)
    purpose: str | None = Field(default=None, description=(
        "Required: the case number or the reason for this search; recorded in the audit log"))


class PlateMomentPublic(MomentPublic):
    """A sighting as a search moment, with its plate, how it matched and its crop."""

    sighting_id: int
    plate: str = Field(description="The normalised read, e.g. AE1234KX")
    plate_display: str = Field(description="As printed, e.g. AE 1234 KX")
    plate_confidence: float
    plate_match: MatchKind
    plate_distance: float = Field(description="Confusion-aware edit distance to the query")
    crop_url: str
    alternatives: list[dict[str, int]] = Field(
        description="Per position, how often each character was read")
    clip_score: float | None = Field(default=None, description=(
        "With text: the best CLIP similarity over the sighting's frames (None: no vector "
        "of the model yet, ranked last in its match kind)"))


class PlateProvenancePublic(BaseModel):
    """How a plate answer was produced."""

    query: str
    pattern: str
    reader: str
    models: dict[str, dict[str, str]]
    filters: dict[str, object]
    candidates: int = Field(description="Sightings that passed the filters and were compared")
    truncated: bool
    frames_waiting_for_plates: int
    text: str | None = Field(default=None, description="The words given with the plate")
    text_filters: dict[str, str] = Field(default_factory=dict, description=(
        "Filters the text's time-of-day phrases set (day_phase, hours)"))
    text_phrases: list[str] = Field(default_factory=list, description=(
        "The phrases cut from the text for them ('вночі')"))
    text_applied: bool = Field(default=False, description="The text ranked the sightings")
    text_not_applied: str | None = Field(default=None, description="Why it did not")
    clip_preset: str | None = None
    clip_weights_sha256: str | None = None
    clip_dim: int = 0
    sightings_without_embedding: int = Field(default=0, description=(
        "With text: hits none of whose frames has a vector of the model (ranked last)"))
    elapsed_ms: float
    searched_at: datetime


class PlateSearchResultPublic(BaseModel):
    moments: list[PlateMomentPublic]
    provenance: PlateProvenancePublic
    search_id: int | None = Field(default=None, description="This search's audit entry")


def crop_url(sighting_id: int) -> str:
    return f"/api/plates/sightings/{sighting_id}/crop"


def _aware(value: datetime | None, zone: str, name: str) -> datetime | None:
    if value is None:
        return None
    zoned = value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(zone))
    return supported_utc(zoned, name=name, given=value)


def _filtered(ctx: UseCaseContext,
              query: PlateSearchQuery) -> tuple[list[ColumnElement[bool]], dict[str, Camera]]:
    """The filters as a ``where`` clause over ``PlateSighting`` and the cameras involved."""
    cams = select(Camera)
    visible = None if ctx.user is None else ctx.visible_camera_ids()
    if visible is not None:
        cams = cams.where(col(Camera.id).in_(visible))
    if query.cameras:
        cams = cams.where(col(Camera.id).in_(query.cameras))
    if query.districts:
        cams = cams.where(col(Camera.district).in_(query.districts))
    cameras = {c.id: c for c in ctx.session.exec(cams).all()}
    zones = {c.timezone for c in cameras.values()} or {"Europe/Kyiv"}
    naive = any(t is not None and t.tzinfo is None for t in (query.from_, query.to))
    if naive and len(zones) != 1:
        raise InvalidInputError("'from'/'to' have no UTC offset and the cameras searched are "
                                "in different time zones; add an offset such as +02:00.")
    zone = next(iter(zones))
    start, end = _aware(query.from_, zone, "from"), _aware(query.to, zone, "to")
    clauses: list[ColumnElement[bool]] = [col(PlateSighting.camera_id).in_(list(cameras))]
    if start is not None:
        clauses.append(col(PlateSighting.last_seen_utc) >= start)
    if end is not None:
        clauses.append(col(PlateSighting.first_seen_utc) <= end)
    if query.day_phase is not None:
        clauses.append(col(PlateSighting.day_phase) == query.day_phase.value)
    return clauses, cameras


@dataclass(frozen=True)
class _Hit:
    sighting: PlateSighting
    match: MatchKind
    distance: float
    clip_score: float | None = None

    @property
    def score(self) -> float:
        if self.clip_score is not None:
            return round(self.clip_score, 4)
        penalty = self.distance / (fuzzy_limit(self.sighting.plate) + 1.0)
        return round(self.sighting.confidence * (1.0 - penalty), 4)


@dataclass
class _TextRank:
    """What the text did to the ranking, for the provenance."""

    text: str | None = None
    applied: bool = False
    note: str | None = None
    preset: str | None = None
    weights_sha256: str | None = None
    dim: int = 0
    unscored: int = 0


@dataclass(frozen=True)
class _TextFilters:
    """What the text's time-of-day phrases set, and the words left for CLIP."""

    words: str | None
    day_phase: DayPhase | None = None
    hours: HourWindow | None = None
    phrases: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, str]:
        found = {"day_phase": self.day_phase.value} if self.day_phase else {}
        if self.hours is not None:
            found["hours"] = (f"{self.hours.name} ({self.hours.start_hour:02d}:00-"
                              f"{self.hours.end_hour:02d}:00 local)")
        return found


def _text_filters(text: str | None, day_phase: DayPhase | None) -> _TextFilters:
    """Time-of-day phrases of ``text`` as filters, as ``oko search`` reads them.

    Raises ``InvalidInputError`` for two day phases or parts of the day in the text, or a
    phrase's day phase other than the ``day_phase`` filter.
    """
    if text is None or not text.strip():
        return _TextFilters(words=text)
    parsed = parse_time_phrases(text.strip())
    if parsed.day_phase is not None and day_phase not in (None, parsed.day_phase):
        assert day_phase is not None
        raise InvalidInputError(f"The text says {parsed.day_phase.value} but the "
                                f"{day_phase.value} filter is set; choose one.")
    return _TextFilters(words=parsed.clip_text, day_phase=parsed.day_phase,
                        hours=parsed.hours, phrases=tuple(parsed.phrases))


def _in_hours(hits: list[_Hit], hours: HourWindow | None,
              cameras: dict[str, Camera]) -> list[_Hit]:
    if hours is None:
        return hits
    return [h for h in hits if hours.contains(h.sighting.first_seen_utc.astimezone(
        ZoneInfo(cameras[h.sighting.camera_id].timezone)).hour)]


def _rank_by_text(ctx: UseCaseContext, hits: list[_Hit],
                  text: str | None) -> tuple[list[_Hit], _TextRank]:
    """``hits`` re-ranked within each match kind by the text's CLIP score, when a model is
    installed; unchanged (with a note saying so) when none is.

    Raises ``EmbedderFailedError`` when the model fails on the text (no search is run).
    """
    words = (text or "").strip()
    if not words:
        return hits, _TextRank()
    from indexer.model_store import NoModelError
    from indexer.plates.text_rank import sighting_clip_scores

    try:
        embedder = ctx.state.query_embedder()
    except NoModelError:
        return hits, _TextRank(text=words, note=NO_MODEL_NOTE.format(text=words))
    query = _text_vector(embedder, words)
    scored = sighting_clip_scores(
        ctx.session, sighting_ids=[h.sighting.id for h in hits if h.sighting.id is not None],
        query=query, weights_sha256=embedder.weights_sha256)
    ranked = [replace(h, clip_score=scored.scores.get(h.sighting.id or 0)) for h in hits]
    ranked.sort(key=lambda h: (MATCH_RANK[h.match], h.clip_score is None,
                               -(h.clip_score or 0.0), h.distance, h.sighting.first_seen_utc))
    return ranked, _TextRank(text=words, applied=True, preset=embedder.preset,
                             weights_sha256=embedder.weights_sha256, dim=embedder.dim,
                             unscored=len(scored.unscored))


def _text_vector(embedder: QueryEmbedder, words: str) -> npt.NDArray[np.float32]:
    from indexer.search.types import EmbedderFailedError

    try:
        row = np.asarray(embedder.encode_text([words])[0], dtype=np.float32)
    except Exception as exc:  # any model failure must surface, never look like no ranking
        raise EmbedderFailedError(f"The {embedder.preset} model failed to encode the text "
                                  f"({type(exc).__name__}: {exc}); no search was run.") from exc
    norm = float(np.linalg.norm(row))
    if not np.isfinite(norm) or norm == 0.0:
        raise EmbedderFailedError("The text's vector is zero or not finite; no search was run.")
    return (row / norm).astype(np.float32)


def _match(session: Session, where: list[ColumnElement[bool]], parsed: PlateQuery, *, fuzzy: bool,
           limit: int) -> tuple[list[_Hit], int]:
    """Sightings matching ``parsed`` among those the filters let through, best first."""
    hits: list[_Hit] = []
    candidates = 0
    if parsed.has_wildcards:
        regex = parsed.regex()
        rows = session.exec(select(PlateSighting).where(
            *where, col(PlateSighting.plate).like(parsed.sql_like()))).all()
        candidates = len(rows)
        hits = [_Hit(r, "wildcard", 0.0) for r in rows if regex.fullmatch(r.plate)]
    else:
        literal = parsed.literal
        exact = session.exec(select(PlateSighting).where(
            *where, col(PlateSighting.plate) == literal)).all()
        hits = [_Hit(r, "exact", 0.0) for r in exact]
        candidates = len(exact)
        if fuzzy:
            ceiling = fuzzy_limit(literal)
            near: list[tuple[int, float]] = []
            pairs = session.exec(select(PlateSighting.id, PlateSighting.plate).where(
                *where, col(PlateSighting.plate) != literal).limit(FUZZY_SCAN_LIMIT)).all()
            candidates += len(pairs)
            for sighting_id, plate in pairs:
                distance = confusion_distance(literal, plate)
                if distance <= ceiling and sighting_id is not None:
                    near.append((sighting_id, distance))
            if near:
                by_id = {r.id: r for r in session.exec(select(PlateSighting).where(
                    col(PlateSighting.id).in_([i for i, _ in near]))).all()}
                hits += [_Hit(by_id[i], "fuzzy", round(d, 3)) for i, d in near]
    hits.sort(key=lambda h: (MATCH_RANK[h.match], h.distance, -h.sighting.confidence,
                             h.sighting.first_seen_utc))
    return hits, candidates


def _moment(hit: _Hit, camera: Camera) -> PlateMomentPublic:
    s = hit.sighting
    assert s.id is not None
    zone = ZoneInfo(camera.timezone)
    best_utc = s.first_seen_utc if s.best_frame_id == s.first_frame_id else s.last_seen_utc
    return PlateMomentPublic(
        camera_id=camera.id, camera_name=camera.name, district=camera.district,
        start_utc=s.first_seen_utc, end_utc=s.last_seen_utc,
        start_local=s.first_seen_utc.astimezone(zone), end_local=s.last_seen_utc.astimezone(zone),
        score=hit.score, best_frame_id=s.best_frame_id, best_frame_utc=best_utc,
        thumbnail_url=thumbnail_url(s.best_frame_id), segment_id=s.segment_id,
        offset_in_segment_s=s.offset_in_segment_s, video_url=video_url(s.segment_id),
        frame_ids=sorted({s.first_frame_id, s.best_frame_id, s.last_frame_id}),
        sighting_id=s.id, plate=s.plate, plate_display=format_plate(s.plate),
        plate_confidence=s.confidence, plate_match=hit.match, plate_distance=hit.distance,
        crop_url=crop_url(s.id), alternatives=s.alternatives, clip_score=hit.clip_score)


def _models() -> dict[str, dict[str, str]]:
    from indexer.plates.reader import model_identity  # hashes files; imports no rapidocr

    return model_identity()


def search_plates(ctx: UseCaseContext, *, query: PlateSearchQuery,
                  text: str | None = None) -> PlateSearchResultPublic:
    """Sightings matching the plate query on the cameras the actor may see, best first.

    Raises ``PurposeRequiredError`` without a purpose and ``PlateQueryError`` for an
    empty, all-wildcard, over-long query or one with a character no plate has; nothing
    is written then.
    """
    ctx.require(Permission.SEARCH)
    purpose = require_search_purpose(query.purpose)
    parsed = parse_query(query.plate)
    words = text if text is not None else query.text
    if words is not None and len(words) > MAX_TEXT_CHARS:
        raise InvalidInputError(f"The text is longer than {MAX_TEXT_CHARS} characters.")
    timed = _text_filters(words, query.day_phase)
    if timed.day_phase is not None:
        query = query.model_copy(update={"day_phase": timed.day_phase})
    started = time.perf_counter()
    clauses, cameras = _filtered(ctx, query)
    hits, candidates = _match(ctx.session, clauses, parsed, fuzzy=query.fuzzy,
                              limit=query.limit)
    hits = _in_hours(hits, timed.hours, cameras)
    hits, ranked = _rank_by_text(ctx, hits, timed.words)
    kept = hits[: query.limit]
    moments = [_moment(hit, cameras[hit.sighting.camera_id]) for hit in kept]
    models = _models()
    filters = query.model_dump(mode="json", by_alias=True,
                               exclude={"plate", "purpose", "text"})
    if timed.hours is not None:
        filters["hours"] = timed.as_dict()["hours"]
    waiting = _waiting(ctx)
    clip = {"clip_model": ranked.preset, "clip_weights_sha256": ranked.weights_sha256} \
        if ranked.applied else {}
    entry = ctx.audit(
        AuditAction.SEARCH, text=words, text_applied=ranked.applied, **clip,
        text_filters=timed.as_dict(),
        plate=query.plate, plate_pattern=parsed.pattern,
        purpose=purpose, filters=filters, results=len(moments), model=READER_NAME,
        weights_sha256=models["recogniser"]["sha256"], k=query.limit,
        moments=[{"frame_id": m.best_frame_id, "camera_id": m.camera_id, "score": m.score,
                  "sighting_id": m.sighting_id, "plate": m.plate, "match": m.plate_match}
                 for m in moments])
    ctx.commit()
    return PlateSearchResultPublic(
        moments=moments, search_id=entry.seq,
        provenance=PlateProvenancePublic(
            query=query.plate, pattern=parsed.pattern, reader=READER_NAME, models=models,
            filters=filters, candidates=candidates, truncated=len(hits) > len(kept),
            frames_waiting_for_plates=waiting, text=ranked.text,
            text_filters=timed.as_dict(), text_phrases=list(timed.phrases),
            text_applied=ranked.applied, text_not_applied=ranked.note,
            clip_preset=ranked.preset, clip_weights_sha256=ranked.weights_sha256,
            clip_dim=ranked.dim, sightings_without_embedding=ranked.unscored,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
            searched_at=utcnow()))


def plate_search_result(ctx: UseCaseContext, *, query: PlateSearchQuery,
                        text: str | None) -> SearchResultPublic:
    """``search_plates`` in the shape of ``POST /api/search`` (its ``plate`` field)."""
    result = search_plates(ctx, query=query, text=text)
    prov = result.provenance
    phrases = f"query phrase '{', '.join(prov.text_phrases)}'"
    applied = [AppliedFilterPublic(name=name, value=value if isinstance(value, list)
                                   else str(value),
                                   source=phrases if name in prov.text_filters else "request")
               for name, value in prov.filters.items()
               if value not in (None, [], True) and name not in ("limit", "fuzzy")]
    return SearchResultPublic(
        moments=list(result.moments), search_id=result.search_id,
        provenance=ProvenancePublic(
            preset=prov.reader, weights_sha256=prov.models["recogniser"]["sha256"],
            dim=prov.clip_dim, clip_text=prov.text if prov.text_applied else None,
            image_supplied=False, similar_to_frame_id=None,
            filters=applied, shards_searched=[], frames_scored_from_database=0,
            frames_waiting_for_embedding=0, k=query.limit, candidates=prov.candidates,
            truncated=prov.truncated, elapsed_ms=prov.elapsed_ms,
            searched_at=prov.searched_at, text_not_applied=prov.text_not_applied))


def _waiting(ctx: UseCaseContext) -> int:
    from indexer.plates.reader import ReaderConfig, reader_key

    return pending_plate_frames(session=ctx.session, reader_key=reader_key(ReaderConfig()))


class JourneyPublic(BaseModel):
    """Every sighting of one plate on the cameras the actor may see, in time order."""

    plate: str
    plate_display: str
    sightings: list[PlateMomentPublic]
    cameras: list[str] = Field(description="Cameras in the order the plate passed them")
    search_id: int | None = None


def plate_journey(ctx: UseCaseContext, *, plate: str, purpose: str | None,
                  start: datetime | None = None, end: datetime | None = None) -> JourneyPublic:
    """All sightings of ``plate`` (a full plate, fixed by the grammar) in time order.

    Raises ``PurposeRequiredError`` and ``PlateQueryError`` (wildcards or no plate).
    """
    ctx.require(Permission.SEARCH)
    stated = require_search_purpose(purpose)
    literal = full_plate(plate)
    query = PlateSearchQuery(plate=literal, from_=start, to=end, purpose=stated)
    clauses, cameras = _filtered(ctx, query)
    rows = ctx.session.exec(select(PlateSighting).where(
        *clauses, col(PlateSighting.plate) == literal)
        .order_by(col(PlateSighting.first_seen_utc), col(PlateSighting.id))).all()
    moments = [_moment(_Hit(r, "exact", 0.0), cameras[r.camera_id]) for r in rows]
    passed: list[str] = []
    for moment in moments:
        if not passed or passed[-1] != moment.camera_id:
            passed.append(moment.camera_id)
    entry = ctx.audit(AuditAction.SEARCH, text=None, plate=plate, plate_pattern=literal,
                      purpose=stated, journey=True, results=len(moments),
                      filters=query.model_dump(mode="json", by_alias=True,
                                               include={"from_", "to"}),
                      moments=[{"frame_id": m.best_frame_id, "camera_id": m.camera_id,
                                "score": m.score, "sighting_id": m.sighting_id}
                               for m in moments])
    ctx.commit()
    return JourneyPublic(plate=literal, plate_display=format_plate(literal),
                         sightings=moments, cameras=passed, search_id=entry.seq)


def full_plate(text: str) -> str:
    """``text`` as one whole plate fitted to the grammar (for journeys and the watch list).

    Raises ``PlateQueryError`` for wildcards or text that fits no plate format.
    """
    parsed = parse_query(text)
    if parsed.has_wildcards:
        raise PlateQueryError("Give one whole plate here, without * or ?.")
    fitted = fit(parsed.pattern, max_fixes=len(parsed.pattern))
    if fitted is None or len(fitted.text) != len(parsed.pattern):
        raise PlateQueryError(f"'{text.strip()}' is not a whole Ukrainian plate "
                              "(AA 1234 BB or 12345 AB).")
    return fitted.text


def sighting_crop(ctx: UseCaseContext, *, sighting_id: int) -> bytes:
    """The JPEG crop of a sighting's best read; audited as a view of its frame.

    Raises ``NotFoundError`` for a missing sighting or one of an invisible camera.
    """
    ctx.require(Permission.VIEW_FOOTAGE)
    row = ctx.session.get(PlateSighting, sighting_id)
    if row is None or row.camera_id not in ctx.visible_camera_ids():
        raise NotFoundError(f"Plate sighting {sighting_id} does not exist.")
    with ctx.state.derived.open(row.crop_sha256) as handle:
        data = handle.read()
    ctx.audit(AuditAction.VIEW_FRAME, frame_id=row.best_frame_id, camera_id=row.camera_id,
              what="plate_crop", sighting_id=sighting_id)
    ctx.commit()
    return data


__all__ = [
    "JourneyPublic",
    "PlateMomentPublic",
    "PlateProvenancePublic",
    "PlateSearchQuery",
    "PlateSearchResultPublic",
    "full_plate",
    "plate_journey",
    "plate_search_result",
    "search_plates",
    "sighting_crop",
]
