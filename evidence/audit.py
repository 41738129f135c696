"""The tamper-evident audit log: a hash chain with signed checkpoints.

Each entry stores the hash of the entry before it, a SHA-256 over its own canonical
content, and an HMAC of that hash under a key kept outside the database (in the data
dir, or wherever ``OKO_AUDIT_KEY_FILE`` says). Every N entries or M minutes a checkpoint
``(entry_count, head_hash, time)`` is signed with the installation key. Copies of the
checkpoints live outside the database: an append-only log of JSON lines (one per
checkpoint, written with ``append_checkpoint_lines``) and exported documents; verifying
against a copy catches a database truncated together with its checkpoints.

Nothing here commits: callers append in the same transaction as the action recorded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from evidence.audit_syslog import SYSLOG_TAG
from evidence.keys import certificate_fingerprint, normalise_fingerprint, verify_signature
from storage.atomic import write_atomically
from storage.errors import ConfigurationError, InvalidInputError, OkoError, StorageError
from storage.models.access import AuditCheckpoint, AuditEvent, AuditHead
from storage.secret_files import load_or_create_secret
from storage.types import utcnow

GENESIS_HASH = "0" * 64
MAC_KEY_FILENAME = "audit-mac.key"
CHECKPOINT_FILE_FORMAT = "oko-audit-checkpoints/1"
MAX_IP_CHARS = 64
"""The most of a client address an entry stores (any IPv6 address with a zone id fits)."""


class AuditChainBrokenError(OkoError):
    """The audit log or its checkpoints fail verification."""

    exit_code = 4
    http_status = 409


class Signer(Protocol):
    """What checkpoint signing needs from the installation key (evidence.keys)."""

    def sign(self, data: bytes) -> bytes: ...

    @property
    def fingerprint_sha256(self) -> str: ...


@dataclass(frozen=True)
class CheckpointPolicy:
    """Sign a checkpoint every ``every_entries`` entries or ``every_minutes`` minutes;
    ``on_signed`` is told of each one (to copy it outside the database)."""

    signer: Signer
    every_entries: int = 100
    every_minutes: int = 10
    on_signed: Callable[[AuditCheckpoint], None] | None = None


def load_audit_mac_key(keys_dir: Path) -> bytes:
    """The audit HMAC key at its default place in the data dir, created on first use."""
    return load_audit_mac_key_file(keys_dir / MAC_KEY_FILENAME)


def load_audit_mac_key_file(path: Path) -> bytes:
    """The audit HMAC key stored at ``path``, created (mode 0600) on first use.

    Raises ``ConfigurationError`` for a key file that exists but is empty or not a key
    (a fresh key would make every earlier entry fail), ``StorageError`` when it cannot
    be read or created (its folder is never created here).
    """
    try:
        existing = path.read_text().strip() if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise StorageError(f"Cannot read the audit key file {path}: {exc}.") from exc
    if existing is not None:
        try:
            key = bytes.fromhex(existing)
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ConfigurationError(
                f"The audit key file {path} is empty or holds no key: restore it from its"
                " backup (a new key would make every entry written so far fail).")
        return key
    if not path.parent.is_dir():
        raise StorageError(f"The folder of the audit key file {path} does not exist.")
    return load_or_create_secret(path)


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(event: AuditEvent) -> str:
    """SHA-256 over everything the entry says, including its position and predecessor."""
    return hashlib.sha256(_canonical({
        "seq": event.seq, "occurred_at": _iso(event.occurred_at), "actor": event.actor,
        "agency": event.agency, "ip": event.ip, "action": event.action,
        "details": event.details, "prev_hash": event.prev_hash,
    })).hexdigest()


def _mac(mac_key: bytes, digest: str) -> str:
    return hmac.new(mac_key, digest.encode(), hashlib.sha256).hexdigest()


def _lock_head(session: Session) -> tuple[int, str]:
    """Claim the next sequence number; the row lock serialises concurrent writers."""
    claimed = session.execute(
        update(AuditHead).where(col(AuditHead.id) == 1)
        .values(seq=col(AuditHead.seq) + 1)
        .returning(col(AuditHead.seq), col(AuditHead.entry_hash))
    ).first()
    if claimed is None:  # a database created without the migration's seed row
        session.add(AuditHead(id=1, seq=1, entry_hash=GENESIS_HASH))
        session.flush()
        return 1, GENESIS_HASH
    seq, entry_hash = claimed
    return int(seq), str(entry_hash)


def append_audit_event(
    session: Session, *, actor: str, agency: str, ip: str, action: str,
    details: dict[str, Any], mac_key: bytes, checkpoints: CheckpointPolicy | None = None,
) -> AuditEvent:
    """Append one entry (and a checkpoint when one is due); flushes, never commits."""
    seq, prev_hash = _lock_head(session)
    event = AuditEvent(
        seq=seq, occurred_at=utcnow(), actor=actor, agency=agency, ip=ip[:MAX_IP_CHARS],
        action=action,
        # round-trip so what is hashed is exactly what the JSON column gives back
        details=json.loads(json.dumps(details, default=str)),
        prev_hash=prev_hash, entry_hash="", mac="",
    )
    event.entry_hash = entry_hash(event)
    event.mac = _mac(mac_key, event.entry_hash)
    session.add(event)
    session.execute(update(AuditHead).where(col(AuditHead.id) == 1)
                    .values(entry_hash=event.entry_hash))
    session.flush()
    if checkpoints is not None and _checkpoint_due(session, event, checkpoints):
        checkpoint = create_checkpoint(session, signer=checkpoints.signer)
        if checkpoint is not None and checkpoints.on_signed is not None:
            checkpoints.on_signed(checkpoint)
    return event


def _checkpoint_due(session: Session, event: AuditEvent, policy: CheckpointPolicy) -> bool:
    if policy.every_entries > 0 and event.seq % policy.every_entries == 0:
        return True
    last = session.exec(select(func.max(AuditCheckpoint.created_at))).one()
    if last is None:
        last = session.exec(select(AuditEvent.occurred_at).where(AuditEvent.seq == 1)).first()
    if last is None:
        return False
    if last.tzinfo is None:  # SQLite drops the zone on aggregates
        last = last.replace(tzinfo=UTC)
    return event.occurred_at - last >= timedelta(minutes=policy.every_minutes)


def checkpoint_payload(*, entry_count: int, head_hash: str, created_at: datetime) -> bytes:
    """The exact bytes a checkpoint signature covers."""
    return _canonical({"entry_count": entry_count, "head_hash": head_hash,
                       "created_at": _iso(created_at)})


def create_checkpoint(session: Session, *, signer: Signer) -> AuditCheckpoint | None:
    """Sign the current head; None when the log is empty or the head is already signed."""
    head = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
    if head is None:
        return None
    existing = session.exec(select(AuditCheckpoint)
                            .where(AuditCheckpoint.entry_count == head.seq)).first()
    if existing is not None:
        return None
    created_at = utcnow()
    signature = signer.sign(checkpoint_payload(entry_count=head.seq, head_hash=head.entry_hash,
                                               created_at=created_at))
    checkpoint = AuditCheckpoint(
        entry_count=head.seq, head_hash=head.entry_hash, created_at=created_at,
        signature=base64.b64encode(signature).decode(),
        signer_fingerprint=normalise_fingerprint(signer.fingerprint_sha256),
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


@dataclass(frozen=True)
class AuditProblem:
    """One failed check; ``seq`` is the entry it concerns, or None for a checkpoint-only issue."""

    seq: int | None
    reason: str


@dataclass
class AuditVerification:
    """Everything ``verify_audit_chain`` checked; ``ok`` is false if anything failed.

    ``warnings`` are findings that break nothing (the external copy is behind the
    database); they never make ``ok`` false.
    """

    entries: int = 0
    checkpoints: int = 0
    problems: list[AuditProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # checkpoint entry_count -> the TSA's time (evidence.audit_timestamp)
    trusted_times: dict[int, datetime] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_broken_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None]
        return min(seqs) if seqs else None

    def summary(self) -> str:
        if self.ok:
            latest = max(self.trusted_times, default=None)
            return (f"Audit log intact: {self.entries} entries, "
                    f"{self.checkpoints} signed checkpoints verified." + (
                        f" {len(self.trusted_times)} timestamped by a trusted TSA; "
                        f"checkpoint #{latest} at "
                        f"{self.trusted_times[latest]:%Y-%m-%dT%H:%M:%SZ}."
                        if latest is not None else ""))
        first = self.first_broken_seq
        where = (f"first broken entry is #{first}" if first is not None
                 else self.problems[0].reason)
        return f"Audit log fails verification: {where}."

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise AuditChainBrokenError(
                self.summary(),
                details=[f"#{p.seq}: {p.reason}" if p.seq is not None else p.reason
                         for p in self.problems])


@dataclass(frozen=True)
class CheckpointRecord:
    """A checkpoint as exported to a file (or read back from the database)."""

    entry_count: int
    head_hash: str
    created_at: datetime
    signature: str
    signer_fingerprint: str

    @classmethod
    def from_row(cls, row: AuditCheckpoint) -> CheckpointRecord:
        return cls(row.entry_count, row.head_hash, row.created_at, row.signature,
                   row.signer_fingerprint)

    def to_json(self) -> dict[str, Any]:
        return {"entry_count": self.entry_count, "head_hash": self.head_hash,
                "created_at": _iso(self.created_at), "signature": self.signature,
                "signer_fingerprint": self.signer_fingerprint}


def _check_entries(rows: Sequence[AuditEvent], mac_key: bytes | None,
                   report: AuditVerification) -> None:
    expected_seq, prev = 1, GENESIS_HASH
    for row in rows:
        if row.seq != expected_seq:
            missing = (f"entry #{expected_seq} is missing" if row.seq == expected_seq + 1
                       else f"entries #{expected_seq}-#{row.seq - 1} are missing")
            report.problems.append(AuditProblem(expected_seq, missing))
        if row.prev_hash != prev:
            report.problems.append(AuditProblem(
                row.seq, "does not link to the entry before it (deleted, reordered or inserted)"))
        if entry_hash(row) != row.entry_hash:
            report.problems.append(AuditProblem(row.seq, "content changed after it was written"))
        elif mac_key is not None and not hmac.compare_digest(_mac(mac_key, row.entry_hash),
                                                             row.mac):
            report.problems.append(AuditProblem(row.seq, "was not written by this installation"))
        prev, expected_seq = row.entry_hash, row.seq + 1


def _checkpoint_signed(checkpoint: CheckpointRecord,
                       by_fingerprint: dict[str, x509.Certificate]) -> bool:
    certificate = by_fingerprint.get(checkpoint.signer_fingerprint)
    if certificate is None:
        return False
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
    except ValueError:
        return False
    payload = checkpoint_payload(entry_count=checkpoint.entry_count,
                                 head_hash=checkpoint.head_hash,
                                 created_at=checkpoint.created_at)
    return verify_signature(certificate, signature, payload)


def _check_checkpoints(
    by_seq: dict[int, AuditEvent], last_seq: int, db_checkpoints: Sequence[CheckpointRecord],
    copies: Sequence[tuple[str, CheckpointRecord]],
    certificates: Sequence[x509.Certificate] | None, report: AuditVerification,
) -> None:
    known = {c.entry_count: c for c in db_checkpoints}
    differing: list[CheckpointRecord] = []  # checked against the entries too
    for source, copy in copies:
        if copy.entry_count not in known:
            report.problems.append(AuditProblem(
                None, f"checkpoint at entry #{copy.entry_count} (in {source}) was removed"
                      f" from the database"))
            known[copy.entry_count] = copy
        elif known[copy.entry_count] != copy:
            report.problems.append(AuditProblem(
                None, f"checkpoint at entry #{copy.entry_count} differs from {source}"))
            differing.append(copy)
    by_fingerprint = {certificate_fingerprint(c): c for c in certificates or ()}
    for checkpoint in sorted([*known.values(), *differing], key=lambda c: c.entry_count):
        if certificates is not None and not _checkpoint_signed(checkpoint, by_fingerprint):
            report.problems.append(AuditProblem(
                None, f"checkpoint at entry #{checkpoint.entry_count} has an invalid signature"))
            continue
        report.checkpoints += 1
        if checkpoint.entry_count > last_seq:
            report.problems.append(AuditProblem(
                last_seq + 1, f"entries #{last_seq + 1}-#{checkpoint.entry_count} were removed; "
                              f"a signed checkpoint covers them"))
            continue
        entry = by_seq.get(checkpoint.entry_count)
        if entry is None or entry.entry_hash != checkpoint.head_hash:
            report.problems.append(AuditProblem(
                checkpoint.entry_count, "does not match the signed checkpoint for this entry"
                                        " (altered, or removed and written anew)"))


def _check_log(log: CheckpointLog, db_checkpoints: Sequence[CheckpointRecord],
               report: AuditVerification) -> list[tuple[str, CheckpointRecord]]:
    """The log's own findings; returns its checkpoints, one per entry, to compare."""
    source = f"the checkpoint log {log.path}"
    if not log.exists:
        if db_checkpoints:
            report.problems.append(AuditProblem(
                None, f"{source} does not exist, but the database holds"
                      f" {len(db_checkpoints)} checkpoints"))
        return []
    for line in log.unreadable_lines:
        report.problems.append(AuditProblem(None, f"line {line} of {source} is not a"
                                                  f" checkpoint"))
    if log.torn_tail:
        report.warnings.append(f"The last line of {log.path} is incomplete (a crash while"
                               f" appending) and was ignored.")
    copies: dict[int, CheckpointRecord] = {}
    distinct: list[CheckpointRecord] = []
    for record in log.records:
        first = copies.setdefault(record.entry_count, record)
        if first != record:
            report.problems.append(AuditProblem(
                None, f"{source} holds two different checkpoints at entry"
                      f" #{record.entry_count}"))
        if record not in distinct:
            distinct.append(record)
    behind = sorted({c.entry_count for c in db_checkpoints} - set(copies))
    if behind:
        report.warnings.append(
            f"{len(behind)} checkpoint(s) are in the database only, not in {log.path}"
            f" (the first at entry #{behind[0]}): signed before OKO_AUDIT_CHECKPOINT_LOG was"
            f" set, or lost to a crash or a failed write just after their commit.")
    return [(source, c) for c in distinct]


