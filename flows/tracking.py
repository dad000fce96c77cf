"""MLflow recording for restoration runs (called from flows only; tasks never log).

Layout: one MLflow run per item (film) per reel run, tagged with the collection and the catalog
run id, holding engines, versions, parameter hashes and aggregate QC; one nested run per shot
with its metrics and before/after keyframe thumbnails.

The backend is SQLite under ``<home>/mlflow.db`` by default (the file store is refused by
MLflow 3), and the experiment is created with an absolute artifact location so artifacts never
land relative to the current directory.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from reel.config import Settings


def _mlflow():
    import mlflow  # imported lazily: ~2 s of CPU

    return mlflow


#: Background warm-ups started by :func:`prepare`, by tracking URI.
_WARMUPS: dict[str, Future] = {}
_WARMUP_LOCK = threading.Lock()


def prepare(settings: Settings) -> None:
    """Start :func:`setup` in a background thread; the next :func:`setup` waits for it.

    Importing MLflow and, in a fresh home, creating its SQLite tables take seconds of mostly
    Python work; a flow calls this when it starts so that happens while probing, shot detection
    and deflicker run (ffmpeg and OpenCV, which release the GIL) instead of on the critical path.
    """
    with _WARMUP_LOCK:
        uri = str(settings.mlflow_tracking_uri)
        if uri not in _WARMUPS:
            fut: Future = Future()

            def work() -> None:
                try:
                    fut.set_result(_setup(settings))
                except BaseException as exc:  # noqa: BLE001 - re-raised by setup()
                    fut.set_exception(exc)

            threading.Thread(target=work, name="reel-mlflow-setup", daemon=True).start()
            _WARMUPS[uri] = fut


def setup(settings: Settings) -> str:
    """Point MLflow at reel's tracking store and return the experiment id (after any warm-up
    started by :func:`prepare` for the same store has finished)."""
    with _WARMUP_LOCK:
        fut = _WARMUPS.pop(str(settings.mlflow_tracking_uri), None)
    if fut is not None:
        try:
            fut.result()
        except Exception:  # noqa: BLE001 - set up again below and let that error surface
            pass
    return _setup(settings)


def _setup(settings: Settings) -> str:
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
        _log_per_frame(run.info.run_id, per_frame or {})
        for name, path in images.items():
            if path and Path(path).is_file():
                mlflow.log_artifact(str(path), artifact_path=f"thumbs/{name}")
        return run.info.run_id


def _log_per_frame(run_id: str, per_frame: dict[str, list[float]], *,
                   batch_size: int = 1000) -> None:
    """Per-frame series as ``frame.<name>`` metrics (step = frame index in the shot), sent in
    batches: one ``log_metric`` call per value is one backend transaction, which made MLflow
    ~10 % of a run's CPU on the SQLite backend (measured with py-spy, ``reel benchmark scale``).
    1000 is MLflow's limit of metrics per batch."""
    import time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now_ms = int(time.time() * 1000)
    values = [Metric(f"frame.{name}", float(v), now_ms, step)
              for name, series in per_frame.items()
              for step, v in enumerate(series) if _finite(v)]
    client = MlflowClient()
    for i in range(0, len(values), batch_size):
        client.log_batch(run_id, metrics=values[i:i + batch_size], synchronous=True)


def _finite(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and f not in (float("inf"), float("-inf"))


def _short(v: Any) -> str:
    s = str(v)
    return s if len(s) <= 500 else s[:497] + "..."
