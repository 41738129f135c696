"""CLI commands: ``oko case ...``, ``oko keys show|rotate|revoke|export-trust`` and
``oko verify``.

``oko case`` commands call the same use cases as the API (``search_api.usecases``), so
they authorize, audit and follow the export approval flow the same way. The local
operator sees every case; ``oko --as USER case ...`` acts as that user. ``oko verify``
is the prosecutor's offline check: it never opens the data dir.
"""

from __future__ import annotations

import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from evidence.export_jobs import AWAITING_APPROVAL, QUEUED, RUNNING
from evidence.keys import KEY_FILE, ROOT_KEY_FILE
from search_api.cli.common import (
    cli_context,
    console,
    operator_usecase,
    passphrase,
    print_json,
)
from search_api.cli.redaction import propose as propose_redaction
from search_api.state import AppState
from search_api.usecases import cases, exports, keys
from search_api.usecases.verify import receive_bundle
from storage.atomic import atomic_write
from storage.errors import InvalidInputError, StorageError

case_app = typer.Typer(help="Cases: create, add clips, export, transfer.", no_args_is_help=True)
keys_app = typer.Typer(help="The evidence authority (root) and the signing certificate.",
                       no_args_is_help=True)


def create_signing_identity(state: AppState) -> str:
    """The ``oko init`` step: the encrypted evidence-signing key and its certificate."""
    settings = state.settings
    if not settings.key_passphrase and sys.stdin.isatty():
        creating = not (settings.keys_dir / KEY_FILE).is_file()
        settings.key_passphrase = str(typer.prompt(
            "Evidence key passphrase", hide_input=True, confirmation_prompt=creating))
    with operator_usecase(state) as operator:
        identity = keys.ensure_signing_key(operator)
    if identity.root_fingerprint_sha256 is None:
        return (f"Evidence-signing certificate {identity.subject}, SHA-256 fingerprint"
                f" {identity.fingerprint_sha256}, is self-signed (from before the evidence"
                " authority); run `oko keys rotate` to create the authority's root.")
    offline = (f" Move {settings.keys_dir / ROOT_KEY_FILE} offline; rotation and revocation"
               " need it back." if identity.root_key_present else "")
    return (f"Evidence authority {identity.root_subject}: root SHA-256 fingerprint"
            f" {identity.root_fingerprint_sha256} (give it to prosecutors out of band;"
            f" `oko keys export-trust DIR` writes the root and its CRL). Signing certificate"
            f" {identity.fingerprint_sha256}, valid until {identity.valid_until:%Y-%m-%d}."
            + (f" Report-signing certificate (PDF) {identity.report.fingerprint_sha256}."
               if identity.report is not None else "")
            + offline)


