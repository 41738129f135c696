"""Export a case as a signed BagIt bundle: the one domain function behind CLI and task.

``export_case`` cuts every clip from its original, writes stills, originals (or their
hash), the custody log, the CASE/UCO provenance and the PDF report into a temp bag under
the data dir, signs, zips deterministically to a hidden ``.part`` next to the bundle,
appends the ``export`` custody entry, has it committed and only then renames the zip
into place.

The bundle carries its own export entry (the last line of ``custody.jsonl``, the export
time in the PDF and ``bag-info.txt``), yet none of the slow work may run inside the write
transaction: on SQLite the first write takes the whole database's write lock until the
caller commits, so sign-ins, searches (their audit rows) and ingest would wait behind the
PDF and the zip, and fail after the busy timeout. So the export works in three steps:

1. *Plan* (reads only): read the case chain's head and compute the entry that appending
   now would give: ``seq`` = last seq + 1, ``prev_hash`` = last hash, the time, the
   details and so the entry hash (``storage.custody_hash``, the same fields and bytes
   ``append_custody_entry`` hashes).
2. *Write the bundle* (reads only): the custody log ends with the planned entry; the
   provenance, the PDF and the tag files use its time; sign and zip next to
   ``out_path``. Then read the head again: if another entry joined the chain meanwhile
   (a clip added, a transfer recorded), plan again and rewrite the custody-dependent
   files, at most ``EXPORT_ATTEMPTS`` times.
3. *Append* (the short write): ``append_custody_entry`` with the planned time. It locks
   the head as always, so the chain can never fork; if its entry is not the planned one
   (the head moved in the instant between the last check and the lock), the export fails
   with ``ConflictError`` and the caller rolls back. Otherwise the caller's ``commit``
   makes the entry durable (with, for a job, the bundle's path and hash on its row).
4. *Publish*: only now is the ``.part`` renamed to the bundle's name. A crash before the
   commit leaves a ``.part`` and no entry: it is deleted once its process is gone
   (``part_path`` names the process), and a retry plans the same sequence number again,
   so no two bundles ever carry one. A crash after the commit leaves the entry and the
   ``.part``: ``publish_bundle`` finishes it, after checking the hash recorded. A bundle
   under its final name therefore always has its committed custody entry.

The entry's ``recorded_at`` is thus when the bundle's custody log was written, not when
the transaction commits, a few seconds earlier than before for large bundles.
"""

from __future__ import annotations

import glob
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from evidence.bundle import (
    REPORT_PATH,
    TRUSTED_TIME_FIELD,
    evidence_digest,
    finish_bag,
    hash_payload,
    zip_bag,
)
from evidence.cases import case_clips
from evidence.clips import CutResult, StillResult, cut_clip, still_frame
from evidence.keys import Signer
from evidence.pdf_signing import sign_bundle_report
from evidence.provenance import build_provenance, write_jsonl
from evidence.report import ClipReport, ReportData, build_report
from evidence.report_people import clip_added, custody_people
from evidence.report_text import DEFAULT_LANGUAGE, check_language
from evidence.timestamp import TimestampAuthority, TrustedTime
from evidence.viewing_copy import (
    ViewingCopy,
    ViewingTranscoder,
    make_viewing_copy,
    provenance_facts,
    report_note,
)
from storage.atomic import OWNER_PREFIX, fsync_dir, owner_tag
from storage.blobstore import BlobStore, sha256_file
from storage.custody import (
    GENESIS_HASH,
    append_custody_entry,
    chain_entries,
    chain_key,
    compute_entry_hash,
    entry_record,
    format_time,
)
from storage.errors import ConflictError, InvalidInputError, NotFoundError, StorageError
from storage.gaps import gaps_near
from storage.models.access import User
from storage.models.evidence import Case, CaseClip, CustodyChainHead
from storage.models.media import Camera, Original
from storage.types import utcnow

OKO_VERSION = "0.1.0"
Progress = Callable[[str, float], None]
PART_SUFFIX = ".part"


class BundleNotPublishedError(StorageError):
    """The export's custody entry is committed but its zip is not under its final name."""


@dataclass(frozen=True)
class ExportResult:
    bundle_path: Path
    bundle_sha256: str
    tag_manifest_sha256: str
    evidence_digest: str
    size_bytes: int
    clip_sha256s: list[str]


