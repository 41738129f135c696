"""Use cases for users, cameras, sign-in and the audit log, called directly and through
both adapters: refusals write nothing, and the CLI's entries have the API's shape."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from evidence.keys import ensure_signing_identity
from indexer.samples import write_cameras_csv
from search_api.security import RateLimitedError
from search_api.state import AppState
from search_api.usecases import audit_log, auth, cameras, users
from search_api.usecases.context import Actor, UseCaseContext
from storage.cameras import validate_camera
from storage.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from storage.models.access import AuditEvent, LoginAttempt, Role, User, UserCreate, UserUpdate
from storage.models.media import Camera
from tests.search_api.access_helpers import PASSWORD, Oko, acting, add_user, as_user, oko_runner

ClientAs = Callable[..., TestClient]


def audit_rows(state: AppState) -> list[AuditEvent]:
    with Session(state.engine) as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def usernames(state: AppState) -> list[str]:
    with Session(state.engine) as session:
        return sorted(u.username for u in session.exec(select(User)))


def camera_ids(state: AppState) -> list[str]:
    with Session(state.engine) as session:
        return sorted(c.id for c in session.exec(select(Camera)))


NEW_USER = UserCreate(username="new.user", password=PASSWORD, agency="police",
                      role=Role.INVESTIGATOR)
CAMERA = validate_camera(id="CAM-050", name="Podil", latitude=50.46, longitude=30.51,
                         agency="police")

# (role that lacks the permission, the call) for every use case that checks one
REFUSED: dict[str, tuple[Role, Callable[[UseCaseContext, Path], object]]] = {
    "list users": (Role.SUPERVISOR, lambda ctx, _: users.list_users(ctx)),
    "create user": (Role.AUDITOR, lambda ctx, _: users.create_user(ctx, new=NEW_USER)),
    "update user": (Role.INVESTIGATOR, lambda ctx, _: users.update_user_named(
        ctx, username="target", changes=UserUpdate(role=Role.ADMIN))),
    "first admin": (Role.SUPERVISOR, lambda ctx, _: users.create_first_admin(
        ctx, username="boss", password=PASSWORD, agency="city")),
    "list cameras": (Role.AUDITOR, lambda ctx, _: cameras.list_visible_cameras(ctx)),
    "read camera": (Role.PROSECUTOR, lambda ctx, _: cameras.read_camera(
        ctx, camera_id="CAM-050")),
    "register camera": (Role.SUPERVISOR, lambda ctx, _: cameras.register_camera(
        ctx, camera=CAMERA)),
    "import cameras": (Role.INVESTIGATOR, lambda ctx, tmp: cameras.import_cameras(
        ctx, path=write_cameras_csv(tmp / "cameras.csv"))),
    "list audit": (Role.ADMIN, lambda ctx, _: audit_log.list_audit_events(
        ctx, where=audit_log.AuditFilter())),
    "verify audit": (Role.SUPERVISOR, lambda ctx, _: audit_log.verify_audit_log(ctx)),
    "export audit": (Role.INVESTIGATOR, lambda ctx, tmp: audit_log.export_audit_log(
        ctx, start=None, end=None, out=tmp / "audit.jsonl")),
    "checkpoint file": (Role.ADMIN, lambda ctx, _: audit_log.checkpoint_file(ctx)),
    "export checkpoints": (Role.PROSECUTOR, lambda ctx, tmp: audit_log.export_checkpoint_file(
        ctx, out=tmp / "checkpoints.json", sign_now=True)),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_role_without_the_permission_is_refused_and_nothing_is_written(
        state: AppState, tmp_path: Path, name: str) -> None:
    role, call = REFUSED[name]
    add_user(state, "target", Role.INVESTIGATOR)
    actor = add_user(state, "actor", role, agency="police")
    before_users, out = usernames(state), tmp_path / "out"
    out.mkdir()
    with as_user(state, actor) as ctx, pytest.raises(PermissionDeniedError, match=(
            rf"^Your role \({role.value}\) may not ")):
        call(ctx, out)
    assert audit_rows(state) == []
    assert usernames(state) == before_users
    assert camera_ids(state) == []
    assert {p.name for p in out.iterdir()} <= {"cameras.csv"}  # the input, no export


def test_the_operator_may_do_everything_and_is_named_in_the_log(
        state: AppState, tmp_path: Path) -> None:
    ensure_signing_identity(keys_dir=state.settings.keys_dir, organisation="Oko test",
                            passphrase=state.settings.key_passphrase)
    operator = Actor.local_operator()
    with acting(state, operator) as ctx:
        users.create_user(ctx, new=NEW_USER)
        cameras.import_cameras(ctx, path=write_cameras_csv(tmp_path / "cameras.csv"))
        assert audit_log.verify_audit_log(ctx).ok
        assert audit_log.export_checkpoint_file(ctx, out=tmp_path / "cp.json",
                                                sign_now=True) == 1
    rows = audit_rows(state)
    assert [r.action for r in rows] == ["user_change"] + ["camera_change"] * 3 + ["verify"]
    assert {(r.actor, r.agency, r.ip) for r in rows} == {(operator.name, "", "cli")}
    assert operator.name.startswith("cli:")


def test_a_bad_csv_row_imports_no_camera_and_audits_nothing(
        state: AppState, tmp_path: Path) -> None:
    csv_path = write_cameras_csv(tmp_path / "cameras.csv")
    csv_path.write_text(csv_path.read_text() + "CAM-009,Bad,,95,30,police,Europe/Kyiv,\n")
    with acting(state, Actor.local_operator()) as ctx, pytest.raises(
            InvalidInputError, match="no camera was imported"):
        cameras.import_cameras(ctx, path=csv_path)
    assert camera_ids(state) == [] and audit_rows(state) == []


def test_other_agencies_cameras_answer_like_missing_ones(state: AppState,
                                                         tmp_path: Path) -> None:
    with acting(state, Actor.local_operator()) as ctx:
        cameras.import_cameras(ctx, path=write_cameras_csv(tmp_path / "cameras.csv"))
    guard = add_user(state, "guard", Role.INVESTIGATOR, agency="municipal_guard")
    with as_user(state, guard) as ctx:
        assert [c.id for c in cameras.list_visible_cameras(ctx)] == ["CAM-001"]
        for camera_id in ("CAM-002", "CAM-404"):
            with pytest.raises(NotFoundError, match=rf"^Camera .{camera_id}. does not exist\.$"):
                cameras.read_camera(ctx, camera_id=camera_id)


def test_sign_in_audits_success_as_the_user_and_failure_under_the_name_typed(
        state: AppState) -> None:
    ivan = add_user(state, "ivan", Role.INVESTIGATOR)

    def attempt(username: str, password: str) -> auth.SignedIn:
        actor = Actor.unauthenticated(attempted_username=username, ip="203.0.113.7")
        with acting(state, actor) as ctx:
            return auth.sign_in(ctx, username=username, password=password, method="cookie")

    with pytest.raises(AuthenticationError, match=r"^Wrong username or password\.$"):
        attempt(" Ivan ", "wrong-password-1")
    signed_in = attempt("IVAN", PASSWORD)
    assert signed_in.user.id == ivan.id and signed_in.token.csrf_token
    rows = audit_rows(state)
    assert [(r.action, r.actor, r.agency, r.ip) for r in rows] == [
        ("login_failed", "ivan", "", "203.0.113.7"), ("login", "ivan", "police", "203.0.113.7")]
    assert rows[0].details == {"method": "cookie", "reason": "Wrong username or password."}
    assert "wrong-password-1" not in str(rows[0].details)
    with Session(state.engine) as session:
        assert [a.succeeded for a in session.exec(select(LoginAttempt))] == [False, True]


def test_sign_in_is_refused_after_too_many_failures(state: AppState) -> None:
    state.settings.login_max_failures_per_user = 2
    add_user(state, "ivan", Role.INVESTIGATOR)
    actor = Actor.unauthenticated(attempted_username="ivan", ip="203.0.113.7")
    for error in (AuthenticationError, AuthenticationError, RateLimitedError):
        with acting(state, actor) as ctx, pytest.raises(error):
            auth.sign_in(ctx, username="ivan", password="nope-nope-1", method="token")
    assert [r.action for r in audit_rows(state)] == ["login_failed"] * 3
    assert audit_rows(state)[-1].details["reason"].startswith("Too many failed sign-ins")


def test_who_am_i_and_sign_out_need_a_named_user(state: AppState) -> None:
    with acting(state, Actor.local_operator()) as ctx:
        for call in (auth.who_am_i, lambda c: auth.sign_out(c, claims=None)):
            with pytest.raises(PermissionDeniedError, match="needs a named Oko user"):
                call(ctx)
    assert audit_rows(state) == []


# --- through the adapters --------------------------------------------------------------

@pytest.fixture
def oko(state: AppState, monkeypatch: pytest.MonkeyPatch) -> Oko:
    return oko_runner(state.settings, monkeypatch)


def test_cli_user_changes_write_the_same_entry_as_patch_api_users(
        state: AppState, client_as: ClientAs, oko: Oko) -> None:
    target = add_user(state, "target", Role.INVESTIGATOR)
    admin = client_as(Role.ADMIN, agency="city")
    for body in ({"role": "supervisor"}, {"disabled": True}):
        assert admin.patch(f"/api/users/{target.id}", json=body).status_code == 200
    assert oko("users", "set-role", "TARGET", "auditor").code == 0
    assert oko("users", "disable", "target", "--enable").code == 0
    api_role, api_disable, cli_role, cli_enable = [r.details for r in audit_rows(state)]
    assert api_role == {"change": "update", "username": "target", "password_reset": False,
                        "role": "supervisor"}
    assert cli_role == {**api_role, "role": "auditor"}
    assert api_disable == {"change": "update", "username": "target", "password_reset": False,
                           "disabled": True}
    assert cli_enable == {**api_disable, "disabled": False}


def test_cli_as_a_user_acts_with_their_name_and_role(
        state: AppState, oko: Oko) -> None:
    add_user(state, "auditor", Role.AUDITOR, agency="oversight")
    verified = oko("--as", "auditor", "audit", "verify")
    assert verified.code == 0, verified.err
    [entry] = audit_rows(state)
    assert (entry.action, entry.actor, entry.agency, entry.ip) == (
        "verify", "auditor", "oversight", "cli")
    assert entry.details == {"target": "audit_log", "ok": True, "first_broken_seq": None}
    refused = oko("--as", "auditor", "users", "list")
    assert refused.code == 1
    assert "Your role (auditor) may not manage users." in refused.err
    assert len(audit_rows(state)) == 1


def test_cli_cameras_show_and_list_see_what_the_user_may_see(
        state: AppState, tmp_path: Path, oko: Oko) -> None:
    assert oko("cameras", "import", str(write_cameras_csv(tmp_path / "cameras.csv"))).code == 0
    add_user(state, "guard", Role.INVESTIGATOR, agency="municipal_guard")
    shown = oko("cameras", "show", "CAM-002")
    assert shown.code == 0 and "CAM-002" in shown.out
    listed = oko("--as", "guard", "cameras", "list")
    assert "CAM-001" in listed.out and "CAM-002" not in listed.out
    hidden = oko("--as", "guard", "cameras", "show", "CAM-002")
    assert hidden.code == 1 and "Camera 'CAM-002' does not exist." in hidden.err
