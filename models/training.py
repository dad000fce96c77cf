"""Shared training infrastructure: options, results, a trainer registry and a seeded loop.

A *trainer* is a function ``train(options: TrainOptions, progress_cb) -> TrainResult``
registered by name with :func:`register_trainer`. It builds its data (self-supervised, offline),
its model and runs :func:`run_training_loop`; it never touches MLflow or the catalog: the flow
``reel.flows.train.train_model`` logs, saves the checkpoint, writes the model card and registers
the model.

Adding a trainer: write ``models/<name>_train.py`` with a function decorated by
``@register_trainer("<name>", description=..., model_cls=..., config_cls=...)`` and add its
module to ``reel.models.TRAINER_MODULES`` (one line, in models/__init__.py).

Example
-------
>>> import torch
>>> from reel.models.training import run_training_loop
>>> net = torch.nn.Linear(1, 1)
>>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
>>> def batch(step, g):
...     x = torch.rand(8, 1, generator=g)
...     return x, 3 * x
>>> def loss(model, b):
...     l = ((model(b[0]) - b[1]) ** 2).mean()
...     return l, {"mse": float(l.detach())}
>>> hist = run_training_loop(net, opt, batch, loss, steps=50, seed=0)
>>> hist["loss"][-1] < hist["loss"][0]
True
"""

from __future__ import annotations

import dataclasses
import importlib
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reel.models.device import autocast

from reel.models import TRAINER_MODULES  # noqa: E402  (name -> module, kept torch-free)

#: progress_cb(step, total_steps, metrics_of_this_step)
ProgressCb = Callable[[int, int, Mapping[str, float]], None]


@dataclasses.dataclass
class TrainOptions:
    """What every trainer accepts (trainers read only the fields they need).

    Parameters
    ----------
    steps : int or None
        Optimisation steps; None means the trainer's default (the shipped checkpoint's count).
    seed : int
        Seeds python, numpy and torch; CPU training is deterministic for a given seed.
    device : str or None
        "cpu", "cuda" or None (CUDA when present).
    batch_size, lr : optional
        Override the trainer's defaults.
    val_every : int
        Steps between validation evaluations (0: only at the end).
    threads : int or None
        ``torch.set_num_threads`` for CPU training (None: settings / torch default).
    work_dir : Path or None
        Where a trainer may cache synthesized data (e.g. ``<home>/cache/train/<name>``).
    extra : dict
        Trainer-specific options (documented by each trainer).
    """

    steps: int | None = None
    seed: int = 0
    device: str | None = None
    batch_size: int | None = None
    lr: float | None = None
    val_every: int = 0
    threads: int | None = None
    work_dir: Path | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainResult:
    """What a trainer returns to the flow.

    ``history`` maps a loss name to its per-step values (``history["loss"][i]`` is step i);
    ``val_history`` maps a metric name to ``[(step, value), ...]``; ``val_metrics`` are the final
    validation metrics (what the model card and registry show).
    """

    name: str
    model: torch.nn.Module
    config: Any
    steps: int
    wall_s: float
    history: dict[str, list[float]]
    val_metrics: dict[str, float]
    val_history: dict[str, list[tuple[int, float]]] = dataclasses.field(default_factory=dict)
    data_description: str = ""
    description: str = ""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    device: str = "cpu"


@dataclasses.dataclass(frozen=True)
class TrainerSpec:
    name: str
    fn: Callable[[TrainOptions, ProgressCb | None], TrainResult]
    description: str
    model_cls: type | None = None
    config_cls: type | None = None


TRAINERS: dict[str, TrainerSpec] = {}


def register_trainer(name: str, *, description: str = "", model_cls: type | None = None,
                     config_cls: type | None = None):
    """Decorator registering ``train(options, progress_cb) -> TrainResult`` under ``name``."""

    def deco(fn):
        if name in TRAINERS and TRAINERS[name].fn is not fn:
            raise ValueError(f"trainer {name!r} is registered twice")
        TRAINERS[name] = TrainerSpec(name, fn, description or (fn.__doc__ or "").strip()
                                     .split("\n")[0], model_cls, config_cls)
        return fn

    return deco


def load_trainers() -> dict[str, TrainerSpec]:
    """Import every module of :data:`TRAINER_MODULES` (skipping ones not written yet) and
    return :data:`TRAINERS`."""
    for mod in TRAINER_MODULES.values():
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:
                raise
    return TRAINERS


def get_trainer(name: str) -> TrainerSpec:
    load_trainers()
    try:
        return TRAINERS[name]
    except KeyError:
        raise KeyError(f"unknown trainer {name!r}; choose one of: "
                       f"{', '.join(sorted(TRAINERS)) or '(none)'}") from None


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU ``torch.Generator`` seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def run_training_loop(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_fn: Callable[[int, torch.Generator], Any],
    loss_fn: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, Mapping[str, float]]],
    *,
    steps: int,
    seed: int = 0,
    device: torch.device | str = "cpu",
    scheduler: Any = None,
    grad_clip: float | None = 1.0,
    progress_cb: ProgressCb | None = None,
    val_fn: Callable[[torch.nn.Module], Mapping[str, float]] | None = None,
    val_every: int = 0,
    val_history: dict[str, list[tuple[int, float]]] | None = None,
) -> dict[str, list[float]]:
    """Seeded optimisation loop shared by the trainers.

    Parameters
    ----------
    batch_fn : (step, generator) -> batch
        Builds step ``step``'s batch (on ``device``); the generator is seeded once with ``seed``.
    loss_fn : (model, batch) -> (loss tensor, {part: float})
        The scalar to minimise and named parts (logged per step as ``history[part]``).
    grad_clip : float or None
        Max global gradient norm.
    val_fn, val_every
        ``val_fn(model)`` (run in eval mode, no grad) every ``val_every`` steps, results appended
        to ``val_history[name]`` as ``(step, value)``.

    Returns
    -------
    dict
        ``{"loss": [...], part: [...], "lr": [...]}``, one value per step.
    """
    device = torch.device(device)
    gen = seed_everything(seed)
    scaler = torch.amp.GradScaler("cuda") if (device.type == "cuda" and not
                                               torch.cuda.is_bf16_supported()) else None
    history: dict[str, list[float]] = {"loss": [], "lr": []}
    model.train()
    for step in range(int(steps)):
        batch = batch_fn(step, gen)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            loss, parts = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {float(loss)} at step {step}; lower the lr")
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history["loss"].append(float(loss.detach()))
        history["lr"].append(float(optimizer.param_groups[0]["lr"]))
        for k, v in parts.items():
            history.setdefault(k, []).append(float(v))
        metrics = {k: vals[-1] for k, vals in history.items()}
        if val_fn is not None and val_every and (step + 1) % val_every == 0 and step + 1 < steps:
            model.eval()
            with torch.no_grad():
                vm = dict(val_fn(model))
            model.train()
            for k, v in vm.items():
                if val_history is not None:
                    val_history.setdefault(k, []).append((step + 1, float(v)))
            metrics.update({f"val_{k}": v for k, v in vm.items()})
        if progress_cb is not None:
            progress_cb(step + 1, int(steps), metrics)
    model.eval()
    return history


class Stopwatch:
    """Wall-clock timer: ``with Stopwatch() as sw: ...; sw.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self.t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0


__all__ = ["TRAINERS", "TRAINER_MODULES", "Stopwatch", "TrainOptions", "TrainResult",
           "TrainerSpec", "get_trainer", "load_trainers", "register_trainer",
           "run_training_loop", "seed_everything"]