def _time(value: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(f"{option} '{value}' is not an ISO 8601 time.") from exc


Number = Annotated[str, typer.Argument(help="Case number.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


# `oko case redact CASE --clip N` is `oko redact propose`; review goes on under `oko redact`
case_app.command("redact")(propose_redaction)


@case_app.command("create")
def create(ctx: typer.Context, number: Number,
           title: Annotated[str, typer.Option(help="Case title.")],
           legal_basis: Annotated[str, typer.Option(help="Court order or legal basis.")],
           investigator: Annotated[str | None, typer.Option(
               help="Investigator's username (with --as USER: that user).")] = None) -> None:
    """Open a case."""
    with cli_context(ctx).usecase() as usecase:
        case = cases.create_case(usecase, number=number, title=title, legal_basis=legal_basis,
                                 investigator=investigator)
    console.print(f"Created case {case.number}.", highlight=False)


@case_app.command("list")
def list_command(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List the cases you may see (the operator: every case)."""
    with cli_context(ctx).usecase() as usecase:
        records = [c.model_dump(mode="json") for c in cases.list_cases(usecase)]
    if as_json:
        print_json(records)
        return
    table = Table("number", "title", "agency", "status", "created")
    for r in records:
        table.add_row(r["number"], r["title"], r["agency"], r["status"], r["created_at"])
    console.print(table)


@case_app.command("show")
def show(ctx: typer.Context, number: Number, as_json: AsJson = False) -> None:
    """Show a case, its clips and its custody chain (what GET /api/cases/ID answers)."""
    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        detail = cases.read_case(usecase, case_id=case.id or 0)
    if as_json:
        print_json(detail.model_dump(mode="json"))
        return
    console.print(f"[bold]{detail.number}[/] {detail.title}\n"
                  f"legal basis: {detail.legal_basis}  agency: {detail.agency}")
    for clip in detail.clips:
        console.print(f"  clip {clip.id}: {clip.camera_id} {clip.start_utc.isoformat()} → "
                      f"{clip.end_utc.isoformat()} ({clip.origin}) {clip.note}")
    for entry in detail.custody:
        console.print(f"  custody #{entry.seq} {entry.recorded_at.isoformat()} {entry.action} "
                      f"by {entry.actor} {entry.entry_hash[:16]}…")


@case_app.command("add-clip")
def add_clip_command(
    ctx: typer.Context, number: Number,
    camera: Annotated[str, typer.Option(help="Camera id.")],
    start: Annotated[str, typer.Option(help="Start, ISO 8601 with zone.")],
    end: Annotated[str, typer.Option(help="End, ISO 8601 with zone.")],
    note: Annotated[str, typer.Option(help="Why this clip matters.")] = "",
    search: Annotated[int | None, typer.Option(
        "--search", min=1, help="The search the clip comes from (its search id).")] = None,
    frame: Annotated[int | None, typer.Option(
        "--frame", min=1, help="The moment's frame id in that search's answer.")] = None,
) -> None:
    """Add a camera and time range to a case (evidence-locks its original).

    A clip from a search names it (--search) and the moment's frame (--frame); the
    provenance is copied from the audited search. Without them the clip is added by hand.
    """
    start_utc, end_utc = _time(start, "--start"), _time(end, "--end")
    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        clip = cases.add_clip(usecase, case_id=case.id or 0, camera_id=camera,
                              start_utc=start_utc, end_utc=end_utc, note=note,
                              search_id=search, frame_id=frame)
    console.print(f"Added clip {clip.id} to case {number} ({clip.origin}).", highlight=False)


@case_app.command("share")
def share(ctx: typer.Context, number: Number,
          user: Annotated[str, typer.Option(help="Username to share the case with.")]) -> None:
    """Let a prosecutor, or a colleague whose agency may search every camera of the case,
    see it (only its investigator or a supervisor of its agency may share)."""
    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        shared = cases.share_case(usecase, case_id=case.id or 0, username=user)
    console.print(f"Shared case {number} with {shared.username}.", highlight=False)


def _copy_out(source: Path, out: Path) -> None:
    """The bundle at ``out``, complete or not at all."""
    if out.exists() and out.resolve() == source.resolve():
        return
    try:
        with source.open("rb") as src, atomic_write(out) as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    except OSError as exc:
        raise StorageError(f"Could not write {out}: {exc.strerror or exc}.") from exc


@case_app.command("export")
def export(ctx: typer.Context, number: Number,
           out: Annotated[Path, typer.Option("--out", help="The bundle zip to write.")],
           export_id: Annotated[int | None, typer.Option(
               "--export", min=1, help="Run (once approved) or fetch this export.")] = None,
           no_timestamp: Annotated[bool, typer.Option(
               "--no-timestamp", help="Export without the TSA's trusted timestamp (recorded "
               "in the bundle); otherwise an unreachable TSA fails the export.")] = False,
           lang: Annotated[str, typer.Option(
               "--lang", metavar="uk|en",
               help="The report's language: uk (Ukrainian, default) or en.")] = "uk",
           redact: Annotated[str | None, typer.Option(
               "--redact", metavar="faces,plates", help="A disclosure (redacted) copy "
               "from the clips' approved redactions, masking faces, plates or both.")] = None,
           ) -> None:
    """Export the case as a signed BagIt bundle, through the approval flow if required.

    Without --export this requests a new export; when exports need a supervisor's
    approval it stops there and says how to continue. With --export it runs that
    approved export here (or fetches it, if the worker already made it) and writes it.
    """
    context = cli_context(ctx)
    with context.usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        case_id = case.id or 0
        if export_id is None and redact is not None:
            from search_api.usecases.redaction import request_disclosure

            job = request_disclosure(usecase, case_id=case_id, redact=redact, lang=lang,
                                     run_in_worker=False)
        elif export_id is None:
            job = exports.request_export(usecase, case_id=case_id, run_in_worker=False,
                                         no_timestamp=no_timestamp, lang=lang)
        if export_id is None:
            export_id = job.id
            if job.status == AWAITING_APPROVAL:
                typer.echo(  # unwrapped: the commands are meant to be copied
                    f"Export {export_id} of case {number} awaits a supervisor's approval; "
                    f"no bundle was written.\nApprove it: oko --as SUPERVISOR case approve "
                    f"{number} {export_id}\nThen write it: oko case export {number} --export "
                    f"{export_id} --out {out}")
                return
        if exports.read_export(usecase, case_id=case_id, export_id=export_id).status in (
                QUEUED, RUNNING):
            passphrase(context)  # asked only when this process signs the bundle
        exports.run_export(usecase, export_id=export_id)  # a no-op unless it is queued
        download = exports.download_export(usecase, case_id=case_id, export_id=export_id)
    _copy_out(download.path, out)
    job = download.job
    typer.echo(f"Wrote {out} ({job.size_bytes} bytes) from export {job.id}\n"
               f"bundle SHA-256: {job.bundle_sha256}\n"
               f"tag manifest SHA-256: {job.tag_manifest_sha256}")


@case_app.command("approve")
def approve(ctx: typer.Context, number: Number,
            export_id: Annotated[int, typer.Argument(min=1, help="The export's id.")]) -> None:
    """Approve an export someone else requested (run as a supervisor: oko --as USER)."""
    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        job = exports.approve_export(usecase, case_id=case.id or 0, export_id=export_id)
    typer.echo(f"Approved export {job.id} of case {number}; the worker runs it, or write it "
               f"here: oko case export {number} --export {job.id} --out FILE")


@case_app.command("transfer")
def transfer(ctx: typer.Context, number: Number,
             to: Annotated[str, typer.Option("--to", help="The recipient's name.")],
             bundle: Annotated[Path | None, typer.Option(
                 help="The bundle file handed over.")] = None,
             export_id: Annotated[int | None, typer.Option(
                 "--export", min=1, help="Or: the finished export handed over.")] = None,
             note: Annotated[str, typer.Option()] = "") -> None:
    """Record handing a bundle to a named recipient."""
    if (bundle is None) == (export_id is None):
        raise InvalidInputError("Give the bundle handed over: --bundle FILE or --export ID.")
    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        entry = exports.transfer_case(usecase, case_id=case.id or 0, recipient=to, note=note,
                                      export_id=export_id, bundle=bundle)
    console.print(f"Recorded transfer of case {number} to {to} (custody #{entry.seq}).",
                  highlight=False)


@case_app.command("receive")
def receive(ctx: typer.Context, number: Number,
            bundle: Annotated[Path, typer.Option(help="The bundle received.")],
            fingerprint: Annotated[str | None, typer.Option(
                help="Check against this root or signer fingerprint, not this "
                     "installation's certificates.")] = None) -> None:
    """Verify a received bundle and record the receipt (exit 0 VALID, 1 INVALID, 3
    intact but not trusted); a bundle of another case or never transferred is refused."""
    with cli_context(ctx).usecase() as usecase:
        case = cases.get_visible_case_by_number(usecase, number)
        receipt = receive_bundle(usecase, case_id=case.id or 0, bundle=bundle,
                                 fingerprint=fingerprint)
    console.print(f"Recorded receipt of case {number} (custody #{receipt.custody.seq}).",
                  highlight=False)
    verification = receipt.verification
    for check in verification.checks:
        typer.echo(f"{'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    typer.echo(verification.summary)
    if verification.exit_code:
        raise typer.Exit(verification.exit_code)


def _identity_lines(identity: keys.SigningIdentity) -> list[str]:
    if identity.root_fingerprint_sha256 is None:
        lines = ["evidence authority: none yet (the signing certificate is self-signed); "
                 "`oko keys rotate` creates it"]
    else:
        where = "here" if identity.root_key_present else "offline (not in the keys folder)"
        lines = [f"evidence authority (root): {identity.root_subject}",
                 f"root fingerprint (SHA-256): {identity.root_fingerprint_sha256}",
                 f"root key: {where}"]
    revoked = (f"; REVOKED {identity.revoked_at:%Y-%m-%d %H:%M} UTC, run `oko keys rotate`"
               if identity.revoked_at else "")
    lines += [f"signing certificate: {identity.subject}",
              f"fingerprint (SHA-256): {identity.fingerprint_sha256}",
              f"valid until: {identity.valid_until:%Y-%m-%d}{revoked}"]
    report = identity.report
    if report is None:
        lines.append("report-signing certificate (PDF): none yet; bring the root key back "
                     "and run `oko keys rotate`" if identity.root_fingerprint_sha256
                     else "report-signing certificate (PDF): none (needs the authority)")
    else:
        report_revoked = (f"; REVOKED {report.revoked_at:%Y-%m-%d %H:%M} UTC, run `oko keys "
                          "rotate`" if report.revoked_at else "")
        lines += [f"report-signing certificate (PDF): {report.subject}",
                  f"report fingerprint (SHA-256): {report.fingerprint_sha256}",
                  f"report valid until: {report.valid_until:%Y-%m-%d}{report_revoked}"]
    for previous in identity.previous:
        notes = [f"valid from {previous.valid_from:%Y-%m-%d} to {previous.valid_until:%Y-%m-%d}"]
        if previous.self_signed:
            notes.append("self-signed, from before the authority")
        if previous.revoked_at is not None:
            notes.append(f"revoked {previous.revoked_at:%Y-%m-%d %H:%M} UTC "
                         f"({previous.revocation_reason})")
        kind = "previous report" if previous.report else "previous"
        lines.append(f"{kind}: {previous.fingerprint_sha256} ({'; '.join(notes)})")
    return lines


@keys_app.command("show")
def keys_show(ctx: typer.Context) -> None:
    """Print the root's and the signing certificate's SHA-256 fingerprints, and how to
    publish the root (hand its fingerprint over out of band)."""
    with cli_context(ctx).usecase() as usecase:
        identity = keys.signing_identity(usecase)
    for line in _identity_lines(identity):
        typer.echo(line)
    if identity.root_fingerprint_sha256 is not None:
        typer.echo("publish the root: oko keys export-trust DIR writes the root and its CRL"
                   " into DIR for prosecutors (oko-verify BUNDLE --trust-store DIR); give them"
                   " the root fingerprint above by another channel to compare")


@keys_app.command("rotate")
def keys_rotate(ctx: typer.Context) -> None:
    """Issue a new signing certificate from the root (creating the root on an old
    installation); old certificates are kept, so old bundles stay VALID."""
    context = cli_context(ctx)
    passphrase(context)
    with context.usecase() as usecase:
        identity = keys.rotate_signing_key(usecase)
    typer.echo(f"New signing key and certificate; fingerprint (SHA-256): "
               f"{identity.fingerprint_sha256}"
               f"\nroot fingerprint (SHA-256): {identity.root_fingerprint_sha256}")
    if identity.report is not None:
        typer.echo("New report-signing certificate (PDF); fingerprint (SHA-256): "
                   f"{identity.report.fingerprint_sha256}")


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context,
    fingerprint: Annotated[str, typer.Argument(
        help="The signing or report-signing certificate's SHA-256.")],
    reason: Annotated[str, typer.Option("--reason", help=(
        "key-compromise, superseded, cessation-of-operation, affiliation-changed, "
        "privilege-withdrawn or unspecified."))],
) -> None:
    """Revoke a signing certificate as of now in the root's CRL: bundles it signs later
    are INVALID. Revoking the current one issues its replacement first."""
    context = cli_context(ctx)
    passphrase(context)
    with context.usecase() as usecase:
        result = keys.revoke_certificate(usecase, fingerprint=fingerprint, reason=reason)
    report = result.identity.report
    typer.echo(f"Revoked {result.fingerprint_sha256} at "
               f"{result.revoked_at:%Y-%m-%dT%H:%M:%SZ} ({result.reason}).\n"
               f"Signing certificate now: {result.identity.fingerprint_sha256}\n"
               + (f"Report-signing certificate now: {report.fingerprint_sha256}\n"
                  if report is not None else "") +
               "Publish the new CRL: oko keys export-trust DIR")


@keys_app.command("export-trust")
def keys_export_trust(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="The trust-store folder to write.")],
) -> None:
    """Write the root certificate and its CRL (and any self-signed certificate of old)
    into a folder prosecutors use as a trust store."""
    with cli_context(ctx).usecase() as usecase:
        written = keys.export_trust(usecase, out_dir=out)
    for path in written:
        typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(case_app, name="case")
    app.add_typer(keys_app, name="keys")
