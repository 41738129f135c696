"""Sharing inside the rules (issue 9, item 5).

Only the case's investigator or a supervisor of its agency shares. Recipients are
prosecutors, or investigators and supervisors of an agency allowed on every camera in
the case. Unknown and forbidden recipients get the same answer; every refusal writes
nothing but an ``access_denied`` audit entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from search_api.state import AppState
from search_api.usecases.cases import ShareRefusedError
from storage.errors import PermissionDeniedError
from tests.search_api.access_helpers import oko_runner
from tests.search_api.case_world import CLIP_1, CLIP_2, CaseWorld, build_case_world

RULE = ("recipients are prosecutors, or investigators and supervisors of an agency "
        "allowed on every camera in the case.")


@pytest.fixture
def world(state: AppState, tmp_path: Path) -> Iterator[CaseWorld]:
    built = build_case_world(state, tmp_path)
    yield built
    built.client.close()


def _refusal(number: str, name: str) -> dict[str, object]:
    return {"detail": f"Case {number} cannot be shared with '{name}': {RULE}",
            "code": "share_refused", "details": []}


def test_share_refusals_follow_the_permission_error_contract() -> None:
    assert issubclass(ShareRefusedError, PermissionDeniedError)
    assert (ShareRefusedError.http_status, ShareRefusedError.code) == (403, "share_refused")


def test_a_share_to_another_agencys_investigator_is_refused_like_an_unknown_user(
        world: CaseWorld) -> None:
    case_id = world.new_case("KV-1", CLIP_1)
    before = world.snapshot()
    answers = {name: world.share(case_id, by="owner", to=name)
               for name in ("sbu", "sbu-chief", "ghost", "auditor", "admin", "retired")}
    for name, (status, body) in answers.items():
        assert (status, body) == (403, _refusal("KV-1", name)), name
    after = world.snapshot()
    assert (after.shares, after.custody) == (before.shares, before.custody)
    assert after.audit - before.audit == {"access_denied": len(answers)}


def test_prosecutors_and_agencies_allowed_on_every_camera_receive(world: CaseWorld) -> None:
    case_id = world.new_case("KV-2", CLIP_1)
    for name in ("prosecutor", "guard", "guard-chief", "colleague"):
        status, body = world.share(case_id, by="owner", to=name)
        assert status == 200, body
        assert world.users[name].id in body["shared_with"]  # type: ignore[operator]
    assert world.as_("guard").get(f"/api/cases/{case_id}").status_code == 200
    again = world.share(case_id, by="owner", to="GUARD ")  # sharing twice is a no-op
    assert again[0] == 200 and len(again[1]["shared_with"]) == 4  # type: ignore[arg-type]


def test_one_camera_the_agency_may_not_search_is_enough_to_refuse(world: CaseWorld) -> None:
    case_id = world.new_case("KV-3", CLIP_1, CLIP_2)  # guard is allowed on cam-1 only
    before = world.snapshot()
    assert world.share(case_id, by="owner", to="guard") == (403, _refusal("KV-3", "guard"))
    assert world.snapshot().shares == before.shares
    assert world.share(case_id, by="owner", to="prosecutor")[0] == 200


def test_only_the_investigator_or_a_supervisor_of_the_case_agency_shares(
        world: CaseWorld) -> None:
    case_id = world.new_case("KV-4")  # no footage yet: every agency is allowed on it
    for name in ("colleague", "chief", "sbu-chief"):
        assert world.share(case_id, by="owner", to=name)[0] == 200
    world.as_("owner").post(f"/api/cases/{case_id}/clips", json=CLIP_1)
    before = world.snapshot()
    sentence = "Only the investigator of case KV-4 or a supervisor of its agency (police) " \
               "may share it."
    for sharer in ("colleague", "sbu-chief"):  # they see the case, but may not pass it on
        status, body = world.share(case_id, by=sharer, to="prosecutor")
        assert (status, body["detail"], body["code"]) == (403, sentence, "share_refused")
    prosecutor = world.as_("prosecutor")
    assert prosecutor.post(f"/api/cases/{case_id}/shares",
                           json={"username": "guard"}).status_code == 403  # role: no sharing
    after = world.snapshot()
    assert after.shares == before.shares
    assert after.audit - before.audit == {"access_denied": 3}
    status, body = world.share(case_id, by="chief", to="prosecutor")
    assert status == 200 and world.users["prosecutor"].id in body["shared_with"]  # type: ignore[operator]
    assert world.share(case_id, by="chief", to="sbu")[0] == 403  # the rule for recipients too


def test_the_cli_gives_the_same_answer(world: CaseWorld, monkeypatch: pytest.MonkeyPatch
                                       ) -> None:
    world.new_case("KV-5", CLIP_1, CLIP_2)
    oko = oko_runner(world.state.settings, monkeypatch)
    before = world.snapshot()
    unknown = oko("--as", "owner", "case", "share", "KV-5", "--user", "ghost")
    forbidden = oko("--as", "owner", "case", "share", "KV-5", "--user", "guard")
    assert unknown.code == forbidden.code == 1
    assert f"Case KV-5 cannot be shared with 'ghost': {RULE}" in " ".join(unknown.err.split())
    assert f"Case KV-5 cannot be shared with 'guard': {RULE}" in " ".join(forbidden.err.split())
    not_owner = oko("--as", "colleague", "case", "share", "KV-5", "--user", "prosecutor")
    assert not_owner.code == 1  # the colleague does not even see the case: not found
    assert world.snapshot().shares == before.shares
    shared = oko("--as", "owner", "case", "share", "KV-5", "--user", "prosecutor")
    assert shared.code == 0 and "Shared case KV-5 with prosecutor." in shared.out