@dataclass(frozen=True)
class _ClipArtefacts:
    clip: CaseClip
    original: Original
    camera: Camera
    cut: CutResult
    still: StillResult
    clip_path: str
    still_path: str
    # recording gaps within ten minutes of the clip: what was not recorded, for the court
    gaps: list[dict[str, object]] = field(default_factory=list)
    # an H.264/AAC MP4 beside a clip an office PC may not play; None for H.264 in MP4
    viewing: ViewingCopy | None = None


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "file"


def verify_instructions(*, fingerprint: str, top_dir: str,
                        root_fingerprint: str | None = None,
                        tsa_url: str | None = None) -> str:
    """VERIFY.txt: how to check the bundle with sha256sum and openssl alone, then with
    ``oko-verify``. ``root_fingerprint`` is the evidence authority's root (None for a
    self-signed signing certificate of old: the signer itself is then compared)."""
    if root_fingerprint is None:
        who = f"""4. The signer is who you expect: compare this with the fingerprint you received
   out of band from the exporting organisation:
     openssl x509 -in signer.pem -noout -fingerprint -sha256
   Expected at export time: {fingerprint}
"""
        pin = fingerprint
    else:
        who = f"""4. The root is the exporting organisation's evidence authority. signer.pem holds
   the signing certificate first, then the root; write the root out and compare
   its fingerprint with the one you received out of band from the organisation
   (or use the root.pem they gave you in its place):
     awk '/-BEGIN CERTIFICATE-/{{n++}} n>1' signer.pem > ../root.pem
     openssl x509 -in ../root.pem -noout -fingerprint -sha256
   Expected at export time: {root_fingerprint}
5. The signing certificate ({fingerprint})
   was issued by that root (openssl checks the first certificate of signer.pem):
     openssl verify -CAfile ../root.pem signer.pem
   openssl checks validity now. For a bundle whose certificate has expired since,
   check at the signing time in bag-info.txt (Oko-Signed-At; GNU date):
     openssl verify -CAfile ../root.pem -attime \\
         "$(date -u -d "$(sed -n 's/^Oko-Signed-At: //p' bag-info.txt)" +%s)" signer.pem
   With the organisation's CRL (evidence-authority.crl in their trust store):
     openssl verify -crl_check -CRLfile ../evidence-authority.crl -CAfile ../root.pem signer.pem
   openssl calls a revoked certificate revoked whenever it signed; oko-verify
   compares the revocation time with Oko-Signed-At.
"""
        pin = root_fingerprint
    digest_step = "5" if root_fingerprint is None else "6"
    return f"""How to verify this evidence bundle with standard tools
=======================================================

Unzip the bundle and change into the bag directory ({top_dir}/). Helper files go
one level up (../), so the bag stays exactly as it was signed. Then:

1. Every payload file is unchanged (prints OK for each file):
     sha256sum -c manifest-sha256.txt
2. The tag files (manifest-sha256.txt, bag-info.txt, signer.pem ...) are unchanged:
     sha256sum -c tagmanifest-sha256.txt
3. The signature over tagmanifest-sha256.txt is valid:
     openssl x509 -in signer.pem -pubkey -noout > ../signer-pubkey.pem
     openssl pkeyutl -verify -pubin -inkey ../signer-pubkey.pem -rawin \\
         -in tagmanifest-sha256.txt -sigfile signature.sig
{who}{digest_step}. The evidence digest printed in the footer of data/report.pdf is:
     grep -v '  data/report.pdf$' manifest-sha256.txt | sha256sum
{timestamp_step(tsa_url, int(digest_step) + 1)}
All of the above plus the custody chain and provenance, with the stand-alone Oko
verifier (Python 3.11+ and the cryptography package; no Oko installation needed):
     pip install ./verifier          (the verifier/ folder of the Oko source)
     oko-verify BUNDLE.zip --fingerprint {pin}
It prints VALID (exit 0), INTACT, SIGNER NOT TRUSTED (exit 3) or INVALID (exit 1).
On an Oko installation, `oko verify` runs the same checks.
"""


