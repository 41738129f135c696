"""Export: deterministic clips and stills, the PDF's content, size policy, failures."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pypdf
import pytest
from sqlmodel import select

from evidence.bundle import evidence_digest, hash_payload
from evidence.cases import create_case
from evidence.exports import export_case
from evidence.report_text import report_text
from evidence.verify import verify_bundle
from indexer.transcode import viewing_copy
from storage.errors import InvalidInputError
from storage.models.evidence import Case, CustodyEntry
from tests.evidence.conftest import CASE_TITLE, EvidenceWorld

BAG = "oko-KV-2026-001"


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {i.filename: archive.read(i) for i in archive.infolist()}


def test_reexport_gives_byte_identical_clips_and_stills(world: EvidenceWorld,
                                                        tmp_path: Path) -> None:
    first = _members(world.export(tmp_path / "a.zip").bundle_path)
    second = _members(world.export(tmp_path / "b.zip").bundle_path)
    assert first.keys() == second.keys()
    media = [n for n in first if "/data/clips/" in n or "/data/stills/" in n
             or "/data/originals/" in n]
    assert len(media) == 5
    for name in media:
        assert first[name] == second[name], name
    differing = {n.removeprefix(f"{BAG}/") for n in first if first[n] != second[n]}
    assert differing <= {"data/custody.jsonl", "data/provenance.jsonld", "data/report.pdf",
                         "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt",
                         "signature.sig"}


def test_clip_span_is_widened_to_keyframes_and_recorded(bundle_zip: Path) -> None:
    members = _members(bundle_zip)
    custody = [json.loads(line) for line in
               members[f"{BAG}/data/custody.jsonl"].decode().splitlines()]
    assert [r["action"] for r in custody] == ["acquisition", "clip", "clip", "export"]
    provenance = json.loads(members[f"{BAG}/data/provenance.jsonld"])
    derivation = next(n for n in provenance["@graph"]
                      if n["@id"].startswith("kb:derivation-clip-"))
    assert derivation["oko:requestedStartUtc"] == "2026-11-24T10:00:01.500000Z"
    assert derivation["oko:actualStartUtc"] == "2026-11-24T10:00:01.000000Z"
    assert derivation["oko:requestedEndUtc"] == "2026-11-24T10:00:03.200000Z"
    assert derivation["oko:actualEndUtc"] == "2026-11-24T10:00:04.000000Z"
    assert "-c copy" in derivation["oko:command"]
    assert derivation["uco-action:instrument"]["uco-core:name"] == "ffmpeg"


def test_pdf_carries_hashes_cyrillic_and_footer(bundle_zip: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle_zip) as archive:
        archive.extractall(tmp_path)
    bag = tmp_path / BAG
    reader = pypdf.PdfReader(bag / "data" / "report.pdf")
    pages = [page.extract_text() for page in reader.pages]
    text = "\n".join(pages)
    manifest = dict(reversed(line.split("  ", 1)) for line in
                    (bag / "manifest-sha256.txt").read_text().splitlines())
    digest = evidence_digest(hash_payload(bag, exclude=frozenset({"data/report.pdf"})))
    assert CASE_TITLE in text and "Ухвала слідчого судді" in text and "Хрещатик" in text
    assert manifest["data/clips/clip-001-cam-1.mp4"] in text
    assert manifest["data/clips/clip-002-cam-1.mp4"] in text
    lead = report_text("uk").t("lead.statement")  # Ukrainian unless asked otherwise
    assert " ".join(lead.split()[:8]) in " ".join(text.split())
    assert "person with a red bicycle" in text
    for number, page_text in enumerate(pages, start=1):
        assert f"сторінка {number} з {len(pages)}" in page_text
        assert digest in page_text
    assert "UTC+02:00" in text  # Kyiv local time with its offset
    fingerprint = (bag / "bag-info.txt").read_text().split("Oko-Signer-Fingerprint-SHA256: ")[1]
    assert fingerprint.split()[0] in text


def test_original_over_the_size_limit_is_carried_by_hash(world: EvidenceWorld,
                                                         tmp_path: Path) -> None:
    world.state.settings.full_original_max_bytes = 10
    result = world.export(tmp_path / "small.zip")
    names = _members(result.bundle_path)
    hashed = [n for n in names if "/data/originals/" in n]
    assert hashed == [f"{BAG}/data/originals/{world.original.sha256}.sha256"]
    assert names[hashed[0]].decode().startswith(world.original.sha256 + "  ")
    assert verify_bundle(result.bundle_path).intact


def test_export_of_empty_case_fails_cleanly(world: EvidenceWorld, tmp_path: Path) -> None:
    out = tmp_path / "empty.zip"
    with world.session() as session:
        case = create_case(session, number="EMPTY-1", title="t", legal_basis="b",
                           investigator=world.investigator)
        session.commit()
        entries_before = len(session.exec(select(CustodyEntry)).all())
        with pytest.raises(InvalidInputError, match=r"Case EMPTY-1 has no clips to export\."):
            export_case(session, case=case, exporter="x", signer=world.signer,
                        originals=world.state.originals, derived=world.state.derived,
                        tmp_dir=world.state.settings.tmp_dir, out_path=out,
                        transcoder=viewing_copy,
                        organisation="o", full_original_max_bytes=10**9)
        session.rollback()
        assert len(session.exec(select(CustodyEntry)).all()) == entries_before
    assert not out.exists()
    assert list(world.state.settings.tmp_dir.glob("bundle-*")) == []


def test_failed_export_leaves_no_bundle_or_custody(world: EvidenceWorld, tmp_path: Path) -> None:
    world.state.originals.path_for(world.original.sha256).chmod(0o644)
    world.state.originals.path_for(world.original.sha256).unlink()
    out = tmp_path / "broken.zip"
    with world.session() as session:
        case = session.exec(select(Case)).one()
        entries_before = len(session.exec(select(CustodyEntry)).all())
        with pytest.raises(Exception, match="missing from the store"):
            export_case(session, case=case, exporter="x", signer=world.signer,
                        originals=world.state.originals, derived=world.state.derived,
                        tmp_dir=world.state.settings.tmp_dir, out_path=out,
                        transcoder=viewing_copy,
                        organisation="o", full_original_max_bytes=10**9)
        session.rollback()
        assert len(session.exec(select(CustodyEntry)).all()) == entries_before
    assert not out.exists() and list(tmp_path.glob(".broken.zip-*")) == []
    assert list(world.state.settings.tmp_dir.glob("bundle-*")) == []
