"""What every shot detector shares: :class:`Shot`, :class:`Boundary`, :class:`ShotDetector`.

A detector consumes a stream of frames at analysis resolution (its own pixel format and size,
see :meth:`ShotDetector.decode_size`), finds candidate :class:`Boundary` objects and turns them
into :class:`Shot` objects that tile ``[0, n_frames)`` (:func:`boundaries_to_shots`, which also
enforces the minimum shot length).

Example
-------
>>> from reel.tasks.shot_detectors.base import Boundary, boundaries_to_shots
>>> boundaries_to_shots([Boundary(10, 0.9, 0.3), Boundary(40, 0.6, 0.3, "dissolve")], 60, 8)
... # doctest: +NORMALIZE_WHITESPACE
[Shot(start=0, stop=10, transition='start', confidence=1.0),
 Shot(start=10, stop=40, transition='cut', confidence=0.6667),
 Shot(start=40, stop=60, transition='dissolve', confidence=0.5)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from reel.registry import Engine

#: Transition kinds a shot may start with ("start" only for the first shot).
TRANSITIONS = ("start", "cut", "dissolve", "fade", "splice")


@dataclass(frozen=True)
class Shot:
    """One shot, frames ``[start, stop)`` (source frame numbers).

    ``transition`` is the kind of boundary that *starts* this shot ("start" for the first shot),
    ``confidence`` in [0, 1] how sure the detector is of that boundary. For a gradual
    transition (dissolve, fade) ``start`` is the middle of the transition.
    """

    start: int
    stop: int
    transition: str
    confidence: float

    def __post_init__(self) -> None:
        if self.stop <= self.start:
            raise ValueError(f"empty shot [{self.start}, {self.stop})")
        if self.transition not in TRANSITIONS:
            raise ValueError(f"unknown transition {self.transition!r}")

    @property
    def n_frames(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Boundary:
    """A candidate boundary before frame ``index`` (between ``index - 1`` and ``index``).

    ``score`` and ``threshold`` are in the detector's own units; ``conf`` overrides the
    default confidence (for detectors whose score is a probability).
    """

    index: int
    score: float
    threshold: float
    transition: str = "cut"
    conf: float | None = None

    @property
    def confidence(self) -> float:
        """``conf`` if given, else ``1 - threshold / score``: 0 at the threshold, 0.5 at twice it."""
        if self.conf is not None:
            return float(np.clip(self.conf, 0.0, 1.0))
        if self.score <= 0:
            return 0.0
        return float(np.clip(1.0 - self.threshold / self.score, 0.0, 1.0))


class EngineUnavailable(RuntimeError):
    """An optional engine's package is not installed; the message says how to install it."""


class ShotDetector(Engine):
    """Base class of shot detectors.

    Subclasses implement :meth:`boundaries`; :meth:`detect` turns them into shots that tile the
    frame range, enforcing ``min_shot_frames``. Class attributes tell
    :func:`reel.tasks.shots.detect_shots` how to decode frames for the engine:

    ``pix_fmt``
        ``"gray"`` (frames ``(H, W)``) or ``"rgb24"`` (``(H, W, 3)``).
    ``default_analysis_width_px``
        Decode width when the caller gives none (see :meth:`decode_size`).
    """

    pix_fmt: str = "gray"
    default_analysis_width_px: int = 160

    def __init__(self, min_shot_frames: int = 8, **params) -> None:
        if min_shot_frames < 1:
            raise ValueError("min_shot_frames must be >= 1")
        super().__init__(min_shot_frames=int(min_shot_frames), **params)
        self.min_shot_frames = int(min_shot_frames)

    def decode_size(self, src_width_px: int, src_height_px: int,
                    analysis_width_px: int | None = None) -> tuple[int | None, int | None]:
        """(width, height) to decode at; ``None`` for a side keeps the aspect ratio.

        Default: ``analysis_width_px`` (or the engine's default), never wider than the source.
        """
        w = int(analysis_width_px or self.default_analysis_width_px)
        return (min(w, int(src_width_px)), None)

    def boundaries(self, frames: Iterable[np.ndarray]) -> tuple[list[Boundary], int]:
        """Candidate boundaries (sorted by index) and the number of frames consumed."""
        raise NotImplementedError

    def detect(self, frames: Iterable[np.ndarray], n_frames: int | None = None) -> list[Shot]:
        """Shots of a stream of uint8 frames at analysis resolution.

        Parameters
        ----------
        frames : iterable of uint8 (H, W) or (H, W, 3), as :attr:`pix_fmt` says
            Consumed once, in order.
        n_frames : int, optional
            Expected frame count; a ``ValueError`` is raised when the stream holds another
            number. The shots always tile ``[0, frames consumed)``.
        """
        cuts, n = self.boundaries(frames)
        if n_frames is not None and n != n_frames:
            raise ValueError(f"expected {n_frames} frames, got {n}")
        return boundaries_to_shots(cuts, n, self.min_shot_frames)


def boundaries_to_shots(cuts: list[Boundary], n_frames: int, min_shot_frames: int) -> list[Shot]:
    """Shots tiling ``[0, n_frames)`` from boundaries, merging shots shorter than the minimum.

    While some shot is shorter than ``min_shot_frames`` (and there is more than one shot), the
    shortest one (earliest on ties) loses its weaker bounding boundary (lower confidence, then
    lower score; the first/last shot can only lose its inner boundary), i.e. it merges into the
    neighbour across that boundary. Of two boundaries at the same index the stronger is kept.
    """
    if n_frames <= 0:
        return []
    best: dict[int, Boundary] = {}
    for c in cuts:
        if 0 < c.index < n_frames:
            old = best.get(c.index)
            if old is None or (c.confidence, c.score) > (old.confidence, old.score):
                best[c.index] = c
    cuts = sorted(best.values(), key=lambda c: c.index)
    while cuts:
        edges = [0] + [c.index for c in cuts] + [n_frames]
        lengths = np.diff(edges)
        i = int(np.argmin(lengths))  # shot i spans edges[i]..edges[i+1]
        if lengths[i] >= min_shot_frames:
            break
        left = cuts[i - 1] if i > 0 else None
        right = cuts[i] if i < len(cuts) else None
        if left is None:
            drop = i
        elif right is None:
            drop = i - 1
        else:
            key_l = (left.confidence, left.score)
            key_r = (right.confidence, right.score)
            drop = i - 1 if key_l <= key_r else i
        del cuts[drop]
    edges = [0] + [c.index for c in cuts] + [n_frames]
    shots = [Shot(0, edges[1], "start", 1.0)]
    for c, (a, b) in zip(cuts, zip(edges[1:-1], edges[2:])):
        shots.append(Shot(a, b, c.transition, round(c.confidence, 4)))
    return shots


__all__ = ["TRANSITIONS", "Boundary", "EngineUnavailable", "Shot", "ShotDetector",
           "boundaries_to_shots"]
