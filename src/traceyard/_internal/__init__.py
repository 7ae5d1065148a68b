"""Implementation details shared across layers; not public API."""
