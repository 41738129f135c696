"""Search: query parsing, day/night classification and the filters-first search engine.

Imports only ``storage``, ``indexer`` and third-party libraries.
"""
