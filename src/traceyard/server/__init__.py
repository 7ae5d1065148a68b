"""The traceyard server: query API, live stream, UI files; embedded or ``traceyard serve``."""
