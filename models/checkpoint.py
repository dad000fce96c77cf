"""Byte-deterministic checkpoints and model cards.

File format (``.pt`` by convention, but *not* a pickle: loading it never runs code)::

    b"REELCKPT" + version byte (1) + 8-byte little-endian header length
    + header: UTF-8 JSON, sorted keys, no whitespace:
        {"config": {...}, "config_class": "...", "model_class": "...", "meta": {...},
         "tensors": [{"name", "dtype", "shape", "offset", "nbytes"}, ...]}
    + the tensors' raw little-endian bytes, in state-dict order, each 64-byte aligned.

The same model, config and meta always give the same bytes (no timestamps, no random ids —
``torch.save`` writes a random serialization id since torch 2.4), so the sha256 of a checkpoint
identifies the weights and a re-save is byte-identical.

Example
-------
>>> import dataclasses, tempfile, torch
>>> from pathlib import Path
>>> @dataclasses.dataclass
... class Cfg:
...     width: int = 3
>>> class Net(torch.nn.Module):
...     def __init__(self, cfg):
...         super().__init__(); self.lin = torch.nn.Linear(cfg.width, 1)
>>> d = Path(tempfile.mkdtemp())
>>> sha = save_checkpoint(d / "n.pt", Net(Cfg()), Cfg(), {"steps": 0})
>>> model, cfg, meta = load_checkpoint(d / "n.pt", Net, Cfg)
>>> sha == file_sha256(d / "n.pt"), cfg.width, meta["steps"]
(True, 3, 0)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAGIC = b"REELCKPT"
FORMAT_VERSION = 1
_ALIGN = 64
_DTYPES = {
    "float32": (torch.float32, np.float32), "float64": (torch.float64, np.float64),
    "float16": (torch.float16, np.float16), "int64": (torch.int64, np.int64),
    "int32": (torch.int32, np.int32), "uint8": (torch.uint8, np.uint8),
    "bool": (torch.bool, np.bool_),
}
_TORCH_TO_NAME = {t: n for n, (t, _) in _DTYPES.items()}


class CheckpointError(ValueError):
    """The file is not a reel checkpoint, or does not fit the model it is loaded into."""


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def checkpoint_bytes(model: torch.nn.Module | Mapping[str, torch.Tensor], config: Any,
                     meta: Mapping[str, Any] | None = None) -> bytes:
    """The checkpoint file's bytes for ``model`` (or a state dict), ``config`` and ``meta``."""
    state = model.state_dict() if isinstance(model, torch.nn.Module) else dict(model)
    entries, blobs, offset = [], [], 0
    for name, tensor in state.items():
        t = tensor.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16: stored as float32
            t = t.float()
        if t.dtype not in _TORCH_TO_NAME:
            raise CheckpointError(f"tensor {name!r} has unsupported dtype {t.dtype}")
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        pad = (-offset) % _ALIGN
        blobs.append(b"\0" * pad)
        offset += pad
        entries.append({"name": name, "dtype": _TORCH_TO_NAME[t.dtype], "shape": list(t.shape),
                        "offset": offset, "nbytes": len(raw)})
        blobs.append(raw)
        offset += len(raw)
    model_cls = type(model) if isinstance(model, torch.nn.Module) else None
    header = {
        "config": _jsonable(config),
        "config_class": f"{type(config).__module__}.{type(config).__qualname__}",
        "model_class": (f"{model_cls.__module__}.{model_cls.__qualname__}" if model_cls else None),
        "meta": _jsonable(dict(meta or {})),
        "tensors": entries,
    }
    head = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    return MAGIC + bytes([FORMAT_VERSION]) + struct.pack("<Q", len(head)) + head + b"".join(blobs)


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, config: Any,
                    meta: Mapping[str, Any] | None = None) -> str:
    """Write ``model``'s weights, its config dataclass and ``meta`` to ``path``; return sha256.

    The write is atomic (temporary file, then rename) and byte-deterministic.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = checkpoint_bytes(model, config, meta)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The header (config, meta, ...) and the state dict (CPU tensors) of a checkpoint file."""
    data = Path(path).read_bytes()
    if data[:8] != MAGIC or len(data) < 17:
        raise CheckpointError(f"{path} is not a reel checkpoint (bad magic)")
    if data[8] != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {data[8]} is not supported")
    (n,) = struct.unpack("<Q", data[9:17])
    header = json.loads(data[17:17 + n].decode())
    base = 17 + n
    state: dict[str, torch.Tensor] = {}
    for e in header["tensors"]:
        tdt, ndt = _DTYPES[e["dtype"]]
        start = base + e["offset"]
        arr = np.frombuffer(data, dtype=np.dtype(ndt).newbyteorder("<"), count=int(
            np.prod(e["shape"], dtype=np.int64)) if e["shape"] else 1, offset=start)
        state[e["name"]] = torch.from_numpy(arr.astype(ndt, copy=True).reshape(e["shape"]))
    return header, state


def load_checkpoint(path: str | os.PathLike, model_cls: type[torch.nn.Module], config_cls: type,
                    map_location: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Build ``model_cls(config_cls(**saved_config))``, load the weights strictly, move it to
    ``map_location`` and put it in eval mode. Returns ``(model, config, meta)``; ``meta`` also
    holds ``"sha256"`` of the file."""
    header, state = read_checkpoint(path)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(header["config"]) - fields
    if unknown:
        raise CheckpointError(f"{path}: config fields {sorted(unknown)} unknown to "
                              f"{config_cls.__name__}; was it saved by another model?")
    config = config_cls(**{k: _tuples(v) for k, v in header["config"].items()})
    model = model_cls(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {model_cls.__name__}: {exc}") from None
    model.to(map_location).eval()
    meta = dict(header.get("meta") or {})
    meta["sha256"] = file_sha256(path)
    return model, config, meta


def _tuples(v: Any) -> Any:
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """sha256 (hex) of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_bytes), b""):
            h.update(chunk)
    return h.hexdigest()


def write_model_card(path: str | os.PathLike, *, name: str, description: str, data: str,
                     steps: int, wall_s: float, metrics: Mapping[str, float], command: str,
                     weights_sha256: str, config: Any = None, device: str = "cpu",
                     extra: Mapping[str, Any] | None = None) -> Path:
    """Write a Markdown model card next to a checkpoint and return its path.

    Records what the issue asks for: the data, steps, measured wall time, validation metrics,
    the exact command that reproduces the checkpoint and its weights sha256.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# Model card: {name}", "", description.strip(), "",
             f"- weights sha256: `{weights_sha256}`",
             f"- reproduce: `{command}`",
             f"- training steps: {int(steps)}",
             f"- wall time: {wall_s:.0f} s on {device} (shared machine: pessimistic)",
             "", "## Data", "", data.strip(), "", "## Validation metrics", "",
             "| metric | value |", "|---|---|"]
    for k in sorted(metrics):
        v = metrics[k]
        lines.append(f"| {k} | {v:.4g} |" if isinstance(v, (int, float)) else f"| {k} | {v} |")
    if config is not None:
        lines += ["", "## Config", "", "```json",
                  json.dumps(_jsonable(config), indent=1, sort_keys=True), "```"]
    for k, v in (extra or {}).items():
        lines += ["", f"## {k}", "", str(v).strip()]
    path.write_text("\n".join(lines) + "\n")
    return path


__all__ = ["CheckpointError", "checkpoint_bytes", "file_sha256", "load_checkpoint",
           "read_checkpoint", "save_checkpoint", "write_model_card"]
