"""Use cases: verify a bundle through the installation, and receive one for a case.

``search_api.usecases.verify_offline`` is the prosecutor's tool (no data dir, nothing
written). Here the installation checks a bundle against its own trust anchors
(``evidence.keys.installation_anchors``: its root with its CRL, and its self-signed
certificates of old), unless the caller pins a fingerprint.

``verify_bundle_file`` is audited, and writes a custody ``verification`` entry only for
a bundle this installation signed (its signing certificate is one of ours), checked
against our own anchors (no pin), with a verdict of VALID or INVALID, on a case the actor
can see. What that entry records is bounded: at most ``MAX_RECORDED_CHECKS`` failed
checks of at most ``MAX_CHECK_CHARS`` characters each, escaped, since a bundle's file
names and fields are the sender's text.

``receive_bundle`` records a receipt only for a bundle bound to the case: it names the
case of the URL, and its tag manifest is that of a bundle whose transfer the case's
chain records. Anything else is refused with ``ReceiptRefusedError`` and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from oko_verify import TrustAnchors, Verdict
from oko_verify.cli import tsa_anchors
from oko_verify.text import shown
from pydantic import BaseModel, Field
from sqlmodel import col, select

from evidence import cases as domain
from evidence.keys import (
    certificate_fingerprint,
    installation_anchors,
    known_certificates,
    normalise_fingerprint,
)
from evidence.verify import VerificationReport, verify_bundle
from search_api.audit import AuditAction
from search_api.usecases.cases import CustodyPublic, can_see_case, get_visible_case
from search_api.usecases.context import UseCaseContext
from storage.blobstore import sha256_file
from storage.custody import chain_entries, chain_key
from storage.errors import ConflictError
from storage.models.evidence import Case, ExportJob
from storage.permissions import Permission

MAX_RECORDED_CHECKS = 20
MAX_CHECK_CHARS = 200


class ReceiptRefusedError(ConflictError):
    """A received bundle is not bound to the case: another case's, or never transferred
    from it (HTTP 409; ``code`` says which)."""


class CheckPublic(BaseModel):
    name: str
    passed: bool
    detail: str
    fatal: bool = Field(default=True, description="False only for the trust check: its "
                        "failure leaves the bundle intact")


class VerificationPublic(BaseModel):
    """The report ``oko verify --json`` prints, plus the bundle file's SHA-256 and
    whether this verification went into the case's custody chain."""

    verdict: Verdict = Field(description="VALID, INTACT_SIGNER_NOT_TRUSTED or INVALID")
    summary: str = Field(description="The verdict in plain words")
    exit_code: int = Field(description="What `oko-verify` exits with: 0, 3 or 1")
    ok: bool = Field(description="True only for VALID")
    intact: bool
    case_number: str | None
    signer_fingerprint: str | None
    root_fingerprint: str | None
    tag_manifest_sha256: str | None
    signed_at: datetime | None
    bundle_sha256: str
    signed_here: bool = Field(description="Signed by one of this installation's "
                              "certificates")
    recorded_in_custody: bool = False
    trusted_time: datetime | None = Field(default=None, description="The TSA's time of "
                                          "timestamp.tsr, when a trusted TSA vouches")
    timestamp_authority: str | None = Field(default=None, description="The TSA of "
                                            "timestamp.tsr, trusted or not")
    checks: list[CheckPublic]

    @classmethod
    def from_report(cls, report: VerificationReport, *, bundle_sha256: str,
                    signed_here: bool, recorded_in_custody: bool = False
                    ) -> VerificationPublic:
        return cls(
            verdict=report.verdict, summary=report.summary, exit_code=report.exit_code,
            ok=report.ok, intact=report.intact, case_number=report.case_number,
            signer_fingerprint=report.signer_fingerprint,
            root_fingerprint=report.root_fingerprint,
            tag_manifest_sha256=report.tag_manifest_sha256, signed_at=report.signed_at,
            bundle_sha256=bundle_sha256, signed_here=signed_here,
            recorded_in_custody=recorded_in_custody,
            trusted_time=report.trusted_time, timestamp_authority=report.timestamp_authority,
            checks=[CheckPublic(name=c.name, passed=c.passed, detail=c.detail, fatal=c.fatal)
                    for c in report.checks])


