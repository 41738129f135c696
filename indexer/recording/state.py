"""The ``RecorderState`` row of a camera: read it, and change some of its fields."""

from __future__ import annotations

from sqlmodel import Session

from storage.models.recording import RecorderState
from storage.types import utcnow


def camera_state(session: Session, camera_id: str) -> RecorderState | None:
    return session.get(RecorderState, camera_id)


def update_state(session: Session, *, camera_id: str, **fields: object) -> RecorderState:
    """Set ``fields`` on the camera's row (created when missing) and stamp ``updated_at``.

    Raises ``ValueError`` for a field the table does not have.
    """
    row = session.get(RecorderState, camera_id) or RecorderState(camera_id=camera_id)
    for name, value in fields.items():
        if name not in RecorderState.model_fields:
            raise ValueError(f"RecorderState has no field {name!r}")
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


__all__ = ["camera_state", "update_state"]
