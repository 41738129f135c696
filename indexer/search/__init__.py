"""Search: query parsing and the filters-first search engine.

Imports only ``storage``, ``indexer`` and third-party libraries; nothing outside this
subpackage imports it (day phases live in ``indexer.daynight``, which the shard writer
also uses).
"""