@dataclass(frozen=True)
class Receipt:
    """A recorded receipt: its custody entry and the verification it recorded."""

    custody: CustodyPublic
    verification: VerificationPublic


def _anchors(ctx: UseCaseContext, fingerprint: str | None) -> TrustAnchors:
    """The installation's anchors, or only the pinned fingerprint (with our CRL)."""
    own = installation_anchors(ctx.settings.keys_dir)
    if fingerprint is None:
        return own
    return TrustAnchors(fingerprints=(normalise_fingerprint(fingerprint),), crls=own.crls)


def _signed_here(ctx: UseCaseContext, report: VerificationReport) -> bool:
    ours = {certificate_fingerprint(c) for c in known_certificates(ctx.settings.keys_dir)}
    return report.signer_fingerprint in ours


def bounded_failures(report: VerificationReport) -> list[str]:
    """The failed checks as custody may record them: escaped, capped, limited in number."""
    failures = report.failures
    lines = [shown(f"{c.name}: {c.detail}", MAX_CHECK_CHARS)
             for c in failures[:MAX_RECORDED_CHECKS]]
    if len(failures) > MAX_RECORDED_CHECKS:
        lines.append(f"… and {len(failures) - MAX_RECORDED_CHECKS} more failed check(s)")
    return lines


def _verify(ctx: UseCaseContext, bundle: Path, fingerprint: str | None
            ) -> VerificationReport:
    anchors = _anchors(ctx, fingerprint)
    return verify_bundle(bundle, anchors, scratch_dir=ctx.settings.verify_scratch_dir,
                         tsa_anchors=_tsa_anchors(ctx, anchors))


def _tsa_anchors(ctx: UseCaseContext, anchors: TrustAnchors) -> TrustAnchors:
    """The configured TSA's CA (``OKO_TSA_CA_CERT``) and the installation's anchors."""
    path = ctx.settings.tsa_ca_cert
    if path is None or not path.is_file():
        return anchors
    return tsa_anchors(anchors, [path])


def verify_bundle_file(ctx: UseCaseContext, *, bundle: Path, bundle_sha256: str,
                       fingerprint: str | None = None) -> VerificationPublic:
    """Verify a bundle the actor holds (an upload), audited as a ``verify`` of a bundle.

    Without ``fingerprint`` the bundle is checked against this installation's anchors;
    a bundle signed here whose verdict is VALID or INVALID also goes, bounded, into the
    custody chain of the case it names when the actor can see that case. Raises
    ``PermissionDeniedError`` for a role that may not verify, ``InvalidInputError`` for
    a malformed fingerprint and ``UnusableBundleError`` for input that is no usable
    bundle (nothing is written then).
    """
    ctx.require(Permission.VERIFY)
    report = _verify(ctx, bundle, fingerprint)
    signed_here = _signed_here(ctx, report)
    ctx.audit(AuditAction.VERIFY, target="bundle", bundle_sha256=bundle_sha256, ok=report.ok,
              verdict=report.verdict.value, case_number=report.case_number,
              pinned=fingerprint is not None, signed_here=signed_here)
    case = (domain.get_case_by_number(ctx.session, report.case_number)
            if report.case_number else None)
    record = (fingerprint is None and signed_here and case is not None
              and report.verdict in (Verdict.VALID, Verdict.INVALID)
              and can_see_case(ctx, case))
    if record and case is not None:
        domain.record_verification(
            ctx.session, case=case, actor=ctx.actor.name, bundle_sha256=bundle_sha256,
            ok=report.ok, failed_checks=bounded_failures(report))
    ctx.commit()
    return VerificationPublic.from_report(report, bundle_sha256=bundle_sha256,
                                          signed_here=signed_here,
                                          recorded_in_custody=bool(record))


