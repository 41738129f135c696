"""Provenance from the server (issue 9, item 4), on a real indexed corpus.

A clip taken from a search moment names the audited search (``search_id``) and the
moment's frame; the server copies query, model, weights hash, score, k and time from its
own audit entry into the clip, its custody entry, provenance.jsonld and the PDF. Client
provenance is refused, and so are another user's search and a frame it did not return.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pypdf
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, func, select

from evidence.keys import ensure_signing_identity
from search_api.deps import get_current_user
from search_api.state import AppState
from search_api.tasks.evidence import export_case_task
from search_api.usecases.cases import CLIENT_PROVENANCE_REFUSED
from storage.custody_hash import format_time
from storage.models.access import AuditEvent, Role, User
from storage.models.evidence import CaseClip, CustodyEntry
from storage.models.media import Frame, Original
from tests.search_api.access_helpers import oko_runner
from tests.search_corpus import SearchCorpus, copy_corpus

PURPOSE = "KV-1: hit and run"
Switch = Callable[[str], TestClient]


@pytest.fixture
def state(search_corpus: SearchCorpus, tmp_path: Path) -> Iterator[AppState]:
    """A private copy of the indexed corpus with its own keys (for signing bundles)."""
    copy = copy_corpus(search_corpus, tmp_path / "oko-home")
    keys = copy.settings.keys_dir
    shared = keys.resolve()
    keys.unlink()
    shutil.copytree(shared, keys)
    ensure_signing_identity(keys_dir=keys, organisation=copy.settings.organisation,
                            passphrase=copy.settings.key_passphrase)
    yield copy
    copy.engine.dispose()


@pytest.fixture
def as_user(client_as: Callable[..., TestClient], app: FastAPI, state: AppState) -> Switch:
    """``as_user("ina")``: the police investigator of that name (made on first use)."""
    clients: dict[str, TestClient] = {}

    def switch(name: str) -> TestClient:
        if name not in clients:
            clients[name] = client_as(Role.INVESTIGATOR, agency="police", username=name)
        with Session(state.engine, expire_on_commit=False) as session:
            user = session.exec(select(User).where(User.username == name)).one()
        app.dependency_overrides[get_current_user] = lambda: user
        return clients[name]

    return switch


def _search(client: TestClient, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/search", json={"text": "red car at night",
                                                "purpose": PURPOSE, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["moments"] and isinstance(body["search_id"], int)
    return body


def _span_around(state: AppState, frame_id: int) -> dict[str, str]:
    """A clip span of the frame's camera that holds the frame, inside its original."""
    with Session(state.engine) as session:
        frame = session.get(Frame, frame_id)
        assert frame is not None
        original = session.get(Original, frame.original_id)
        assert original is not None
        start_of = original.recording_start_utc
        end_of = start_of + timedelta(seconds=original.duration_s)
        at = frame.captured_at_utc
        start = max(start_of, at - timedelta(seconds=1))
        end = min(end_of, at + timedelta(seconds=1))
        return {"camera_id": frame.camera_id, "start_utc": start.isoformat(),
                "end_utc": end.isoformat()}


