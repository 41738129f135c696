"""CLI commands: ``oko case ...``, ``oko keys show|rotate`` and ``oko verify``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import hashes
from rich.table import Table
from sqlmodel import Session, select

from evidence.cases import (
    add_clip,
    case_clips,
    create_case,
    get_case_or_raise,
    receive_case,
    share_case,
    shared_user_ids,
    transfer_case,
)
from evidence.exports import export_case
from evidence.keys import (
    KEY_FILE,
    Signer,
    ensure_signing_identity,
    known_certificates,
    load_signer,
    normalise_fingerprint,
    rotate_signing_identity,
)
from evidence.verify import (
    PinnedFingerprint,
    SignerPolicy,
    TrustedCertificates,
    UnpinnedSigner,
    VerificationReport,
    load_trusted_certificate,
    verify_bundle,
)
from search_api.accounts import get_user_or_raise
from search_api.audit import AuditAction, cli_actor, record_event
from search_api.cli.common import CliContext, cli_context, console, print_json
from search_api.state import AppState
from storage.blobstore import sha256_file
from storage.custody import chain_entries
from storage.db import session_scope
from storage.errors import InvalidInputError, NotFoundError
from storage.models.evidence import Case

case_app = typer.Typer(help="Cases: create, add clips, export, transfer.", no_args_is_help=True)
keys_app = typer.Typer(help="The evidence-signing key.", no_args_is_help=True)


def _audit(session: Session, context: CliContext, action: AuditAction,
           **details: Any) -> None:
    """The CLI's case changes go into the audit log in the same transaction."""
    record_event(session, state=context.state, actor=cli_actor(), agency="", ip="cli",
                 action=action, details=details)


def passphrase(context: CliContext) -> str:
    """OKO_KEY_PASSPHRASE, else a hidden prompt on a terminal."""
    if context.settings.key_passphrase:
        return context.settings.key_passphrase
    if not sys.stdin.isatty():
        return ""  # load_signer names OKO_KEY_PASSPHRASE in its error
    return str(typer.prompt("Evidence key passphrase", hide_input=True))


def signer_for(context: CliContext) -> Signer:
    return load_signer(keys_dir=context.settings.keys_dir, passphrase=passphrase(context))


def create_signing_identity(state: AppState) -> str:
    """The ``oko init`` step: the encrypted evidence-signing key and its certificate."""
    settings = state.settings
    secret = settings.key_passphrase
    if not secret and sys.stdin.isatty():
        creating = not (settings.keys_dir / KEY_FILE).is_file()
        secret = str(typer.prompt("Evidence key passphrase", hide_input=True,
                                  confirmation_prompt=creating))
    signer = ensure_signing_identity(keys_dir=settings.keys_dir,
                                     organisation=settings.organisation, passphrase=secret)
    return (f"Evidence-signing certificate {signer.subject}; SHA-256 fingerprint"
            f" {signer.fingerprint_sha256} (give it to prosecutors out of band).")


