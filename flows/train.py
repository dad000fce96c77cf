"""Training flow: ``reel train NAME`` runs a registered trainer and records everything.

The trainer (``reel.models.training.TRAINERS``) only trains and returns a ``TrainResult``; this
flow owns every side effect:

- the checkpoint ``<out>/<name>.pt`` (byte-deterministic, :mod:`reel.models.checkpoint`) and its
  model card ``<out>/<name>.md`` (data, steps, wall time, metrics, exact command);
- an MLflow run in the experiment ``reel-training``: parameters, the per-step loss curves
  (``train.<part>`` at each step), validation metrics (``val.<metric>``, with their steps), the
  checkpoint and card as artifacts;
- a version of the registered model ``reel-<name>`` in the MLflow model registry (SQLite
  backend under REEL_HOME), tagged with ``weights_sha256``, ``reel_version`` and the steps.

Default ``out`` is ``<home>/models/<name>/``; ``reel train refcolor --out models/checkpoints``
rebuilds the shipped checkpoint.

Example
-------
>>> from reel.flows.train import default_out_dir
>>> default_out_dir("refcolor").name
'refcolor'
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Mapping

from prefect import flow, get_run_logger

import reel
from reel.config import get_settings

EXPERIMENT = "reel-training"


def default_out_dir(name: str) -> Path:
    return get_settings().home / "models" / name


def registered_model_name(name: str) -> str:
    return f"reel-{name}"


def _mlflow_setup():
    import mlflow

    s = get_settings()
    mlflow.set_tracking_uri(s.mlflow_tracking_uri)
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        s.mlflow_artifact_root.mkdir(parents=True, exist_ok=True)
        return mlflow, mlflow.create_experiment(
            EXPERIMENT, artifact_location=(s.mlflow_artifact_root / "training").as_uri())
    return mlflow, exp.experiment_id


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(float(v))


def log_to_mlflow(result, *, checkpoint: Path, card: Path, sha256: str, command: str,
                  register: bool = True, metric_every: int = 1) -> dict[str, Any]:
    """Log a ``TrainResult`` to MLflow and register its checkpoint; returns run id and version."""
    mlflow, exp_id = _mlflow_setup()
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    params = {"trainer": result.name, "steps": result.steps, "device": result.device,
              "weights_sha256": sha256, "command": command[:500]}
    params.update({f"config.{k}": v for k, v in _flat(result.config).items()})
    params.update({k: v for k, v in result.params.items()})
    with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{result.name}",
                          tags={"reel.trainer": result.name, "reel.version": reel.__version__,
                                "weights_sha256": sha256}) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        metrics: list[Metric] = []
        for part, values in result.history.items():
            for step, v in enumerate(values):
                if _finite(v) and (step % metric_every == 0 or step == len(values) - 1):
                    metrics.append(Metric(f"train.{part}", float(v), 0, step))
        for k, pts in result.val_history.items():
            metrics += [Metric(f"val.{k}", float(v), 0, int(s)) for s, v in pts if _finite(v)]
        metrics += [Metric(f"val.{k}", float(v), 0, result.steps)
                    for k, v in result.val_metrics.items() if _finite(v)]
        metrics.append(Metric("wall_s", float(result.wall_s), 0, result.steps))
        for i in range(0, len(metrics), 900):  # the SQL store takes at most 1000 per call
            client.log_batch(run.info.run_id, metrics=metrics[i:i + 900])
        mlflow.log_artifact(str(checkpoint), artifact_path="checkpoint")
        mlflow.log_artifact(str(card), artifact_path="checkpoint")
        run_id = run.info.run_id
        artifact_uri = mlflow.get_artifact_uri("checkpoint")
    version = None
    if register:
        model_name = registered_model_name(result.name)
        try:
            client.get_registered_model(model_name)
        except Exception:
            client.create_registered_model(
                model_name, description=result.description or f"reel {result.name} network")
        mv = client.create_model_version(
            model_name, source=artifact_uri, run_id=run_id,
            tags={"weights_sha256": sha256, "reel_version": reel.__version__,
                  "steps": str(result.steps), "checkpoint": checkpoint.name},
            description=f"{result.name}: {result.steps} steps, sha256 {sha256[:16]}")
        version = int(mv.version)
    return {"run_id": run_id, "registered_model": registered_model_name(result.name)
            if register else None, "version": version}


def _logger():
    """The flow run's logger; a plain Prefect logger when called as ``train_model.fn``."""
    try:
        return get_run_logger()
    except Exception:  # no run context (direct call of the function, e.g. in tests)
        from prefect.logging import get_logger

        return get_logger("reel.train")


