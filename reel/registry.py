"""Engine registries: each stage's engines are small classes registered by name.

Follows PySceneDetect's detector pattern: one interface per stage, one class per engine, chosen
by name from configuration.

Example
-------
>>> from reel.registry import Registry, Engine
>>> REG = Registry("demo")
>>> @REG.register
... class Twice(Engine):
...     name, version = "twice", "1"
...     def __init__(self, factor: int = 2):
...         super().__init__(factor=factor)
>>> REG.create("twice", factor=3).params
{'factor': 3}
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Generic, TypeVar


class Engine:
    """Base class of every engine: a stable ``name``, a ``version`` and its parameters.

    Subclasses call ``super().__init__(**params)`` with the parameters that change their output;
    those parameters go into cache keys, the catalog and provenance.
    """

    name: str = ""
    version: str = "0"
    #: sha256 of the weights file when the engine uses learned weights, else None.
    weights_sha256: str | None = None
    #: True for engines that run faster on a GPU (learned ones): their stage task picks CUDA
    #: when present and holds a slot of the ``gpu`` concurrency limit (flows/runners.py).
    uses_gpu: bool = False

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    def describe(self) -> dict[str, Any]:
        """Name, version, parameters and parameter hash, as stored in the catalog."""
        return {
            "engine": self.name,
            "engine_version": self.version,
            "params": self.params,
            "params_hash": params_hash(self.params),
            "weights_sha256": self.weights_sha256,
        }


def params_hash(params: dict[str, Any]) -> str:
    """Stable short hash of a parameter dict (sorted JSON, sha256, 16 hex digits)."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


E = TypeVar("E", bound=Engine)


class UnknownEngineError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class Registry(Generic[E]):
    """Maps engine names to engine classes for one stage."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._engines: dict[str, type[E]] = {}

    def register(self, cls: type[E]) -> type[E]:
        if not cls.name:
            raise ValueError(f"{cls.__qualname__} has no name")
        if cls.name in self._engines and self._engines[cls.name] is not cls:
            raise ValueError(f"{self.stage} engine {cls.name!r} is registered twice")
        self._engines[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._engines)

    def get(self, name: str) -> type[E]:
        try:
            return self._engines[name]
        except KeyError:
            raise UnknownEngineError(
                f"unknown {self.stage} engine {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, **params: Any) -> E:
        return self.get(name)(**params)

    def __contains__(self, name: str) -> bool:
        return name in self._engines

    def __iter__(self):
        return iter(self.names())


__all__ = ["Engine", "Registry", "UnknownEngineError", "params_hash"]
