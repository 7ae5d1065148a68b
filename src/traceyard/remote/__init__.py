"""Remote mode: many processes or hosts send their traces to one traceyard server.

Set ``TRACEYARD_ENDPOINT=http://host:7842`` (and ``TRACEYARD_AUTH_TOKEN`` to the server's
token) and ``Tracer.create()`` sends batches there instead of writing a local store
(:mod:`.sender`); the server takes them on ``POST /api/ingest``
(:mod:`traceyard.server.remote_routes`) in the format of :mod:`.wire`. Nothing is imported
here, so a local-only tracer does not load httpx.
"""
