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
import hashlib
import importlib
import json
import math
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reel.models.device import apply_threads, autocast, select_device

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
    #: the trainer's defaults dataclass: its fields (but ``steps`` and ``threads``, which are
    #: options of their own) are the keys ``options.extra`` may set (:func:`check_params`)
    defaults_cls: type | None = None


TRAINERS: dict[str, TrainerSpec] = {}


def register_trainer(name: str, *, description: str = "", model_cls: type | None = None,
                     config_cls: type | None = None, defaults_cls: type | None = None):
    """Decorator registering ``train(options, progress_cb) -> TrainResult`` under ``name``."""

    def deco(fn):
        if name in TRAINERS and TRAINERS[name].fn is not fn:
            raise ValueError(f"trainer {name!r} is registered twice")
        TRAINERS[name] = TrainerSpec(name, fn, description or (fn.__doc__ or "").strip()
                                     .split("\n")[0], model_cls, config_cls, defaults_cls)
        return fn

    return deco


def check_params(spec: TrainerSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate user-set training parameters (``reel train NAME --param KEY=VALUE``) against
    the trainer's defaults dataclass; returns them as a dict, raises ValueError naming the keys
    it accepts.

    >>> @dataclasses.dataclass
    ... class D:
    ...     steps: int = 1; lr: float = 1e-3; clips: int = 4
    >>> check_params(TrainerSpec("x", print, "", defaults_cls=D), {"clips": 8})
    {'clips': 8}
    >>> check_params(TrainerSpec("x", print, "", defaults_cls=D), {"step": 2})
    Traceback (most recent call last):
    ...
    ValueError: trainer 'x' has no parameter 'step'; it accepts: clips, lr (steps and threads are options of their own)
    """
    allowed = ({f.name for f in dataclasses.fields(spec.defaults_cls)} - {"steps", "threads"}
               if spec.defaults_cls is not None else set())
    if spec.config_cls is not None:
        allowed.add("config")  # the network's config fields, a dict
    for key in params:
        if key not in allowed:
            raise ValueError(f"trainer {spec.name!r} has no parameter {key!r}; it accepts: "
                             f"{', '.join(sorted(allowed)) or 'none'} (steps and threads are "
                             "options of their own)")
    return dict(params)


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


def cached_npz(cache_dir: str | Path | None, name: str, key_parts: list[Any],
               build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``build()``'s arrays, cached as ``<cache_dir>/<name>-data-<key>.npz`` (no cache if None).

    ``key`` is the first 16 hex digits of the SHA-256 of ``key_parts`` as JSON (put every
    input of ``build`` there, and a data version). The file is written atomically.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> a = cached_npz(d, "toy", [1], lambda: {"x": np.arange(3)})
    >>> b = cached_npz(d, "toy", [1], lambda: {"x": np.zeros(3)})  # cache hit: not rebuilt
    >>> b["x"].tolist()
    [0, 1, 2]
    """
    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"{name}-data-{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    data = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **data)
        tmp.replace(path)
    return data


@dataclasses.dataclass(frozen=True)
class ClipRunOptions:
    """The options every synthetic-clip trainer reads (see :func:`clip_run_options`)."""

    steps: int
    batch_size: int
    lr: float
    clips: int
    val_clips: int
    frames: int
    size: tuple[int, int]
    val_every: int


def clip_run_options(options: TrainOptions, extra: Mapping[str, Any], defaults: Any
                     ) -> ClipRunOptions:
    """Resolve steps, batch size, lr, clip counts, clip shape and validation period.

    ``options`` fields win, then ``extra`` (``batch_size``, ``lr``, ``clips``, ``val_clips``,
    ``frames``, ``size``, ``val_every``), then the trainer's ``defaults`` dataclass.

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class D:
    ...     steps: int = 10; batch_size: int = 2; lr: float = 1e-3; clips: int = 4
    ...     val_clips: int = 1; frames: int = 3; size: tuple = (8, 8); val_every: int = 5
    >>> clip_run_options(TrainOptions(steps=3), {"clips": 6}, D()).clips
    6
    """
    d = defaults
    steps = int(options.steps or d.steps)
    if steps <= 0:
        raise ValueError(f"steps must be > 0, got {steps}")
    return ClipRunOptions(
        steps=steps, batch_size=int(options.batch_size or extra.get("batch_size", d.batch_size)),
        lr=float(options.lr or extra.get("lr", d.lr)),
        clips=int(extra.get("clips", d.clips)), val_clips=int(extra.get("val_clips", d.val_clips)),
        frames=int(extra.get("frames", d.frames)), size=tuple(extra.get("size", d.size)),
        val_every=int(options.val_every or extra.get("val_every", d.val_every)))


def start_run(options: TrainOptions, default_threads: int | None) -> torch.device:
    """Pick the device (``options.device``), set the CPU thread count (``options.threads`` or
    ``default_threads``) and seed everything with ``options.seed``; return the device."""
    device = select_device(options.device, set_threads=False)
    apply_threads(options.threads or default_threads)
    seed_everything(options.seed)
    return device


def cosine_adam(model: torch.nn.Module, lr: float, steps: int
                ) -> tuple[torch.optim.Optimizer, Any]:
    """Adam with a cosine schedule from ``lr`` down to 5 % of it over ``steps`` steps."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)) * 0.95 + 0.05)
    return opt, sched


def fit_and_validate(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_fn: Callable[[int, torch.Generator], Any],
    loss_fn: Callable[[torch.nn.Module, Any], tuple[torch.Tensor, Mapping[str, float]]],
    evaluate_fn: Callable[[torch.nn.Module], Mapping[str, float]],
    *,
    steps: int,
    seed: int,
    device: torch.device,
    scheduler: Any,
    progress_cb: ProgressCb | None,
    val_every: int,
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, list[tuple[int, float]]], float]:
    """:func:`run_training_loop` with periodic validation, then a final validation.

    Returns ``(history, final val metrics, val_history, training seconds)``; the model is
    left on the CPU in eval mode.
    """
    val_history: dict[str, list[tuple[int, float]]] = {}
    with Stopwatch() as sw:
        history = run_training_loop(
            model, optimizer, batch_fn, loss_fn, steps=steps, seed=seed, device=device,
            scheduler=scheduler, progress_cb=progress_cb, val_fn=evaluate_fn,
            val_every=val_every, val_history=val_history)
        metrics = evaluate_fn(model)
    model.to("cpu").eval()
    return history, metrics, val_history, sw.seconds


__all__ = ["TRAINERS", "TRAINER_MODULES", "ClipRunOptions", "Stopwatch", "TrainOptions",
           "TrainResult", "TrainerSpec", "cached_npz", "clip_run_options", "cosine_adam",
           "fit_and_validate", "get_trainer", "load_trainers", "register_trainer",
           "run_training_loop", "seed_everything", "start_run"]