def transferred_tag_manifests(ctx: UseCaseContext, case: Case) -> dict[str, str]:
    """Bundle SHA-256 -> tag-manifest SHA-256 of every bundle the case's chain records
    as transferred ("" where only the bundle's own hash is known: a file handed over
    that is no export of the case)."""
    bundles: dict[str, str] = {}
    for entry in chain_entries(ctx.session, chain_key(case_id=case.id, original_id=None)):
        details = entry.details if isinstance(entry.details, dict) else {}
        if entry.action == "transfer" and isinstance(details.get("bundle_sha256"), str):
            recorded = details.get("tag_manifest_sha256")
            bundles[details["bundle_sha256"]] = recorded if isinstance(recorded, str) else ""
    unresolved = [sha for sha, tag in bundles.items() if not tag]
    if unresolved:
        jobs = ctx.session.exec(select(ExportJob).where(
            ExportJob.case_id == case.id, col(ExportJob.bundle_sha256).in_(unresolved))).all()
        for job in jobs:
            if job.bundle_sha256 and job.tag_manifest_sha256:
                bundles[job.bundle_sha256] = job.tag_manifest_sha256
    return bundles


def _require_bound(ctx: UseCaseContext, case: Case, report: VerificationReport,
                   bundle_sha256: str) -> None:
    if report.case_number != case.number:
        raise ReceiptRefusedError(
            f"The bundle is not one of case {case.number} (bag-info names another case or "
            "none); no receipt was recorded.", code="receipt_wrong_case")
    transferred = transferred_tag_manifests(ctx, case)
    tag = report.tag_manifest_sha256
    if bundle_sha256 not in transferred and (not tag or tag not in transferred.values()):
        raise ReceiptRefusedError(
            f"No transfer of case {case.number} records this bundle (tag manifest "
            f"{tag or 'missing'}); no receipt was recorded.", code="receipt_not_transferred")


def receive_bundle(ctx: UseCaseContext, *, case_id: int, bundle: Path,
                   bundle_sha256: str | None = None, fingerprint: str | None = None,
                   ) -> Receipt:
    """Verify a received bundle and record its receipt (whatever its verdict) in the
    case's chain, when it is bound to the case (see the module doc).

    The bundle is checked against this installation's anchors, or only against
    ``fingerprint``. Raises ``PermissionDeniedError`` for a role that may not receive
    bundles, ``NotFoundError`` for an invisible case, ``UnusableBundleError`` for input
    that is no usable bundle and ``ReceiptRefusedError`` for a bundle of another case or
    one no transfer of this case records; nothing is written on any of them.
    """
    ctx.require(Permission.RECEIVE_BUNDLE)
    actor = ctx.custody_actor("Receiving a bundle")
    case = get_visible_case(ctx, case_id)
    report = _verify(ctx, bundle, fingerprint)
    sha256 = bundle_sha256 or sha256_file(bundle)
    _require_bound(ctx, case, report, sha256)
    entry = domain.receive_case(ctx.session, case=case, actor=actor,
                                bundle_sha256=sha256,
                                tag_manifest_sha256=report.tag_manifest_sha256 or "",
                                verification_ok=report.ok)
    ctx.audit(AuditAction.VERIFY, change="receipt", case_id=case.id, bundle_sha256=sha256,
              ok=report.ok, verdict=report.verdict.value)
    ctx.commit()
    return Receipt(custody=CustodyPublic.from_entry(entry),
                   verification=VerificationPublic.from_report(
                       report, bundle_sha256=sha256, signed_here=_signed_here(ctx, report),
                       recorded_in_custody=True))


__all__ = [
    "MAX_CHECK_CHARS",
    "MAX_RECORDED_CHECKS",
    "CheckPublic",
    "Receipt",
    "ReceiptRefusedError",
    "VerificationPublic",
    "bounded_failures",
    "receive_bundle",
    "transferred_tag_manifests",
    "verify_bundle_file",
]
