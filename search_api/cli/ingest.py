"""CLI commands: ``oko ingest`` (queue files, optionally wait with progress) and ``oko jobs``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlmodel import Session

from indexer.jobs import (
    FAILED,
    FINISHED_STATUSES,
    QUEUED,
    JobReport,
    list_jobs,
    report_jobs,
    submit_ingest,
)
from search_api.audit import AuditAction, cli_actor, record_event
from search_api.cli.common import cli_context, console, err_console, print_json
from search_api.tasks import celery_for
from search_api.tasks.ingest import enqueue_ingest
from storage.db import session_scope

POLL_SECONDS = 0.3
NO_WORKER_HINT_SECONDS = 10.0


class JobProgressBoard:
    """One rich progress bar per job, labelled with the file name."""

    def __init__(self, reports: Sequence[JobReport]) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"), BarColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[stage]}"), console=console,
        )
        self.tasks: dict[int, TaskID] = {
            report.id: self.progress.add_task(Path(report.source_path).name, total=1.0,
                                              stage=report.status)
            for report in sorted(reports, key=lambda report: report.id)
        }

    def update(self, job_id: int, *, fraction: float, stage: str) -> None:
        self.progress.update(self.tasks[job_id], completed=fraction, stage=stage)

    def show(self, reports: Sequence[JobReport]) -> None:
        for report in reports:
            stage = report.status if report.status in FINISHED_STATUSES else report.stage
            fraction = 1.0 if report.status in FINISHED_STATUSES else report.progress
            self.update(report.id, fraction=fraction, stage=stage or report.status)


def wait_for_jobs(engine: Engine, job_ids: list[int], *, show_progress: bool) -> list[JobReport]:
    """Poll the job rows until every job is finished; the DB is the source of truth."""
    with Session(engine) as session:
        reports = report_jobs(session, list_jobs(session, job_ids=job_ids))
    board = JobProgressBoard(reports) if show_progress else None
    started = time.monotonic()
    hinted = False
    if board is not None:
        board.progress.start()
    try:
        while True:
            with Session(engine) as session:
                reports = report_jobs(session, list_jobs(session, job_ids=job_ids))
            if board is not None:
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


def print_summary(reports: Sequence[JobReport]) -> None:
    """One line per file: what was stored, or why not."""
    for report in reports:
        name = Path(report.source_path).name
        if report.status == FAILED:
            console.print(f"[red]FAILED[/]     {name}: {report.message}", highlight=False,
                          soft_wrap=True)
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
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> int:
    """Queue footage for ingest: one job per file, run by a worker (`oko serve`)."""
    state = cli_context(ctx).state
    with session_scope(state.engine) as session:  # the jobs and their audit entry together
        jobs = submit_ingest(session, paths=paths, camera_id=camera, start=start,
                             requested_by=cli_actor())
        job_ids = [job.id for job in jobs if job.id is not None]
        record_event(session, state=state, actor=cli_actor(), agency="", ip="cli",
                     action=AuditAction.INGEST, details={
                         "paths": [str(path) for path in paths], "camera_id": camera,
                         "job_ids": job_ids})
    enqueue_ingest(celery_for(state), job_ids)
    if not wait:
        with Session(state.engine) as session:
            reports = report_jobs(session, list_jobs(session, job_ids=job_ids))
        if json_output:
            print_json([report.to_dict() for report in reports])
        else:
            console.print(f"Queued {len(job_ids)} job(s): {', '.join(map(str, job_ids))}."
                          " Follow them with `oko jobs`.")
        return 0
    reports = wait_for_jobs(state.engine, job_ids, show_progress=not json_output)
    if json_output:
        print_json([report.to_dict() for report in reports])
    else:
        print_summary(reports)
    return 1 if any(report.status == FAILED for report in reports) else 0


def jobs_command(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest jobs to show.")] = 50,
) -> None:
    """Show ingest jobs, newest first, with their progress."""
    state = cli_context(ctx).state
    with Session(state.engine) as session:
        reports = report_jobs(session, list_jobs(session, limit=limit))
    if json_output:
        print_json([report.to_dict() for report in reports])
    else:
        print_jobs_table(reports)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("ingest")(ingest_command)
    app.command("jobs")(jobs_command)
