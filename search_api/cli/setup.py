"""CLI commands: ``oko init``, ``oko worker``, ``oko serve`` and ``oko demo``.

``init`` runs ``SETUP_STEPS`` in order; a feature that needs one-time setup (a
signing key, the first admin) appends its own step. ``serve`` runs the API in this
process and supervises one Celery worker process beside it; both stop together.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer
from sqlalchemy.engine import make_url

from indexer.jobs import FAILED
from indexer.samples import CAMERAS as SAMPLE_CAMERAS
from indexer.samples import generate_sample_footage
from search_api.cli.access import create_first_admin
from search_api.cli.common import CliContext, cli_context, console, err_console
from search_api.cli.evidence import create_signing_identity
from search_api.cli.ingest import JobProgressBoard, print_summary
from search_api.state import AppState
from search_api.usecases.cameras import import_cameras, list_visible_cameras
from search_api.usecases.ingest import embed_pending, job_reports, run_ingest, submit_footage
from search_api.usecases.users import create_user, list_users
from storage.errors import ConfigurationError
from storage.models.access import Role, UserCreate
from storage.settings import Settings

if TYPE_CHECKING:
    import uvicorn

HostOption = Annotated[str, typer.Option("--host", help="Address to listen on.")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")]


@dataclass(frozen=True)
class SetupStep:
    """One idempotent step of ``oko init``; ``run`` returns a line saying what it did."""

    name: str
    run: Callable[[AppState], str]


def _data_dir_and_schema(state: AppState) -> str:
    # build_state already created the directories and migrated the schema in place.
    url = make_url(state.settings.resolved_database_url).render_as_string(hide_password=True)
    return f"Data dir {state.settings.home} is ready; database {url} is at the latest schema."


def _checkpoint_log_advice(state: AppState) -> str:
    log = state.settings.audit_checkpoint_log
    if log is not None:
        return f"Signed audit checkpoints are also appended to {log}."
    return ("Warning: OKO_AUDIT_CHECKPOINT_LOG is not set. Set it to a file outside the data"
            " dir, so that the audit log can be checked even if its database is rewound.")


SETUP_STEPS: list[SetupStep] = [
    SetupStep("data dir and database", _data_dir_and_schema),
    SetupStep("evidence-signing key", create_signing_identity),
    SetupStep("first admin", create_first_admin),
    SetupStep("audit checkpoint log", _checkpoint_log_advice),
]


def run_setup(state: AppState) -> list[str]:
    return [step.run(state) for step in SETUP_STEPS]


def init_command(ctx: typer.Context) -> None:
    """Create the data dir and bring the database schema up to date (safe to rerun)."""
    for line in run_setup(cli_context(ctx).state):
        console.print(line, highlight=False)


def worker_command(
    ctx: typer.Context,
    pool: Annotated[str, typer.Option("--pool", help="solo or prefork.")] = "solo",
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", min=1, max=8,
        help="Processes for prefork (default OKO_WORKER_CONCURRENCY).")
    ] = None,
) -> None:
    """Run a Celery worker for ingest and evidence jobs (``oko serve`` starts one for you)."""
    if pool not in ("solo", "prefork"):
        raise ConfigurationError(f"Unknown worker pool '{pool}' (expected solo or prefork).")
    settings = cli_context(ctx).state.settings  # migrates before any task runs
    from search_api.tasks.app import QUEUE, make_celery  # Celery loads for the worker only

    celery = make_celery(settings)
    argv = ["worker", "--loglevel=INFO", f"--pool={pool}", f"--queues={QUEUE}",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            "--hostname=oko@%h", "--without-mingle", "--without-gossip"]
    if not settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        argv.append("--without-heartbeat")  # the SQL transport has no broadcast channel
    celery.worker_main(argv)


class WorkerSupervisor:
    """Keeps one ``oko worker`` process running beside the API; restarts it if it crashes."""

    RESTART_DELAY_S = 2.0
    STOP_GRACE_S = 15.0

    def __init__(self, settings: Settings) -> None:
        self.env = {**os.environ, "OKO_HOME": str(settings.home)}
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._watch, name="oko-worker-supervisor",
                                       daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "search_api.cli", "worker"]
        # Same process group as `oko serve`, so Ctrl-C in the terminal reaches both.
        return subprocess.Popen(command, env=self.env)

    def start(self) -> None:
        self.process = self._spawn()
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.wait(0.5):
            assert self.process is not None
            if self.process.poll() is None:
                continue
            if self.process.returncode == 0:
                return  # it was asked to stop (Ctrl-C reaches the whole process group)
            err_console.print(f"worker exited with code {self.process.returncode};"
                              f" restarting in {self.RESTART_DELAY_S:.0f} s")
            if self.stopping.wait(self.RESTART_DELAY_S):
                return
            self.process = self._spawn()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            # A job cut short here stays "running" and is re-queued once its lease expires.
            process.kill()
            process.wait(timeout=10)


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot listen on {host}:{port} ({exc.strerror}); choose another with --port."
            ) from exc


def server_config(app: Any, settings: Settings, *, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for ``oko serve``: X-Forwarded-For only from trusted proxies.

    uvicorn by default believes the header from 127.0.0.1, so a local proxy that passes
    it through would let a client choose the address the audit log and the per-address
    sign-in limit see. With ``OKO_TRUSTED_PROXIES`` empty the TCP peer is the client.
    """
    import uvicorn

    trusted = settings.trusted_proxy_list
    return uvicorn.Config(app, host=host, port=port, log_level="info",
                          proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None)


