"""Celery tasks: evidence."""
