"""Indexer: footage ingest (hash, probe, store, segment, sample) and the sample footage generator.

Imports only ``storage`` and third-party libraries.
"""