def serve(state: AppState, *, host: str, port: int) -> int:
    """Serve the API and supervise a worker until Ctrl-C; both are stopped on the way out.

    Returns the exit status: 130 after SIGINT (Ctrl-C), 143 after SIGTERM, else 0.
    """
    # the web stack loads only for the commands that serve
    from search_api.app import create_app
    from search_api.cli.server import SignalAwareServer, running_recorders

    _check_port_free(host, port)
    supervisor = WorkerSupervisor(state.settings)
    supervisor.start()
    if state.settings.warm_encoder:  # the first query should not pay the model load
        state.warm_encoder_in_background()
    try:
        server = SignalAwareServer(server_config(create_app(state.settings, state=state),
                                                 state.settings, host=host, port=port))
        console.print(f"Oko is serving on [bold]http://{host}:{port}[/] (Ctrl-C to stop)",
                      highlight=False)
        with running_recorders(state):
            server.run()
    finally:
        supervisor.stop()
    return 0 if server.stop_signal is None else 128 + server.stop_signal


def serve_command(ctx: typer.Context, host: HostOption = "127.0.0.1",
                  port: PortOption = 8000) -> int:
    """Serve the API (and web UI) with a background worker for ingest jobs."""
    return serve(cli_context(ctx).state, host=host, port=port)


def ingest_demo_footage(cli: CliContext, *, profile: str) -> bool:
    """Generate the sample footage, register its cameras and ingest it here, in-process.

    Returns False when some file failed (the summary says which and why).
    """
    state = cli.state
    samples_dir = state.settings.home / "samples"
    with console.status(f"Generating sample footage into {samples_dir} ..."):
        samples = generate_sample_footage(samples_dir, profile=profile)
    assert samples.cameras_csv is not None
    with cli.usecase() as usecase:
        registered = {camera.id for camera in list_visible_cameras(usecase)}
        if all(camera.id in registered for camera in SAMPLE_CAMERAS):
            console.print("Sample cameras are already registered.")
        else:
            import_cameras(usecase, path=samples.cameras_csv)
    job_ids: list[int] = []
    for camera_id in dict.fromkeys(clip.camera_id for clip in samples.clips):
        paths = [clip.path for clip in samples.clips if clip.camera_id == camera_id]
        with cli.usecase() as usecase:
            job_ids += submit_footage(usecase, paths=paths, camera_id=camera_id, start=None)
    if profile != "test":  # cars with plates (plate search works without CLIP weights)
        from indexer.plates.footage import demo_plate_clips

        for camera_id, path in demo_plate_clips(samples_dir):
            with cli.usecase() as usecase:
                job_ids += submit_footage(usecase, paths=[path], camera_id=camera_id,
                                          start=None)
    with cli.usecase() as usecase:
        board = JobProgressBoard(job_reports(usecase, job_ids=job_ids))
    with board.progress:
        for job_id in job_ids:
            run_ingest(state, job_id=job_id, on_progress=partial(board.update_stage, job_id))
            with cli.usecase() as usecase:
                board.show(job_reports(usecase, job_ids=[job_id]))
    with cli.usecase() as usecase:
        reports = sorted(job_reports(usecase, job_ids=job_ids), key=lambda report: report.id)
    print_summary(reports)
    return all(report.status != FAILED for report in reports)


