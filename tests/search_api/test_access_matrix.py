"""The role matrix: every API route against every role, with the real authentication guard.

``RULES`` is the single statement of who may do what. A route the app serves but the
table does not classify fails ``test_every_route_is_classified``, so a new route cannot
ship without a decision. Allowed roles must never get 401/403/404 or a 5xx; other roles
get 403 (or 404 where the object itself is invisible to them, which leaks nothing).
IDOR checks replay the allowed requests with another agency's camera, frame, segment,
case and export ids and expect 404.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from PIL import Image
from sqlmodel import Session, func, select

from evidence.cases import add_clip, create_case, share_case, transfer_case
from evidence.export_jobs import request_export, run_export_job
from evidence.keys import ensure_signing_identity
from indexer.embeddings import build_unsafe_random_embedder
from search_api.accounts import create_user
from search_api.app import create_app
from search_api.security import issue_token, load_token_secret
from search_api.state import AppState, build_state
from search_api.usecases import media
from search_api.usecases.exports import export_environment
from storage.models.access import AuditEvent, Role, User
from storage.models.evidence import Case, ExportJob
from storage.models.media import Camera, Frame, IngestJob, Segment
from storage.models.plates import PlateSighting, WatchlistEntry
from storage.settings import Settings
from storage.types import utcnow
from tests.evidence.conftest import RECORDING_START, make_footage, store_original

ALL = frozenset(Role)
A, INV, S, P, AU = (Role.ADMIN, Role.INVESTIGATOR, Role.SUPERVISOR, Role.PROSECUTOR,
                    Role.AUDITOR)
PURPOSE = "KV-2026-001: bicycle theft"


@dataclass
class AgencyData:
    camera_id: str
    original_id: int
    segment_id: int
    frame_id: int
    case_id: int
    export_id: int
    job_id: int


@dataclass
class World:
    app: FastAPI
    state: AppState
    users: dict[str, User]
    police: AgencyData
    dsns: AgencyData
    bundle: bytes
    footage: Path
    secret: bytes
    counter: Iterator[int] = field(default_factory=itertools.count)

    def client(self, user: User | None) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver")
        if user is not None:
            token = issue_token(user=user, secret=self.secret, minutes=5).token
            client.headers["Authorization"] = f"Bearer {token}"
        return client


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _agency_data(session: Session, state: AppState, tmp: Path, *, agency: str, source: str,
                 investigator: User) -> AgencyData:
    camera_id = f"cam-{agency}"
    session.add(Camera(id=camera_id, name=f"{agency} camera", district="Podilskyi",
                       latitude=50.46, longitude=30.51, agency=agency))
    session.flush()
    footage = make_footage(tmp / f"{agency}.mp4", source=source)
    original = store_original(session, state, footage, camera_id=camera_id)
    segment_blob = state.derived.put_file(footage)
    segment = Segment(original_id=original.id or 0, index=0, start_offset_s=0.0,
                      duration_s=6.0, start_utc=RECORDING_START, sha256=segment_blob.sha256,
                      size_bytes=segment_blob.size_bytes, method="stream_copy", tool="ffmpeg",
                      tool_version="test")
    session.add(segment)
    session.flush()
    thumbnail = state.derived.put_bytes(_png() + agency.encode())
    frame = Frame(original_id=original.id or 0, segment_id=segment.id or 0,
                  camera_id=camera_id, offset_s=1.0,
                  captured_at_utc=RECORDING_START + timedelta(seconds=1), width=64,
                  height=48, thumbnail_sha256=thumbnail.sha256)
    job = IngestJob(source_path=str(footage), camera_id=camera_id, status="done",
                    original_id=original.id)
    session.add_all([frame, job])
    case = create_case(session, number=f"{agency.upper()}-2026-1", title="Крадіжка",
                       legal_basis="ст. 185 КК України", investigator=investigator)
    add_clip(session, case=case, camera_id=camera_id,
             start_utc=RECORDING_START + timedelta(seconds=1),
             end_utc=RECORDING_START + timedelta(seconds=3), note="", actor=investigator.username,
             added_by_id=investigator.id)
    export = request_export(session, case=case, requested_by=investigator, needs_approval=False)
    session.flush()
    return AgencyData(camera_id, original.id or 0, segment.id or 0, frame.id or 0,
                      case.id or 0, export.id or 0, job.id or 0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("matrix")
    settings = Settings(home=tmp / "oko-home", environment="test",
                        key_passphrase="test-passphrase", audit_checkpoint_entries=10,
                        ingest_roots=[tmp])
    state = build_state(settings)
    ensure_signing_identity(keys_dir=settings.keys_dir, organisation=settings.organisation,
                            passphrase=settings.key_passphrase)
    state.embedder = build_unsafe_random_embedder("test-tiny", threads=1)
    with Session(state.engine, expire_on_commit=False) as session:
        users = {name: create_user(session, username=name, password="matrix-password-1",
                                   agency=agency, role=role)
                 for name, agency, role in [
                     ("admin", "city", A), ("investigator", "police", INV),
                     ("supervisor", "police", S), ("prosecutor", "police", P),
                     ("auditor", "oversight", AU), ("dsns-investigator", "dsns", INV),
                     ("target", "police", INV)]}
        police = _agency_data(session, state, tmp, agency="police", source="testsrc2",
                              investigator=users["investigator"])
        dsns = _agency_data(session, state, tmp, agency="dsns", source="mandelbrot",
                            investigator=users["dsns-investigator"])
        police_case = session.get(Case, police.case_id)
        assert police_case is not None
        for name in ("supervisor", "prosecutor"):
            share_case(session, case=police_case, user=users[name])
        session.commit()
    for data in (police, dsns):  # what the export worker does for each queued job
        with Session(state.engine, expire_on_commit=False) as session:
            run_export_job(session, engine=state.engine, job_id=data.export_id,
                           env=export_environment(state))
            session.commit()
    with Session(state.engine) as session:
        job = session.get(ExportJob, police.export_id)
        assert job is not None and job.status == "done" and job.bundle_path
        bundle = Path(job.bundle_path).read_bytes()
        police_case = session.get(Case, police.case_id)
        assert police_case is not None and job.bundle_sha256
        transfer_case(session, case=police_case, actor="investigator",  # receipts need it
                      recipient="prosecutor", bundle_sha256=job.bundle_sha256)
        session.commit()
    yield World(create_app(settings, state=state), state, users, police, dsns, bundle,
                tmp / "police.mp4", load_token_secret(settings.keys_dir))
    state.engine.dispose()


Request = dict[str, Any]
Builder = Callable[[World, AgencyData], Request]


def _get(path: str) -> Builder:
    return lambda w, d: {"method": "GET", "url": path.format(**vars(d))}


def _post(path: str, **kwargs: Callable[[World, AgencyData], Any]) -> Builder:
    return lambda w, d: {"method": "POST", "url": path.format(**vars(d)),
                         **{k: make(w, d) for k, make in kwargs.items()}}


def _unique(prefix: str) -> Callable[[World, AgencyData], str]:
    return lambda w, _d: f"{prefix}{next(w.counter)}"


def _new_user(w: World, _d: AgencyData) -> dict[str, str]:
    return {"username": f"new.user{next(w.counter)}", "password": "matrix-password-2",
            "agency": "police", "role": "investigator"}


def _clip(_w: World, d: AgencyData) -> dict[str, str]:
    return {"camera_id": d.camera_id, "start_utc": "2026-11-24T10:00:01Z",
            "end_utc": "2026-11-24T10:00:02Z"}


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[Role]
    build: Builder
    idor: bool = False  # replaying with the other agency's ids must answer 404


CASE = "/api/cases/{case_id}"
EXPORT = CASE + "/exports/{export_id}"
RULES: dict[tuple[str, str], Rule] = {
    ("POST", "/api/auth/logout"): Rule(ALL, _post("/api/auth/logout")),
    ("GET", "/api/auth/me"): Rule(ALL, _get("/api/auth/me")),
    ("GET", "/api/users"): Rule(frozenset({A}), _get("/api/users")),
    ("POST", "/api/users"): Rule(frozenset({A}), _post("/api/users", json=_new_user)),
    ("PATCH", "/api/users/{user_id}"): Rule(frozenset({A}), lambda w, d: {
        "method": "PATCH", "url": f"/api/users/{w.users['target'].id}",
        "json": {"role": "investigator"}}),
    ("GET", "/api/cameras"): Rule(frozenset({A, INV, S}), _get("/api/cameras")),
    ("GET", "/api/cameras/{camera_id}"): Rule(frozenset({A, INV, S}),
                                              _get("/api/cameras/{camera_id}"), idor=True),
    ("POST", "/api/cameras"): Rule(frozenset({A}), _post("/api/cameras", json=lambda w, d: {
        "id": f"cam-new-{next(w.counter)}", "name": "New", "latitude": 50.4,
        "longitude": 30.5, "agency": "police"})),
    ("GET", "/api/cameras/{camera_id}/status"): Rule(
        frozenset({A, INV, S}), _get("/api/cameras/{camera_id}/status"), idor=True),
    ("GET", "/api/cameras/{camera_id}/gaps"): Rule(frozenset({A, INV, S}), _get(
        "/api/cameras/{camera_id}/gaps?start=2026-11-24T00:00:00Z&end=2026-11-25T00:00:00Z"),
        idor=True),
    ("PUT", "/api/cameras/{camera_id}/stream"): Rule(frozenset({A}), lambda w, d: {
        "method": "PUT", "url": f"/api/cameras/{d.camera_id}/stream",
        "json": {"stream_url": "rtsp://viewer:pw@127.0.0.1:9/cam"}}),
    ("PUT", "/api/cameras/{camera_id}/retention"): Rule(frozenset({A}), lambda w, d: {
        "method": "PUT", "url": f"/api/cameras/{d.camera_id}/retention",
        "json": {"retention_days": 30}}),
    ("POST", "/api/cameras/import"): Rule(frozenset({A}), _post(
        "/api/cameras/import", files=lambda w, d: {"file": ("cameras.csv", (
            "id,name,district,latitude,longitude,agency,timezone\n"
            f"csv-{next(w.counter)},CSV,Podil,50.46,30.51,police,Europe/Kyiv\n").encode(),
            "text/csv")})),
    ("GET", "/api/models"): Rule(frozenset({A}), _get("/api/models")),
    ("GET", "/api/jobs"): Rule(frozenset({A}), _get("/api/jobs")),
    ("GET", "/api/jobs/{job_id}"): Rule(frozenset({A}), _get("/api/jobs/{job_id}")),
    ("POST", "/api/ingest"): Rule(frozenset({A}), _post("/api/ingest", json=lambda w, d: {
        "path": str(w.footage), "camera_id": d.camera_id})),
    ("POST", "/api/search"): Rule(frozenset({INV, S}), _post("/api/search", json=lambda w, d: {
        "text": "a red bicycle", "purpose": PURPOSE, "cameras": [d.camera_id]}), idor=True),
    ("POST", "/api/search/image"): Rule(frozenset({INV, S}), _post(
        "/api/search/image", files=lambda w, d: {"image": ("q.png", _png(), "image/png")},
        data=lambda w, d: {"purpose": PURPOSE, "cameras": [d.camera_id]}), idor=True),
    ("GET", "/api/frames/{frame_id}"): Rule(frozenset({INV, S}), _get("/api/frames/{frame_id}"),
                                            idor=True),
    ("GET", "/api/frames/{frame_id}/thumbnail"): Rule(
        frozenset({INV, S}), _get("/api/frames/{frame_id}/thumbnail"), idor=True),
    ("GET", "/api/segments/{segment_id}/video"): Rule(
        frozenset({INV, S}), _get("/api/segments/{segment_id}/video"), idor=True),
    ("GET", "/api/cases"): Rule(frozenset({INV, S, P}), _get("/api/cases")),
    ("POST", "/api/cases"): Rule(frozenset({INV, S}), _post("/api/cases", json=lambda w, d: {
        "number": f"NEW-{next(w.counter)}", "title": "t", "legal_basis": "b"})),
    ("GET", CASE): Rule(frozenset({INV, S, P}), _get(CASE), idor=True),
    ("POST", CASE + "/clips"): Rule(frozenset({INV, S}), _post(CASE + "/clips", json=_clip),
                                    idor=True),
    ("POST", CASE + "/shares"): Rule(frozenset({INV, S}), _post(
        CASE + "/shares", json=lambda w, d: {"username": "prosecutor"}), idor=True),
    ("GET", CASE + "/exports"): Rule(frozenset({INV, S, P}), _get(CASE + "/exports"),
                                     idor=True),
    ("POST", CASE + "/exports"): Rule(frozenset({INV, S}), _post(CASE + "/exports"), idor=True),
    ("POST", EXPORT + "/approve"): Rule(frozenset({S}), _post(EXPORT + "/approve"), idor=True),
    ("GET", EXPORT): Rule(frozenset({INV, S, P}), _get(EXPORT), idor=True),
    ("GET", EXPORT + "/download"): Rule(frozenset({INV, S, P}), _get(EXPORT + "/download"),
                                        idor=True),
    ("POST", CASE + "/transfers"): Rule(frozenset({INV, S}), _post(
        CASE + "/transfers", json=lambda w, d: {"recipient": "Прокуратура",
                                                "export_id": d.export_id}), idor=True),
    ("POST", CASE + "/receipts"): Rule(frozenset({P}), _post(
        CASE + "/receipts", files=lambda w, d: {"bundle": ("b.zip", w.bundle, "application/zip")}),
        idor=True),
    ("POST", "/api/verify"): Rule(frozenset({INV, S, P, AU}), _post(
        "/api/verify", files=lambda w, d: {"bundle": ("b.zip", w.bundle, "application/zip")})),
    ("GET", "/api/audit/events"): Rule(frozenset({AU}), _get("/api/audit/events")),
    ("POST", "/api/audit/verify"): Rule(frozenset({AU}), _post("/api/audit/verify")),
    ("GET", "/api/audit/checkpoints"): Rule(frozenset({AU}), _get("/api/audit/checkpoints")),
    ("GET", "/api/audit/export"): Rule(frozenset({AU}), _get("/api/audit/export?format=jsonl")),
    ("POST", "/api/plates/search"): Rule(frozenset({INV, S}), _post(
        "/api/plates/search", json=lambda w, d: {"plate": "AE*", "purpose": PURPOSE})),
    ("GET", "/api/plates/{plate}/journey"): Rule(
        frozenset({INV, S}), _get(f"/api/plates/AE1234KX/journey?purpose={PURPOSE}")),
    ("GET", "/api/plates/events"): Rule(frozenset({INV, S}), _get("/api/plates/events")),
    ("GET", "/api/plates/sightings/{sighting_id}/crop"): Rule(
        frozenset({INV, S}), lambda w, d: {
            "method": "GET", "url": f"/api/plates/sightings/{_sighting(w, d)}/crop"},
        idor=True),
    ("GET", "/api/plates/watchlist"): Rule(frozenset({A}), _get("/api/plates/watchlist")),
    ("POST", "/api/plates/watchlist"): Rule(frozenset({A}), _post(
        "/api/plates/watchlist", json=lambda w, d: {
            "plate": f"AA{next(w.counter) % 10000:04d}BB", "reason": "matrix",
            "expires_at": (utcnow() + timedelta(days=1)).isoformat()})),
    ("DELETE", "/api/plates/watchlist/{watch_id}"): Rule(frozenset({A}), lambda w, d: {
        "method": "DELETE", "url": f"/api/plates/watchlist/{_watch(w)}"}),
}


def _sighting(w: World, d: AgencyData) -> int:
    """A plate sighting on the agency's frame (made on first use), with a crop blob."""
    with Session(w.state.engine) as session:
        found = session.exec(select(PlateSighting.id).where(
            PlateSighting.best_frame_id == d.frame_id)).first()
        if found is not None:
            return found
        crop = w.state.derived.put_bytes(_png() + b"crop" + d.camera_id.encode())
        at = RECORDING_START + timedelta(seconds=1)
        row = PlateSighting(
            camera_id=d.camera_id, plate="AE1234KX", plate_format="national", confidence=0.9,
            votes=1, frames=1, first_seen_utc=at, last_seen_utc=at, first_frame_id=d.frame_id,
            last_frame_id=d.frame_id, best_frame_id=d.frame_id, segment_id=d.segment_id,
            offset_in_segment_s=1.0, day_phase="day", best_confidence=0.9,
            crop_sha256=crop.sha256, reader_key="matrix")
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def _watch(w: World) -> int:
    """A fresh watch-list entry for each request, so every delete has one to remove."""
    with Session(w.state.engine) as session:
        row = WatchlistEntry(plate=f"KA{next(w.counter) % 10000:04d}MM", reason="matrix",
                             expires_at=utcnow() + timedelta(days=1), added_by="matrix")
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id
def _redaction(w: World, d: AgencyData) -> int:
    """A proposed redaction of the agency's case clip (rows only: no detector runs)."""
    from storage.models.evidence import CaseClip
    from storage.models.redaction import Redaction

    with Session(w.state.engine) as session:
        clip = session.exec(select(CaseClip).where(CaseClip.case_id == d.case_id)).first()
        assert clip is not None and clip.id is not None
        row = Redaction(case_id=d.case_id, clip_id=clip.id, targets="faces,plates",
                        source_clip_sha256="0" * 64, width=160, height=90, fps="10",
                        frame_count=20, created_by="matrix")
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


