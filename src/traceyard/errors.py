"""The exceptions traceyard raises on purpose.

The tracer never raises into the host application while it runs (see ``_internal.guard``);
these are for misuse at set-up time (bad config, a missing extra) and for the store and server.
"""

from __future__ import annotations


class TraceyardError(Exception):
    """Base of every error traceyard raises on purpose."""


class ConfigError(TraceyardError, ValueError):
    """A setting has a bad value; the message names the argument or variable to fix."""


class MissingExtraError(TraceyardError, ImportError):
    """An optional dependency is not installed; the message has the exact pip line."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs an optional dependency: pip install 'traceyard[{extra}]'"
        )


class StoreError(TraceyardError):
    """The store could not do what was asked (bad query, closed store, schema too new)."""


class StoreClosedError(StoreError):
    """The store was used after close()."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now (locked, server down); retrying later may work."""
