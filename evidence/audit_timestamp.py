"""RFC 3161 timestamps for signed audit checkpoints: a TSA vouches for when each was signed.

A checkpoint's signature (``AuditCheckpoint.signature``) covers the log's head; with a
TSA configured, a token over the exact signature bytes is fetched *after* the
checkpoint's transaction commits (no network inside the database's write lock, and a
TSA that is down never blocks an audit write) and stored as
``<dir>/checkpoint-<entry_count>.tsr`` (a DER TimeStampResp, ``openssl ts -verify
-data`` over the decoded signature checks it). Verification:

1. every stored token names a checkpoint the log has (else a problem);
2. it holds for that checkpoint's signature (``oko_verify.timestamp.check_token``);
3. its TSA chains to the configured TSA CA at its genTime;

and reports each checkpoint's trusted time; checkpoints without a token are counted.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from oko_verify.timestamp import TimestampTokenError, check_token, token_chain_result
from oko_verify.trust import TrustAnchors

from evidence.timestamp import Timestamp, TimestampAuthority, fetch_timestamp
from storage.atomic import make_private_dirs, write_atomically
from storage.errors import OkoError

logger = logging.getLogger(__name__)
TOKEN_NAME = re.compile(r"^checkpoint-(\d{1,12})\.tsr$")


def token_path(directory: Path, entry_count: int) -> Path:
    return directory / f"checkpoint-{entry_count}.tsr"


def signature_bytes(signature_b64: str) -> bytes:
    """The checkpoint signature the token covers (``AuditCheckpoint.signature`` decoded)."""
    return base64.b64decode(signature_b64, validate=True)


def timestamp_checkpoint(*, entry_count: int, signature_b64: str,
                         authority: TimestampAuthority, directory: Path) -> Timestamp:
    """Fetch and store the token for one checkpoint; raises ``evidence.timestamp``'s
    errors (nothing is written then)."""
    stamp = fetch_timestamp(signature_bytes(signature_b64), authority)
    make_private_dirs(directory)
    write_atomically(token_path(directory, entry_count), stamp.response)
    return stamp


def timestamp_checkpoint_or_log(*, entry_count: int, signature_b64: str,
                                authority: TimestampAuthority, directory: Path) -> None:
    """``timestamp_checkpoint``, logging instead of raising: called after the commit, when
    the checkpoint already stands; verification reports it as untimestamped."""
    try:
        stamp = timestamp_checkpoint(entry_count=entry_count, signature_b64=signature_b64,
                                     authority=authority, directory=directory)
    except (OkoError, OSError) as exc:
        logger.warning("Audit checkpoint #%d has no trusted timestamp: %s", entry_count, exc)
        return
    logger.info("Audit checkpoint #%d timestamped by %s at %s", entry_count, authority.url,
                stamp.gen_time_text)


@dataclass
class CheckpointTimes:
    """What ``check_checkpoint_timestamps`` found."""

    times: dict[int, datetime] = field(default_factory=dict)  # entry_count -> TSA time
    problems: list[str] = field(default_factory=list)
    untimestamped: int = 0

    @property
    def summary(self) -> str:
        if not self.times:
            return "no checkpoint carries a trusted timestamp"
        latest = max(self.times)
        return (f"{len(self.times)} checkpoint(s) timestamped by a trusted TSA (latest, "
                f"#{latest}, at {self.times[latest]:%Y-%m-%dT%H:%M:%SZ}); "
                f"{self.untimestamped} without a token")


def check_checkpoint_timestamps(checkpoints: Sequence[tuple[int, str]], directory: Path,
                                anchors: TrustAnchors) -> CheckpointTimes:
    """Steps 1-3 of the module doc for ``(entry_count, signature_b64)`` pairs."""
    result = CheckpointTimes()
    signatures = dict(checkpoints)
    stored = {}
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            match = TOKEN_NAME.match(path.name)
            if match:
                stored[int(match.group(1))] = path
    for entry_count in sorted(set(stored) - set(signatures)):
        result.problems.append(f"timestamp {stored[entry_count].name} names checkpoint "
                               f"#{entry_count}, which the log does not have")
    for entry_count, signature in sorted(signatures.items()):
        token_file = stored.get(entry_count)
        if token_file is None:
            result.untimestamped += 1
            continue
        try:
            token = check_token(token_file.read_bytes(), signature_bytes(signature))
        except (TimestampTokenError, OSError, binascii.Error, ValueError) as exc:
            result.problems.append(f"checkpoint #{entry_count}: its timestamp does not hold "
                                   f"({exc})")
            continue
        chain = token_chain_result(token, anchors)
        if chain.problems or chain.anchor is None:
            why = "; ".join(chain.problems) or "it does not chain to OKO_TSA_CA_CERT"
            result.problems.append(f"checkpoint #{entry_count}: its timestamp's TSA "
                                   f"{token.tsa} is not trusted ({why})")
            continue
        result.times[entry_count] = token.gen_time
    return result


__all__ = ["CheckpointTimes", "check_checkpoint_timestamps", "signature_bytes",
           "timestamp_checkpoint", "timestamp_checkpoint_or_log", "token_path"]
