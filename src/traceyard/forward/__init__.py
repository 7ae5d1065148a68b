"""Forwarding traces to Langfuse and to any OTLP/HTTP receiver, from the server or an app.

Configured by ``forward_targets`` and ``tracing_mode`` (:mod:`traceyard.pipeline.routing`);
each target has its own queue and thread (:mod:`.forwarder`) and speaks its own convention
(:mod:`.langfuse`, :mod:`.genai`). Nothing is imported here: a tracer that does not forward
must not pay for httpx and protobuf at import time.
"""