def timestamp_step(tsa_url: str | None, number: int) -> str:
    """VERIFY.txt's step for ``timestamp.tsr`` (empty without a TSA)."""
    if tsa_url is None:
        return ""
    return f"""{number}. The trusted time: timestamp.tsr is an RFC 3161 timestamp from the TSA at
   {tsa_url} over the exact bytes of signature.sig. Get the TSA's CA
   certificate from its operator (or the exporting organisation's trust store) as
   ../tsa-ca.pem, never from the bundle, then:
     openssl ts -verify -data signature.sig -in timestamp.tsr -CAfile ../tsa-ca.pem
     openssl ts -reply -in timestamp.tsr -text | grep 'Time stamp:'
   It prints "Verification: OK"; the second line is the TSA's time of signing.
"""


@dataclass(frozen=True)
class CaseClipCut:
    """A case clip cut from its stored original by stream copy (``cut_case_clip``)."""

    original: Original
    camera: Camera
    source: Path
    start_s: float
    cut: CutResult


def cut_case_clip(session: Session, clip: CaseClip, *, originals: BlobStore,
                  derived: BlobStore, tmp_dir: Path) -> CaseClipCut:
    """Cut ``clip`` from its original in the store, as every export does.

    Raises ``NotFoundError`` when its original, camera or stored file is gone.
    """
    original = session.get(Original, clip.original_id)
    camera = session.get(Camera, clip.camera_id)
    if original is None or camera is None:
        raise NotFoundError(f"Clip {clip.id} refers to footage that no longer exists.")
    source = originals.path_for(original.sha256)
    if not source.is_file():
        raise NotFoundError(f"The original {original.sha256} is missing from the store.")
    start_s = (clip.start_utc - original.recording_start_utc).total_seconds()
    end_s = (clip.end_utc - original.recording_start_utc).total_seconds()
    cut = cut_clip(original_path=source, start_s=start_s, end_s=end_s, derived=derived,
                   tmp_dir=tmp_dir)
    return CaseClipCut(original=original, camera=camera, source=source, start_s=start_s,
                       cut=cut)


def _cut_all(session: Session, clips: list[CaseClip], *, originals: BlobStore,
             derived: BlobStore, tmp_dir: Path, progress: Progress,
             transcoder: ViewingTranscoder) -> list[_ClipArtefacts]:
    result: list[_ClipArtefacts] = []
    for number, clip in enumerate(clips, start=1):
        made = cut_case_clip(session, clip, originals=originals, derived=derived,
                             tmp_dir=tmp_dir)
        original, camera, cut = made.original, made.camera, made.cut
        still = still_frame(original_path=made.source, offset_s=made.start_s,
                            derived=derived)
        stem = f"clip-{number:03d}-{safe_name(camera.id)}"
        clip_path = f"data/clips/{stem}.{cut.container}"
        gaps = [g.to_dict() for g in gaps_near(session, camera.id, clip.start_utc,
                                                clip.end_utc)]
        viewing = make_viewing_copy(clip_sha256=cut.sha256, clip_path=clip_path,
                                    derived=derived, tmp_dir=tmp_dir,
                                    transcoder=transcoder)
        result.append(_ClipArtefacts(clip, original, camera, cut, still, clip_path,
                                     f"data/stills/{stem}.jpg", gaps, viewing))
        progress("cutting clips", 0.1 + 0.5 * number / len(clips))
    return result


def _copy_payload(bag: Path, artefacts: list[_ClipArtefacts], *, originals: BlobStore,
                  derived: BlobStore, full_original_max_bytes: int) -> list[dict[str, Any]]:
    """Write clips, stills and originals under ``data/``; return per-original facts."""
    for sub in ("clips", "stills", "originals"):
        (bag / "data" / sub).mkdir(parents=True, exist_ok=True)
    seen: dict[str, dict[str, Any]] = {}
    for art in artefacts:
        derived.copy_out(art.cut.sha256, bag / art.clip_path)
        derived.copy_out(art.still.sha256, bag / art.still_path)
        if art.viewing is not None:
            derived.copy_out(art.viewing.sha256, bag / art.viewing.path)
        sha = art.original.sha256
        if sha in seen:
            continue
        suffix = safe_name(Path(art.original.filename).suffix.lstrip(".")) or "bin"
        if art.original.size_bytes <= full_original_max_bytes:
            path = f"data/originals/{sha}.{suffix}"
            originals.copy_out(sha, bag / path)
            included = True
        else:
            path = f"data/originals/{sha}.sha256"
            (bag / path).write_text(f"{sha}  {safe_name(art.original.filename)}\n",
                                    encoding="utf-8")
            included = False
        seen[sha] = {"original": art.original, "path": path, "included": included}
    return list(seen.values())


