"""Tables for the search domain."""
