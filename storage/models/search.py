"""Tables for the search domain: installed CLIP models and per-frame embeddings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, utcnow


class EmbeddingModel(SQLModel, table=True):
    """A set of CLIP weights Oko may use, identified by the SHA-256 of its checkpoint file."""

    id: int | None = Field(default=None, primary_key=True)
    preset: str = Field(index=True, description="Oko preset name, e.g. ViT-B-32")
    architecture: str = Field(description="open_clip model name")
    pretrained_tag: str = Field(default="", description="open_clip pretrained tag, if known")
    weights_sha256: str = Field(unique=True, max_length=64)
    source: str = Field(description="env, imported or downloaded")
    path: str = Field(description="Checkpoint file the weights are loaded from")
    dim: int = Field(description="Embedding dimension")
    installed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FrameEmbedding(SQLModel, table=True):
    """The CLIP embedding of one frame, or a link to the embedding a static frame reuses.

    ``vector`` is float32 little-endian and L2-normalised; it is NULL when ``status`` is
    ``linked``, and ``linked_frame_id`` names the embedded frame whose vector stands in.
    Frames without a row for the current weights are the embedding queue.
    """

    frame_id: int = Field(primary_key=True, foreign_key="frame.id")
    weights_sha256: str = Field(index=True, max_length=64)
    preset: str
    status: str = Field(description="embedded or linked")
    vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    linked_frame_id: int | None = Field(default=None, foreign_key="frame.id")
    motion_score: float = Field(description="Change against the last embedded frame, 0..1")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