def export_case(session: Session, *, case: Case, exporter: str, signer: Signer,
                originals: BlobStore, derived: BlobStore, tmp_dir: Path, out_path: Path,
                organisation: str, full_original_max_bytes: int,
                transcoder: ViewingTranscoder,
                progress: Progress | None = None,
                commit: Callable[[ExportResult], None] | None = None,
                lang: str = DEFAULT_LANGUAGE,
                timestamp_authority: TimestampAuthority | None = None,
                no_timestamp: bool = False) -> ExportResult:
    """Build, sign and zip the case's bundle at ``out_path``; log the export.

    ``transcoder`` makes the viewing copy of a clip that is not H.264 in MP4
    (``indexer.transcode.viewing_copy``, handed in by the application layer).

    With ``timestamp_authority`` (and not ``no_timestamp``) the signature gets an RFC
    3161 token (``timestamp.tsr``); a TSA that cannot be reached or is not trusted
    fails the export with ``evidence.timestamp``'s errors, nothing written. The choice
    is recorded in bag-info (``Oko-Trusted-Time``), the export custody entry
    (``trusted_time``) and the report.

    Every slow step runs before anything is written: the export's custody entry is
    planned (``plan_export_entry``), the bundle that carries it is written and zipped
    to ``part_path(out_path)``, and only then is the entry appended, in a short write
    (see the module docstring). ``commit(result)`` must make the entry durable (by
    default ``session.commit()``); the zip is renamed to ``out_path`` only after it
    returns. Raises ``InvalidInputError`` for a case without clips, ``NotFoundError``
    when footage has gone missing and ``ConflictError`` when the case's custody chain
    keeps changing under the export: then, or when ``commit`` raises, the temp bag and
    the ``.part`` are removed and ``out_path`` is untouched. Raises
    ``BundleNotPublishedError`` when the committed bundle cannot be renamed; its
    ``.part`` stays for ``publish_bundle``.
    """
    report_progress = progress or (lambda _stage, _fraction: None)
    trusted = TrustedTime(authority=timestamp_authority,
                          declined_by=exporter if no_timestamp else None)
    check_language(lang)  # the report's language (uk, en), before anything is written
    clips = case_clips(session, case=case)
    if not clips:
        raise InvalidInputError(f"Case {case.number} has no clips to export.")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    top_dir = f"oko-{safe_name(case.number)}"
    staged = part_path(out_path)
    committed = False
    try:
        # Named after this process, like the .part: a sweep removes it once we are gone.
        with tempfile.TemporaryDirectory(dir=tmp_dir, prefix=f"bundle-{owner_tag()}-") as work:
            bag = Path(work) / top_dir
            (bag / "data").mkdir(parents=True)
            report_progress("cutting clips", 0.1)
            artefacts = _cut_all(session, clips, originals=originals, derived=derived,
                                 tmp_dir=Path(work), progress=report_progress,
                                 transcoder=transcoder)
            originals_facts = _copy_payload(bag, artefacts, originals=originals,
                                            derived=derived,
                                            full_original_max_bytes=full_original_max_bytes)
            report_progress("writing report, signing and zipping", 0.7)
            details = {"case_number": case.number,
                       "signer_fingerprint": signer.fingerprint_sha256,
                       "clips": [{"clip_id": a.clip.id, "path": a.clip_path,
                                  "sha256": a.cut.sha256, "still_path": a.still_path,
                                  "still_sha256": a.still.sha256,
                                  "original_sha256": a.original.sha256,
                                  "recording_gaps": a.gaps, **_viewing_entry(a)}
                                 for a in artefacts],
                       "trusted_time": trusted.field}
            for _attempt in range(EXPORT_ATTEMPTS):
                planned = plan_export_entry(session, case=case, exporter=exporter,
                                             details=details)
                written = _write_bundle(session, bag, staged, case=case, planned=planned,
                                        artefacts=artefacts, originals_facts=originals_facts,
                                        exporter=exporter, signer=signer,
                                        organisation=organisation, top_dir=top_dir,
                                        lang=lang, trusted=trusted)
                if chain_head(session, planned.chain) == planned.previous:
                    break
            else:
                raise ConflictError(_CHAIN_MOVED.format(number=case.number))
            # The short write: on SQLite the database's write lock is taken here and held
            # until ``commit``; the bundle is complete in its .part and only needs renaming.
            entry = append_custody_entry(
                session, action="export", actor=exporter, case_id=case.id,
                details=details, recorded_at=planned.recorded_at)
            if entry.entry_hash != planned.entry_hash:
                raise ConflictError(_CHAIN_MOVED.format(number=case.number))
            result = ExportResult(bundle_path=out_path, bundle_sha256=written.bundle_sha256,
                                  tag_manifest_sha256=written.tag_manifest_sha256,
                                  evidence_digest=written.evidence_digest,
                                  size_bytes=staged.stat().st_size,
                                  clip_sha256s=[a.cut.sha256 for a in artefacts])
            (commit or (lambda _result: session.commit()))(result)
            committed = True
    finally:
        if not committed:
            staged.unlink(missing_ok=True)
    move_into_place(staged, out_path, case_number=case.number)
    return result