def _time(value: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(f"{option} '{value}' is not an ISO 8601 time.") from exc


def case_record(session: Session, case: Case) -> dict[str, Any]:
    return {**case.model_dump(mode="json"),
            "shared_with": shared_user_ids(session, case=case),
            "clips": [c.model_dump(mode="json") for c in case_clips(session, case=case)]}


@case_app.command("create")
def create(ctx: typer.Context, number: Annotated[str, typer.Argument(help="Case number.")],
           title: Annotated[str, typer.Option(help="Case title.")],
           legal_basis: Annotated[str, typer.Option(help="Court order or legal basis.")],
           investigator: Annotated[str, typer.Option(help="Investigator's username.")]) -> None:
    """Open a case."""
    context = cli_context(ctx)
    with session_scope(context.state.engine) as session:
        case = create_case(session, number=number, title=title, legal_basis=legal_basis,
                           investigator=get_user_or_raise(session, username=investigator))
        _audit(session, context, AuditAction.CASE_CHANGE, change="create", case_id=case.id,
               number=case.number)
    console.print(f"Created case {case.number}.")


@case_app.command("list")
def list_command(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False,
                 ) -> None:
    """List every case."""
    with session_scope(cli_context(ctx).state.engine) as session:
        cases = session.exec(select(Case).order_by(Case.number)).all()
        records = [case.model_dump(mode="json") for case in cases]
    if as_json:
        print_json(records)
        return
    table = Table("number", "title", "agency", "status", "created")
    for r in records:
        table.add_row(r["number"], r["title"], r["agency"], r["status"], r["created_at"])
    console.print(table)


@case_app.command("show")
def show(ctx: typer.Context, number: Annotated[str, typer.Argument()],
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a case, its clips and its custody chain."""
    with session_scope(cli_context(ctx).state.engine) as session:
        case = get_case_or_raise(session, number)
        record = case_record(session, case)
        record["custody"] = [e.model_dump(mode="json")
                             for e in chain_entries(session, f"case:{case.id}")]
    if as_json:
        print_json(record)
        return
    console.print(f"[bold]{record['number']}[/] {record['title']}\n"
                  f"legal basis: {record['legal_basis']}  agency: {record['agency']}")
    for clip in record["clips"]:
        console.print(f"  clip {clip['id']}: {clip['camera_id']} {clip['start_utc']} → "
                      f"{clip['end_utc']} ({clip['source']}) {clip['note']}")
    for entry in record["custody"]:
        console.print(f"  custody #{entry['seq']} {entry['recorded_at']} {entry['action']} "
                      f"by {entry['actor']} {entry['entry_hash'][:16]}…")


@case_app.command("add-clip")
def add_clip_command(
    ctx: typer.Context, number: Annotated[str, typer.Argument()],
    camera: Annotated[str, typer.Option(help="Camera id.")],
    start: Annotated[str, typer.Option(help="Start, ISO 8601 with zone.")],
    end: Annotated[str, typer.Option(help="End, ISO 8601 with zone.")],
    note: Annotated[str, typer.Option(help="Why this clip matters.")] = "",
    search_provenance: Annotated[Path | None, typer.Option(
        help="JSON file with the search moment's query, model, weights_sha256, score.")] = None,
) -> None:
    """Add a camera and time range to a case (evidence-locks its original)."""
    provenance = None
    if search_provenance is not None:
        try:
            provenance = json.loads(search_provenance.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{search_provenance} is not a readable JSON file.") from exc
    context = cli_context(ctx)
    with session_scope(context.state.engine) as session:
        case = get_case_or_raise(session, number)
        clip = add_clip(session, case=case, camera_id=camera,
                        start_utc=_time(start, "--start"), end_utc=_time(end, "--end"),
                        note=note, actor=cli_actor(), added_by_id=None, provenance=provenance)
        _audit(session, context, AuditAction.CASE_CHANGE, change="add_clip", case_id=case.id,
               clip_id=clip.id, camera_id=camera)
    console.print(f"Added clip {clip.id} to case {number}.")


@case_app.command("share")
def share(ctx: typer.Context, number: Annotated[str, typer.Argument()],
          user: Annotated[str, typer.Option(help="Username to share the case with.")]) -> None:
    """Let another user (e.g. a prosecutor) see the case."""
    context = cli_context(ctx)
    with session_scope(context.state.engine) as session:
        case = get_case_or_raise(session, number)
        target = get_user_or_raise(session, username=user)
        share_case(session, case=case, user=target)
        _audit(session, context, AuditAction.CASE_CHANGE, change="share", case_id=case.id,
               shared_with=target.username)
    console.print(f"Shared case {number} with {target.username}.")


@case_app.command("export")
def export(ctx: typer.Context, number: Annotated[str, typer.Argument()],
           out: Annotated[Path, typer.Option("--out", help="The bundle zip to write.")]) -> None:
    """Export the case as a signed BagIt bundle."""
    context = cli_context(ctx)
    state, signer = context.state, signer_for(context)
    with session_scope(state.engine) as session:
        result = export_case(
            session, case=get_case_or_raise(session, number), exporter=cli_actor(),
            signer=signer, originals=state.originals, derived=state.derived,
            tmp_dir=state.settings.tmp_dir, out_path=out.resolve(),
            organisation=state.settings.organisation,
            full_original_max_bytes=state.settings.full_original_max_bytes,
        )
        _audit(session, context, AuditAction.EXPORT, change="export", number=number,
               bundle_sha256=result.bundle_sha256)
    console.print(f"Wrote {result.bundle_path} ({result.size_bytes} bytes)\n"
                  f"bundle SHA-256: {result.bundle_sha256}\n"
                  f"tag manifest SHA-256: {result.tag_manifest_sha256}\n"
                  f"signer fingerprint: {signer.fingerprint_sha256}")


@case_app.command("transfer")
def transfer(ctx: typer.Context, number: Annotated[str, typer.Argument()],
             to: Annotated[str, typer.Option("--to", help="The recipient's name.")],
             bundle: Annotated[Path, typer.Option(help="The bundle handed over.")],
             note: Annotated[str, typer.Option()] = "") -> None:
    """Record handing a bundle to a named recipient."""
    if not bundle.is_file():
        raise NotFoundError(f"{bundle} does not exist.")
    context = cli_context(ctx)
    with session_scope(context.state.engine) as session:
        entry = transfer_case(session, case=get_case_or_raise(session, number),
                              actor=cli_actor(), recipient=to,
                              bundle_sha256=sha256_file(bundle), note=note)
        _audit(session, context, AuditAction.CASE_CHANGE, change="transfer", number=number,
               recipient=to)
    console.print(f"Recorded transfer of case {number} to {to} (custody #{entry.seq}).")


@case_app.command("receive")
def receive(ctx: typer.Context, number: Annotated[str, typer.Argument()],
            bundle: Annotated[Path, typer.Option(help="The bundle received.")],
            fingerprint: Annotated[str | None, typer.Option()] = None) -> None:
    """Verify a received bundle and record the receipt (exit 1 if it is invalid)."""
    context = cli_context(ctx)
    policy: SignerPolicy = (PinnedFingerprint(normalise_fingerprint(fingerprint)) if fingerprint
                            else
                            TrustedCertificates(tuple(known_certificates(
                                context.settings.keys_dir))))
    report = verify_bundle(bundle, policy, work_dir=context.settings.tmp_dir)
    with session_scope(context.state.engine) as session:
        entry = receive_case(session, case=get_case_or_raise(session, number),
                             actor=cli_actor(), bundle_sha256=sha256_file(bundle),
                             tag_manifest_sha256=report.tag_manifest_sha256 or "",
                             verification_ok=report.ok)
        _audit(session, context, AuditAction.VERIFY, change="receipt", number=number,
               ok=report.ok)
    console.print(f"Recorded receipt of case {number} (custody #{entry.seq}).")
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@keys_app.command("show")
def keys_show(ctx: typer.Context) -> None:
    """Print the signing certificate's SHA-256 fingerprint (hand it over out of band)."""
    context = cli_context(ctx)
    signer = signer_for(context)
    console.print(f"subject: {signer.subject}\nfingerprint (SHA-256): "
                  f"{signer.fingerprint_sha256}")
    for cert in known_certificates(context.settings.keys_dir):
        print_fp = cert.fingerprint(hashes.SHA256()).hex()
        if print_fp != signer.fingerprint_sha256:
            console.print(f"previous: {print_fp} (valid from {cert.not_valid_before_utc:%Y-%m-%d})")


@keys_app.command("rotate")
def keys_rotate(ctx: typer.Context) -> None:
    """Make a new signing key; old certificates are kept so old bundles still verify."""
    context = cli_context(ctx)
    signer = rotate_signing_identity(keys_dir=context.settings.keys_dir,
                                     organisation=context.settings.organisation,
                                     passphrase=passphrase(context))
    console.print(f"New signing key; fingerprint (SHA-256): {signer.fingerprint_sha256}")


def _print_report(report: VerificationReport) -> None:
    """One unwrapped line per check, so every problem names its file in full."""
    for check in report.checks:
        typer.echo(f"{'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    typer.echo("VALID" if report.ok else f"INVALID: {len(report.failures)} problem(s)")


def verify_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle zip or extracted bag directory.")],
    fingerprint: Annotated[str | None, typer.Option(
        help="Expected signer certificate SHA-256 fingerprint.")] = None,
    trusted_cert: Annotated[Path | None, typer.Option(
        help="A trusted signer certificate (PEM).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify a bundle offline: exit 0 valid, 1 invalid, 2 unusable input."""
    if fingerprint and trusted_cert:
        raise InvalidInputError("Give --fingerprint or --trusted-cert, not both.")
    policy: SignerPolicy = UnpinnedSigner()
    if fingerprint:
        policy = PinnedFingerprint(normalise_fingerprint(fingerprint))
    elif trusted_cert:
        policy = TrustedCertificates((load_trusted_certificate(trusted_cert),))
    report = verify_bundle(bundle, policy)
    if as_json:
        print_json(report.to_dict())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(case_app, name="case")
    app.add_typer(keys_app, name="keys")
    app.command("verify")(verify_command)
