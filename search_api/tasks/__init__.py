"""Celery adapters: ``app`` (factory, task names, sending), ``worker`` (the worker's state
and job recovery), and the tasks themselves (``ingest``, ``evidence``), each a thin
adapter over a use case. This package module imports nothing, so a sender that needs
``tasks.app`` never loads the task bodies.
"""