def _new_case(client: TestClient, number: str = "KV-1") -> int:
    response = client.post("/api/cases", json={"number": number, "title": "ДТП",
                                               "legal_basis": "ст. 286 КК України"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _written(state: AppState) -> tuple[int, int, int]:
    """Clips, custody entries and add_clip audit entries: what adding a clip writes."""
    with Session(state.engine) as session:
        clips = session.exec(select(func.count()).select_from(CaseClip)).one()
        custody = session.exec(select(func.count()).select_from(CustodyEntry)).one()
        added = [e for e in session.exec(select(AuditEvent).where(
            AuditEvent.action == "case_change")).all() if e.details.get("change") == "add_clip"]
        return int(clips), int(custody), len(added)


def _audit_entry(state: AppState, seq: int) -> AuditEvent:
    with Session(state.engine) as session:
        entry = session.get(AuditEvent, seq)
        assert entry is not None
        return entry


def test_a_search_clip_carries_the_servers_record_into_the_bundle_and_pdf(
        as_user: Switch, state: AppState) -> None:
    ina = as_user("ina")
    case_id = _new_case(ina)
    found = _search(ina, cameras=["CAM-001"])
    moment = found["moments"][0]
    entry = _audit_entry(state, found["search_id"])
    assert entry.details["moments"][0] == {"frame_id": moment["best_frame_id"],
                                           "camera_id": "CAM-001", "score": moment["score"]}
    span = _span_around(state, moment["best_frame_id"])
    added = ina.post(f"/api/cases/{case_id}/clips", json={
        **span, "note": "червоне авто", "search_id": found["search_id"],
        "frame_id": moment["best_frame_id"]})
    assert added.status_code == 201, added.text
    clip = added.json()
    prov = found["provenance"]
    assert clip["source"] == "search"
    assert clip["origin"] == f"from search {found['search_id']}, frame {moment['best_frame_id']}"
    assert clip["provenance"] == {
        "search_id": found["search_id"], "search_entry_hash": entry.entry_hash,
        "searched_at": format_time(entry.occurred_at), "searched_by": "ina",
        "purpose": PURPOSE, "query": "red car at night", "text": "red car at night",
        "image_sha256": None, "model": prov["preset"], "weights_sha256": prov["weights_sha256"],
        "k": prov["k"], "frame_id": moment["best_frame_id"],
        "frame_utc": format_time(datetime.fromisoformat(
            moment["best_frame_utc"].replace("Z", "+00:00"))),
        "score": moment["score"]}
    by_hand = ina.post(f"/api/cases/{case_id}/clips", json={**span, "note": "вручну"})
    assert by_hand.status_code == 201 and by_hand.json()["origin"] == "added by hand"

    job = ina.post(f"/api/cases/{case_id}/exports").json()
    export_case_task(job["id"])
    download = ina.get(f"/api/cases/{case_id}/exports/{job['id']}/download")
    assert download.status_code == 200, download.text
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        files = {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()
                 if not name.endswith("/")}
    custody = [json.loads(line) for line in files["data/custody.jsonl"].splitlines()]
    clip_entries = [e["details"] for e in custody if e["action"] == "clip"]
    assert [(d["origin"], d["provenance"]) for d in clip_entries] == [
        (clip["origin"], clip["provenance"]), ("added by hand", {})]
    graph = json.loads(files["data/provenance.jsonld"])["@graph"]
    searched = [n["oko:searchProvenance"] for n in graph if n.get("oko:searchProvenance")]
    assert searched == [clip["provenance"]]
    pdf = pypdf.PdfReader(io.BytesIO(files["data/report.pdf"]))
    text = " ".join(" ".join(page.extract_text().split()) for page in pdf.pages)
    assert "red car at night" in text and prov["preset"] in text
    assert f"Кадрів у ранжуванні (k) {prov['k']}" in text and str(moment["score"]) in text
    assert "додано вручну" in text and "з пошуку «red car at night»" in text


@pytest.mark.parametrize("claimed", [
    {"search_provenance": {"query": "red bicycle", "model": "ViT-L-14",
                           "weights_sha256": "ab" * 32, "score": 0.99}},
    {"score": 0.99},
    {"provenance": {"query": "a CLIP match that never happened"}},
    {"weights_sha256": "ab" * 32, "model": "ViT-L-14"},
])
def test_fabricated_provenance_is_refused_and_nothing_is_written(
        as_user: Switch, state: AppState, claimed: dict[str, Any]) -> None:
    ina = as_user("ina")
    case_id = _new_case(ina)
    found = _search(ina, cameras=["CAM-001"])
    frame_id = found["moments"][0]["best_frame_id"]
    before = _written(state)
    response = ina.post(f"/api/cases/{case_id}/clips", json={
        **_span_around(state, frame_id), "search_id": found["search_id"],
        "frame_id": frame_id, **claimed})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == CLIENT_PROVENANCE_REFUSED
    assert response.json()["code"] == "client_provenance_refused"
    assert _written(state) == before


def test_an_unknown_field_is_refused_too(as_user: Switch, state: AppState) -> None:
    ina = as_user("ina")
    case_id = _new_case(ina)
    before = _written(state)
    response = ina.post(f"/api/cases/{case_id}/clips", json={
        "camera_id": "CAM-001", "start_utc": "2026-01-25T19:00:01Z",
        "end_utc": "2026-01-25T19:00:02Z", "confidence": "high"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    assert _written(state) == before


def test_another_users_search_and_entries_that_are_no_search_are_refused_alike(
        as_user: Switch, state: AppState) -> None:
    theirs = _search(as_user("olha"), cameras=["CAM-001"])
    frame_id = theirs["moments"][0]["best_frame_id"]
    ina = as_user("ina")
    case_id = _new_case(ina)
    with Session(state.engine) as session:  # ina's own entry that is no search
        not_a_search = session.exec(select(func.max(AuditEvent.seq))).one()
    before = _written(state)
    for search_id in (theirs["search_id"], not_a_search, 10**9):
        response = ina.post(f"/api/cases/{case_id}/clips", json={
            **_span_around(state, frame_id), "search_id": search_id, "frame_id": frame_id})
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == f"Search {search_id} is not a search of yours."
        assert response.json()["code"] == "search_not_found"
    assert _written(state) == before


def test_a_frame_the_search_did_not_return_for_this_clip_is_refused(
        as_user: Switch, state: AppState) -> None:
    ina = as_user("ina")
    case_id = _new_case(ina)
    found = _search(ina)  # both cameras
    sid = found["search_id"]
    best = {m["best_frame_id"] for m in found["moments"]}
    by_camera = {m["camera_id"]: m["best_frame_id"] for m in found["moments"]}
    assert {"CAM-001", "CAM-002"} <= by_camera.keys()
    with Session(state.engine) as session:
        unreturned = session.exec(select(Frame.id).where(
            Frame.camera_id == "CAM-001", col(Frame.id).not_in(best))).first()
    assert unreturned is not None
    cam1 = by_camera["CAM-001"]
    span = _span_around(state, cam1)
    before = _written(state)
    cases = [
        ({**_span_around(state, unreturned), "frame_id": unreturned},
         f"Frame {unreturned} is not among the moments search {sid} returned (name a "
         "moment's best_frame_id)."),
        ({**span, "frame_id": by_camera["CAM-002"]},
         f"Frame {by_camera['CAM-002']} of search {sid} is not from camera 'CAM-001'."),
        ({**span, "start_utc": span["end_utc"], "frame_id": cam1,
          "end_utc": (datetime.fromisoformat(span["end_utc"]) + timedelta(seconds=1))
          .isoformat()}, None),
    ]
    for body, sentence in cases:
        response = ina.post(f"/api/cases/{case_id}/clips", json={**body, "search_id": sid})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail == sentence if sentence else detail.startswith(
            f"The clip does not contain frame {cam1} (")
    half = ina.post(f"/api/cases/{case_id}/clips", json={**span, "search_id": sid})
    assert half.status_code == 422
    assert half.json()["detail"] == ("A clip from a search names both the search (search_id) "
                                     "and the moment's frame (frame_id).")
    assert _written(state) == before


def test_the_cli_adds_a_search_moment_by_its_search_and_frame(
        as_user: Switch, state: AppState, search_corpus: SearchCorpus,
        monkeypatch: pytest.MonkeyPatch) -> None:
    as_user("ina")
    # the CLI's query embedder is the corpus's random test model (no weights installed)
    monkeypatch.setattr(AppState, "query_embedder", lambda _state: search_corpus.embedder)
    oko = oko_runner(state.settings, monkeypatch)
    searched = oko("--as", "ina", "search", "red car at night", "--camera", "CAM-001",
                   "--purpose", PURPOSE, "--json")
    assert searched.code == 0, searched.err
    found = json.loads(searched.out)
    frame_id = found["moments"][0]["best_frame_id"]
    span = _span_around(state, frame_id)
    assert oko("--as", "ina", "case", "create", "KV-3", "--title", "t",
               "--legal-basis", "b").code == 0
    added = oko("--as", "ina", "case", "add-clip", "KV-3", "--camera", "CAM-001",
                "--start", span["start_utc"], "--end", span["end_utc"],
                "--search", str(found["search_id"]), "--frame", str(frame_id))
    assert added.code == 0, added.err
    assert f"(from search {found['search_id']}, frame {frame_id})" in added.out
    claimed = oko("--as", "ina", "case", "add-clip", "KV-3", "--camera", "CAM-001",
                  "--start", span["start_utc"], "--end", span["end_utc"],
                  "--search-provenance", "moment.json")
    assert claimed.code == 2  # the option is gone: provenance is never taken from a file
    with Session(state.engine) as session:
        [clip] = session.exec(select(CaseClip)).all()
        assert (clip.provenance["search_id"], clip.provenance["frame_id"]) == (
            found["search_id"], frame_id)
