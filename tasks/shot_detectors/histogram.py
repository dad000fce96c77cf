"""``histogram``: the simplest baseline (gray-histogram differences, fixed threshold).

Flicker fools it (a global gain moves the whole histogram); it exists to compare against.

Example
-------
>>> import numpy as np
>>> from reel.tasks.shot_detectors import SHOT_DETECTORS
>>> dark, light = np.full((9, 16), 40, np.uint8), np.full((9, 16), 200, np.uint8)
>>> [s.start for s in SHOT_DETECTORS.create("histogram").detect([dark] * 10 + [light] * 10)]
[0, 10]
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from reel.tasks.shot_detectors import SHOT_DETECTORS
from reel.tasks.shot_detectors.base import Boundary, ShotDetector


@SHOT_DETECTORS.register
class HistogramShotDetector(ShotDetector):
    """Baseline: half the L1 distance of 64-bin gray histograms above a fixed threshold.

    Parameters
    ----------
    min_shot_frames : int
        Shortest shot produced.
    threshold : float
        Cut when the distance (in [0, 1]) exceeds it.
    bins : int
        Histogram bins over 0..255.
    """

    name = "histogram"
    version = "1"

    def __init__(self, min_shot_frames: int = 8, threshold: float = 0.35, bins: int = 64) -> None:
        super().__init__(min_shot_frames=min_shot_frames, threshold=float(threshold), bins=int(bins))
        self.threshold = float(threshold)
        self.bins = int(bins)

    def _hist(self, gray: np.ndarray) -> np.ndarray:
        h = np.bincount((gray.astype(np.int64).ravel() * self.bins) >> 8, minlength=self.bins)
        return h.astype(np.float64) / max(1, gray.size)

    def boundaries(self, frames: Iterable[np.ndarray]) -> tuple[list[Boundary], int]:
        prev = None
        cuts = []
        n = 0
        for frame in frames:
            h = self._hist(np.asarray(frame))
            if prev is not None:
                d = 0.5 * float(np.abs(h - prev).sum())
                if d > self.threshold:
                    cuts.append(Boundary(n, d, self.threshold, "cut"))
            prev = h
            n += 1
        return cuts, n


__all__ = ["HistogramShotDetector"]
