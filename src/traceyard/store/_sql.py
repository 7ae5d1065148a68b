"""SQL fragments both SQL stores build their filters from (placeholders differ: ``?``/``%s``)."""

from __future__ import annotations

from traceyard.model import Level


def level_filter(level: Level) -> str:
    """Some observation of trace ``t`` has ``level``: a predicate on the trace's derived
    per-level count (no level stored counts as DEFAULT). DEBUG, WARNING and ERROR each have a
    partial index on exactly this predicate, so a rare level lists as fast as a common one."""
    return f"t.{level.value.lower()}_count > 0"


def like_escape(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
