"""Redaction over the API and the CLI: the same use cases, the same refusals; one
proposal on generated footage with skimage faces serves the whole module."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from search_api.app import create_app
from search_api.deps import get_current_user
from search_api.state import build_state
from search_api.usecases import redaction as uc
from search_api.usecases.exports import run_export
from storage.models.access import User
from storage.models.redaction import Redaction, RedactionDecision
from storage.settings import Settings
from tests.evidence.redaction.world import RedactionWorld, build_redaction_world
from tests.search_api.access_helpers import oko_runner


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedactionWorld]:
    root = tmp_path_factory.mktemp("redaction-api")
    state = build_state(Settings(home=root / "oko-home", environment="test",
                                 key_passphrase="test-passphrase"))
    yield build_redaction_world(state, root)
    state.engine.dispose()


@pytest.fixture(scope="module")
def client(world: RedactionWorld) -> Iterator[TestClient]:
    app = create_app(world.state.settings, state=world.state)
    with Session(world.state.engine) as session:
        user = session.exec(select(User).where(User.username == "investigator-police")).one()
    app.dependency_overrides[get_current_user] = lambda: user
    with TestClient(app) as test_client:
        yield test_client


class RecordingQueue:
    """The job queue, recording what the API handed to the worker."""

    def __init__(self) -> None:
        self.redactions: list[int] = []
        self.exports: list[int] = []

    def enqueue_ingest(self, job_ids: object) -> None:
        raise AssertionError("no ingest here")

    def enqueue_export(self, job_id: int) -> None:
        self.exports.append(job_id)

    def enqueue_redaction(self, redaction_id: int) -> None:
        self.redactions.append(redaction_id)

    def enqueue_embed(self) -> None:
        raise AssertionError("no embedding here")


def _counts(world: RedactionWorld) -> tuple[int, int]:
    with Session(world.state.engine) as session:
        return (len(session.exec(select(Redaction)).all()),
                len(session.exec(select(RedactionDecision)).all()))


def test_propose_review_and_export_over_the_api(world: RedactionWorld,
                                                client: TestClient) -> None:
    base = f"/api/cases/{world.case_id}"
    queue = RecordingQueue()
    world.state.job_queue = queue
    proposed = client.post(f"{base}/redactions", json={"clip_number": 1})
    assert proposed.status_code == 202, proposed.text
    rid = proposed.json()["id"]
    assert proposed.json()["status"] == "queued" and queue.redactions == [rid]
    with world.ctx() as ctx:  # what the worker's task does with the queued id
        assert uc.run_redaction(ctx, redaction_id=rid)
        assert not uc.run_redaction(ctx, redaction_id=rid)  # a duplicate message: no-op
    polled = client.get(f"{base}/redactions/{rid}")
    assert polled.json()["status"] == "proposed", polled.text
    body = polled.json()
    assert sorted(t["kind"] for t in body["tracks"]) == ["face", "face", "plate"]
    rid = body["id"]
    before = _counts(world)
    no_reason = client.post(f"{base}/redactions/{rid}/decisions",
                            json={"kind": "exclude_track", "track_id": "face-1"})
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.json()["detail"]
    outside = client.post(f"{base}/redactions/{rid}/decisions", json={
        "kind": "manual_box", "reason": "tattoo",
        "box": {"x": 0, "y": 260, "w": 30, "h": 30, "start_s": 0, "end_s": 1}})
    assert outside.status_code == 422 and "outside the 480x272 frame" in outside.text
    assert _counts(world) == before
    excluded = client.post(f"{base}/redactions/{rid}/decisions", json={
        "kind": "exclude_track", "track_id": "face-2", "reason": "the suspect"})
    assert excluded.status_code == 201
    assert [t["excluded"] for t in excluded.json()["tracks"] if t["id"] == "face-2"] == [True]
    preview = client.get(f"{base}/redactions/{rid}/preview", params={"at_s": 0.5})
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"
    assert client.post(f"{base}/redactions/{rid}/approve").json()["status"] == "approved"
    exported = client.post(f"{base}/disclosures", json={"redact": "faces,plates"})
    assert exported.status_code == 202, exported.text
    job = exported.json()
    assert (job["status"], job["redact"]) == ("queued", "faces,plates")
    assert queue.exports == [job["id"]]
    with world.ctx("investigator-police") as ctx:  # what the worker's export task does
        assert run_export(ctx, export_id=job["id"]) is not None
    done = client.get(f"{base}/exports/{job['id']}").json()
    assert done["status"] == "done", done
    download = client.get(f"{base}/exports/{job['id']}/download")
    assert download.status_code == 200, (download.status_code, download.text[:300])
    assert done["bundle_sha256"] == __import__("hashlib").sha256(download.content).hexdigest()
    name = f"{world.case_number}-redacted-{job['id']}.zip"
    assert client.get(f"{base}/disclosures/{name}").content == download.content
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = archive.namelist()
    assert any(n.endswith("redaction/clip-001.boxes.json") or "boxes" in n for n in names)
    assert not any(n.endswith("original.mp4") for n in names)
    assert client.get(f"{base}/disclosures/OTHER-redacted-x.zip").status_code == 404


def test_the_cli_refuses_what_the_api_refuses(world: RedactionWorld,
                                              monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    oko = oko_runner(world.state.settings, monkeypatch)
    with Session(world.state.engine) as session:
        rid = session.exec(select(Redaction.id)).first()
    before = _counts(world)
    refused = oko("redact", "exclude", world.case_number, str(rid), "face-1")
    assert refused.code != 0 and "Reviewing" not in refused.out
    assert "approved; it takes no more decisions" in refused.err or "needs a reason" in \
        refused.err, refused.err
    prosecutor = oko("--as", "prosecutor", "redact", "export", world.case_number,
                     "--out", str(tmp_path / "p.zip"))
    assert prosecutor.code != 0 and not (tmp_path / "p.zip").exists()
    bad = oko("redact", "export", world.case_number, "--redact", "tattoos", "--out",
              str(tmp_path / "t.zip"))
    assert bad.code == 2 and "faces, plates" in bad.err
    assert _counts(world) == before
    shown = oko("redact", "show", world.case_number, str(rid))
    assert shown.code == 0 and "face-2" in shown.out and "EXCLUDED" in shown.out
    out = tmp_path / "cli.zip"
    unnamed = oko("redact", "export", world.case_number, "--out", str(out))
    assert unnamed.code == 2 and "names a person" in unnamed.err and not out.exists()
    written = oko("--as", "investigator-police", "redact", "export", world.case_number,
                  "--out", str(out))
    assert written.code == 0, written.err
    assert "1 face track(s) masked, 1 plate track(s) masked" in written.out
    assert zipfile.ZipFile(out).testzip() is None
