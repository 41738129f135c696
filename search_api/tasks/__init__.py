"""Celery wiring: the app factory and the task modules (thin adapters over domain logic)."""
