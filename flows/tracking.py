"""MLflow recording for restoration runs (called from flows only; tasks never log).

Layout: one MLflow run per item (film) per reel run, tagged with the collection and the catalog
run id, holding engines, versions, parameter hashes and aggregate QC; one nested run per shot
with its metrics and before/after keyframe thumbnails.

The backend is SQLite under ``<home>/mlflow.db`` by default (the file store is refused by
MLflow 3), and the experiment is created with an absolute artifact location so artifacts never
land relative to the current directory.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from reel.config import Settings


def _mlflow():
    import mlflow  # imported lazily: ~2 s of CPU

    return mlflow


def setup(settings: Settings) -> str:
    """Point MLflow at reel's tracking store and return the experiment id."""
    mlflow = _mlflow()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.mlflow_experiment)
    if exp is None:
        settings.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
        exp_id = mlflow.create_experiment(
            settings.mlflow_experiment,
            artifact_location=settings.mlflow_artifact_root.as_uri(),
        )
    else:
        exp_id = exp.experiment_id
    return exp_id


@contextmanager
def item_run(settings: Settings, *, item_name: str, collection: str, catalog_run_id: int,
             tags: dict[str, str] | None = None) -> Iterator[str]:
    """Open the MLflow run of one item; yields its run id."""
    mlflow = _mlflow()
    exp_id = setup(settings)
    all_tags = {"reel.collection": collection, "reel.item": item_name,
                "reel.catalog_run_id": str(catalog_run_id)}
    all_tags.update(tags or {})
    with mlflow.start_run(experiment_id=exp_id, run_name=item_name, tags=all_tags) as run:
        yield run.info.run_id


def log_item(params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Log parameters and aggregate metrics on the active item run."""
    mlflow = _mlflow()
    mlflow.log_params({k: _short(v) for k, v in params.items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if _finite(v)})


def log_shot(*, shot_index: int, params: dict[str, Any], metrics: dict[str, float],
             per_frame: dict[str, list[float]] | None, images: dict[str, Path]) -> str:
    """Create the nested run of one shot; returns its run id."""
    mlflow = _mlflow()
    parent = mlflow.active_run()
    if parent is None:
        raise RuntimeError("log_shot must be called inside tracking.item_run(...)")
    with mlflow.start_run(run_name=f"shot-{shot_index:04d}", nested=True,
                          experiment_id=parent.info.experiment_id) as run:
        mlflow.log_params({k: _short(v) for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if _finite(v)})
        for name, values in (per_frame or {}).items():
            for step, value in enumerate(values):
                if _finite(value):
                    mlflow.log_metric(f"frame.{name}", float(value), step=step)
        for name, path in images.items():
            if path and Path(path).is_file():
                mlflow.log_artifact(str(path), artifact_path=f"thumbs/{name}")
        return run.info.run_id


def _finite(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and f not in (float("inf"), float("-inf"))


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 500 else s[:497] + "..."
