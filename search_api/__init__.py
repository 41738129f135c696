"""Oko's adapters: the FastAPI app, the ``oko`` CLI and the Celery wiring."""
