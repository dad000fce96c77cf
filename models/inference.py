"""Running a shipped (or trained) checkpoint inside an engine: path, cached load, device.

The learned engines (``learned-refcolor``, ``learned-fuse``, ``learned-harmonize``) share the
same plumbing: a checkpoint name resolves to ``models/checkpoints/<name>.pt`` (or is a path),
the file's SHA-256 identifies the weights, and the network is loaded lazily, once per
(file, hash, device) per process, on the device the engine was asked for ("auto": CUDA when
present). :class:`LazyNetwork` is that plumbing as a mixin.

Example
-------
>>> from reel.models.inference import checkpoint_file
>>> checkpoint_file("fuse").name
'fuse.pt'
>>> str(checkpoint_file("some/dir/mine.pt"))
'some/dir/mine.pt'
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any


def checkpoint_file(name_or_path: str | os.PathLike) -> Path:
    """``models/checkpoints/<name>.pt`` for a shipped checkpoint name, else the path itself."""
    from reel.models import CHECKPOINTS_DIR

    p = Path(name_or_path)
    if p.suffix == ".pt" or p.is_file():
        return p
    return CHECKPOINTS_DIR / f"{p.name}.pt"


@lru_cache(maxsize=12)
def load_network(path: str, sha: str, device: str, model_cls: type, config_cls: type) -> Any:
    """The model in checkpoint ``path`` on ``device``, cached per (path, sha256, device, class).

    ``sha`` is part of the cache key so that a file rewritten in place is loaded again.
    """
    from reel.models.checkpoint import load_checkpoint

    model, _config, _meta = load_checkpoint(path, model_cls, config_cls, map_location=device)
    return model


class LazyNetwork:
    """Mixin: an engine that runs one checkpointed network, loaded on first use.

    Subclasses override :meth:`_model_classes` (importing torch-heavy classes lazily) and call
    :meth:`_init_network` from ``__init__``; ``_network()`` then gives ``(model, device)``.
    """

    def _model_classes(self) -> tuple[type, type]:
        """``(model class, config class)`` of the checkpoint."""
        raise NotImplementedError

    def _init_network(self, path: Path, device: str) -> None:
        """Record the checkpoint ``path`` (must exist), its SHA-256 and the device asked for."""
        from reel.models.checkpoint import file_sha256

        # the device is where it runs, not what it computes: kept out of params (cache keys)
        self.device_name = str(device)
        self.checkpoint_file = path
        self.weights_sha256 = file_sha256(path)
        self._net = None
        self._device = None

    def _network(self):
        """``(model, torch.device)``, loading the model the first time."""
        if self._net is None:
            from reel.models.device import select_device

            model_cls, config_cls = self._model_classes()
            self._device = select_device(None if self.device_name == "auto" else self.device_name)
            self._net = load_network(str(self.checkpoint_file), self.weights_sha256,
                                     str(self._device), model_cls, config_cls)
        return self._net, self._device

    @property
    def device(self) -> str:
        """"cuda" or "cpu": where the network runs (known after its first use)."""
        return self._device.type if self._device is not None else (
            "cpu" if self.device_name == "cpu" else self.device_name)


__all__ = ["LazyNetwork", "checkpoint_file", "load_network"]
