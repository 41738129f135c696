"""The public shape of a search answer, shared by the search route and ``oko search``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, Field

from indexer.search.engine import Moment, SearchResult


def thumbnail_url(frame_id: int) -> str:
    return f"/api/frames/{frame_id}/thumbnail"


def video_url(segment_id: int) -> str:
    return f"/api/segments/{segment_id}/video"


class AppliedFilterPublic(BaseModel):
    """A filter that restricted the search before ranking, and where it came from."""

    name: str
    value: str | list[str]
    source: str = Field(description="request, access policy, or the query phrase it came from")


class MomentPublic(BaseModel):
    """Consecutive hits of one camera; play ``video_url`` from ``offset_in_segment_s``."""

    camera_id: str
    camera_name: str
    district: str
    start_utc: datetime
    end_utc: datetime
    start_local: datetime
    end_local: datetime
    score: float = Field(description="Best cosine similarity in the moment")
    best_frame_id: int
    best_frame_utc: datetime
    thumbnail_url: str
    segment_id: int
    offset_in_segment_s: float
    video_url: str
    frame_ids: list[int]
    # set by plate searches (search_api.usecases.plates), absent from CLIP ones
    plate: str | None = Field(default=None, description="Plate search: the normalised read")
    plate_confidence: float | None = None
    plate_match: str | None = Field(default=None, description="exact, wildcard or fuzzy")
    crop_url: str | None = Field(default=None, description="Plate search: the plate's crop")
    sighting_id: int | None = None
    clip_score: float | None = Field(default=None, description=(
        "Plate search with text: the best CLIP similarity over the sighting's frames"))

    @classmethod
    def from_moment(cls, moment: Moment) -> MomentPublic:
        return cls(
            camera_id=moment.camera_id, camera_name=moment.camera_name,
            district=moment.district, start_utc=moment.start_utc, end_utc=moment.end_utc,
            start_local=moment.start_local, end_local=moment.end_local, score=moment.score,
            best_frame_id=moment.best_frame_id, best_frame_utc=moment.best_frame_utc,
            thumbnail_url=thumbnail_url(moment.best_frame_id), segment_id=moment.segment_id,
            offset_in_segment_s=moment.offset_in_segment_s,
            video_url=video_url(moment.segment_id), frame_ids=moment.frame_ids,
        )


class ShardLeftOutPublic(BaseModel):
    """A shard in scope that did not answer: corrupt, of another model, or a worker that
    did not answer in time."""

    shard: str
    reason: str


class TextEncoderPublic(BaseModel):
    """The text tower that encoded the query."""

    backend: str = Field(description="torch or onnx")
    precision: str = Field(description="fp32 or int8")
    weights_sha256: str
    onnx_path: str | None = Field(default=None, description="The ONNX graph (onnx only)")
    onnx_sha256: str | None = Field(default=None, description="The graph's SHA-256 (onnx only)")
    text_sequence: str | None = Field(default=None, description=(
        "eot: the tower ran on the tokens up to the end-of-text token; full: on all 77"))


class ImageTowerPublic(BaseModel):
    """The image tower that embedded the searched frames, as far as it is recorded."""

    preset: str
    weights_sha256: str
    backend: str | None = Field(default=None, description=(
        "torch or onnx; null: not recorded with the embeddings"))


class ProvenancePublic(BaseModel):
    """How the answer was produced, precisely enough to reproduce it in court."""

    preset: str
    weights_sha256: str
    dim: int
    clip_text: str | None = Field(description="The words sent to CLIP after phrases were cut")
    image_supplied: bool
    similar_to_frame_id: int | None
    filters: list[AppliedFilterPublic]
    shards_searched: list[str]
    frames_scored_from_database: int = Field(
        description="Embedded frames not yet in a shard, scored exactly from the database")
    frames_waiting_for_embedding: int
    k: int
    candidates: int = Field(description="Vectors that passed the filters")
    truncated: bool = Field(description="More matching frames exist than k")
    elapsed_ms: float
    searched_at: datetime
    shard_index_types: dict[str, str] = Field(
        default_factory=dict, description="Each searched shard's index: flat, ivf_sq8, ivf_pq")
    shards_left_out: list[ShardLeftOutPublic] = Field(
        default_factory=list, description="Shards in scope that did not answer, and why")
    shards_scored_from_database: list[str] = Field(
        default_factory=list, description="Shards whose files are gone: their frames were "
        "scored exactly from the database")
    frames_of_another_model: int = Field(
        default=0, description="Frames in scope embedded by another model, not ranked")
    partial: bool = Field(default=False, description=(
        "True when anything in scope was left out (shards_left_out or "
        "frames_of_another_model): the answer may miss frames"))
    timings_ms: dict[str, float] = Field(
        default_factory=dict, description="encode, shards and database, in milliseconds")
    text_encoder: TextEncoderPublic | None = Field(default=None, description=(
        "The text tower that encoded the query; null when no text was encoded"))
    query_vector_cached: bool | None = Field(default=None, description=(
        "The text's vector came from the query cache; null when no text was encoded"))
    image_tower: ImageTowerPublic | None = Field(default=None, description=(
        "The image tower that embedded the frames searched; null when none was searched"))
    text_not_applied: str | None = Field(default=None, description=(
        "Plate search with text: why the text did not rank the sightings (no CLIP model)"))


class SearchResultPublic(BaseModel):
    moments: list[MomentPublic]
    provenance: ProvenancePublic
    search_id: int | None = Field(default=None, description=(
        "This search's audit entry: a clip taken from a moment names it (search_id) with "
        "the moment's best_frame_id (frame_id)"))

    @classmethod
    def from_result(cls, result: SearchResult, *,
                    search_id: int | None = None) -> SearchResultPublic:
        prov = result.provenance
        return cls(
            search_id=search_id,
            moments=[MomentPublic.from_moment(m) for m in result.moments],
            provenance=ProvenancePublic(
                preset=prov.preset, weights_sha256=prov.weights_sha256, dim=prov.dim,
                clip_text=prov.clip_text, image_supplied=prov.image_supplied,
                similar_to_frame_id=prov.similar_to_frame_id,
                filters=[AppliedFilterPublic(name=f.name, value=f.value, source=f.source)
                         for f in prov.filters],
                shards_searched=prov.shards_searched,
                frames_scored_from_database=prov.frames_scored_from_database,
                frames_waiting_for_embedding=prov.frames_waiting_for_embedding,
                k=prov.k, candidates=prov.candidates, truncated=prov.truncated,
                elapsed_ms=prov.elapsed_ms, searched_at=prov.searched_at,
                shard_index_types=prov.shard_index_types,
                shards_left_out=[ShardLeftOutPublic(shard=name, reason=reason)
                                 for name, reason in prov.shards_left_out.items()],
                shards_scored_from_database=prov.shards_scored_from_database,
                frames_of_another_model=prov.frames_of_another_model,
                partial=prov.partial, timings_ms=prov.timings_ms,
                text_encoder=(TextEncoderPublic(**asdict(prov.text_encoder))
                              if prov.text_encoder else None),
                query_vector_cached=prov.query_vector_cached,
                image_tower=(ImageTowerPublic(**asdict(prov.image_tower))
                             if prov.image_tower else None),
            ),
        )


__all__ = [
    "AppliedFilterPublic",
    "ImageTowerPublic",
    "MomentPublic",
    "ProvenancePublic",
    "SearchResultPublic",
    "ShardLeftOutPublic",
    "TextEncoderPublic",
    "thumbnail_url",
    "video_url",
]
