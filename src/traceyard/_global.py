"""Process-wide state: the tracer that ``install()`` / ``traceyard.trace()`` made current.

Module-level helpers (``@traceyard.observe``, ``traceyard.update_current_trace``) use the
tracer of the current observation first and fall back to this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from traceyard.capture.tracer import Tracer

installed_tracer: Tracer | None = None
