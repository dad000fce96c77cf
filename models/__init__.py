"""Torch networks of reel's learned engines, and the shared training infrastructure.

Networks (one per file, each with a config dataclass): :mod:`reel.models.refcolor_net`
(``RefColorNet``: refines exemplar-propagate's chroma with reference attention, alignment of
neighbouring frames and temporal aggregation). Learned engines (``learned-refcolor`` in
``reel.tasks.colorizers.learned``) load the shipped checkpoints under ``models/checkpoints/``.

Shared infrastructure (stable API, reused by every trainer)
-----------------------------------------------------------
``reel.models.device``
    ``select_device(prefer=None) -> torch.device`` (CUDA when present, else CPU; applies
    ``settings.processing.torch_threads``), ``autocast(device)`` (bf16/fp16 AMP on CUDA, no-op on
    CPU), ``apply_threads(n)``, ``uses_gpu(device)``.
``reel.models.checkpoint``
    ``save_checkpoint(path, model, config_dataclass, meta) -> sha256`` (byte-deterministic, no
    pickle), ``load_checkpoint(path, model_cls, config_cls, map_location) -> (model, config,
    meta)``, ``read_checkpoint``, ``file_sha256``, ``write_model_card(path, name=, description=,
    data=, steps=, wall_s=, metrics=, command=, weights_sha256=, ...)``.
``reel.models.training``
    ``TrainOptions`` (steps, seed, device, batch_size, lr, val_every, threads, work_dir, extra),
    ``TrainResult`` (name, model, config, steps, wall_s, history, val_metrics, val_history,
    data_description, description, params, device), ``register_trainer(name, description=,
    model_cls=, config_cls=)`` decorating ``train(options, progress_cb) -> TrainResult``,
    ``TRAINERS`` / ``get_trainer`` / ``load_trainers``, ``run_training_loop(model, optimizer,
    batch_fn, loss_fn, steps=, seed=, device=, progress_cb=, val_fn=, val_every=, ...)``,
    ``seed_everything``, ``Stopwatch``.
``reel.flows.train.train_model(name, steps, out_dir, device, seed, ...)``
    Prefect flow: runs the trainer, writes ``<out>/<name>.pt`` + ``<out>/<name>.md``, logs
    params, per-step losses and validation metrics to MLflow (experiment ``reel-training``)
    and registers the model version ``reel-<name>`` with a ``weights_sha256`` tag.
    CLI: ``reel train NAME [--steps N] [--out DIR] [--device cpu|cuda]``.

Adding a trainer: write ``models/<name>_train.py`` with ``@register_trainer("<name>", ...)`` and
add ``"<name>": "reel.models.<name>_train"`` to :data:`TRAINER_MODULES` below.

Example
-------
>>> sorted(TRAINER_MODULES)
['fuse', 'harmonize', 'refcolor']
"""

#: Trainer name -> module whose import registers it (kept here, torch-free, so the CLI can list
#: the trainers in ``reel train --help`` without importing torch).
TRAINER_MODULES: dict[str, str] = {
    "refcolor": "reel.models.refcolor_train",
    "harmonize": "reel.models.train_harmonize",
    "fuse": "reel.models.train_fuse",
}

#: Folder of the shipped checkpoints (``<name>.pt`` + model card ``<name>.md``).
from pathlib import Path as _Path  # noqa: E402

CHECKPOINTS_DIR = _Path(__file__).resolve().parent / "checkpoints"