def _disclosure(w: World, d: AgencyData) -> str:
    """A disclosure bundle's file name in the exports dir (its content is not read)."""
    with Session(w.state.engine) as session:
        case = session.get(Case, d.case_id)
        assert case is not None
        name = f"{case.number}-redacted-matrix.zip"
    w.state.settings.exports_dir.mkdir(parents=True, exist_ok=True)
    (w.state.settings.exports_dir / name).write_bytes(b"PK matrix")
    return name


def _one_redaction(suffix: str = "") -> Builder:
    return lambda w, d: {"method": "GET",
                         "url": f"/api/cases/{d.case_id}/redactions/{_redaction(w, d)}{suffix}"}


# Redaction: EXPORT-permission roles only. Bodies are refused after the access checks
# (an unknown target, a box outside the frame, a time past the clip) so no detector runs.
RULES.update({
    ("GET", CASE + "/redactions"): Rule(frozenset({INV, S}), _get(CASE + "/redactions"),
                                        idor=True),
    ("POST", CASE + "/redactions"): Rule(frozenset({INV, S}), _post(
        CASE + "/redactions", json=lambda w, d: {"clip_number": 1, "targets": "tattoos"}),
        idor=True),
    ("GET", CASE + "/redactions/{redaction_id}"): Rule(frozenset({INV, S}), _one_redaction(),
                                                       idor=True),
    ("GET", CASE + "/redactions/{redaction_id}/preview"): Rule(
        frozenset({INV, S}), _one_redaction("/preview?at_s=99"), idor=True),
    ("POST", CASE + "/redactions/{redaction_id}/decisions"): Rule(
        frozenset({INV, S}), lambda w, d: {
            "method": "POST",
            "url": f"/api/cases/{d.case_id}/redactions/{_redaction(w, d)}/decisions",
            "json": {"kind": "manual_box", "reason": "matrix", "box": {
                "x": 150, "y": 0, "w": 40, "h": 40, "start_s": 0, "end_s": 1}}}, idor=True),
    ("POST", CASE + "/redactions/{redaction_id}/approve"): Rule(
        frozenset({INV, S}), lambda w, d: {
            "method": "POST",
            "url": f"/api/cases/{d.case_id}/redactions/{_redaction(w, d)}/approve"},
        idor=True),
    ("POST", CASE + "/disclosures"): Rule(frozenset({INV, S}), _post(
        CASE + "/disclosures", json=lambda w, d: {"redact": "tattoos"}), idor=True),
    ("GET", CASE + "/disclosures/{name}"): Rule(frozenset({INV, S}), lambda w, d: {
        "method": "GET", "url": f"/api/cases/{d.case_id}/disclosures/{_disclosure(w, d)}"},
        idor=True),
})


