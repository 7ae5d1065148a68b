"""Ingestion edges: wire formats (OTLP, the Langfuse API) translated into canonical events.

Everything here is pure translation plus the small policies around it (body limits, key
pairs, admission to the pipeline); the HTTP routes are in ``traceyard.server.ingest_routes``.
"""