def verify_audit_chain(
    session: Session, *, mac_key: bytes | None,
    certificates: Sequence[x509.Certificate] | None,
    exported_checkpoints: Sequence[CheckpointRecord] = (),
    checkpoint_log: CheckpointLog | None = None,
) -> AuditVerification:
    """Recompute every link, hash, MAC and checkpoint; collects every problem found.

    Checks, in order: (1) sequence numbers have no gaps; (2) each entry links to the one
    before; (3) each entry's hash matches its content; (4) its MAC matches the installation
    key; (5) the head row agrees with the newest entry; (6) the checkpoint log outside the
    database exists (if the database has checkpoints) and each of its lines is a
    checkpoint, at most one per entry; (7) each checkpoint (database, log and exported
    copies) is signed by an installation certificate, is still in the database and
    matches its entry, so a copy naming an entry past the newest one names the first
    removed entry. A database checkpoint missing from the log is a warning only.
    """
    rows = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    report = AuditVerification(entries=len(rows))
    _check_entries(rows, mac_key, report)
    last_seq = rows[-1].seq if rows else 0
    head = session.get(AuditHead, 1)
    if head is not None and head.seq > last_seq:
        report.problems.append(AuditProblem(
            last_seq + 1, f"entries #{last_seq + 1}-#{head.seq} were removed from the end"))
    elif head is not None and rows and head.entry_hash != rows[-1].entry_hash:
        report.problems.append(AuditProblem(last_seq, "does not match the chain head"))
    db_checkpoints = [CheckpointRecord.from_row(c) for c in session.exec(
        select(AuditCheckpoint).order_by(col(AuditCheckpoint.entry_count))).all()]
    copies = [("the exported copy", c) for c in exported_checkpoints]
    if checkpoint_log is not None:
        copies += _check_log(checkpoint_log, db_checkpoints, report)
    _check_checkpoints({r.seq: r for r in rows}, last_seq, db_checkpoints, copies,
                       certificates, report)
    return report


