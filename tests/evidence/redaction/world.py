"""A case whose clip shows real faces (skimage) and a plate, stored as ingest stores it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlmodel import Session

from evidence.cases import add_clip, create_case
from evidence.keys import ensure_signing_identity
from search_api.cli.common import operator_usecase
from search_api.state import AppState
from search_api.usecases.context import UseCaseContext
from storage.models.access import Role, User
from storage.models.media import Camera
from tests.evidence.conftest import RECORDING_START, store_original
from tests.evidence.redaction.footage import street_frames, write_clip


@dataclass
class RedactionWorld:
    state: AppState
    case_id: int
    case_number: str

    @contextmanager
    def ctx(self, act_as: str | None = None) -> Iterator[UseCaseContext]:
        with operator_usecase(self.state, act_as=act_as) as usecase:
            yield usecase


def build_redaction_world(state: AppState, tmp: Path, *, faces: bool = True,
                          number: str = "KV-2026-014") -> RedactionWorld:
    """Two seconds of 480x272 footage at 10 fps (a keyframe each second); the case's
    one clip is its first second (10 frames)."""
    frames, _truth = street_frames(count=20, faces=faces)
    footage = write_clip(tmp / f"street-{'faces' if faces else 'nofaces'}.mp4", frames)
    ensure_signing_identity(keys_dir=state.settings.keys_dir,
                            organisation=state.settings.organisation,
                            passphrase=state.settings.key_passphrase)
    with Session(state.engine, expire_on_commit=False) as session:
        session.add(Camera(id="cam-7", name="Поділ, 3", latitude=50.46, longitude=30.51,
                           agency="police"))
        investigator = User(username="investigator-police", full_name="Олена Коваль",
                            agency="police", role=Role.INVESTIGATOR, password_hash="!")
        session.add(investigator)
        session.add(User(username="prosecutor", full_name="Прокурор", agency="prosecution",
                         role=Role.PROSECUTOR, password_hash="!"))
        session.flush()
        original = store_original(session, state, footage, camera_id="cam-7", seconds=2.0)
        original.width, original.height = 480, 272
        case = create_case(session, number=number, title="Грабіж", legal_basis="Ухвала",
                           investigator=investigator)
        add_clip(session, case=case, camera_id="cam-7", start_utc=RECORDING_START,
                 end_utc=RECORDING_START + timedelta(seconds=0.95), note="",
                 actor="investigator-police", added_by_id=investigator.id)
        session.commit()
        assert case.id is not None
        return RedactionWorld(state=state, case_id=case.id, case_number=case.number)