PUBLIC = {("POST", "/api/auth/token"), ("POST", "/api/auth/login")}
ACTORS = {A: "admin", INV: "investigator", S: "supervisor", P: "prosecutor", AU: "auditor"}


def api_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {(method, route.path) for route in iter_route_contexts(app.routes)
            if (route.path or "").startswith("/api/") for method in route.methods or ()}


def test_every_route_is_classified(world: World) -> None:
    served = api_routes(world.app)
    assert served - RULES.keys() - PUBLIC == set(), "classify these routes in RULES"
    assert RULES.keys() - served == set(), "RULES names routes the app no longer serves"


def _send(world: World, user: User | None, request: Request) -> Any:
    with world.client(user) as client:
        return client.request(**request)


@pytest.mark.parametrize("key", sorted(RULES), ids=lambda k: f"{k[0]} {k[1]}")
def test_role_matrix(world: World, key: tuple[str, str]) -> None:
    rule = RULES[key]
    has_object = "{" in key[1]
    anonymous = _send(world, None, rule.build(world, world.police))
    assert anonymous.status_code == 401, anonymous.text
    for role, name in ACTORS.items():
        response = _send(world, world.users[name], rule.build(world, world.police))
        outcome = f"{role.value} {key}: {response.status_code} {response.text[:300]}"
        assert response.status_code < 500, outcome
        if role in rule.allowed:
            assert response.status_code not in (401, 403, 404), outcome
        elif has_object:
            assert response.status_code in (403, 404), outcome
        else:
            assert response.status_code == 403, outcome


