"""Routes for verify: POST /api/verify checks an uploaded bundle and returns the report."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile
from pydantic import BaseModel
from sqlmodel import Session

from evidence.cases import get_case_by_number, record_verification, visible_case_ids
from evidence.keys import normalise_fingerprint
from evidence.verify import (
    PinnedFingerprint,
    SignerPolicy,
    UnpinnedSigner,
    VerificationReport,
    verify_bundle,
)
from search_api.audit import AuditAction
from search_api.deps import AuditDep, SessionDep, StateDep, requires
from search_api.policy import Permission
from storage.errors import InvalidInputError
from storage.models.access import User
from storage.settings import Settings

router = APIRouter(tags=["verify"])
CHUNK = 1024 * 1024


class UploadTooLargeError(InvalidInputError):
    """The upload is larger than OKO_MAX_UPLOAD_BYTES."""

    http_status = 413


class CheckPublic(BaseModel):
    name: str
    passed: bool
    detail: str


class VerificationPublic(BaseModel):
    """The same report ``oko verify --json`` prints."""

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


@contextmanager
def receive_upload(upload: UploadFile, *, settings: Settings) -> Iterator[tuple[Path, str]]:
    """Stream an upload to a temp file (size-limited); yield its path and SHA-256.

    Raises ``UploadTooLargeError`` past ``settings.max_upload_bytes``; the temp file is
    always removed.
    """
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=settings.tmp_dir, prefix="upload-",
                                     suffix=".zip") as handle:
        digest, size = hashlib.sha256(), 0
        for chunk in iter(lambda: upload.file.read(CHUNK), b""):
            size += len(chunk)
            if size > settings.max_upload_bytes:
                raise UploadTooLargeError(
                    f"The upload is larger than the {settings.max_upload_bytes} bytes allowed."
                )
            digest.update(chunk)
            handle.write(chunk)
        handle.flush()
        yield Path(handle.name), digest.hexdigest()


def _record_if_local_case(session: Session, user: User, report: VerificationReport,
                          bundle_sha256: str) -> None:
    """A bundle of a case this user can see gets a verification custody entry; the
    caller commits it with the audit entry."""
    case = get_case_by_number(session, report.case_number) if report.case_number else None
    if case is not None and case.id in visible_case_ids(session, user=user):
        record_verification(session, case=case, actor=user.username, bundle_sha256=bundle_sha256,
                            ok=report.ok, failed_checks=[f"{c.name}: {c.detail}"
                                                         for c in report.failures])


@router.post("/verify", response_model=VerificationPublic)
def verify_upload(state: StateDep, session: SessionDep, audit: AuditDep,
                  user: Annotated[User, Depends(requires(Permission.VERIFY))],
                  bundle: Annotated[UploadFile, File()],
                  fingerprint: Annotated[str | None, Form()] = None) -> VerificationPublic:
    """Verify an uploaded bundle zip; the same checks as ``oko verify``."""
    policy: SignerPolicy = (PinnedFingerprint(normalise_fingerprint(fingerprint))
                            if fingerprint else UnpinnedSigner())
    with receive_upload(bundle, settings=state.settings) as (path, sha256):
        report = verify_bundle(path, policy, work_dir=state.settings.tmp_dir)
    audit(AuditAction.VERIFY, target="bundle", bundle_sha256=sha256, ok=report.ok,
          case_number=report.case_number, pinned=fingerprint is not None)
    _record_if_local_case(session, user, report, sha256)
    session.commit()
    return VerificationPublic.from_report(report, bundle_sha256=sha256)
