"""Tables for the search index: FAISS shards and per-frame day phase."""
