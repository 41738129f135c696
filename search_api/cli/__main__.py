"""``python -m search_api.cli``: the same as the ``oko`` console script."""

from search_api.cli import entrypoint

entrypoint()