def part_path(out_path: Path) -> Path:
    """Where ``export_case`` writes the zip until its custody entry commits: a hidden
    sibling of ``out_path`` that names this process (``storage.atomic.owner_tag``)."""
    return out_path.with_name(f".{out_path.name}.{owner_tag()}{PART_SUFFIX}")


def pending_parts(out_path: Path) -> list[Path]:
    """The ``.part`` zips of ``out_path`` that any process left, oldest name first."""
    pattern = f".{glob.escape(out_path.name)}.{OWNER_PREFIX}*{PART_SUFFIX}"
    return sorted(out_path.parent.glob(pattern))


def publish_bundle(part: Path, out_path: Path, *, sha256: str, case_number: str) -> None:
    """Finish an export whose custody entry committed: move its ``.part`` into place.

    The recovery of an interrupted export calls this. Raises ``BundleNotPublishedError``
    when ``part`` is not the bundle recorded (``sha256``) or cannot be moved; a file
    already at ``out_path`` is never replaced.
    """
    if sha256_file(part) != sha256:
        raise BundleNotPublishedError(
            f"The unfinished bundle {part.name} of case {case_number} is not the one its "
            "custody entry records.")
    move_into_place(part, out_path, case_number=case_number)


def move_into_place(part: Path, out_path: Path, *, case_number: str) -> None:
    """``part`` to ``out_path`` without ever replacing a file there, durably."""
    try:
        os.link(part, out_path)
        part.unlink()
        fsync_dir(out_path.parent)
    except OSError as exc:
        raise BundleNotPublishedError(
            f"The bundle of case {case_number} is recorded in its custody log but could "
            f"not be moved into place ({exc.strerror or exc}); a worker finishes it when it "
            "next starts.") from exc


EXPORT_ATTEMPTS = 3
"""How often the bundle's custody files are rewritten when the case's chain moved
during the export, before it gives up with ``ConflictError``."""
_CHAIN_MOVED = ("The custody chain of case {number} changed while its bundle was being "
                "written; run the export again.")


@dataclass(frozen=True)
class _PlannedEntry:
    """The export custody entry as it will be appended, computed without writing."""

    chain: str
    previous: tuple[int, str] | None  # the chain head (last seq, last hash) it follows
    recorded_at: datetime
    record: dict[str, Any]  # as in custody.jsonl (``entry_record``)

    @property
    def entry_hash(self) -> str:
        return str(self.record["entry_hash"])


@dataclass(frozen=True)
class _Written:
    bundle_sha256: str
    tag_manifest_sha256: str
    evidence_digest: str


def chain_head(session: Session, chain: str) -> tuple[int, str] | None:
    """The chain head's (last seq, last hash) as committed now; a read, no lock."""
    head = session.exec(select(CustodyChainHead).where(CustodyChainHead.chain == chain)
                        .execution_options(populate_existing=True)).first()
    return (head.last_seq, head.last_hash) if head is not None else None


