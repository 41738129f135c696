"""CLI commands: ``oko users ...`` and ``oko audit verify|export|checkpoints``.

Every change is recorded in the audit log in the same transaction, with actor
``cli:<os user>`` and address ``cli``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import Session

from evidence.audit import (
    create_checkpoint,
    export_audit,
    export_checkpoints,
    load_checkpoint_file,
)
from evidence.keys import known_certificates, load_signer
from search_api.accounts import (
    create_user,
    ensure_first_admin,
    get_user_or_raise,
    list_users,
    set_disabled,
    set_role,
)
from search_api.audit import AuditAction, cli_actor, record_event, verify_installation_audit
from search_api.cli.common import cli_context, console, print_json
from search_api.state import AppState
from storage.db import session_scope
from storage.errors import InvalidInputError
from storage.models.access import Role, User, UserPublic

users_app = typer.Typer(help="Manage users, roles and agencies.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify and export the tamper-evident audit log.",
                        no_args_is_help=True)


def _record(session: Session, state: AppState, action: AuditAction, **details: object) -> None:
    record_event(session, state=state, actor=cli_actor(), agency="", ip="cli", action=action,
                 details=details)


def _prompt_password() -> str:
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def create_first_admin(state: AppState) -> str:
    """The ``oko init`` step: creates the first admin unless one exists.

    The password comes from OKO_FIRST_ADMIN_PASSWORD, else a prompt on a terminal;
    without either, ``init`` says how to add one later instead of blocking.
    """
    settings = state.settings
    with session_scope(state.engine) as session:
        if any(u.role == Role.ADMIN for u in list_users(session)):
            return "An admin account already exists."
        password = settings.first_admin_password
        username, agency = settings.first_admin_username, settings.first_admin_agency
        if password is None:
            if not sys.stdin.isatty():
                return ("No admin account yet: set OKO_FIRST_ADMIN_PASSWORD and rerun"
                        " `oko init`, or run `oko users add NAME --role admin --agency A`.")
            username = typer.prompt("First admin's username", default=username)
            agency = typer.prompt("First admin's agency", default=agency)
            password = _prompt_password()
        user = ensure_first_admin(session, username=username, password=password,
                                  agency=agency)
        assert user is not None
        _record(session, state, AuditAction.USER_CHANGE, change="create",
                username=user.username, agency=user.agency, role=user.role.value)
    return f"Created the first admin, '{user.username}' ({user.agency})."


@users_app.command("add")
def add(
    ctx: typer.Context,
    username: Annotated[str, typer.Argument(help="Login name, e.g. o.petrenko.")],
    agency: Annotated[str, typer.Option(help="Agency, e.g. police, dsns, ambulance.")],
    role: Annotated[Role, typer.Option(help="admin, investigator, supervisor, prosecutor "
                                            "or auditor.")],
    full_name: Annotated[str, typer.Option(help="Full name, shown in reports.")] = "",
) -> None:
    """Create a user; the password is asked for (twice) and never echoed."""
    state = cli_context(ctx).state
    password = _prompt_password()
    with session_scope(state.engine) as session:
        user = create_user(session, username=username, password=password, agency=agency,
                           role=role, full_name=full_name)
        _record(session, state, AuditAction.USER_CHANGE, change="create",
                username=user.username, agency=user.agency, role=user.role.value)
    console.print(f"Created {user.role.value} '{user.username}' ({user.agency}).")


@users_app.command("list")
def list_command(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of a table.")] = False) -> None:
    """List users with their agency, role and status."""
    with session_scope(cli_context(ctx).state.engine) as session:
        rows = [UserPublic.model_validate(u, from_attributes=True) for u in list_users(session)]
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("username", "full name", "agency", "role", "status")
    for row in rows:
        table.add_row(row.username, row.full_name, row.agency, row.role.value,
                      "disabled" if row.disabled else "active")
    console.print(table)


def _change(ctx: typer.Context, username: str, **changes: object) -> User:
    state = cli_context(ctx).state
    with session_scope(state.engine) as session:
        user = get_user_or_raise(session, username=username)
        if "role" in changes:
            set_role(session, user=user, role=Role(str(changes["role"])))
        if "disabled" in changes:
            set_disabled(session, user=user, disabled=bool(changes["disabled"]))
        _record(session, state, AuditAction.USER_CHANGE, change="update",
                username=user.username, **changes)
    return user


@users_app.command("disable")
def disable(ctx: typer.Context, username: Annotated[str, typer.Argument()],
            enable: Annotated[bool, typer.Option(
                "--enable", help="Re-enable a disabled user instead.")] = False) -> None:
    """Disable a user; their open sessions and tokens stop working at once."""
    user = _change(ctx, username, disabled=not enable)
    console.print(f"User '{user.username}' is now {'active' if enable else 'disabled'}.")


@users_app.command("set-role")
def set_role_command(ctx: typer.Context, username: Annotated[str, typer.Argument()],
                     role: Annotated[Role, typer.Argument()]) -> None:
    """Change a user's role."""
    user = _change(ctx, username, role=role.value)
    console.print(f"User '{user.username}' is now {user.role.value}.")


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"{option} '{value}' is not a time like 2026-11-25 or 2026-11-25T10:00Z.") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@audit_app.command("verify")
def verify(ctx: typer.Context, checkpoints: Annotated[Path | None, typer.Option(
        "--checkpoints", help="A checkpoint file exported earlier, kept outside the DB.")] = None,
           ) -> None:
    """Recompute the hash chain and checkpoints; names the first broken entry (exit 4)."""
    state = cli_context(ctx).state
    exported = load_checkpoint_file(checkpoints) if checkpoints else []
    with session_scope(state.engine) as session:
        report = verify_installation_audit(session, state=state, exported=exported)
        _record(session, state, AuditAction.VERIFY, target="audit_log", ok=report.ok,
                first_broken_seq=report.first_broken_seq)
    report.raise_for_failure()
    console.print(report.summary())


@audit_app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="FILE.pdf or FILE.jsonl.")],
    start: Annotated[str | None, typer.Option("--from", help="From (UTC if no zone).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to (UTC if no zone).")] = None,
) -> None:
    """Write the audit entries in [--from, --to) as a PDF report or JSON Lines."""
    state = cli_context(ctx).state
    start_at, end_at = _parse_time(start, "--from"), _parse_time(end, "--to")
    with session_scope(state.engine) as session:
        count = export_audit(session, start=start_at, end=end_at, out=out,
                             verification=verify_installation_audit(session, state=state),
                             title=f"{state.settings.organisation}: audit report")
        _record(session, state, AuditAction.AUDIT_EXPORT, format=out.suffix.lstrip("."),
                entries=count, start=start_at, end=end_at)
    console.print(f"Wrote {count} audit entries to {out}.")


@audit_app.command("checkpoints")
def checkpoints_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="JSON file to keep outside the DB.")],
    sign_now: Annotated[bool, typer.Option(
        "--sign-now", help="First sign a checkpoint at the current head.")] = False,
) -> None:
    """Export every signed checkpoint (and the certificates) to a file."""
    state = cli_context(ctx).state
    settings = state.settings
    with session_scope(state.engine) as session:
        if sign_now:
            create_checkpoint(session, signer=load_signer(
                keys_dir=settings.keys_dir, passphrase=settings.key_passphrase))
        count = export_checkpoints(session, out=out,
                                   certificates=known_certificates(settings.keys_dir))
    console.print(f"Wrote {count} signed checkpoints to {out}.")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")


__all__ = ["create_first_admin", "register"]
