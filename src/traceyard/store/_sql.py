"""SQL fragments both SQL stores build their filters from (placeholders differ: ``?``/``%s``)."""

from __future__ import annotations

from traceyard.model import Level


def level_filter(level: Level, placeholder: str) -> tuple[str, ...]:
    """(clause, *params): some observation of trace ``t`` has ``level``. Stored without a
    level means DEFAULT; the other levels compare the bare column, so the partial index on
    observations (level, trace_id) serves them."""
    if level is Level.DEFAULT:
        return (
            "EXISTS (SELECT 1 FROM observations o WHERE o.trace_id = t.id "
            "AND (o.level IS NULL OR o.level = 'DEFAULT'))",
        )
    return (
        "EXISTS (SELECT 1 FROM observations o WHERE o.trace_id = t.id "
        f"AND o.level = {placeholder})",
        level.value,
    )


def like_escape(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (escape character: backslash)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
