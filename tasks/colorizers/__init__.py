"""Colorization engines, registered by name in :data:`COLORIZERS`.

Importing this package imports every engine module, so all engines are registered.

Engines: ``gray`` and ``reinhard-global`` (baselines), ``welsh`` (Welsh et al. 2002) and
``exemplar-propagate`` (default: hand-crafted-feature reference matching plus DIS-flow
propagation).

Example
-------
>>> from reel.tasks.colorizers import COLORIZERS
>>> COLORIZERS.names()
['exemplar-propagate', 'gray', 'reinhard-global', 'welsh']
"""

from reel.registry import Registry

COLORIZERS = Registry("colorization")

from reel.tasks.colorizers.base import Colorizer  # noqa: E402
from reel.tasks.colorizers import baselines, exemplar, welsh  # noqa: E402,F401

__all__ = ["COLORIZERS", "Colorizer"]
