"""``traceyard``: serve, inspect and maintain a data store from the command line.

Every command takes ``--data-dir`` / ``--database-url`` (or ``TRACEYARD_DATA_DIR`` /
``TRACEYARD_DATABASE_URL``). Long work shows a progress bar on stderr; data goes to stdout.
"""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from traceyard._version import __version__
from traceyard.config import Settings, load_settings
from traceyard.errors import ConfigError, StoreError, TraceyardError
from traceyard.model import Level, TraceStatus
from traceyard.pipeline.routing import describe
from traceyard.store.base import Store, TraceQuery

app = typer.Typer(
    help="traceyard: local-first tracing for LLM and agent apps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

DataDir = Annotated[
    Optional[Path],  # noqa: UP045 (typer needs Optional on Python 3.10)
    typer.Option("--data-dir", "-d", help="Data directory \\[env: TRACEYARD_DATA_DIR]."),
]
DatabaseUrl = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(help="postgresql://... or memory:// \\[env: TRACEYARD_DATABASE_URL]."),
]


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(start_server=False, **overrides)
    except ConfigError as exc:
        _fail(str(exc), code=2)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def _open_store(settings: Settings, *, must_exist: bool = True) -> Store:
    from traceyard.store.factory import open_store

    if must_exist and settings.database_url is None:
        db = settings.data_dir / "traceyard.db"
        if not db.is_file():
            _fail(f"no traceyard data in {settings.data_dir.resolve()} (looked for {db.name})")
    try:
        return open_store(settings)
    except TraceyardError as exc:
        _fail(str(exc))
        raise  # unreachable


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


# ---------------------------------------------------------------------- serve


@app.command()
def serve(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    host: Annotated[Optional[str], typer.Option(help="\\[default: 127.0.0.1]")] = None,  # noqa: UP045
    port: Annotated[Optional[int], typer.Option(help="\\[default: 7842]")] = None,  # noqa: UP045
    auth_token: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Bearer token (≥ 32 chars) \\[env: TRACEYARD_AUTH_TOKEN]."),
    ] = None,
    ingest_workers: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            help="Processes that decode, translate and write OTLP requests, for more than "
            "one core's worth of spans/s \\[env: TRACEYARD_INGEST_WORKERS; default: 0]."
        ),
    ] = None,
) -> None:
    """Serve the UI and API for a data dir that apps write to at the same time."""
    from traceyard.capture.tracer import Tracer
    from traceyard.server.embedded import serve_forever

    settings = _settings(
        data_dir=data_dir,
        database_url=database_url,
        host=host,
        port=port,
        auth_token=auth_token,
        ingest_workers=ingest_workers,
    )
    from traceyard.server.auth import check_bind_safety
    from traceyard.server.ingest_workers import check_settings

    try:
        check_bind_safety(settings.host, settings.auth_token)
        check_settings(settings)
    except ConfigError as exc:
        _fail(str(exc), code=2)
    # The server's own writes (scores, ingestion) go through a tracer of its own: one writer
    # per process, as everywhere. Apps in other processes keep writing their own way.
    tracer = Tracer(settings)
    try:
        store = tracer.store
        if store is None:
            _fail("could not open the store")
        serve_forever(settings, store, tracer, poll_store=True)
    except KeyboardInterrupt:
        pass
    finally:
        tracer.stop()


# ---------------------------------------------------------------------- status