def checkpoint_document(session: Session, *,
                        certificates: Sequence[x509.Certificate]) -> dict[str, Any]:
    """Every checkpoint plus the certificates that signed them, as one JSON document."""
    rows = session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.entry_count))).all()
    return {"format": CHECKPOINT_FILE_FORMAT,
            "certificates_pem": [c.public_bytes(serialization.Encoding.PEM).decode()
                                 for c in certificates],
            "checkpoints": [CheckpointRecord.from_row(r).to_json() for r in rows]}


def export_checkpoints(session: Session, *, out: Path,
                       certificates: Sequence[x509.Certificate]) -> int:
    """Write ``checkpoint_document`` to ``out`` so a copy can live outside the database."""
    document = checkpoint_document(session, certificates=certificates)
    write_export_file(out, json.dumps(document, indent=2).encode())
    return len(document["checkpoints"])


def _record(item: Any) -> CheckpointRecord:
    """Raises ValueError, KeyError, TypeError or AttributeError for anything else."""
    created_at = datetime.fromisoformat(item["created_at"])
    if created_at.tzinfo is None:
        raise ValueError("a checkpoint time without a zone")
    return CheckpointRecord(
        entry_count=int(item["entry_count"]), head_hash=str(item["head_hash"]),
        created_at=created_at, signature=str(item["signature"]),
        signer_fingerprint=str(item["signer_fingerprint"]))


