"""CLI commands: ``oko users ...`` and ``oko audit verify|export|checkpoints``.

Each command calls the same use case as the API, so its audit entry has the API's shape;
the actor is the operator (``cli:<os user>``, address ``cli``) or ``oko --as USER``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from evidence.audit import load_checkpoint_file
from search_api.cli.common import cli_context, console, operator_usecase, print_json
from search_api.state import AppState
from search_api.usecases import audit_log
from search_api.usecases import users as usecases
from storage.errors import InvalidInputError
from storage.models.access import Role, User, UserCreate, UserPublic, UserUpdate

users_app = typer.Typer(help="Manage users, roles and agencies.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify and export the tamper-evident audit log.",
                        no_args_is_help=True)


def _prompt_password() -> str:
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def create_first_admin(state: AppState) -> str:
    """The ``oko init`` step: creates the first admin unless one exists.

    The password comes from OKO_FIRST_ADMIN_PASSWORD, else a prompt on a terminal;
    without either, ``init`` says how to add one later instead of blocking.
    """
    settings = state.settings
    with operator_usecase(state) as operator:
        if usecases.has_admin(operator):
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
    with operator_usecase(state) as operator:
        user = usecases.create_first_admin(operator, username=username, password=password,
                                           agency=agency)
    if user is None:  # another process created one while we asked
        return "An admin account already exists."
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
    # unvalidated here: the use case checks every field, each with its own sentence
    new = UserCreate.model_construct(username=username, agency=agency, role=role,
                                     full_name=full_name, password=_prompt_password())
    with cli_context(ctx).usecase() as usecase:
        user = usecases.create_user(usecase, new=new)
    console.print(f"Created {user.role.value} '{user.username}' ({user.agency}).")


@users_app.command("list")
def list_command(ctx: typer.Context, as_json: Annotated[bool, typer.Option(
        "--json", help="Print JSON instead of a table.")] = False) -> None:
    """List users with their agency, role and status."""
    with cli_context(ctx).usecase() as usecase:
        rows = [UserPublic.model_validate(u, from_attributes=True)
                for u in usecases.list_users(usecase)]
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("username", "full name", "agency", "role", "status")
    for row in rows:
        table.add_row(row.username, row.full_name, row.agency, row.role.value,
                      "disabled" if row.disabled else "active")
    console.print(table)


def _update(ctx: typer.Context, username: str, changes: UserUpdate) -> User:
    with cli_context(ctx).usecase() as usecase:
        return usecases.update_user_named(usecase, username=username, changes=changes)


@users_app.command("disable")
def disable(ctx: typer.Context, username: Annotated[str, typer.Argument()],
            enable: Annotated[bool, typer.Option(
                "--enable", help="Re-enable a disabled user instead.")] = False) -> None:
    """Disable a user; their open sessions and tokens stop working at once."""
    user = _update(ctx, username, UserUpdate(disabled=not enable))
    console.print(f"User '{user.username}' is now {'active' if enable else 'disabled'}.")


@users_app.command("set-role")
def set_role_command(ctx: typer.Context, username: Annotated[str, typer.Argument()],
                     role: Annotated[Role, typer.Argument()]) -> None:
    """Change a user's role."""
    user = _update(ctx, username, UserUpdate(role=role))
    console.print(f"User '{user.username}' is now {user.role.value}.")


def _parse_time(value: str | None, option: str) -> datetime | None:
    """An option's ISO 8601 time; without a zone it is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(
            f"{option} '{value}' is not a time like 2026-11-25 or 2026-11-25T10:00Z.") from exc
    # a zoned time stays as given: the use case checks that it is in range
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@audit_app.command("verify")
def verify(ctx: typer.Context, checkpoints: Annotated[Path | None, typer.Option(
        "--checkpoints", help="A checkpoint file exported earlier, or a copy of a checkpoint"
                              " log, kept outside the DB.")] = None,
           ) -> None:
    """Recompute the hash chain and checkpoints, also against OKO_AUDIT_CHECKPOINT_LOG when
    set; names the first missing or altered entry (exit 4)."""
    exported = load_checkpoint_file(checkpoints) if checkpoints else []
    with cli_context(ctx).usecase() as usecase:
        report = audit_log.verify_audit_log(usecase, exported=exported)
    for warning in report.warnings:
        console.print(f"Warning: {warning}", highlight=False)
    report.raise_for_failure()
    console.print(report.summary(), highlight=False)


@audit_app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="FILE.pdf or FILE.jsonl.")],
    start: Annotated[str | None, typer.Option("--from", help="From (UTC if no zone).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Up to (UTC if no zone).")] = None,
    lang: Annotated[str, typer.Option(
        "--lang", metavar="uk|en",
        help="The PDF report's language: uk (Ukrainian, default) or en.")] = "uk",
) -> None:
    """Write the audit entries in [--from, --to) as a PDF report or JSON Lines."""
    start_at, end_at = _parse_time(start, "--from"), _parse_time(end, "--to")
    with cli_context(ctx).usecase() as usecase:
        count = audit_log.export_audit_log(usecase, start=start_at, end=end_at, out=out,
                                           lang=lang)
    console.print(f"Wrote {count} audit entries to {out}.")


@audit_app.command("checkpoints")
def checkpoints_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="JSON file to keep outside the DB.")],
    sign_now: Annotated[bool, typer.Option(
        "--sign-now", help="First sign a checkpoint at the current head.")] = False,
) -> None:
    """Export every signed checkpoint (and the certificates) to a file."""
    with cli_context(ctx).usecase() as usecase:
        count = audit_log.export_checkpoint_file(usecase, out=out, sign_now=sign_now)
    console.print(f"Wrote {count} signed checkpoints to {out}.")


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")


__all__ = ["create_first_admin", "register"]