@app.command()
def status(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Active backend, counts, data size, and the live figures of a server running on it."""
    from traceyard.server.sqlite_ops import dir_size

    settings = _settings(data_dir=data_dir, database_url=database_url)
    store = _open_store(settings)
    try:
        counts = store.counts()
    finally:
        store.close()
    report: dict[str, Any] = {
        "version": __version__,
        "backend": counts.backend,
        "location": counts.location,
        "data_dir": str(settings.data_dir.resolve()) if settings.database_url is None else None,
        "data_dir_size_bytes": dir_size(settings.data_dir)
        if settings.database_url is None
        else None,
        "counts": {
            "traces": counts.traces,
            "observations": counts.observations,
            "scores": counts.scores,
        },
        "store_size_bytes": counts.size_bytes,
        **describe(settings),  # tracing_mode, storage, endpoint, forwarding
        "server": _running_server(settings),
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    for key in (
        "version",
        "backend",
        "location",
        "data_dir",
        "data_dir_size_bytes",
        "tracing_mode",
        "storage",
        "endpoint",
    ):
        if report[key] is not None:
            table.add_row(key, _human(report[key]) if key.endswith("bytes") else str(report[key]))
    table.add_row("forwarding", ", ".join(report["forwarding"]) or "off")
    for key, value in report["counts"].items():
        table.add_row(key, f"{value:,}")
    server = report["server"]
    if server is None:
        table.add_row("server", "not running on this data")
    else:
        table.add_row("server", f"{server['url']} ({server['server_mode']})")
        for key, value in (server.get("tracer") or {}).items():
            table.add_row(f"  {key}", str(value))
    Console().print(table)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size} B"
        value /= 1024
    return f"{size} B"


def _running_server(settings: Settings) -> dict[str, Any] | None:
    """The /api/stats of a server on settings.host:port, if it serves this same data."""
    import httpx

    from traceyard.server.embedded import url_for

    url = url_for(settings.host, settings.port)
    headers = {"Authorization": f"Bearer {settings.auth_token}"} if settings.auth_token else {}
    try:
        with httpx.Client(base_url=url, timeout=0.5, headers=headers) as client:
            health = client.get("api/health").json()
            if settings.database_url is None and health.get("data_dir") != str(
                settings.data_dir.resolve()
            ):
                return None
            stats = client.get("api/stats")
            body: dict[str, Any] = stats.json() if stats.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    return {"url": url, "server_mode": health.get("server_mode"), "tracer": body.get("tracer")}


# ---------------------------------------------------------------------- export / import


def _query(
    project: str | None,
    name: str | None,
    user_id: str | None,
    session_id: str | None,
    tag: list[str] | None,
    status: TraceStatus | None,
    level: Level | None,
    since: datetime | None,
    until: datetime | None,
    model: str | None,
    metadata: list[str] | None,
    text: str | None,
) -> TraceQuery:
    pairs: dict[str, str] = {}
    for pair in metadata or ():
        key, sep, value = pair.partition(":")
        if not sep or not key:
            _fail(f"--metadata {pair!r} is not key:value", code=2)
        pairs[key] = value
    return TraceQuery(
        project=project,
        name=name,
        user_id=user_id,
        session_id=session_id,
        tags=tag or [],
        status=status,
        level=level,
        start_after=_utc(since),
        start_before=_utc(until),
        model=model,
        metadata=pairs,
        text=text,
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


Opt = typer.Option
OptStr = Optional[str]  # noqa: UP045


@app.command()
def export(
    output: Annotated[
        Optional[Path],  # noqa: UP045
        Opt("--output", "-o", help="File to write (default: stdout)."),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    project: Annotated[OptStr, Opt()] = None,
    name: Annotated[OptStr, Opt(help="Substring of the trace name.")] = None,
    user_id: Annotated[OptStr, Opt()] = None,
    session_id: Annotated[OptStr, Opt()] = None,
    tag: Annotated[Optional[list[str]], Opt(help="Has this tag (repeatable).")] = None,  # noqa: UP045
    status: Annotated[Optional[TraceStatus], Opt()] = None,  # noqa: UP045
    level: Annotated[Optional[Level], Opt()] = None,  # noqa: UP045
    since: Annotated[Optional[datetime], Opt(help="Started at or after (UTC).")] = None,  # noqa: UP045
    until: Annotated[Optional[datetime], Opt(help="Started before (UTC).")] = None,  # noqa: UP045
    model: Annotated[OptStr, Opt()] = None,
    metadata: Annotated[
        Optional[list[str]],  # noqa: UP045
        Opt(help="key:value (repeatable)."),
    ] = None,
    text: Annotated[OptStr, Opt(help="Free text over name, input, output.")] = None,
) -> None:
    """Write whole traces (observations, scores, payloads) as JSONL, oldest first."""
    from traceyard.server.transfer import export_line, iter_trace_ids

    settings = _settings(data_dir=data_dir, database_url=database_url)
    query = _query(
        project, name, user_id, session_id, tag, status, level, since, until, model, metadata, text
    )
    store = _open_store(settings)
    written = 0
    with ExitStack() as stack:
        stack.callback(store.close)
        out = (
            stack.enter_context(output.open("w", encoding="utf-8", newline="\n"))
            if output
            else sys.stdout
        )
        progress = stack.enter_context(_progress())
        task = progress.add_task("exporting", total=store.counts().traces)
        for trace_id in iter_trace_ids(store, query):
            detail = store.get_trace(trace_id)
            if detail is None:  # deleted meanwhile
                continue
            out.write(export_line(detail) + "\n")
            written += 1
            progress.advance(task)
        progress.update(task, total=written)
    err.print(f"exported {written} traces", highlight=False)


@app.command("import")
def import_(
    source: Annotated[
        Path, typer.Argument(help="JSONL written by `traceyard export` (- = stdin).")
    ],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Load traces exported by `traceyard export` (existing ids are updated, not duplicated)."""
    from traceyard.server.transfer import import_lines

    settings = _settings(data_dir=data_dir, database_url=database_url)
    store = _open_store(settings, must_exist=False)
    try:
        if str(source) == "-":
            imported, errors = import_lines(store, sys.stdin)
        else:
            if not source.is_file():
                _fail(f"{source} is not a file")
            with source.open(encoding="utf-8") as handle, _progress() as progress:
                task = progress.add_task("importing", total=source.stat().st_size)
                imported, errors = import_lines(store, _advancing(handle, progress, task))
    finally:
        store.close()
    for error in errors[:20]:
        err.print(f"[yellow]skipped[/yellow] {error}", highlight=False)
    err.print(f"imported {imported} traces; {len(errors)} bad lines skipped", highlight=False)
    if errors:
        raise typer.Exit(1)


def _advancing(lines: Any, progress: Progress, task: Any) -> Any:
    for line in lines:
        progress.advance(task, len(line.encode("utf-8")))
        yield line


# ---------------------------------------------------------------------- prune / backup


@app.command()
def prune(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    max_traces: Annotated[
        Optional[int],  # noqa: UP045
        Opt("--max-traces", min=0, help="Keep at most this many traces (newest)."),
    ] = None,
    older_than: Annotated[
        OptStr, Opt("--older-than", help="Delete traces started longer ago, e.g. 7d, 12h.")
    ] = None,
) -> None:
    """Delete the oldest traces (with payloads) and give the space back."""
    from traceyard.server.retention import parse_duration
    from traceyard.server.sqlite_ops import reclaim_space

    if max_traces is None and older_than is None:
        _fail("give --max-traces N and/or --older-than DURATION (e.g. 7d)", code=2)
    try:
        cutoff = datetime.now(timezone.utc) - parse_duration(older_than) if older_than else None
    except ConfigError as exc:
        _fail(f"--older-than: {exc}", code=2)
    settings = _settings(data_dir=data_dir, database_url=database_url)
    store = _open_store(settings)
    try:
        with _progress() as progress:
            task = progress.add_task("pruning", total=None)
            deleted = store.prune(max_traces=max_traces, older_than=cutoff)
            progress.update(task, total=deleted, completed=deleted)
    finally:
        store.close()
    message = f"deleted {deleted} traces"
    if settings.database_url is None and deleted:
        before, after = reclaim_space(settings.data_dir)
        message += f"; data dir {_human(before)} → {_human(after)}"
    err.print(message, highlight=False)


@app.command()
def backup(
    destination: Annotated[Path, typer.Argument(help="New directory for the copy.")],
    data_dir: DataDir = None,
) -> None:
    """Copy a live SQLite data dir consistently (apps may keep writing). Restore by pointing
    --data-dir / TRACEYARD_DATA_DIR at the copy."""
    from traceyard.server.sqlite_ops import backup as backup_database

    settings = _settings(data_dir=data_dir)
    if settings.database_url is not None:
        _fail("backup copies SQLite data dirs; for PostgreSQL use pg_dump", code=2)
    with _progress() as progress:
        task = progress.add_task("backing up", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            result = backup_database(settings.data_dir, destination, advance)
        except StoreError as exc:
            _fail(str(exc))
    err.print(
        f"backed up {result.pages} pages ({_human(result.size_bytes)}) to {result.path}; "
        f"integrity_check: {result.integrity}",
        highlight=False,
    )


# ---------------------------------------------------------------------- demo


@app.command()
def demo(
    data_dir: Annotated[Path, Opt("--data-dir", "-d")] = Path(".traceyard"),
    serve: Annotated[bool, Opt("--serve/--no-serve", help="Keep the UI running after.")] = True,
    rounds: Annotated[int, Opt(min=1, help="Agent conversations to run.")] = 1,
) -> None:
    """Run a small LangGraph agent (fake model), traced into SQLite, and serve the UI."""
    try:
        from traceyard.demo import main as demo_main
    except ImportError as exc:
        _fail(f"the demo needs LangGraph: pip install 'traceyard[langchain]' langgraph ({exc})")
    demo_main(data_dir=data_dir, serve=serve, rounds=rounds)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
