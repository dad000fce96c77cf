"""Device selection, thread pinning and mixed precision for reel's networks.

Every learned engine and trainer goes through these three helpers, so "CUDA when present, CPU
otherwise" and the thread count are decided in one place.

Example
-------
>>> import torch
>>> from reel.models.device import select_device, autocast
>>> dev = select_device("cpu")
>>> with autocast(dev):
...     y = torch.ones(2, device=dev) * 2
>>> y.tolist()
[2.0, 2.0]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def apply_threads(n_threads: int | None = None) -> int:
    """Set ``torch.set_num_threads`` (from ``n_threads`` or settings.processing.torch_threads).

    ``None`` and 0 leave torch's current value. Returns the number of threads now in use.
    Call it *after* imports: some modules change the thread count at import time.
    """
    if n_threads is None:
        try:
            from reel.config import get_settings

            n_threads = getattr(get_settings().processing, "torch_threads", None)
        except Exception:  # settings unreadable: keep torch's default
            n_threads = None
    if n_threads:
        torch.set_num_threads(int(n_threads))
    return torch.get_num_threads()


def select_device(prefer: str | torch.device | None = None, *, set_threads: bool = True
                  ) -> torch.device:
    """The device to run on: ``prefer`` when given, else CUDA when present, else CPU.

    Parameters
    ----------
    prefer : {"cpu", "cuda", "cuda:N"}, torch.device or None
        Asking for CUDA on a machine without it raises ``RuntimeError`` (with what to do).
    set_threads : bool
        Also apply the configured CPU thread count (:func:`apply_threads`).

    Example
    -------
    >>> select_device("cpu").type
    'cpu'
    """
    if set_threads:
        apply_threads()
    if prefer is None or str(prefer) == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(prefer)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but torch sees no GPU; use --device cpu "
                           "(or leave the device unset to pick automatically)")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {prefer!r}; use cpu or cuda")
    return dev


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype used on ``device``: bfloat16 where the GPU supports it, else float16;
    None on CPU (CPU runs in float32 so results are deterministic and exact)."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Automatic mixed precision on CUDA (:func:`amp_dtype`); a no-op on CPU."""
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        yield
        return
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


def uses_gpu(device: torch.device | str) -> bool:
    """True when ``device`` is a CUDA device (the stage must hold the ``gpu`` concurrency slot)."""
    return torch.device(device).type == "cuda"


__all__ = ["amp_dtype", "apply_threads", "autocast", "select_device", "uses_gpu"]
