"""The web UI: static files (HTML, ES modules, CSS) that the server serves at its root.

No build step and no Node.js: the browser loads the modules as they are, so what ships in the
wheel is exactly what the tests drive. Every URL inside is relative, so the UI works under a
reverse-proxy path prefix.
"""

from __future__ import annotations

from pathlib import Path

#: The directory to serve at the server's root (``index.html`` plus its assets).
STATIC_DIR: Path = Path(__file__).resolve().parent / "static"

__all__ = ["STATIC_DIR"]