_BAD_RECORD = (ValueError, KeyError, TypeError, AttributeError)


def load_checkpoint_file(path: Path) -> list[CheckpointRecord]:
    """Parse a file written by ``export_checkpoints``, or a checkpoint log (JSON lines);
    raises InvalidInputError if it is neither."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"Cannot read the checkpoint file {path}.") from exc
    try:
        document = json.loads(text)
    except ValueError:
        document = None  # several lines: a checkpoint log
    if isinstance(document, dict) and "format" in document:
        try:
            if document["format"] != CHECKPOINT_FILE_FORMAT:
                raise ValueError("unknown format")
            return [_record(item) for item in document["checkpoints"]]
        except _BAD_RECORD as exc:
            raise InvalidInputError(f"{path} is not an Oko audit checkpoint file.") from exc
    log = parse_checkpoint_log(path, text)
    if log.unreadable_lines or not log.records:
        raise InvalidInputError(f"{path} is not an Oko audit checkpoint file.")
    return list(log.records)


@dataclass(frozen=True)
class CheckpointLog:
    """The checkpoint log kept outside the database, as read back by ``read_checkpoint_log``.

    ``torn_tail``: the last line has no newline and is no checkpoint (a crash while
    appending it); it is left out of ``records``.
    """

    path: Path
    exists: bool
    records: tuple[CheckpointRecord, ...] = ()
    unreadable_lines: tuple[int, ...] = ()
    torn_tail: bool = False


def checkpoint_log_line(checkpoint: AuditCheckpoint | CheckpointRecord) -> bytes:
    """One checkpoint as the log stores it: a JSON object on one line."""
    record = (checkpoint if isinstance(checkpoint, CheckpointRecord)
              else CheckpointRecord.from_row(checkpoint))
    return json.dumps(record.to_json(), sort_keys=True, separators=(",", ":")).encode() + b"\n"


def parse_checkpoint_log(path: Path, text: str) -> CheckpointLog:
    lines = text.split("\n")
    records: list[CheckpointRecord] = []
    unreadable: list[int] = []
    torn = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        _, tag, tagged = line.partition(SYSLOG_TAG)  # a syslog collector's copy
        try:
            records.append(_record(json.loads(tagged if tag else line)))
        except _BAD_RECORD:
            if number == len(lines):  # no newline after it: cut short by a crash
                torn = True
            else:
                unreadable.append(number)
    return CheckpointLog(path=path, exists=True, records=tuple(records),
                         unreadable_lines=tuple(unreadable), torn_tail=torn)


def read_checkpoint_log(path: Path) -> CheckpointLog:
    """Read the checkpoint log; a missing file is ``exists=False``. Raises ``StorageError``
    when it exists but cannot be read."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return CheckpointLog(path=path, exists=False)
    except OSError as exc:
        raise StorageError(f"Cannot read the audit checkpoint log {path}: {exc}.") from exc
    return parse_checkpoint_log(path, text)


