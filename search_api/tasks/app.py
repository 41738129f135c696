"""Celery wiring shared by senders and the worker: the app factory, task names, sending.

The default broker is kombu's SQLAlchemy transport on a SQLite file in the data dir, so
nothing needs a server; ``OKO_BROKER_URL=redis://...`` switches to Redis. The DB job
rows, not the broker, decide what still has to run: a worker re-enqueues stale jobs
itself (``search_api.tasks.worker``). Messages are sent by task name, so a sender never
imports the task bodies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError

from storage.db import private_sqlite_file
from storage.errors import ConfigurationError, OkoError
from storage.settings import Settings

TASK_MODULES = ["search_api.tasks.ingest", "search_api.tasks.evidence"]
QUEUE = "oko"
INGEST_TASK = "oko.ingest"
EMBED_TASK = "oko.embed"
EXPORT_TASK = "oko.export_case"
REDACTION_TASK = "oko.propose_redaction"
# search fan-out (search_api.search_fanout): its own app, one queue per named search worker
SEARCH_TASK = "oko.search_shards"
SEARCH_TASK_MODULES = ["search_api.tasks.search"]
SEARCH_QUEUE_PREFIX = "search."


class BrokerUnavailableError(OkoError):
    """The job broker could not take the task; the job row stays queued for recovery."""

    exit_code = 4
    http_status = 503


def make_celery(settings: Settings) -> Celery:
    """A Celery app for these settings; the worker's state is built lazily per process."""
    broker = settings.resolved_broker_url
    # Only the process-wide default, never a thread-local "current" app: a request
    # thread that builds an app must not leave it current for another thread's tasks.
    app = Celery("oko", broker=broker, include=TASK_MODULES, set_as_current=False)
    transport_options: dict[str, Any] = {}
    if broker.startswith("sqla+"):
        settings.home.mkdir(parents=True, exist_ok=True)
        if broker.startswith("sqla+sqlite:"):  # kombu would create it with the umask's mode
            private_sqlite_file(broker.removeprefix("sqla+"))
        # Passed to SQLAlchemy's create_engine: wait on a locked SQLite file, don't fail.
        transport_options = {"connect_args": {"timeout": 30}}
    elif broker.startswith(("redis://", "rediss://")):
        # Far longer than any ingest: recovery is done from the DB lease, not redelivery.
        transport_options = {"visibility_timeout": 6 * 3600}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=QUEUE,
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_concurrency=settings.worker_concurrency,
        timezone="UTC",
        enable_utc=True,
    )
    app.oko_settings = settings
    app.set_default()
    return app


def search_queue(worker: str) -> str:
    """The queue only search worker ``worker`` consumes: a query for its shards reaches it."""
    return f"{SEARCH_QUEUE_PREFIX}{worker}"


def make_search_celery(settings: Settings) -> Celery:
    """The Celery app of search fan-out: Redis as broker and result backend, JSON only.

    A query is never redelivered (no late ack): its sender has stopped waiting by then.
    Raises ``ConfigurationError`` when the broker is not Redis.
    """
    broker = settings.resolved_broker_url
    if not broker.startswith(("redis://", "rediss://")):
        raise ConfigurationError("Search workers need a Redis broker; set OKO_BROKER_URL to"
                                 " redis://HOST:PORT/DB where OKO_SEARCH_WORKERS is set.")
    app = Celery("oko-search", broker=broker, backend=broker, include=SEARCH_TASK_MODULES,
                 set_as_current=False)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=False, worker_prefetch_multiplier=1, task_ignore_result=False,
        result_expires=300, result_extended=False,
        broker_connection_retry_on_startup=True,
        # a query has a deadline: a broker that is down fails it fast instead of retrying
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0,
                                   "interval_step": 0.1, "interval_max": 0.1},
        broker_transport_options={"socket_connect_timeout": 2, "socket_timeout": 10},
        result_backend_transport_options={"retry_policy": {
            "max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}},
        redis_socket_connect_timeout=2,
        worker_concurrency=settings.search_worker_concurrency,
        task_default_queue=f"{SEARCH_QUEUE_PREFIX}default", timezone="UTC", enable_utc=True,
    )
    app.oko_settings_search = settings
    return app


def enqueue_ingest(app: Celery, job_ids: Iterable[int]) -> None:
    """Send one ingest task per job id (after the job rows are committed).

    Raises ``BrokerUnavailableError`` when the broker cannot be reached; the jobs
    stay queued and a worker enqueues them again when it starts.
    """
    try:
        for job_id in job_ids:
            app.send_task(INGEST_TASK, args=[job_id], queue=QUEUE)
    except OperationalError as exc:
        raise BrokerUnavailableError(
            "The job broker cannot be reached; the jobs stay queued and a worker will"
            " pick them up when it starts.") from exc


def enqueue_export(app: Celery, job_id: int) -> None:
    """Send the export task after its job row is committed."""
    try:
        app.send_task(EXPORT_TASK, args=[job_id], queue=QUEUE)
    except OperationalError as exc:
        raise BrokerUnavailableError(
            "The job broker cannot be reached; the export stays queued.") from exc


def enqueue_redaction(app: Celery, redaction_id: int) -> None:
    """Send a redaction's detection task after its row is committed (queued)."""
    try:
        app.send_task(REDACTION_TASK, args=[redaction_id], queue=QUEUE)
    except OperationalError as exc:
        raise BrokerUnavailableError(
            "The job broker cannot be reached; the redaction stays queued and a worker "
            "will pick it up when it starts.") from exc


def enqueue_embed(app: Celery) -> None:
    """Ask a worker to embed (and read plates on) every pending frame; idempotent, so a
    burst of requests costs one pass each and none is lost."""
    try:
        app.send_task(EMBED_TASK, queue=QUEUE)
    except OperationalError as exc:
        raise BrokerUnavailableError(
            "The job broker cannot be reached; the frames wait for the next embedding"
            " run.") from exc


__all__ = [
    "EMBED_TASK",
    "EXPORT_TASK",
    "INGEST_TASK",
    "QUEUE",
    "REDACTION_TASK",
    "SEARCH_QUEUE_PREFIX",
    "SEARCH_TASK",
    "SEARCH_TASK_MODULES",
    "TASK_MODULES",
    "BrokerUnavailableError",
    "enqueue_embed",
    "enqueue_export",
    "enqueue_ingest",
    "enqueue_redaction",
    "make_celery",
    "make_search_celery",
    "search_queue",
]
