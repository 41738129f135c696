"""CLI commands: ``oko ingest`` (queue files, optionally wait with progress) and ``oko jobs``.

``oko ingest --here`` runs the jobs in this process instead of handing them to a worker,
so one file is ingested with no ``oko serve`` running (and no broker is touched).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from indexer.jobs import FAILED, FINISHED_STATUSES, QUEUED, WALKED, JobReport
from search_api.cli.common import CliContext, cli_context, console, err_console, print_json
from search_api.usecases.ingest import job_reports, queue_ingest, run_ingest, submit_footage

if TYPE_CHECKING:
    from rich.progress import TaskID

POLL_SECONDS = 0.3
NO_WORKER_HINT_SECONDS = 10.0


class JobProgressBoard:
    """One rich progress bar per job, labelled with the file name."""

    def __init__(self, reports: Sequence[JobReport]) -> None:
        # loaded here: `--json` and scripted ingests show no bars
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}", justify="left"), BarColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[stage]}"), console=console,
        )
        self.tasks: dict[int, TaskID] = {
            report.id: self.progress.add_task(Path(report.source_path).name, total=1.0,
                                              stage=report.status)
            for report in sorted(reports, key=lambda report: report.id)
        }

    def add(self, reports: Sequence[JobReport]) -> None:
        """Bars for jobs not shown yet (the file jobs of a walked folder)."""
        for report in sorted(reports, key=lambda report: report.id):
            if report.id not in self.tasks:
                self.tasks[report.id] = self.progress.add_task(
                    Path(report.source_path).name, total=1.0, stage=report.status)

    def update(self, job_id: int, *, fraction: float, stage: str) -> None:
        self.progress.update(self.tasks[job_id], completed=fraction, stage=stage)

    def update_stage(self, job_id: int, stage: str, fraction: float) -> None:
        """The ingest progress callback's argument order."""
        self.update(job_id, fraction=fraction, stage=stage)

    def show(self, reports: Sequence[JobReport]) -> None:
        for report in reports:
            stage = report.status if report.status in FINISHED_STATUSES else report.stage
            fraction = 1.0 if report.status in FINISHED_STATUSES else report.progress
            self.update(report.id, fraction=fraction, stage=stage or report.status)


def _reports(cli: CliContext, job_ids: list[int]) -> list[JobReport]:
    """These jobs and the file jobs their folders' walks queued."""
    with cli.usecase() as usecase:
        return job_reports(usecase, job_ids=job_ids, parent_ids=job_ids)


def wait_for_jobs(cli: CliContext, job_ids: list[int], *,
                  show_progress: bool) -> list[JobReport]:
    """Poll the job rows until every job, and every file job a folder's walk queued,
    is finished; the DB is the source of truth."""
    reports = _reports(cli, job_ids)
    board = JobProgressBoard(reports) if show_progress else None
    started = time.monotonic()
    hinted = False
    if board is not None:
        board.progress.start()
    try:
        while True:
            reports = _reports(cli, job_ids)
            if board is not None:
                board.add(reports)
                board.show(reports)
            if all(report.status in FINISHED_STATUSES for report in reports):
                return sorted(reports, key=lambda report: report.id)
            waited = time.monotonic() - started
            if (not hinted and waited > NO_WORKER_HINT_SECONDS
                    and all(report.status == QUEUED for report in reports)):
                err_console.print("Waiting for a worker: start one with `oko serve` or"
                                  " `oko worker`.")
                hinted = True
            time.sleep(POLL_SECONDS)
    finally:
        if board is not None:
            board.progress.stop()


class InProcessIngestQueue:
    """The job queue of ``oko ingest --here``: ingest jobs wait here until this process
    runs them; it hands nothing else to a worker."""

    def __init__(self) -> None:
        self.pending: list[int] = []

    def enqueue_ingest(self, job_ids: Sequence[int]) -> None:
        self.pending.extend(job_ids)

    def enqueue_export(self, job_id: int) -> None:
        raise RuntimeError("oko ingest --here runs ingest jobs only.")

    def enqueue_redaction(self, redaction_id: int) -> None:
        raise RuntimeError("oko ingest --here runs ingest jobs only.")

    def enqueue_embed(self) -> None:
        raise RuntimeError("oko ingest --here runs ingest jobs only.")