def open_checkpoint_log(path: Path) -> int:
    """A descriptor that appends to the checkpoint log (created 0600 if missing; its folder
    never is). Raises ``StorageError`` when it cannot be opened for appending."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StorageError(f"Cannot append to the audit checkpoint log {path}"
                           f" (OKO_AUDIT_CHECKPOINT_LOG): {exc.strerror}.") from exc


def append_checkpoint_lines(fd: int, data: bytes) -> None:
    """Append whole lines with one write where possible (``O_APPEND`` keeps concurrent
    writers' lines apart), then fsync. Raises ``OSError``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.fsync(fd)


def audit_events_between(session: Session, *, start: datetime | None,
                         end: datetime | None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(col(AuditEvent.seq))
    if start is not None:
        query = query.where(col(AuditEvent.occurred_at) >= start)
    if end is not None:
        query = query.where(col(AuditEvent.occurred_at) < end)
    return list(session.exec(query).all())


def event_to_json(event: AuditEvent) -> dict[str, Any]:
    return {"seq": event.seq, "occurred_at": _iso(event.occurred_at), "actor": event.actor,
            "agency": event.agency, "ip": event.ip, "action": event.action,
            "details": event.details, "prev_hash": event.prev_hash,
            "entry_hash": event.entry_hash}


def write_export_file(out: Path, data: bytes) -> None:
    try:
        write_atomically(out, data)
    except OSError as exc:
        raise StorageError(f"Cannot write {out}: {exc}.") from exc
