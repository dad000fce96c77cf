"""Baseline colorizers: ``gray`` (ab = 0) and ``reinhard-global`` (the references' mean ab).

Example
-------
>>> import numpy as np
>>> from reel.tasks.colorizers import COLORIZERS
>>> eng = COLORIZERS.create("reinhard-global")
>>> ref = np.dstack([np.full((4, 4), 50.0), np.full((4, 4), 20.0), np.full((4, 4), -10.0)])
>>> eng.start_shot([ref.astype(np.float32)], None)
>>> ab, conf = eng.colorize_frame(np.full((2, 3), 40, np.float32))
>>> ab[0, 0].tolist()
[20.0, -10.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reel.tasks.colorizers import COLORIZERS
from reel.tasks.colorizers.base import Colorizer, limit_chroma_to_gamut


@COLORIZERS.register
class GrayColorizer(Colorizer):
    """ab = 0 everywhere, confidence 0: the do-nothing baseline."""

    name, version = "gray", "1"

    def colorize_frame(self, L: np.ndarray) -> tuple[np.ndarray, float]:
        return self.neutral(L), 0.0


@COLORIZERS.register
class ReinhardGlobalColorizer(Colorizer):
    """Every pixel gets the references' mean ab (pixel-weighted over all references).

    Reinhard et al. (2001) match the mean and standard deviation of each Lab channel of a target
    to a source. For a gray target, a and b are constant 0 with zero spread, so the transfer
    reduces to assigning the source's mean ab; L is kept (chroma is only reduced where sRGB cannot
    show it at the pixel's L). Confidence is 0: a global mean carries no per-pixel evidence.
    Without references the output is gray.
    """

    name, version = "reinhard-global", "1"
    _mean_ab = np.zeros(2, np.float32)

    def start_shot(
        self, references_lab: Sequence[np.ndarray], palette_lab: np.ndarray | None = None
    ) -> None:
        super().start_shot(references_lab, palette_lab)
        if self.references_lab:
            ab = np.concatenate([r[..., 1:].reshape(-1, 2) for r in self.references_lab])
            self._mean_ab = ab.mean(axis=0, dtype=np.float64).astype(np.float32)
        else:
            self._mean_ab = np.zeros(2, np.float32)

    def colorize_frame(self, L: np.ndarray) -> tuple[np.ndarray, float]:
        ab = np.empty(L.shape[:2] + (2,), np.float32)
        ab[...] = self._mean_ab
        return limit_chroma_to_gamut(L, ab), 0.0