@pytest.mark.parametrize("key", sorted(k for k, r in RULES.items() if r.idor),
                         ids=lambda k: f"{k[0]} {k[1]}")
def test_idor_with_another_agencys_ids(world: World, key: tuple[str, str]) -> None:
    """Police users replaying a request with the DSNS agency's ids get 404, never data."""
    rule = RULES[key]
    for role in sorted(rule.allowed - {A}):  # admins manage every camera by design
        response = _send(world, world.users[ACTORS[role]], rule.build(world, world.dsns))
        assert response.status_code == 404, f"{role.value} {key}: {response.text[:300]}"


def test_idor_by_similar_frame_and_mixed_ids(world: World) -> None:
    investigator = world.users["investigator"]
    police, dsns = world.police, world.dsns
    similar = _send(world, investigator, {"method": "POST", "url": "/api/search", "json": {
        "similar_to_frame_id": dsns.frame_id, "purpose": PURPOSE}})
    assert similar.status_code == 404
    foreign_export = _send(world, investigator, {
        "method": "GET", "url": f"/api/cases/{police.case_id}/exports/{dsns.export_id}"})
    assert foreign_export.status_code == 404
    foreign_clip = _send(world, investigator, {
        "method": "POST", "url": f"/api/cases/{police.case_id}/clips",
        "json": _clip(world, dsns)})
    assert foreign_clip.status_code == 404
    assert dsns.original_id != police.original_id


