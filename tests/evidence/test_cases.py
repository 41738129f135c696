"""Cases: creation rules, clips (manual and from search), evidence lock, access rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from evidence.cases import (
    EvidenceLockedError,
    add_clip,
    create_case,
    ensure_original_deletable,
    locked_original_ids,
    share_case,
    transfer_case,
    visible_case_ids,
)
from storage.errors import ConflictError, InvalidInputError, NotFoundError
from storage.models.access import Role, User
from storage.models.evidence import Case, CaseClip, CustodyEntry
from storage.models.media import Original
from tests.evidence.conftest import RECORDING_START, EvidenceWorld


@pytest.mark.parametrize(("number", "title", "message"), [
    ("bad number!", "t", "must be 1-64 letters"),
    ("OK-1", "  ", "needs a title and a legal basis"),
    ("KV-2026-001", "t", "Case KV-2026-001 already exists."),
])
def test_bad_cases_are_refused_without_rows(world: EvidenceWorld, number: str, title: str,
                                            message: str) -> None:
    with world.session() as session:
        before = len(session.exec(select(Case)).all())
        with pytest.raises((InvalidInputError, ConflictError), match=message):
            create_case(session, number=number, title=title, legal_basis="b",
                        investigator=world.investigator)
        session.rollback()
        assert len(session.exec(select(Case)).all()) == before


@pytest.mark.parametrize(("start", "end", "provenance", "error", "message"), [
    (5, 2, None, InvalidInputError, "must end after it starts"),
    (100, 101, None, NotFoundError, "No footage from camera cam-1 covers"),
    (4, 9, None, InvalidInputError, "runs past the end of cam1-20261124.mp4"),
    (1, 2, {"query": "x"}, InvalidInputError, "lacks model, weights_sha256, score"),
])
def test_bad_clips_are_refused_without_rows(world: EvidenceWorld, start: float, end: float,
                                            provenance: dict[str, object] | None,
                                            error: type[Exception], message: str) -> None:
    with world.session() as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        clips, entries = (len(session.exec(select(CaseClip)).all()),
                          len(session.exec(select(CustodyEntry)).all()))
        with pytest.raises(error, match=message):
            add_clip(session, case=case, camera_id="cam-1",
                     start_utc=RECORDING_START + timedelta(seconds=start),
                     end_utc=RECORDING_START + timedelta(seconds=end), note="", actor="a",
                     added_by_id=None, provenance=provenance)
        session.rollback()
        assert len(session.exec(select(CaseClip)).all()) == clips
        assert len(session.exec(select(CustodyEntry)).all()) == entries


def test_naive_time_and_unknown_camera(world: EvidenceWorld) -> None:
    with world.session() as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        with pytest.raises(InvalidInputError, match="need a time zone"):
            add_clip(session, case=case, camera_id="cam-1", start_utc=datetime(2026, 1, 1),
                     end_utc=datetime(2026, 1, 2), note="", actor="a", added_by_id=None)
        with pytest.raises(NotFoundError, match=r"Camera 'nope' does not exist\."):
            add_clip(session, case=case, camera_id="nope",
                     start_utc=datetime(2026, 1, 1, tzinfo=UTC),
                     end_utc=datetime(2026, 1, 2, tzinfo=UTC), note="", actor="a",
                     added_by_id=None)


def test_clip_originals_are_under_evidence_lock(world: EvidenceWorld) -> None:
    with world.session() as session:
        assert world.original.id in locked_original_ids(session)
        with pytest.raises(EvidenceLockedError,
                           match=r"under evidence lock \(case KV-2026-001\)"):
            ensure_original_deletable(session, original_id=world.original.id or 0)
        ensure_original_deletable(session, original_id=999)


def test_access_rule(world: EvidenceWorld) -> None:
    with world.session() as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        users = {role: User(username=f"u-{role.value}", agency="police", role=role,
                            password_hash="!") for role in Role}
        other_investigator = User(username="other", agency="police", role=Role.INVESTIGATOR,
                                  password_hash="!")
        session.add_all([*users.values(), other_investigator])
        session.flush()
        assert visible_case_ids(session, user=world.investigator) == {case.id}
        assert visible_case_ids(session, user=other_investigator) == set()
        assert visible_case_ids(session, user=users[Role.PROSECUTOR]) == set()
        share_case(session, case=case, user=users[Role.PROSECUTOR])
        share_case(session, case=case, user=users[Role.PROSECUTOR])
        assert visible_case_ids(session, user=users[Role.PROSECUTOR]) == {case.id}
        share_case(session, case=case, user=users[Role.AUDITOR])
        assert visible_case_ids(session, user=users[Role.AUDITOR]) == set()


def test_transfer_needs_recipient_and_hash(world: EvidenceWorld) -> None:
    with world.session() as session:
        case = session.get(Case, world.case.id)
        assert case is not None
        with pytest.raises(InvalidInputError, match="needs the recipient's name"):
            transfer_case(session, case=case, actor="a", recipient=" ", bundle_sha256="0" * 64)
        with pytest.raises(InvalidInputError, match="is not a lowercase SHA-256"):
            transfer_case(session, case=case, actor="a", recipient="P", bundle_sha256="xyz")
        entry = transfer_case(session, case=case, actor="a", recipient="Прокурор Іваненко",
                              bundle_sha256="0" * 64)
        assert entry.action == "transfer" and entry.seq == 2


def test_footage_still_being_ingested_cannot_be_clipped(world: EvidenceWorld) -> None:
    with world.session() as session:
        original = session.get(Original, world.original.id)
        case = session.get(Case, world.case.id)
        assert original is not None and case is not None
        original.status = "processing"
        session.add(original)
        session.flush()
        with pytest.raises(NotFoundError, match="No footage from camera cam-1 covers"):
            add_clip(session, case=case, camera_id="cam-1",
                     start_utc=RECORDING_START + timedelta(seconds=1),
                     end_utc=RECORDING_START + timedelta(seconds=2), note="", actor="a",
                     added_by_id=None)
        session.rollback()
