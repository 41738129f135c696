"""A clip's redaction from proposal to a signed disclosure bundle that verifies, on
generated footage with real faces; and every refusal writes nothing."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader
from sqlmodel import Session, select

import evidence.redaction.detect as detect
from evidence.redaction.video import frames, video_facts
from evidence.report_text import UnsupportedLanguageError
from evidence.verify import PinnedFingerprint, verify_bundle
from search_api.state import AppState, build_state
from search_api.usecases import redaction as uc
from search_api.usecases.context import OperatorNotNamedError
from storage.blobstore import sha256_file
from storage.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from storage.models.evidence import CustodyEntry
from storage.models.redaction import Redaction, RedactionDecision
from storage.settings import Settings
from tests.evidence.redaction.world import RedactionWorld, build_redaction_world
from tests.evidence.test_pdf_signature import pdfsig
from tests.tsa_service import TsaService


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedactionWorld]:
    root = tmp_path_factory.mktemp("redaction-world")
    state = build_state(Settings(home=root / "oko-home", environment="test",
                                 key_passphrase="test-passphrase"))
    yield build_redaction_world(state, root)
    state.engine.dispose()


@pytest.fixture(scope="module")
def proposed(world: RedactionWorld) -> uc.RedactionPublic:
    with world.ctx() as ctx:
        return uc.propose_redaction(ctx, case_id=world.case_id, clip_number=1,
                                    run_in_worker=False)


def _rows(state: AppState) -> tuple[int, int, int]:
    with Session(state.engine) as session:
        return (len(session.exec(select(Redaction)).all()),
                len(session.exec(select(RedactionDecision)).all()),
                len(session.exec(select(CustodyEntry)).all()))


def test_every_frame_is_searched_and_both_faces_and_the_plate_are_tracked(
        proposed: uc.RedactionPublic) -> None:
    assert proposed.frame_count == 10 and proposed.status == "proposed"
    kinds = sorted(t.kind for t in proposed.tracks)
    assert kinds == ["face", "face", "plate"]
    for track in proposed.tracks:  # a box on every frame: no flashing into view
        assert (track.first_frame, track.last_frame) == (0, 9)
        assert len(track.boxes) == 10
    assert {d["kind"] for d in proposed.detectors} == {"face", "plate"}
    assert all(len(d["model_sha256"]) == 64 for d in proposed.detectors)


def test_review_refusals_write_nothing(world: RedactionWorld,
                                       proposed: uc.RedactionPublic) -> None:
    before = _rows(world.state)
    with world.ctx() as ctx, pytest.raises(InvalidInputError, match="needs a reason"):
        uc.exclude_track(ctx, case_id=world.case_id, redaction_id=proposed.id,
                         track_id="face-1", reason=" ")
    with world.ctx() as ctx, pytest.raises(InvalidInputError,
                                           match="outside the 480x272 frame"):
        uc.add_manual_box(ctx, case_id=world.case_id, redaction_id=proposed.id,
                          x=470, y=0, w=30, h=30, start_s=0, end_s=1, reason="tattoo")
    with world.ctx() as ctx, pytest.raises(InvalidInputError, match="no track 'face-9'"):
        uc.exclude_track(ctx, case_id=world.case_id, redaction_id=proposed.id,
                         track_id="face-9", reason="suspect")
    with world.ctx("prosecutor") as ctx, pytest.raises(PermissionDeniedError):
        uc.propose_redaction(ctx, case_id=world.case_id, clip_number=1)
    assert _rows(world.state) == before


def test_a_missing_or_corrupt_model_is_one_sentence_and_nothing_is_written(
        world: RedactionWorld, tmp_path: Path) -> None:
    before = _rows(world.state)
    corrupt = tmp_path / "centerface.onnx"
    corrupt.write_bytes(b"not an onnx model" * 100)
    with world.ctx() as ctx, pytest.raises(detect.RedactionModelError,
                                           match=r"cannot be loaded .* corrupt") as err:
        uc.propose_redaction(ctx, case_id=world.case_id, clip_number=1,
                             model_paths={"face": corrupt}, run_in_worker=False)
    assert "\n" not in str(err.value)
    with world.ctx() as ctx, pytest.raises(detect.RedactionModelError, match="is missing"):
        uc.propose_redaction(ctx, case_id=world.case_id, clip_number=1,
                             model_paths={"plate": tmp_path / "gone.onnx"},
                             run_in_worker=False)
    with world.ctx() as ctx, pytest.raises(detect.RedactionModelError, match="is missing"):
        # queued for the worker: a missing file is refused before anything is queued
        uc.propose_redaction(ctx, case_id=world.case_id, clip_number=1,
                             model_paths={"face": tmp_path / "gone.onnx"})
    assert _rows(world.state) == before


def test_the_disclosure_bundle_is_redacted_reviewed_signed_and_verifies(
        world: RedactionWorld, proposed: uc.RedactionPublic, tmp_path: Path) -> None:
    rid = proposed.id
    # no approved redaction yet: refused, nothing exported
    with world.ctx("investigator-police") as ctx, pytest.raises(
            ConflictError, match="has no approved redaction"):
        uc.export_disclosure(ctx, case_id=world.case_id, redact="faces,plates",
                             out_path=tmp_path / "early.zip")
    assert not list(tmp_path.iterdir())
    with world.ctx() as ctx:
        uc.exclude_track(ctx, case_id=world.case_id, redaction_id=rid, track_id="face-2",
                         reason="the suspect: court copy")
        uc.add_manual_box(ctx, case_id=world.case_id, redaction_id=rid, x=10, y=200, w=60,
                          h=40, start_s=0.0, end_s=0.5, reason="house number")
        preview = uc.preview_redaction(ctx, case_id=world.case_id, redaction_id=rid,
                                       at_s=0.3)
        assert preview[:2] == b"\xff\xd8"
        approved = uc.approve_redaction(ctx, case_id=world.case_id, redaction_id=rid)
    assert approved.status == "approved" and approved.approved_by
    assert [d.kind for d in approved.decisions] == ["exclude_track", "manual_box", "approve"]
    assert approved.decisions[0].reason == "the suspect: court copy"
    with world.ctx() as ctx, pytest.raises(ConflictError, match="takes no more decisions"):
        uc.exclude_track(ctx, case_id=world.case_id, redaction_id=rid, track_id="face-1",
                         reason="late")
    out = tmp_path / "disclosure.zip"
    with world.ctx() as ctx, pytest.raises(  # the custody entry names a person
            OperatorNotNamedError, match=r"^Exporting a disclosure copy is recorded"):
        uc.export_disclosure(ctx, case_id=world.case_id, redact="faces,plates",
                             out_path=out)
    assert not out.exists()
    with world.ctx("investigator-police") as ctx:
        result = uc.export_disclosure(ctx, case_id=world.case_id, redact="faces,plates",
                                      out_path=out)
    assert result.clips[0]["faces_masked"] == 1 and result.clips[0]["plates_masked"] == 1
    report = verify_bundle(out, PinnedFingerprint(_root_fingerprint(world)))
    assert report.ok, [c for c in report.checks if not c.passed]
    names = zipfile.ZipFile(out).namelist()
    top = names[0].split("/")[0]
    assert f"{top}/data/clips/clip-001-cam-7-redacted.mp4" in names
    assert not [n for n in names if "/originals/" in n]
    with zipfile.ZipFile(out) as archive:
        archive.extractall(tmp_path / "x")
    bag = tmp_path / "x" / top
    with Session(world.state.engine) as session:
        redaction = session.get(Redaction, rid)
        assert redaction is not None
        source_sha = redaction.source_clip_sha256
        original_path = world.state.originals.path_for(_original_sha(session))
    hashes = {sha256_file(p) for p in bag.rglob("*") if p.is_file()}
    assert source_sha not in hashes and sha256_file(original_path) not in hashes
    provenance = json.loads((bag / "data/redaction/clip-001-provenance.json").read_text())
    assert provenance["source_clip_sha256"] == source_sha
    assert [d["kind"] for d in provenance["decisions"]] == ["exclude_track", "manual_box",
                                                           "approve"]
    assert provenance["acquisition_entry_hash"]
    # how faces were found is on the record: change-gated, with its parameters and counts
    face_method = provenance["parameters"]["detection"]["face"]
    assert face_method["method"] == "change-gated" and face_method["tile_px"] == 16
    assert face_method["full_frame_passes"] >= 1
    assert face_method["scanned_frames"] == 10  # every frame of the clip
    boxes = json.loads((bag / "data/redaction/clip-001-boxes.json").read_text())
    assert len(boxes["frames"]) == 10 and all(boxes["frames"])
    # the masked face is gone from every frame, the excluded one (the suspect) is not
    clip = bag / "data/clips/clip-001-cam-7-redacted.mp4"
    redacted = list(frames(clip))
    sources = list(frames(world.state.derived.path_for(source_sha)))
    assert len(redacted) == len(sources) == 10
    face1 = next(t for t in approved.tracks if t.id == "face-1").boxes[4]
    face2 = next(t for t in approved.tracks if t.id == "face-2").boxes[4]
    for (_f, x, y, w, h, _s), kept in ((face1, False), (face2, True)):
        diff = np.abs(redacted[4][y:y + h, x:x + w].astype(int)
                      - sources[4][y:y + h, x:x + w]).mean()
        assert (diff < 6) == kept, (x, y, diff)
    text = "".join(page.extract_text() for page in PdfReader(bag / "data/report.pdf").pages)
    pages = PdfReader(bag / "data/report.pdf").pages
    assert all("ЗНЕОСОБЛЕНА КОПІЯ" in p.extract_text() for p in pages)
    assert "house number" in text and "1 трек(ів) облич приховано" in text  # uk default
    assert "Рішення перевірки" in text and "Знеособлений кліп" in text
    signed = pdfsig(bag / "data/report.pdf")  # PAdES-signed like the full export's report
    assert "- Signature Validation: Signature is Valid." in signed
    assert "- Total document signed" in signed
    with Session(world.state.engine) as session:
        entry = session.exec(select(CustodyEntry).where(CustodyEntry.action == "export")
                             .order_by(CustodyEntry.id.desc())).first()  # type: ignore[union-attr]
        assert entry is not None and entry.details["kind"] == "redacted"


def test_with_a_tsa_the_disclosure_bundle_is_timestamped_like_any_export(
        world: RedactionWorld, proposed: uc.RedactionPublic, running_tsa: TsaService,
        tmp_path: Path) -> None:
    with world.ctx() as ctx:  # approved by the test above, or here when run alone
        if uc.read_redaction(ctx, case_id=world.case_id,
                             redaction_id=proposed.id).status != "approved":
            uc.approve_redaction(ctx, case_id=world.case_id, redaction_id=proposed.id)
    plain = world.state.settings
    world.state.settings = plain.model_copy(update={
        "tsa_url": running_tsa.url, "tsa_ca_cert": running_tsa.ca_cert_path})
    try:
        out = tmp_path / "timestamped.zip"
        with world.ctx("investigator-police") as ctx:
            uc.export_disclosure(ctx, case_id=world.case_id, redact="faces", out_path=out)
    finally:
        world.state.settings = plain
    with zipfile.ZipFile(out) as archive:
        top = archive.namelist()[0].split("/")[0]
        bag_info = archive.read(f"{top}/bag-info.txt").decode()
        assert f"{top}/timestamp.tsr" in archive.namelist()
        archive.extractall(tmp_path / "x")
    assert f"Oko-Trusted-Time: TSA {running_tsa.url}" in bag_info
    checked = subprocess.run(
        ["openssl", "ts", "-verify", "-data", "signature.sig", "-in", "timestamp.tsr",
         "-CAfile", str(running_tsa.ca_cert_path)], cwd=tmp_path / "x" / top,
        capture_output=True, text=True, check=False)
    assert checked.returncode == 0 and "Verification: OK" in checked.stdout, checked.stderr
    report = verify_bundle(out, PinnedFingerprint(_root_fingerprint(world)))
    assert report.ok, [c for c in report.checks if not c.passed]


def test_a_user_of_another_agency_cannot_redact_or_export(world: RedactionWorld,
                                                          tmp_path: Path) -> None:
    from storage.models.access import Role, User

    with Session(world.state.engine) as session:
        session.add(User(username="sup-other", agency="other", role=Role.SUPERVISOR,
                         password_hash="!"))
        session.commit()
    before = _rows(world.state)
    with world.ctx("sup-other") as ctx, pytest.raises(NotFoundError):
        uc.export_disclosure(ctx, case_id=world.case_id, redact="faces",
                             out_path=tmp_path / "other.zip")
    with world.ctx("sup-other") as ctx, pytest.raises(NotFoundError):
        uc.propose_redaction(ctx, case_id=world.case_id, clip_number=1)
    assert _rows(world.state) == before and not list(tmp_path.iterdir())


def test_a_clip_without_faces_says_so_and_its_plate_is_still_masked(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("no-faces")
    state = build_state(Settings(home=root / "oko-home", environment="test",
                                 key_passphrase="test-passphrase"))
    try:
        plain = build_redaction_world(state, root, faces=False, number="KV-2026-015")
        with plain.ctx() as ctx:
            proposal = uc.propose_redaction(ctx, case_id=plain.case_id, clip_number=1,
                                            style="fill", mute_audio=True,
                                            run_in_worker=False)
            assert [t.kind for t in proposal.tracks] == ["plate"]
            uc.approve_redaction(ctx, case_id=plain.case_id, redaction_id=proposal.id)
        out = root / "plain.zip"
        with plain.ctx("investigator-police") as ctx:
            result = uc.export_disclosure(ctx, case_id=plain.case_id,
                                          redact="faces,plates", out_path=out)
        assert result.clips[0]["faces_found"] == 0
        assert result.clips[0]["plates_masked"] == 1
        with zipfile.ZipFile(out) as archive:
            archive.extractall(root / "x")
        bag = next((root / "x").iterdir())
        text = PdfReader(bag / "data/report.pdf").pages[1].extract_text()
        assert "облич не знайдено" in text
        clip = next((bag / "data/clips").iterdir())
        plate = next(t for t in proposal.tracks if t.kind == "plate").boxes[3]
        _f, x, y, w, h, _s = plate
        assert not list(frames(clip))[3][y + 2:y + h - 2, x + 2:x + w - 2].max() > 40
        # muted on request: recorded in the provenance, and the clip has no audio stream
        record = json.loads((bag / "data/redaction/clip-001-provenance.json").read_text())
        assert record["parameters"]["mute_audio"] is True
        assert not video_facts(clip).has_audio
        before = _rows(state)
        with plain.ctx("investigator-police") as ctx, pytest.raises(
                UnsupportedLanguageError, match=r"^The report language 'de' is not available"):
            uc.export_disclosure(ctx, case_id=plain.case_id, redact="plates",
                                 out_path=root / "de.zip", lang="de")
        assert _rows(state) == before and not (root / "de.zip").exists()
        english = root / "plain-en.zip"
        with plain.ctx("investigator-police") as ctx:
            uc.export_disclosure(ctx, case_id=plain.case_id, redact="faces,plates",
                                 out_path=english, lang="en")
        with zipfile.ZipFile(english) as archive:
            [report] = [n for n in archive.namelist() if n.endswith("data/report.pdf")]
            pdf = PdfReader(io.BytesIO(archive.read(report)))
        english_text = " ".join(page.extract_text() for page in pdf.pages)
        assert "no faces were found" in english_text and "ЗНЕОСОБЛЕНА КОПІЯ" in english_text
        assert "Review decisions" in english_text and "облич" not in english_text
    finally:
        state.engine.dispose()


def _original_sha(session: Session) -> str:
    from storage.models.media import Original

    original = session.exec(select(Original)).first()
    assert original is not None
    return original.sha256


def _root_fingerprint(world: RedactionWorld) -> str:
    signer = world.state.signer()
    return signer.root_fingerprint_sha256 or signer.fingerprint_sha256
