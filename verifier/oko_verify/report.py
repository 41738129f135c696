"""The verification report: every check, and the one verdict they add up to.

- ``VALID`` (exit 0): every check passed and the signer chains to a trust anchor;
- ``INTACT_SIGNER_NOT_TRUSTED`` (exit 3): every hash, the signature and the chain check
  out, but nothing the verifier was given vouches for the signer;
- ``INVALID`` (exit 1): a check failed (a pinned fingerprint that does not match, an
  expired or revoked signing certificate and a broken chain included).

The report has no truth value: use ``report.ok``, ``report.verdict`` or
``report.raise_for_failure()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from oko_verify.errors import BundleInvalidError, SignerNotTrustedError

TRUST_CHECK = "trust"


class Verdict(StrEnum):
    VALID = "VALID"
    INTACT_SIGNER_NOT_TRUSTED = "INTACT_SIGNER_NOT_TRUSTED"
    INVALID = "INVALID"

    @property
    def exit_code(self) -> int:
        return {"VALID": 0, "INTACT_SIGNER_NOT_TRUSTED": 3, "INVALID": 1}[self.value]

    @property
    def label(self) -> str:
        """How the verdict is printed: ``INTACT, SIGNER NOT TRUSTED``."""
        return "INTACT, SIGNER NOT TRUSTED" if self is Verdict.INTACT_SIGNER_NOT_TRUSTED \
            else self.value


@dataclass(frozen=True)
class CheckResult:
    """One check. ``fatal=False`` marks a failure that leaves a bundle intact: nobody
    vouching for its signer (``trust``, the verdict INTACT), or for the TSA of its
    timestamp (``timestamp trust``, a warning: the verdict stands, no trusted time)."""

    name: str
    passed: bool
    detail: str
    fatal: bool = True


@dataclass
class VerificationReport:
    checks: list[CheckResult] = field(default_factory=list)
    case_number: str | None = None
    signer_fingerprint: str | None = None
    signer_subject: str | None = None
    root_fingerprint: str | None = None
    anchor: str | None = None  # what vouched for the signer, in words
    tag_manifest_sha256: str | None = None
    signed_at: datetime | None = None
    trust_hint: str = ""  # for INTACT: why no anchor vouched
    trusted_time: datetime | None = None  # the TSA's genTime, when a trusted TSA vouches
    timestamp_authority: str | None = None  # the TSA of timestamp.tsr, in words

    def __bool__(self) -> bool:
        raise TypeError("Use report.ok or report.verdict, not the report's truth value.")

    def add(self, name: str, passed: bool, detail: str, *, fatal: bool = True) -> None:
        self.checks.append(CheckResult(name, passed, detail, fatal))

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.passed]

    @property
    def intact(self) -> bool:
        """Every check passed except, perhaps, that nobody vouches for the signer."""
        return bool(self.checks) and all(c.passed or not c.fatal for c in self.checks)

    @property
    def verdict(self) -> Verdict:
        if not self.intact:
            return Verdict.INVALID
        if all(c.passed or c.name != TRUST_CHECK for c in self.checks):
            return Verdict.VALID
        return Verdict.INTACT_SIGNER_NOT_TRUSTED

    @property
    def ok(self) -> bool:
        """True only for ``VALID``."""
        return self.verdict is Verdict.VALID

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    @property
    def summary(self) -> str:
        """The verdict in plain words, one line."""
        verdict = self.verdict
        if verdict is Verdict.VALID:
            return (f"VALID: the bundle is intact and signed by {self.signer_subject}, "
                    f"which chains to your trusted {self.anchor}." + self.time_sentence)
        if verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED:
            root = self.root_fingerprint or "unknown"
            return (f"INTACT, SIGNER NOT TRUSTED: the bundle is intact and signed by "
                    f"{self.signer_subject}, but nothing you gave vouches for the signer"
                    f"{self.trust_hint}: compare root fingerprint {root} (signer "
                    f"{self.signer_fingerprint}) with the one the issuing installation "
                    f"published, then pass --fingerprint {root} or --trust-store DIR.")
        failures = self.failures
        return (f"INVALID: {len(failures)} check(s) failed: "
                + "; ".join(f"{c.name}: {c.detail}" for c in failures[:20])
                + ("; …" if len(failures) > 20 else "") + ".")

    @property
    def time_sentence(self) -> str:
        """`` Trusted time (TSA ...): ...`` or why there is none; empty without a token."""
        if self.trusted_time is not None:
            return (f" Trusted time (TSA {self.timestamp_authority}): "
                    f"{self.trusted_time:%Y-%m-%dT%H:%M:%SZ}.")
        if self.timestamp_authority is not None:
            return f" The timestamp's TSA {self.timestamp_authority} is not trusted."
        return ""

    def raise_for_failure(self) -> None:
        """Raises ``BundleInvalidError`` (exit 1) listing every failed check for INVALID,
        ``SignerNotTrustedError`` (exit 3) for INTACT_SIGNER_NOT_TRUSTED."""
        verdict = self.verdict
        if verdict is Verdict.INVALID:
            raise BundleInvalidError(
                f"The bundle is invalid: {len(self.failures)} check(s) failed.",
                details=[f"{c.name}: {c.detail}" for c in self.failures])
        if verdict is Verdict.INTACT_SIGNER_NOT_TRUSTED:
            raise SignerNotTrustedError(self.summary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value, "summary": self.summary, "ok": self.ok,
            "intact": self.intact, "exit_code": self.exit_code,
            "case_number": self.case_number, "signer_fingerprint": self.signer_fingerprint,
            "signer_subject": self.signer_subject, "root_fingerprint": self.root_fingerprint,
            "tag_manifest_sha256": self.tag_manifest_sha256,
            "signed_at": (self.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ")
                          if self.signed_at else None),
            "trusted_time": (self.trusted_time.strftime("%Y-%m-%dT%H:%M:%SZ")
                             if self.trusted_time else None),
            "timestamp_authority": self.timestamp_authority,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail,
                        "fatal": c.fatal} for c in self.checks],
        }


__all__ = ["TRUST_CHECK", "CheckResult", "Verdict", "VerificationReport"]
