"""Shot detection: split a film into shots that tile ``[0, n_frames)``.

The engines live in :mod:`reel.tasks.shot_detectors` (registry :data:`SHOT_DETECTORS`, names
re-exported here). This module holds the file-level entry point :func:`detect_shots`, which
streams frames from :func:`reel.tasks.media.iter_frames` in the pixel format and size each
engine asks for (nothing holds more than a few frames; the per-frame score series, a handful
of floats per frame, is kept for the whole film), and :func:`match_boundaries`, the scoring
rule of the shot benchmark.

Engines: ``archival`` (default; hard cuts, splices, fades through black and dissolves, built
for flickering, dusty, scratched, weaving film), ``histogram`` (baseline),
``pyscenedetect-content`` and ``pyscenedetect-adaptive`` (PySceneDetect's detectors), and
``transnetv2`` (optional, the TransNet V2 network in a subprocess).

Example
-------
>>> import numpy as np
>>> ramp = np.tile(np.linspace(0, 255, 80), (45, 1)).astype(np.uint8)
>>> yy, xx = np.mgrid[:45, :80]
>>> disc = np.where(np.hypot(xx - 40, yy - 22) < 15, 220, 20).astype(np.uint8)
>>> [s.start for s in SHOT_DETECTORS.create("archival").detect([ramp] * 12 + [disc] * 12)]
[0, 12]
>>> match_boundaries([30, 77, 140], [30, 76, 137]).f1
0.6667
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from reel.tasks.shot_detectors import (
    SHOT_DETECTORS,
    TRANSITIONS,
    Boundary,
    Shot,
    ShotDetector,
    boundaries_to_shots,
)
from reel.tasks.shot_detectors.archival import ArchivalShotDetector
from reel.tasks.shot_detectors.base import EngineUnavailable
from reel.tasks.shot_detectors.histogram import HistogramShotDetector


def detect_shots(
    path: str | os.PathLike,
    *,
    engine: str = "archival",
    min_shot_frames: int = 8,
    analysis_width_px: int | None = None,
    **params,
) -> list[Shot]:
    """Detect the shots of a video file.

    Frames are streamed through :func:`reel.tasks.media.iter_frames` in the engine's pixel
    format (:attr:`ShotDetector.pix_fmt`) and size (:meth:`ShotDetector.decode_size`: by
    default ``analysis_width_px`` or the engine's own width, aspect kept); the shots tile
    ``[0, frames decoded)``.

    Parameters
    ----------
    path : path of the video
    engine : name in :data:`SHOT_DETECTORS`
    min_shot_frames : shortest shot produced
    analysis_width_px : decode width for analysis (``None``: the engine's default, e.g. 160
        for ``archival``, 256 for PySceneDetect; TransNet V2 always uses 48 x 27)
    **params : further engine parameters

    Raises
    ------
    EngineUnavailable
        The engine's optional package is not installed (the message says how to install it).

    Examples
    --------
    >>> shots = detect_shots("film.mkv")  # doctest: +SKIP
    >>> shots[1]  # doctest: +SKIP
    Shot(start=96, stop=240, transition='dissolve', confidence=0.71)
    """
    from reel.tasks import media

    detector = SHOT_DETECTORS.create(engine, min_shot_frames=min_shot_frames, **params)
    # only the picture size is needed: the cheap stream facts, no frame counting
    w, h = detector.decode_size(*media._video_meta(Path(path)).display_size, analysis_width_px)
    frames: Iterator[np.ndarray] = media.iter_frames(path, pix_fmt=detector.pix_fmt, width=w, height=h)
    return detector.detect(frames)


@dataclass(frozen=True)
class BoundaryMatch:
    """Result of :func:`match_boundaries`: counts, the matched pairs and P/R/F1 (4 decimals).

    ``precision`` is 1.0 when nothing was detected, ``recall`` 1.0 when there was nothing to
    find, ``f1`` 0.0 when both precision and recall are 0.
    """

    tp: int
    fp: int
    fn: int
    pairs: tuple[tuple[int, int], ...]  # (true frame, detected frame)

    @property
    def precision(self) -> float:
        return round(self.tp / (self.tp + self.fp), 4) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return round(self.tp / (self.tp + self.fn), 4) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        return round(2 * p * r / (p + r), 4) if p + r else 0.0


def match_boundaries(detected: Sequence[int], truth: Sequence[int],
                     tolerance_frames: int = 1) -> BoundaryMatch:
    """One-to-one matching of detected to true boundaries within ``±tolerance_frames``.

    A boundary is the index of the first frame of a shot (never 0). Each true and each
    detected boundary is used at most once. The greedy sweep (true boundaries in order, each
    taking the earliest unused detection in its window) gives a maximum matching, because all
    windows have the same width (an interval-scheduling argument); it is exact, not a
    heuristic.

    >>> m = match_boundaries([10, 11, 50], [10, 12, 40], tolerance_frames=1)
    >>> (m.tp, m.fp, m.fn, m.pairs)
    (2, 1, 1, ((10, 10), (12, 11)))
    """
    det = sorted(int(d) for d in detected)
    tru = sorted(int(t) for t in truth)
    used = [False] * len(det)
    pairs = []
    j0 = 0
    for t in tru:
        while j0 < len(det) and (used[j0] or det[j0] < t - tolerance_frames):
            j0 += 1
        j = j0
        while j < len(det) and det[j] <= t + tolerance_frames:
            if not used[j]:
                used[j] = True
                pairs.append((t, det[j]))
                break
            j += 1
    tp = len(pairs)
    return BoundaryMatch(tp=tp, fp=len(det) - tp, fn=len(tru) - tp, pairs=tuple(pairs))


__all__ = [
    "SHOT_DETECTORS",
    "TRANSITIONS",
    "ArchivalShotDetector",
    "Boundary",
    "BoundaryMatch",
    "EngineUnavailable",
    "HistogramShotDetector",
    "Shot",
    "ShotDetector",
    "boundaries_to_shots",
    "detect_shots",
    "match_boundaries",
]


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="detect-shots", cache_policy=NO_CACHE)(detect_shots)


detect_shots_task = _thin_task()