def ingest_here(cli: CliContext, job_ids: list[int], *,
                show_progress: bool) -> list[JobReport]:
    """Run the queued jobs (and the file jobs their folders' walks queue) in this process."""
    queue = InProcessIngestQueue()
    state = cli.state
    state.job_queue = queue
    queue.enqueue_ingest(job_ids)
    board = JobProgressBoard(_reports(cli, job_ids)) if show_progress else None
    if board is not None:
        board.progress.start()
    try:
        while queue.pending:
            job_id = queue.pending.pop(0)
            if board is not None:
                board.add(_reports(cli, [job_id]))
            run_ingest(state, job_id=job_id, on_progress=None if board is None
                       else partial(board.update_stage, job_id))
    finally:
        if board is not None:
            board.progress.stop()
    return sorted(_reports(cli, job_ids), key=lambda report: report.id)


def print_summary(reports: Sequence[JobReport]) -> None:
    """One line per file: what was stored, or why not."""
    for report in reports:
        name = Path(report.source_path).name
        if report.status == FAILED:
            console.print(f"[red]FAILED[/]     {name}: {report.message}", highlight=False,
                          soft_wrap=True)
            continue
        if report.stage == WALKED:
            console.print(f"[blue]{'WALKED':<10}[/] {name}: {report.message}",
                          highlight=False, soft_wrap=True)
            continue
        colour = "yellow" if report.duplicate else "green"
        damage = (f" [red]DAMAGED[/] (decodable {report.decodable_duration_s:.1f} s)"
                  if report.damaged else "")
        console.print(
            f"[{colour}]{report.status.upper():<10}[/] {name}: sha256 {report.sha256}, "
            f"{report.segments} segments, {report.frames} frames{damage}",
            highlight=False, soft_wrap=True,
        )


def print_jobs_table(reports: Sequence[JobReport]) -> None:
    from rich.table import Table

    table = Table("id", "status", "stage", "progress", "camera")
    table.add_column("file", overflow="ellipsis", no_wrap=True, max_width=40)
    table.add_column("message", overflow="ellipsis", no_wrap=True, max_width=60)
    for report in reports:
        table.add_row(str(report.id), report.status, report.stage,
                      f"{report.progress * 100:.0f}%", report.camera_id,
                      Path(report.source_path).name, report.message)
    console.print(table)


def ingest_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Video files or folders to ingest.")],
    camera: Annotated[str, typer.Option("--camera", help="Camera id the footage comes from.")],
    start: Annotated[str | None, typer.Option(
        "--start", help="Recording start, ISO 8601 (default: container time or file name).")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the jobs and show progress.")
                    ] = False,
    here: Annotated[bool, typer.Option(
        "--here", help="Ingest in this process, without a worker; frames then wait for "
                       "embedding until a worker or `oko reindex` embeds them.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Queue footage for ingest: one job per file or folder, run by a worker (`oko serve`).

    The worker walks a folder into one job per video file; `--wait` follows those too.
    With `--here` this process runs the jobs itself and waits for them.
    """
    cli = cli_context(ctx)
    if here:
        with cli.usecase() as usecase:
            job_ids = submit_footage(usecase, paths=paths, camera_id=camera, start=start)
        reports = ingest_here(cli, job_ids, show_progress=not json_output)
    else:
        with cli.usecase() as usecase:
            reports = queue_ingest(usecase, paths=paths, camera_id=camera, start=start)
    if wait and not here:
        reports = wait_for_jobs(cli, [report.id for report in reports],
                                show_progress=not json_output)
    if json_output:
        print_json([report.to_dict() for report in reports])
    elif wait or here:
        print_summary(reports)
    else:
        console.print(f"Queued {len(reports)} job(s): "
                      f"{', '.join(str(report.id) for report in reports)}."
                      " Follow them with `oko jobs`.")
    return 1 if any(report.status == FAILED for report in reports) else 0


def jobs_command(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest jobs to show.")] = 50,
) -> None:
    """Show ingest jobs, newest first, with their progress."""
    with cli_context(ctx).usecase() as usecase:
        reports = job_reports(usecase, limit=limit)
    if json_output:
        print_json([report.to_dict() for report in reports])
    else:
        print_jobs_table(reports)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("ingest")(ingest_command)
    app.command("jobs")(jobs_command)
