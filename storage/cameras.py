"""Camera registry: register, import from CSV, list and look up cameras.

Mutating functions flush but leave the commit to the caller.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlmodel import Session, col, select

from storage.errors import ConflictError, InvalidInputError, NotFoundError
from storage.models.media import Camera, CameraBase

CSV_COLUMNS = ("id", "name", "district", "latitude", "longitude", "agency", "timezone")


class CameraCreate(BaseModel):
    """A camera as a user describes it; every field is checked before anything is stored."""

    model_config = ConfigDict(str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1)
    district: str = ""
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    agency: str = Field(min_length=1)
    timezone: str = "Europe/Kyiv"
    allowed_agencies: list[str] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"'{value}' is not an IANA time zone such as Europe/Kyiv") from exc
        return value

    @field_validator("allowed_agencies")
    @classmethod
    def _clean_agencies(cls, value: list[str]) -> list[str]:
        return sorted({agency.strip() for agency in value if agency.strip()})


class CameraPublic(CameraBase):
    """A camera as the API and ``oko cameras list --json`` show it."""

    allowed_agencies: list[str]
    created_at: datetime
    retention_days: int | None = None

    @classmethod
    def of(cls, camera: Camera) -> CameraPublic:
        return cls.model_validate(camera, from_attributes=True)


def _explain(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "camera"
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def validate_camera(**fields: object) -> CameraCreate:
    """Raises ``InvalidInputError`` naming the first bad field."""
    try:
        return CameraCreate.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInputError(f"Invalid camera ({_explain(exc)}).") from exc


def add_camera(session: Session, *, camera: CameraCreate) -> Camera:
    """Register ``camera``; raises ``ConflictError`` when its id is already registered."""
    if session.get(Camera, camera.id) is not None:
        raise ConflictError(f"Camera '{camera.id}' is already registered.")
    row = Camera(**camera.model_dump())
    session.add(row)
    session.flush()
    return row


def import_cameras_csv(session: Session, *, path: Path) -> list[Camera]:
    """Register every camera in ``path`` or none of them.

    Columns: id,name,district,latitude,longitude,agency,timezone and optionally
    allowed_agencies (separated by ``;``). Raises ``InvalidInputError`` naming the first
    bad row, ``ConflictError`` for an id already registered or repeated in the file,
    ``NotFoundError`` when the file does not exist.
    """
    if not path.is_file():
        raise NotFoundError(f"Camera list '{path}' does not exist.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputError(
                f"'{path.name}' lacks the column(s) {', '.join(missing)}; expected "
                f"{','.join(CSV_COLUMNS)}.")
        cameras: list[CameraCreate] = []
        for line, row in enumerate(reader, start=2):
            fields = {key: (value or "").strip() for key, value in row.items() if key}
            fields["allowed_agencies"] = fields.get("allowed_agencies", "").split(";")
            if not fields.get("timezone"):
                fields.pop("timezone")
            try:
                cameras.append(CameraCreate.model_validate(fields))
            except ValidationError as exc:
                raise InvalidInputError(
                    f"Row {line} of '{path.name}' is invalid ({_explain(exc)}); "
                    "no camera was imported.") from exc
    seen: set[str] = set()
    for camera in cameras:
        if camera.id in seen:
            raise ConflictError(f"Camera '{camera.id}' appears twice in '{path.name}'; "
                                "no camera was imported.")
        seen.add(camera.id)
    existing = session.exec(select(Camera.id).where(col(Camera.id).in_(seen))).all()
    if existing:
        raise ConflictError(f"Camera '{sorted(existing)[0]}' is already registered; "
                            "no camera was imported.")
    return [add_camera(session, camera=camera) for camera in cameras]


def list_cameras(session: Session) -> list[Camera]:
    return list(session.exec(select(Camera).order_by(col(Camera.id))).all())


def get_camera(session: Session, camera_id: str) -> Camera | None:
    return session.get(Camera, camera_id)


def get_camera_or_raise(session: Session, camera_id: str) -> Camera:
    """Raises ``NotFoundError`` when ``camera_id`` is not registered."""
    camera = get_camera(session, camera_id)
    if camera is None:
        raise NotFoundError(f"Camera '{camera_id}' is not registered.")
    return camera


__all__ = [
    "CameraCreate",
    "CameraPublic",
    "add_camera",
    "get_camera",
    "get_camera_or_raise",
    "import_cameras_csv",
    "list_cameras",
    "validate_camera",
]
