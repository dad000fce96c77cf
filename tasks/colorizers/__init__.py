"""Colorization engines, registered by name in :data:`COLORIZERS`.

Importing this package imports every engine module, so all engines are registered.

Engines: ``exemplar-propagate`` (default: reference correspondence plus bidirectional DIS-flow
propagation with occlusion checks and re-anchoring) and the baselines ``gray``,
``reinhard-global`` (mean reference chroma), ``welsh`` (Welsh et al. 2002), ``correspondence``
(per-frame correspondence, no temporal model) and ``flow-propagate`` (key frame carried by flow
only).

Example
-------
>>> from reel.tasks.colorizers import COLORIZERS
>>> COLORIZERS.names()  # doctest: +NORMALIZE_WHITESPACE
['correspondence', 'exemplar-propagate', 'flow-propagate', 'gray', 'learned-refcolor',
 'reinhard-global', 'welsh']
"""

from reel.registry import Registry

COLORIZERS = Registry("colorization")

from reel.tasks.colorizers.base import Colorizer  # noqa: E402
from reel.tasks.colorizers import (  # noqa: E402,F401
    baselines,
    correspondence,
    exemplar,
    propagate,
    welsh,
)
from reel.tasks.colorizers import learned  # noqa: E402,F401  (RefColorNet refinement)

__all__ = ["COLORIZERS", "Colorizer"]