def trainer_inputs(name: str) -> dict[str, Any]:
    """Task-level callables a trainer needs (models never import tasks; the flow wires them):
    ``refcolor`` gets ``classical_fn`` = exemplar-propagate's analysis-grid output; ``harmonize``
    the composite generator, ``fuse`` the edit generator, band weight and ``guided`` prior; all
    three get ``video_fn`` = the shots of real colour videos fetched from Debian packages into
    ``settings.samples_dir`` (only called when the run asks for video clips)."""
    from reel.tasks.samples import training_video_shots

    if name == "refcolor":
        from reel.tasks.colorizers.learned import classical_analysis

        return {"classical_fn": classical_analysis,
                "video_fn": training_video_shots}
    if name == "harmonize":
        from reel.tasks.composites import make_composite
        return {"composite_fn": make_composite, "video_fn": training_video_shots}
    if name == "fuse":
        from reel.tasks.edit import synthetic_regional_edit
        from reel.tasks.fusers import band_weight
        return {"edit_fn": synthetic_regional_edit, "band_fn": band_weight,
                "prior_fn": guided_alpha, "video_fn": training_video_shots}
    return {}


def guided_alpha(L, mask):
    """The classical ``guided`` fuser's blend weight on one clip (FuseNet's prior input)."""
    from reel.tasks.fusers import FUSERS

    return FUSERS.create("guided").alpha_clip(L, mask)


class _PROGRESS:
    cb: Callable[[int, int, Mapping[str, float]], None] | None = None


@contextlib.contextmanager
def progress_callback(cb: Callable[[int, int, Mapping[str, float]], None] | None):
    """Install ``cb(step, total, metrics)`` for the trainings run inside the ``with`` block
    (a flow parameter cannot carry a callable: Prefect serialises parameters)."""
    old, _PROGRESS.cb = _PROGRESS.cb, cb
    try:
        yield
    finally:
        _PROGRESS.cb = old


def _flat(cfg: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    return dict(cfg or {})


@flow(name="train-model", log_prints=True)
def train_model(name: str, steps: int | None = None, out_dir: str | Path | None = None,
                device: str | None = None, seed: int = 0, threads: int | None = None,
                register_model: bool = True, log_mlflow: bool = True, command: str | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train network ``name``, save checkpoint + model card, log and register it in MLflow.

    Progress goes to the callback installed with :func:`progress_callback` (the CLI's bar).
    Returns ``{"checkpoint", "card", "sha256", "steps", "wall_s", "val_metrics", "run_id",
    "registered_model", "version"}``.
    """
    from reel.models.checkpoint import save_checkpoint, write_model_card
    from reel.models.training import TrainOptions, get_trainer

    log = _logger()
    spec = get_trainer(name)
    s = get_settings()
    out = Path(out_dir) if out_dir is not None else default_out_dir(name)
    opts = TrainOptions(steps=steps, seed=seed, device=device, threads=threads,
                        work_dir=s.home / "cache" / "train" / name,
                        extra={**trainer_inputs(name), **dict(extra or {})})
    if command is None:
        command = f"reel train {name}" + (f" --steps {steps}" if steps else "") + \
            (f" --seed {seed}" if seed else "")
    log.info("training %s (steps=%s, device=%s)", name, steps or "default", device or "auto")
    result = spec.fn(opts, _PROGRESS.cb)
    meta = {"name": name, "steps": result.steps, "seed": seed, "reel_version": reel.__version__,
            "val_metrics": result.val_metrics, "command": command}
    ckpt = out / f"{name}.pt"
    sha = save_checkpoint(ckpt, result.model, result.config, meta)
    card = write_model_card(
        out / f"{name}.md", name=name, description=result.description,
        data=result.data_description, steps=result.steps, wall_s=result.wall_s,
        metrics=result.val_metrics, command=command, weights_sha256=sha, config=result.config,
        device=result.device,
        extra={"Parameters": "\n".join(f"- {k}: {v}" for k, v in sorted(result.params.items()))}
        if result.params else None)
    info: dict[str, Any] = {"run_id": None, "registered_model": None, "version": None}
    if log_mlflow:
        info = log_to_mlflow(result, checkpoint=ckpt, card=card, sha256=sha, command=command,
                             register=register_model)
    log.info("%s: %d steps in %.0f s; checkpoint %s (sha256 %s)", name, result.steps,
             result.wall_s, ckpt, sha[:16])
    return {"checkpoint": str(ckpt), "card": str(card), "sha256": sha, "steps": result.steps,
            "wall_s": result.wall_s, "val_metrics": dict(result.val_metrics), **info}


__all__ = ["EXPERIMENT", "default_out_dir", "log_to_mlflow", "progress_callback",
           "registered_model_name", "trainer_inputs",
           "train_model"]
