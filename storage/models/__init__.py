"""All database tables. Importing this package registers every table on SQLModel.metadata."""

from storage.models import (
    access,
    evidence,
    plates,
    recording,
    redaction,
    retention,
    search,
    search_index,
)
from storage.models.media import Camera, CameraBase, Frame, IngestJob, Original, Segment

__all__ = [
    "Camera",
    "CameraBase",
    "Frame",
    "IngestJob",
    "Original",
    "Segment",
    "access",
    "evidence",
    "plates",
    "recording",
    "redaction",
    "retention",
    "search",
    "search_index",
]
