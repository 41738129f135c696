"""Tables for the evidence domain."""