def _newest_events(world: World, after: int) -> list[AuditEvent]:
    with Session(world.state.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.seq > after)
                                 .order_by(AuditEvent.seq)).all())


def _head(world: World) -> int:
    with Session(world.state.engine) as session:
        return session.exec(select(func.max(AuditEvent.seq))).one() or 0


@pytest.mark.parametrize(("actor", "key", "action", "expected"), [
    ("investigator", ("POST", "/api/search"), "search",
     {"purpose": PURPOSE, "text": "a red bicycle", "results": 0}),
    ("investigator", ("POST", "/api/search/image"), "search", {"purpose": PURPOSE}),
    ("investigator", ("GET", "/api/frames/{frame_id}"), "view_frame", {"what": "details"}),
    ("investigator", ("GET", "/api/frames/{frame_id}/thumbnail"), "view_frame",
     {"what": "image"}),
    ("supervisor", ("GET", "/api/segments/{segment_id}/video"), "view_video", {}),
    ("investigator", ("POST", "/api/cases"), "case_change", {"change": "create"}),
    ("investigator", ("POST", CASE + "/clips"), "case_change", {"change": "add_clip"}),
    ("investigator", ("POST", CASE + "/exports"), "export", {"change": "request"}),
    ("prosecutor", ("GET", EXPORT + "/download"), "download", {}),
    ("prosecutor", ("POST", CASE + "/receipts"), "verify", {"change": "receipt", "ok": True}),
    ("auditor", ("POST", "/api/verify"), "verify", {"target": "bundle", "ok": True}),
    ("admin", ("POST", "/api/cameras"), "camera_change", {"change": "create"}),
    ("admin", ("POST", "/api/users"), "user_change", {"change": "create"}),
    ("admin", ("PATCH", "/api/users/{user_id}"), "user_change", {"role": "investigator"}),
    ("auditor", ("GET", "/api/audit/export"), "audit_export", {"format": "jsonl"}),
    ("investigator", ("GET", "/api/cases"), "case_read", {"what": "list"}),
    ("investigator", ("GET", CASE), "case_read", {"what": "detail"}),
    ("auditor", ("GET", "/api/audit/events"), "audit_read", {"what": "events"}),
    ("auditor", ("GET", "/api/audit/checkpoints"), "audit_read", {"what": "checkpoints"}),
])
def test_each_action_is_audited_in_its_transaction(
        world: World, actor: str, key: tuple[str, str], action: str,
        expected: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    # the world is shared: move the views' clock past the window of earlier tests' views
    later = utcnow() + media.VIEW_WINDOW
    monkeypatch.setattr(media, "utcnow", lambda: later)
    user, before = world.users[actor], _head(world)
    response = _send(world, user, RULES[key].build(world, world.police))
    assert response.status_code < 400, response.text
    [event] = [e for e in _newest_events(world, before) if e.action != "login"]
    assert (event.action, event.actor, event.agency, event.ip) == (
        action, user.username, user.agency, "unknown")  # TestClient's peer is no IP address
    assert expected.items() <= event.details.items()


def test_search_without_purpose_is_refused_and_not_run(world: World) -> None:
    before = _head(world)
    for purpose in (None, "", "  "):
        body = {"text": "a red bicycle", **({} if purpose is None else {"purpose": purpose})}
        response = _send(world, world.users["investigator"],
                         {"method": "POST", "url": "/api/search", "json": body})
        assert response.status_code == 422
        assert response.json()["detail"] == (
            "Every search must state its purpose: a case number or a reason, "
            "at least 3 characters.")
    image = _send(world, world.users["investigator"], {
        "method": "POST", "url": "/api/search/image",
        "files": {"image": ("q.png", _png(), "image/png")}})
    assert image.status_code == 422 and "purpose" in image.json()["detail"]
    assert _newest_events(world, before) == []


def test_later_video_ranges_are_not_separate_views(world: World) -> None:
    url = f"/api/segments/{world.police.segment_id}/video"
    first = _send(world, world.users["investigator"], {"method": "GET", "url": url})
    assert first.status_code == 200
    before = _head(world)
    for header in ("bytes=100-199", "bytes=0-", "bytes=-10"):
        response = _send(world, world.users["investigator"], {
            "method": "GET", "url": url, "headers": {"Range": header}})
        assert response.status_code == 206
    assert [e.action for e in _newest_events(world, before) if e.action != "login"] == []


def test_auditor_sees_an_intact_signed_chain_after_real_use(world: World) -> None:
    auditor = world.users["auditor"]
    _send(world, world.users["investigator"], RULES[("POST", "/api/search")].build(
        world, world.police))
    events = _send(world, auditor, {"method": "GET", "url": "/api/audit/events",
                                    "params": {"action": "search", "limit": 5}}).json()
    assert events["total"] >= 1 and events["items"][0]["details"]["purpose"] == PURPOSE
    report = _send(world, auditor, {"method": "POST", "url": "/api/audit/verify"}).json()
    assert report["ok"] is True, report
    assert report["checkpoints"] >= 1 and report["entries"] >= 10
    checkpoints = _send(world, auditor, {"method": "GET", "url": "/api/audit/checkpoints"})
    assert checkpoints.json()["checkpoints"][0]["entry_count"] == 10
    pdf = _send(world, auditor, {"method": "GET", "url": "/api/audit/export",
                                 "params": {"format": "pdf"}})
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:4] == b"%PDF"
    english = _send(world, auditor, {"method": "GET", "url": "/api/audit/export",
                                     "params": {"format": "pdf", "lang": "en"}})
    assert english.status_code == 200 and english.content != pdf.content
    french = _send(world, auditor, {"method": "GET", "url": "/api/audit/export",
                                    "params": {"format": "pdf", "lang": "fr"}})
    assert french.status_code == 422
    bad = _send(world, auditor, {"method": "GET", "url": "/api/audit/events",
                                 "params": {"from": "2026-11-25T10:00:00Z",
                                            "to": "2026-11-25T09:00:00Z"}})
    assert bad.status_code == 422
    assert bad.json()["detail"] == "The 'to' time must be after the 'from' time."
