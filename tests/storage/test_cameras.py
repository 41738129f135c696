"""Camera registry: validation, all-or-nothing CSV import, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from indexer.samples import CAMERAS, write_cameras_csv
from search_api.state import AppState
from storage.cameras import (
    CameraCreate,
    add_camera,
    get_camera,
    get_camera_or_raise,
    import_cameras_csv,
    list_cameras,
    validate_camera,
)
from storage.db import session_scope
from storage.errors import ConflictError, InvalidInputError, NotFoundError

HEADER = "id,name,district,latitude,longitude,agency,timezone\n"


def _camera(**overrides: object) -> CameraCreate:
    fields: dict[str, object] = {"id": "CAM-100", "name": "Podil market", "district": "Podilskyi",
                                 "latitude": 50.466, "longitude": 30.515, "agency": "police"}
    return validate_camera(**{**fields, **overrides})


def test_add_list_and_get(state: AppState) -> None:
    with session_scope(state.engine) as session:
        add_camera(session, camera=_camera(allowed_agencies=["municipal_guard", " "]))
    with Session(state.engine) as session:
        [camera] = list_cameras(session)
        assert camera.timezone == "Europe/Kyiv"
        assert camera.allowed_agencies == ["municipal_guard"]
        assert get_camera(session, "CAM-100") == camera
        assert get_camera(session, "CAM-404") is None
        with pytest.raises(NotFoundError, match=r"^Camera 'CAM-404' is not registered.$"):
            get_camera_or_raise(session, "CAM-404")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("timezone", "Europe/Atlantis", "timezone: 'Europe/Atlantis' is not an IANA time zone"),
    ("latitude", 91.0, "latitude: Input should be less than or equal to 90"),
    ("longitude", -181.0, "longitude: Input should be greater than or equal to -180"),
    ("id", "", "id: String should have at least 1 character"),
])
def test_invalid_camera_is_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"^Invalid camera \({message}"):
        _camera(**{field: value})


def test_duplicate_id_is_refused(state: AppState) -> None:
    with session_scope(state.engine) as session:
        add_camera(session, camera=_camera())
    with pytest.raises(ConflictError, match=r"^Camera 'CAM-100' is already registered.$"), \
            session_scope(state.engine) as session:
        add_camera(session, camera=_camera(name="Other"))


def test_import_sample_csv(state: AppState, tmp_path: Path) -> None:
    path = write_cameras_csv(tmp_path / "cameras.csv")
    with session_scope(state.engine) as session:
        rows = import_cameras_csv(session, path=path)
    assert [r.id for r in rows] == [c.id for c in CAMERAS]
    with Session(state.engine) as session:
        cameras = {c.id: c for c in list_cameras(session)}
    assert cameras["CAM-001"].allowed_agencies == ["municipal_guard"]
    assert {c.district for c in cameras.values()} == {"Shevchenkivskyi", "Obolonskyi"}


def test_import_is_all_or_nothing_and_names_the_bad_row(state: AppState,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "cameras.csv"
    path.write_text(HEADER + "CAM-1,A,Podil,50.4,30.5,police,Europe/Kyiv\n"
                    "CAM-2,B,Podil,north,30.5,police,Europe/Kyiv\n")
    with pytest.raises(InvalidInputError, match=r"^Row 3 of 'cameras.csv' is invalid \("
                                                r"latitude: .*\); no camera was imported.$"), \
            session_scope(state.engine) as session:
        import_cameras_csv(session, path=path)
    with Session(state.engine) as session:
        assert list_cameras(session) == []


def test_import_refuses_repeated_and_existing_ids(state: AppState, tmp_path: Path) -> None:
    path = tmp_path / "cameras.csv"
    path.write_text(HEADER + "CAM-1,A,Podil,50.4,30.5,police,\nCAM-1,B,Podil,50.4,30.5,police,\n")
    with pytest.raises(ConflictError, match="appears twice"), \
            session_scope(state.engine) as session:
        import_cameras_csv(session, path=path)
    with session_scope(state.engine) as session:
        add_camera(session, camera=_camera(id="CAM-2"))
    path.write_text(HEADER + "CAM-1,A,Podil,50.4,30.5,police,\nCAM-2,B,Podil,50.4,30.5,police,\n")
    with pytest.raises(ConflictError, match=r"^Camera 'CAM-2' is already registered; no camera"), \
            session_scope(state.engine) as session:
        import_cameras_csv(session, path=path)
    with Session(state.engine) as session:
        assert [c.id for c in list_cameras(session)] == ["CAM-2"]


def test_import_refuses_missing_file_and_columns(state: AppState, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist"), \
            session_scope(state.engine) as session:
        import_cameras_csv(session, path=tmp_path / "nope.csv")
    path = tmp_path / "cams.csv"
    path.write_text("id,name\nCAM-1,A\n")
    with pytest.raises(InvalidInputError, match=r"^'cams.csv' lacks the column\(s\) district"), \
            session_scope(state.engine) as session:
        import_cameras_csv(session, path=path)