def plan_export_entry(session: Session, *, case: Case, exporter: str,
                       details: dict[str, Any]) -> _PlannedEntry:
    """The entry ``append_custody_entry`` would append now, with its hash, unwritten."""
    chain = chain_key(case_id=case.id, original_id=None)
    previous = chain_head(session, chain)
    seq, prev_hash = (previous[0] + 1, previous[1]) if previous else (0, GENESIS_HASH)
    when = utcnow().astimezone(UTC)
    fields: dict[str, Any] = {
        "chain": chain, "seq": seq, "prev_hash": prev_hash, "action": "export",
        "actor": exporter, "case_id": case.id, "original_id": None,
        "recorded_at": format_time(when),
        "details": json.loads(json.dumps(details, ensure_ascii=False)),
    }
    return _PlannedEntry(chain=chain, previous=previous, recorded_at=when,
                         record={**fields, "entry_hash": compute_entry_hash(fields)})


def _write_bundle(session: Session, bag: Path, staged: Path, *, case: Case,
                  planned: _PlannedEntry, artefacts: list[_ClipArtefacts],
                  originals_facts: list[dict[str, Any]], exporter: str, signer: Signer,
                  organisation: str, top_dir: str, lang: str = DEFAULT_LANGUAGE,
                  trusted: TrustedTime | None = None) -> _Written:
    """Custody log, provenance, PDF, tag files and signature into ``bag``, zipped to
    ``staged``; reads only. Rewrites every file it writes, so it can run again."""
    custody = [*_custody_records(session, case, artefacts, before_seq=planned.record["seq"]),
               planned.record]
    write_jsonl(bag / "data" / "custody.jsonl", custody)
    build_provenance(bag / "data" / "provenance.jsonld", case=case, custody=custody,
                     clips=[_clip_facts(a) for a in artefacts], originals=originals_facts)
    digest = evidence_digest(hash_payload(bag, exclude=frozenset({REPORT_PATH})))
    investigator = session.get(User, case.investigator_id)
    export_time = planned.recorded_at
    trusted = trusted or TrustedTime()
    tsa_url = trusted.requested.url if trusted.requested else None
    build_report(ReportData(
        case_number=case.number, case_title=case.title, legal_basis=case.legal_basis,
        investigator=investigator.full_name or investigator.username if investigator
        else str(case.investigator_id),
        agency=case.agency, organisation=organisation, exporter=exporter,
        export_time_utc=export_time,
        timezone=artefacts[0].camera.timezone,
        signer_fingerprint=signer.fingerprint_sha256, signer_subject=signer.subject,
        evidence_digest=digest, clips=[_clip_report(n, a, bag, custody) for n, a in
                                       enumerate(artefacts, start=1)],
        custody=custody, lang=lang, people=custody_people(session, custody, exporter),
        verify_text=verify_instructions(
            fingerprint=signer.fingerprint_sha256, top_dir=top_dir,
            root_fingerprint=signer.root_fingerprint_sha256, tsa_url=tsa_url),
        trusted_time_note=trusted.note(lang),
        report_signer_fingerprint=signer.report.fingerprint_sha256 if signer.report else "",
    ), bag / REPORT_PATH)
    # PAdES, before hashing: the manifest covers the signed PDF
    sign_bundle_report(bag / REPORT_PATH, signer=signer, timestamping=trusted.requested)
    tag_sha = finish_bag(bag, bag_info=[
        ("Source-Organization", organisation), ("Contact-Name", exporter),
        ("External-Identifier", case.number), ("External-Description", case.title),
        ("Bagging-Date", f"{export_time:%Y-%m-%d}"),
        ("Bag-Software-Agent", f"Oko {OKO_VERSION}"),
        ("Oko-Case-Number", case.number), ("Oko-Agency", case.agency),
        ("Oko-Exporter", exporter),
        ("Oko-Export-Time-UTC", format_time(export_time)),
        ("Oko-Version", OKO_VERSION),
        ("Oko-Signer-Fingerprint-SHA256", signer.fingerprint_sha256),
        ("Oko-Evidence-Digest", digest),
        (TRUSTED_TIME_FIELD, trusted.field),
    ], verify_text=verify_instructions(
        fingerprint=signer.fingerprint_sha256, top_dir=top_dir,
        root_fingerprint=signer.root_fingerprint_sha256, tsa_url=tsa_url), signer=signer,
        timestamp_authority=trusted.requested)
    bundle_sha = zip_bag(bag, staged, top_dir=top_dir)
    return _Written(bundle_sha256=bundle_sha, tag_manifest_sha256=tag_sha,
                    evidence_digest=digest)