DEMO_INVESTIGATOR = "investigator"


def _demo_secrets(settings: Settings) -> dict[str, str]:
    """Demo-only secrets, generated once and kept (mode 0600) in the demo data dir."""
    path = settings.home / "demo-secrets.json"
    if path.is_file():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    generated = {name: secrets.token_urlsafe(12)
                 for name in ("key_passphrase", "admin_password", "investigator_password")}
    settings.home.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(generated, handle, indent=2)
    return generated


def _prepare_demo_accounts(cli: CliContext) -> list[str]:
    """Fill unset secrets from the demo file so the demo never stops at a prompt."""
    settings = cli.settings
    demo = _demo_secrets(settings)
    lines = []
    if not settings.key_passphrase:
        settings.key_passphrase = demo["key_passphrase"]
        os.environ["OKO_KEY_PASSPHRASE"] = demo["key_passphrase"]  # for the worker process
    if not settings.first_admin_password:
        settings.first_admin_password = demo["admin_password"]
        lines.append(f"admin / {demo['admin_password']}")
    with cli.usecase() as usecase:
        if not any(user.username == DEMO_INVESTIGATOR for user in list_users(usecase)):
            create_user(usecase, new=UserCreate(
                username=DEMO_INVESTIGATOR, agency="police", role=Role.INVESTIGATOR,
                password=demo["investigator_password"]))
    lines.append(f"{DEMO_INVESTIGATOR} / {demo['investigator_password']} (police)")
    return lines


def demo_command(
    ctx: typer.Context, host: HostOption = "127.0.0.1", port: PortOption = 8000,
    profile: Annotated[str, typer.Option("--profile", help="Sample footage profile.")] = "demo",
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Stop after ingesting.")] = False,
) -> int:
    """Set up a data dir, ingest generated sample footage, then serve it while recording
    two looping loopback streams as live cameras."""
    if not no_serve:
        _check_port_free(host, port)  # before minutes of work, not after
    cli = cli_context(ctx)
    state = cli.state
    accounts = _prepare_demo_accounts(cli)
    for line in run_setup(state):
        console.print(line, highlight=False)
    ok = ingest_demo_footage(cli, profile=profile)
    if not ok:
        err_console.print("Some sample files failed to ingest; serving what was stored.")
    console.print(embed_pending(state), highlight=False)
    console.print("Demo sign-in (secrets in demo-secrets.json in the data dir): "
                  + "; ".join(accounts), highlight=False)
    if not no_serve:
        return serve_demo(cli, host=host, port=port)
    return 0 if ok else 1


def serve_demo(cli: CliContext, *, host: str, port: int) -> int:
    """``serve`` with the demo's two looping loopback streams recorded as cameras (in
    20 s files unless OKO_RECORD_SEGMENT_SECONDS is set); they stop with it."""
    from search_api.cli.demo_streams import DEMO_SEGMENT_SECONDS, running_demo_streams

    state = cli.state
    if not state.settings.serve_recorders:  # OKO_SERVE_RECORDERS=0: nothing would record
        return serve(state, host=host, port=port)
    if "OKO_RECORD_SEGMENT_SECONDS" not in os.environ:
        state.settings.record_segment_seconds = DEMO_SEGMENT_SECONDS
    with running_demo_streams(footage_dir=state.settings.home / "samples",
                              usecase=cli.usecase) as streams:
        for camera_id, stream in streams.streams.items():
            console.print(f"Live demo camera {camera_id} streams {stream.url}; recorded in "
                          f"{state.settings.record_segment_seconds:g} s files.",
                          highlight=False)
        return serve(state, host=host, port=port)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("init")(init_command)
    app.command("worker")(worker_command)
    app.command("serve")(serve_command)
    app.command("demo")(demo_command)


__all__ = ["SETUP_STEPS", "SetupStep", "WorkerSupervisor", "register", "run_setup", "serve"]
