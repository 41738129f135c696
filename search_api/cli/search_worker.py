"""CLI command: ``oko search-worker --name w1``, one search worker of the fan-out.

It loads the shards rendezvous hashing gives it (``indexer.search.assignment`` over
``OKO_SEARCH_WORKERS``) from its own data dir's index, then runs a Celery worker that
consumes only ``search.<name>``, so a query for its shards reaches it and no other.
"""

from __future__ import annotations

from typing import Annotated

import typer

from search_api.cli.common import cli_context, err_console
from storage.errors import ConfigurationError


def search_worker_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="This worker's name, as listed in"
                                      " OKO_SEARCH_WORKERS.")],
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", min=1, max=32,
        help="Queries run at once, in threads (default OKO_SEARCH_WORKER_CONCURRENCY).")
    ] = None,
    list_shards: Annotated[bool, typer.Option(
        "--list", help="Print the shards this worker holds, one per line (as index paths"
        " to copy to it), and exit.")] = False,
) -> None:
    """Run a search worker that answers queries for the shards it holds."""
    settings = cli_context(ctx).settings  # no database: a search worker reads only shards
    if name not in settings.search_workers:
        listed = ", ".join(settings.search_workers) or "nothing"
        raise ConfigurationError(f"Search worker '{name[:64]}' is not in OKO_SEARCH_WORKERS"
                                 f" (which lists {listed}); add it there, on the API too.")
    from indexer.search.assignment import assign_shards
    from search_api.tasks.app import make_search_celery, search_queue
    from search_api.tasks.search import WorkerShards, install_worker_shards

    shards = WorkerShards(settings.index_dir, name=name)
    metas = {meta.key.name: meta for meta in shards.store.all_meta()}
    mine = assign_shards(metas, settings.search_workers,
                         replicas=settings.search_replicas)[name]
    if list_shards:
        for shard in mine:
            meta = metas[shard]
            folder = meta.key.directory(settings.index_dir).name
            for file_name in [meta.key.sidecar_path(settings.index_dir).name, *meta.files]:
                typer.echo(f"{folder}/{file_name}")
        return
    celery = make_search_celery(settings)  # refuses a broker that is not Redis
    # queries run side by side in Celery's threads and their shards on the shard-search
    # pool (indexer.search.shard_search), whose threads run FAISS with one OpenMP thread:
    # OpenMP's count is per thread, so setting it here would not reach either
    loaded = shards.preload(mine)
    install_worker_shards(shards)
    err_console.print(f"Search worker {name}: {loaded} of its {len(mine)} shards loaded from"
                      f" {settings.index_dir}; listening on {search_queue(name)}.",
                      highlight=False)
    celery.worker_main([
        "worker", "--loglevel=WARNING", "--pool=threads",
        f"--concurrency={concurrency or settings.search_worker_concurrency}",
        f"--queues={search_queue(name)}", f"--hostname=oko-search-{name}@%h",
        "--without-mingle", "--without-gossip"])


def register(app: typer.Typer) -> None:
    """Attach this module's command to the root app."""
    app.command("search-worker")(search_worker_command)


__all__ = ["register", "search_worker_command"]
