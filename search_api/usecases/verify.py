"""Use cases: verify a bundle, and receive one for a case (a receipt with its verification).

``search_api.usecases.verify_offline`` is the prosecutor's tool (no data dir, nothing
written). ``verify_bundle_file`` is the same check made
through an installation: audited, and recorded in the custody chain of the bundle's case
when the actor can see that case. ``receive_bundle`` verifies against this
installation's own certificates and records the receipt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from evidence import cases as domain
from evidence.keys import known_certificates, normalise_fingerprint
from evidence.verify import (
    PinnedFingerprint,
    SignerPolicy,
    TrustedCertificates,
    VerificationReport,
    verify_bundle,
)
from search_api.audit import AuditAction
from search_api.usecases.cases import CustodyPublic, can_see_case, get_visible_case
from search_api.usecases.context import UseCaseContext
from search_api.usecases.verify_offline import signer_policy
from storage.blobstore import sha256_file
from storage.permissions import Permission


class CheckPublic(BaseModel):
    name: str
    passed: bool
    detail: str


class VerificationPublic(BaseModel):
    """The same report ``oko verify --json`` prints, plus the bundle file's SHA-256."""

    ok: bool
    case_number: str | None
    signer_fingerprint: str | None
    tag_manifest_sha256: str | None
    bundle_sha256: str
    checks: list[CheckPublic]

    @classmethod
    def from_report(cls, report: VerificationReport, *, bundle_sha256: str
                    ) -> VerificationPublic:
        return cls(**report.to_dict(), bundle_sha256=bundle_sha256)


@dataclass(frozen=True)
class Receipt:
    """A recorded receipt: its custody entry and the verification it recorded."""

    custody: CustodyPublic
    verification: VerificationPublic


def verify_bundle_file(ctx: UseCaseContext, *, bundle: Path, bundle_sha256: str,
                       fingerprint: str | None = None) -> VerificationPublic:
    """Verify a bundle the actor holds (an upload), audited as a ``verify`` of a bundle.

    When the bundle names a case the actor can see, the result also goes into that
    case's custody chain. Raises ``PermissionDeniedError`` for a role that may not
    verify, ``InvalidInputError`` for a malformed fingerprint and ``BundleInvalidError``
    for input that is no usable bundle.
    """
    ctx.require(Permission.VERIFY)
    policy = signer_policy(fingerprint=fingerprint)
    report = verify_bundle(bundle, policy, work_dir=ctx.settings.tmp_dir)
    ctx.audit(AuditAction.VERIFY, target="bundle", bundle_sha256=bundle_sha256, ok=report.ok,
              case_number=report.case_number, pinned=fingerprint is not None)
    case = (domain.get_case_by_number(ctx.session, report.case_number)
            if report.case_number else None)
    if case is not None and can_see_case(ctx, case):
        domain.record_verification(
            ctx.session, case=case, actor=ctx.actor.name, bundle_sha256=bundle_sha256,
            ok=report.ok, failed_checks=[f"{c.name}: {c.detail}" for c in report.failures])
    ctx.commit()
    return VerificationPublic.from_report(report, bundle_sha256=bundle_sha256)


def receive_bundle(ctx: UseCaseContext, *, case_id: int, bundle: Path,
                   bundle_sha256: str | None = None, fingerprint: str | None = None,
                   ) -> Receipt:
    """Verify a received bundle and record its receipt (valid or not) in the case's chain.

    The signer must be one of this installation's certificates, or the one with
    ``fingerprint``. Raises ``PermissionDeniedError`` for a role that may not receive
    bundles, ``NotFoundError`` for an invisible case and ``BundleInvalidError`` for
    input that is no usable bundle.
    """
    ctx.require(Permission.RECEIVE_BUNDLE)
    case = get_visible_case(ctx, case_id)
    policy: SignerPolicy = (PinnedFingerprint(normalise_fingerprint(fingerprint)) if fingerprint
                            else TrustedCertificates(tuple(known_certificates(
                                ctx.settings.keys_dir))))
    report = verify_bundle(bundle, policy, work_dir=ctx.settings.tmp_dir)
    sha256 = bundle_sha256 or sha256_file(bundle)
    entry = domain.receive_case(ctx.session, case=case, actor=ctx.actor.name,
                                bundle_sha256=sha256,
                                tag_manifest_sha256=report.tag_manifest_sha256 or "",
                                verification_ok=report.ok)
    ctx.audit(AuditAction.VERIFY, change="receipt", case_id=case.id, bundle_sha256=sha256,
              ok=report.ok)
    ctx.commit()
    return Receipt(custody=CustodyPublic.from_entry(entry),
                   verification=VerificationPublic.from_report(report, bundle_sha256=sha256))


__all__ = [
    "CheckPublic",
    "Receipt",
    "VerificationPublic",
    "receive_bundle",
    "verify_bundle_file",
]
