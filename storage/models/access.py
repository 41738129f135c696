"""Tables for the access domain."""
