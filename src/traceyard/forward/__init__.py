"""Forwarding traces to Langfuse and to any OTLP/HTTP receiver, from the server or an app.

Configured by ``forward_targets`` and ``tracing_mode`` (:mod:`traceyard.pipeline.routing`);
each target has its own queue and thread (:mod:`.forwarder`) and speaks its own convention
(:mod:`.langfuse`, :mod:`.genai`).
"""

from traceyard.forward.config import LangfuseTarget, OtlpTarget, parse_targets
from traceyard.forward.forwarder import Forwarder

__all__ = ["Forwarder", "LangfuseTarget", "OtlpTarget", "parse_targets"]
