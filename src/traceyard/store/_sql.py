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


def prompt_match(name: str, version: int | None, placeholder: str) -> tuple[str, list[object]]:
    """(condition, params) on observation ``o``: it names prompt ``name`` (in ``version``)."""
    if version is None:
        return f"o.prompt_name = {placeholder}", [name]
    return f"o.prompt_name = {placeholder} AND o.prompt_version = {placeholder}", [name, version]


def prompt_where(
    project: str | None, name: str | None, project_column: str, name_column: str, placeholder: str
) -> tuple[list[str], list[object]]:
    """WHERE clauses (and params) of the prompt reads: a project and a name, each optional."""
    where: list[str] = []
    params: list[object] = []
    if project is not None:
        where.append(f"{project_column} = {placeholder}")
        params.append(project)
    if name is not None:
        where.append(f"{name_column} = {placeholder}")
        params.append(name)
    return where, params


def prompt_usage_sql(placeholder: str, versioned: bool) -> str:
    """Observations (up to a limit) of one project naming one prompt version (or no version),
    and their distinct traces: ``(name[, version], project, limit)`` → ``(observations,
    traces)``. Each link's project is looked up by trace id, one by one (PostgreSQL would
    otherwise hash every trace of the project first), so the cost follows the links read:
    at most ``limit`` of this project's, plus those of other projects passed over."""
    version = f"= {placeholder}" if versioned else "IS NULL"
    return (
        "SELECT COUNT(*) AS observations, COUNT(DISTINCT trace_id) AS traces FROM "
        f"(SELECT o.trace_id FROM observations o WHERE o.prompt_name = {placeholder} "
        f"AND o.prompt_version {version} "
        f"AND (SELECT t.project FROM traces t WHERE t.id = o.trace_id) = {placeholder} "
        f"LIMIT {placeholder}) AS links"
    )


def usage_keys(versions: list[tuple[str, str, int]]) -> list[tuple[str, str, int | None]]:
    """(project, name, version) of the saved versions → what to count: each version, then
    each name's unversioned links, in (project, name, version-or-none-first) order."""
    keys: list[tuple[str, str, int | None]] = []
    for project, name, version in sorted(versions):
        if not keys or keys[-1][:2] != (project, name):
            keys.append((project, name, None))
        keys.append((project, name, version))
    return keys
