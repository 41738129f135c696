"""Routes for verify: POST /api/verify checks an uploaded bundle and returns the report.

``receive_upload`` (streaming an upload to a size-limited temp file) is shared with the
receipt route; the checks, the audit entry and the custody record are the use case's.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from search_api.deps import UseCaseDep, requires
from search_api.usecases.verify import CheckPublic, VerificationPublic, verify_bundle_file
from storage.errors import InvalidInputError
from storage.permissions import Permission
from storage.settings import Settings

router = APIRouter(tags=["verify"])
CHUNK = 1024 * 1024


class UploadTooLargeError(InvalidInputError):
    """The upload is larger than OKO_MAX_UPLOAD_BYTES."""

    http_status = 413


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


@router.post("/verify", response_model=VerificationPublic,
             dependencies=[Depends(requires(Permission.VERIFY))])
def verify_upload(ctx: UseCaseDep, bundle: Annotated[UploadFile, File()],
                  fingerprint: Annotated[str | None, Form()] = None) -> VerificationPublic:
    """Verify an uploaded bundle zip; the same checks as ``oko verify``."""
    with receive_upload(bundle, settings=ctx.settings) as (path, sha256):
        return verify_bundle_file(ctx, bundle=path, bundle_sha256=sha256,
                                  fingerprint=fingerprint)


__all__ = ["CheckPublic", "UploadTooLargeError", "VerificationPublic", "receive_upload",
           "router"]
