"""Capture: the ways runs enter traceyard from inside an app (tracer API, decorators, LangChain)."""
