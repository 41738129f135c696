"""The application layer: one function per action a person takes.

Each use case takes a ``UseCaseContext`` (actor, session, state), authorizes through
``search_api.policy``, calls ``indexer``/``evidence``/``storage``, writes its audit entry
and commits once. Nothing here imports FastAPI, Typer or Celery: routes, CLI commands and
tasks are adapters that build the context, call one use case and render the answer.

The package imports none of its modules, so ``verify_offline`` loads alone.
"""