def _custody_records(session: Session, case: Case, artefacts: list[_ClipArtefacts], *,
                     before_seq: int) -> list[dict[str, Any]]:
    """Each original's chain (acquisition first), then the case's chain up to (not
    including) ``before_seq``, the planned export entry's place."""
    records: list[dict[str, Any]] = []
    for original_id in sorted({a.original.id for a in artefacts if a.original.id}):
        records += [entry_record(e) for e in chain_entries(session, f"original:{original_id}")]
    records += [entry_record(e) for e in chain_entries(session, f"case:{case.id}")
                if e.seq < before_seq]
    return records


def _span(original: Original, seconds: float) -> datetime:
    return original.recording_start_utc + timedelta(seconds=seconds)


def _clip_facts(a: _ClipArtefacts) -> dict[str, Any]:
    return {
        "clip_id": a.clip.id, "path": a.clip_path, "sha256": a.cut.sha256,
        "still_path": a.still_path, "still_sha256": a.still.sha256,
        "original_sha256": a.original.sha256, "camera_id": a.camera.id,
        "tool": a.cut.tool, "tool_version": a.cut.tool_version,
        "command": " ".join(a.cut.command),
        "still_tool": a.still.tool, "still_tool_version": a.still.tool_version,
        "still_parameters": a.still.parameters,
        "requested_start_utc": format_time(a.clip.start_utc),
        "requested_end_utc": format_time(a.clip.end_utc),
        "actual_start_utc": format_time(_span(a.original, a.cut.actual_start_s)),
        "actual_end_utc": format_time(_span(a.original, a.cut.actual_end_s)),
        "provenance": a.clip.provenance,
        "recording_gaps": a.gaps,
        "viewing_copy": provenance_facts(a.viewing) if a.viewing is not None else None,
    }


def _viewing_entry(a: _ClipArtefacts) -> dict[str, str]:
    """The viewing copy's path and hash in the export entry (signed with the chain)."""
    if a.viewing is None:
        return {}
    return {"viewing_copy_path": a.viewing.path, "viewing_copy_sha256": a.viewing.sha256}


def _clip_report(number: int, a: _ClipArtefacts, bag: Path,
                 custody: list[dict[str, Any]]) -> ClipReport:
    cam = a.camera
    added_by, added_at = clip_added(custody, a.clip.id)
    location = f"{cam.district + ', ' if cam.district else ''}{cam.latitude:.5f}, " \
               f"{cam.longitude:.5f}"
    return ClipReport(
        number=number, camera_id=cam.id, camera_name=cam.name, camera_location=location,
        timezone=cam.timezone, original_filename=a.original.filename,
        original_sha256=a.original.sha256, clip_path=a.clip_path, clip_sha256=a.cut.sha256,
        still_path=bag / a.still_path, requested_start_utc=a.clip.start_utc,
        requested_end_utc=a.clip.end_utc,
        actual_start_utc=_span(a.original, a.cut.actual_start_s).astimezone(UTC),
        actual_end_utc=_span(a.original, a.cut.actual_end_s).astimezone(UTC),
        codec=a.cut.codec, width=a.cut.width, height=a.cut.height, note=a.clip.note,
        provenance=a.clip.provenance, recording_gaps=a.gaps,
        viewing_copy_name=a.viewing.path if a.viewing is not None else None,
        viewing_copy_note=report_note(a.viewing) if a.viewing is not None else "",
        added_by=added_by, added_at_utc=added_at,
    )


__all__ = ["OKO_VERSION", "BundleNotPublishedError", "CaseClipCut", "ExportResult",
           "chain_head", "cut_case_clip",
           "export_case", "move_into_place", "part_path", "pending_parts",
           "plan_export_entry", "publish_bundle", "safe_name", "verify_instructions"]
