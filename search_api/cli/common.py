"""Shared plumbing for CLI commands: the per-invocation context and output helpers.

Every command imports this module, ``oko verify`` on a prosecutor's computer included,
so the database and application stack load only when a command first asks for them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import typer
from rich.console import Console

from storage.errors import AuthenticationError
from storage.settings import Settings

if TYPE_CHECKING:
    from search_api.state import AppState
    from search_api.usecases.context import UseCaseContext

console = Console()
err_console = Console(stderr=True)


@dataclass
class CliContext:
    """Settings read once in ``main``; the state (engine, stores) is built on first use.

    ``act_as`` is ``oko --as USER``: the operator acts as that Oko user, with that role.
    """

    settings: Settings
    act_as: str | None = None
    _state: AppState | None = field(default=None, repr=False)

    @property
    def state(self) -> AppState:
        from search_api.jobqueue import CeleryJobQueue
        from search_api.state import build_state

        if self._state is None:
            self._state = build_state(self.settings,
                                      job_queue=CeleryJobQueue(self.settings))
        return self._state

    def usecase(self) -> AbstractContextManager[UseCaseContext]:
        """A session and the operator's identity for one use case (rolled back on error)."""
        return operator_usecase(self.state, act_as=self.act_as)


@contextmanager
def operator_usecase(state: AppState, *, act_as: str | None = None
                     ) -> Iterator[UseCaseContext]:
    """The local operator's use-case context, or ``act_as``'s (who must be enabled)."""
    from sqlmodel import Session

    from search_api.usecases.context import Actor, UseCaseContext

    with Session(state.engine, expire_on_commit=False) as session:
        as_user = None
        if act_as:
            from search_api.accounts import get_user_or_raise  # with the password stack

            as_user = get_user_or_raise(session, username=act_as)
            if as_user.disabled:
                raise AuthenticationError(f"User '{as_user.username}' is disabled.")
        yield UseCaseContext(session=session, state=state,
                             actor=Actor.local_operator(as_user=as_user))


def passphrase(context: CliContext) -> str:
    """OKO_KEY_PASSPHRASE, else a hidden prompt on a terminal (asked once per command)."""
    if not context.settings.key_passphrase and sys.stdin.isatty():
        context.settings.key_passphrase = str(typer.prompt("Evidence key passphrase",
                                                           hide_input=True))
    return context.settings.key_passphrase or ""  # load_signer names the setting if empty


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliContext)
    return obj


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


class CheckLine(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def passed(self) -> bool: ...

    @property
    def detail(self) -> str: ...


def print_report(checks: Sequence[CheckLine], *, ok: bool) -> None:
    """One unwrapped line per check, so every problem names its file in full."""
    for check in checks:
        typer.echo(f"{'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    failures = sum(not c.passed for c in checks)
    typer.echo("VALID" if ok else f"INVALID: {failures} problem(s)")
