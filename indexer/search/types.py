"""What a search takes and gives: request, filters, moments, provenance, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import numpy as np
from PIL import Image

from indexer.daynight import DayPhase
from storage.errors import InvalidInputError, OkoError

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


@dataclass(frozen=True)
class TextEncoderInfo:
    """The text tower that encoded the query: ``backend`` "torch" or "onnx", ``precision``
    "fp32" or "int8", the weights' SHA-256, for ONNX the graph file and its SHA-256, and
    ``text_sequence``: "eot" (the tower ran on the tokens up to the end-of-text token) or
    "full" (on all 77), ``None`` when the embedder does not say."""

    backend: str
    precision: str
    weights_sha256: str
    onnx_path: str | None = None
    onnx_sha256: str | None = None
    text_sequence: str | None = None


@dataclass(frozen=True)
class ImageTowerInfo:
    """The image tower that embedded the searched frames, as far as Oko records it.

    Shard sidecars and embedding rows record the preset and weights' SHA-256 (a shard of
    other weights is left out), not which backend (torch or ONNX, fp32 or int8) ran, so
    ``backend`` is None: not recorded."""

    preset: str
    weights_sha256: str
    backend: str | None = None


@dataclass
class Provenance:
    """How the answer was produced. ``partial`` is true whenever anything in scope was
    left out (``shards_left_out``: shard name -> reason, or frames of another model)."""

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
    shard_index_types: dict[str, str] = field(default_factory=dict)
    shards_left_out: dict[str, str] = field(default_factory=dict)
    frames_of_another_model: int = 0
    shards_scored_from_database: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    text_encoder: TextEncoderInfo | None = None  # None: no text was encoded
    query_vector_cached: bool | None = None  # the text's vector came from the query cache
    image_tower: ImageTowerInfo | None = None  # None: no frame was searched

    @property
    def partial(self) -> bool:
        return bool(self.shards_left_out) or self.frames_of_another_model > 0


@dataclass
class SearchResult:
    moments: list[Moment]
    provenance: Provenance


__all__ = [
    "DEFAULT_K",
    "DEFAULT_MOMENT_GAP_S",
    "MAX_K",
    "MAX_QUERY_IMAGE_PIXELS",
    "QUERY_IMAGE_FORMATS",
    "QUERY_IMAGE_SIDE",
    "AppliedFilter",
    "EmbedderFailedError",
    "ImageTowerInfo",
    "InvalidImageError",
    "Moment",
    "Provenance",
    "QueryEmbedder",
    "QueryImageTooLargeError",
    "SearchFilters",
    "SearchRequest",
    "SearchResult",
    "TextEncoderInfo",
]
