"""Dissolve localisation from the variance curve (motion-free, flicker-free).

During a linear dissolve from shot A to shot B, frame ``t`` is ``F_t = (1 - a_t) A_t + a_t B_t``
with the share ``a_t`` of B growing linearly. For two uncorrelated pictures the frame's
variance and mean follow

    var_t  = g_t^2 [(1 - a_t)^2 var_A + a_t^2 var_B]
    mean_t = g_t   [(1 - a_t) mean_A + a_t mean_B]

with ``g_t`` the exposure (flicker) gain of the frame. The squared coefficient of variation
``cv2_t = var_t / mean_t^2`` does not depend on ``g_t`` (nor on a fog offset that scales with
it), and neither depends on *where* things are in the picture: a large object crossing the
frame during the dissolve moves the pixels but hardly changes the frame's variance or mean.
Only three numbers per frame are needed (mean, variance, flash flag), so the fit is cheap.

:func:`fit_dissolve` tries every candidate ``(middle, length)``: with ``a_t = (t - s + 1) /
(length + 1)`` inside the dissolve (``s = middle - length // 2``; 0 before, 1 after, as
:func:`reel.tasks.degrade.dissolve` mixes), ``cv2_A``, ``cv2_B`` and ``mean_B / mean_A`` are
medians over the ``ref_frames`` frames just before and just after the candidate, and the model
curve is compared with the measured ``cv2_t`` over the dissolve and two frames on each side
(mean squared error relative to ``((cv2_A + cv2_B) / 2)^2``). The best candidate wins; its
middle is the boundary (the first frame whose share of B exceeds one half).

This is the "variance curve" of dissolve detection (Alattar 1993; Lienhart 1999), used here
for *placing* a dissolve already found by other tests, with the exact model instead of a
parabola's vertex (the vertex sits at ``a = var_A / (var_A + var_B)``, not at the middle, when
the two shots differ in contrast).

Weak points: the pictures are assumed uncorrelated (a dissolve between two views of the same
scene has a shallower curve, which a free length partly absorbs); a shot whose own contrast
changes a lot within a few frames of the dissolve (a flash of light, an object filling the
frame) bends the curve; lengths outside ``lengths`` are fitted by the nearest one.

Example
-------
>>> import numpy as np
>>> a = np.clip((np.arange(40) - 14 + 1) / 13.0, 0, 1)  # 12-frame dissolve from frame 14
>>> var = (1 - a) ** 2 * 900.0 + a ** 2 * 400.0
>>> mean = (1 - a) * 100.0 + a * 120.0
>>> fit_dissolve(mean, var, (8, 12, 16), inside=18)[:2]
(20, 12)
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def mix_cv2(alpha: np.ndarray, cv2_a: float, cv2_b: float, mean_ratio_b_a: float) -> np.ndarray:
    """Squared coefficient of variation of ``(1 - alpha) A + alpha B`` (uncorrelated A, B).

    Parameters
    ----------
    alpha : float64 (n,)
        Share of B, in [0, 1].
    cv2_a, cv2_b : float
        ``var / mean^2`` of A and of B.
    mean_ratio_b_a : float
        ``mean_B / mean_A`` (> 0).

    Examples
    --------
    >>> float(mix_cv2(np.array([0.5]), 0.09, 0.09, 1.0)[0])  # half the variance of either
    0.045
    """
    al = np.asarray(alpha, np.float64)
    r = float(mean_ratio_b_a)
    m = (1.0 - al) + al * r
    return ((1.0 - al) ** 2 * cv2_a + al ** 2 * cv2_b * r * r) / np.maximum(m * m, 1e-12)


def fit_dissolve(mean: np.ndarray, var: np.ndarray, lengths: Sequence[int], *,
                 middles: Iterable[int] | None = None, inside: int | None = None,
                 skip: np.ndarray | None = None, ref_frames: int = 4,
                 margin_frames: int = 2) -> tuple[int, int, float]:
    """Best ``(middle, length, error)`` of a linear dissolve against the variance curve.

    Parameters
    ----------
    mean, var : float64 (n,)
        Gray-level mean and variance of every frame (any exposure gain per frame).
    lengths : sequence of int
        Candidate dissolve lengths, in frames (>= 2).
    middles : iterable of int, optional
        Candidate middles (first frame of the dissolve's second half), for every length.
    inside : int, optional
        Instead of ``middles``: a frame known to lie in the dissolve (e.g. the bottom of the
        contrast dip, which lies where the share of B is ``var_A / (var_A + var_B)``); every
        dissolve of each length that contains it, or misses it by one frame, is tried.
    skip : bool (n,), optional
        Frames left out of the comparison (flashes); reference medians ignore them too.
    ref_frames : int
        Frames on each side, just outside the dissolve, that give A's and B's statistics.
    margin_frames : int
        Frames on each side of the dissolve included in the comparison.

    Returns
    -------
    (middle, length, error)
        ``error`` is the mean squared difference between measured and model ``var/mean^2``,
        relative to the squared mean reference level (dimensionless; 0 = exact). ``(-1, 0,
        inf)`` when no candidate fits inside the film.

    Examples
    --------
    >>> t = np.arange(30)
    >>> a = np.clip((t - 8 + 1) / 11.0, 0, 1)  # 10-frame dissolve from frame 8: middle 13
    >>> fit_dissolve((1 - a) * 90 + a * 60, (1 - a) ** 2 * 400 + a ** 2 * 900, (8, 10, 12),
    ...              middles=range(10, 17))[:2]
    (13, 10)
    """
    mean = np.asarray(mean, np.float64)
    var = np.asarray(var, np.float64)
    n = mean.size
    skip = np.zeros(n, bool) if skip is None else np.asarray(skip, bool)
    if (middles is None) == (inside is None):
        raise ValueError("give either middles or inside")
    fixed = None if middles is None else [int(m) for m in middles]
    cv2_all = var / np.maximum(mean, 1.0) ** 2
    best = (-1, 0, float("inf"))
    for length in lengths:
        length = int(length)
        if fixed is None:  # dissolves [s, s + length) with s - 1 <= inside <= s + length
            cands = range(int(inside) - length + length // 2, int(inside) + length // 2 + 2)
        else:
            cands = fixed
        for middle in cands:
            s = int(middle) - length // 2
            e = s + length
            ia = np.arange(s - ref_frames, s)
            ib = np.arange(e, e + ref_frames)
            if ia[0] < 0 or ib[-1] >= n:
                continue
            ia, ib = ia[~skip[ia]], ib[~skip[ib]]
            if ia.size == 0 or ib.size == 0:
                continue
            ts = np.arange(max(0, s - margin_frames), min(n, e + margin_frames))
            ts = ts[~skip[ts]]
            alpha = np.clip((ts - s + 1) / (length + 1.0), 0.0, 1.0)
            ca, cb = _small_median(cv2_all[ia]), _small_median(cv2_all[ib])
            ratio = _small_median(mean[ib]) / max(_small_median(mean[ia]), 1e-6)
            model = mix_cv2(alpha, ca, cb, ratio)
            level = max(0.5 * (ca + cb), 1e-9)
            err = float(((cv2_all[ts] - model) ** 2).mean()) / (level * level)
            if err < best[2]:
                best = (int(middle), length, err)
    return best


def _small_median(x: np.ndarray) -> float:
    """``float(np.median(x))`` of a short, NaN-free 1-D array, without np.median's overhead
    (same value: the middle element, or the mean of the two middle ones)."""
    v = np.sort(x)
    k = v.size // 2
    return float(v[k]) if v.size % 2 else float((v[k - 1] + v[k]) / 2.0)


__all__ = ["fit_dissolve", "mix_cv2"]
