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
    if (middles is None) == (inside is None):
        raise ValueError("give either middles or inside")
    fixed = None if middles is None else [int(m) for m in middles]
    cands = []
    for length in lengths:
        length = int(length)
        if fixed is None:  # dissolves [s, s + length) with s - 1 <= inside <= s + length
            mids = range(int(inside) - length + length // 2, int(inside) + length // 2 + 2)
        else:
            mids = fixed
        cands += [(int(middle), length) for middle in mids]
    errs = curve_errors(mean, var, cands, skip=skip, ref_frames=ref_frames,
                        margin_frames=margin_frames)
    best = (-1, 0, float("inf"))
    for (middle, length), err in zip(cands, errs):
        if err < best[2]:
            best = (middle, length, float(err))
    return best


def curve_errors(mean: np.ndarray, var: np.ndarray, candidates: Sequence[tuple[int, int]], *,
                 skip: np.ndarray | None = None, ref_frames: int = 4,
                 margin_frames: int = 2) -> np.ndarray:
    """Relative error of the variance-curve model for each ``(middle, length)`` candidate.

    The error :func:`fit_dissolve` minimises (see there for the parameters), for candidates
    chosen by the caller. ``mean`` and ``var`` may also be ``(n, k)``: ``k`` curves of the
    same frames (e.g. the regions of a grid over the picture), fitted each on its own.

    Returns
    -------
    float64 (len(candidates),) or (len(candidates), k)
        ``inf`` where the candidate and its reference frames do not fit inside the film (or
        all its reference frames on one side are skipped).

    Examples
    --------
    >>> t = np.arange(30)
    >>> a = np.clip((t - 8 + 1) / 11.0, 0, 1)  # 10-frame dissolve from frame 8: middle 13
    >>> e = curve_errors((1 - a) * 90 + a * 60, (1 - a) ** 2 * 400 + a ** 2 * 900,
    ...                  [(13, 10), (12, 10), (0, 10)])
    >>> bool(e[0] < 1e-12 < e[1]), bool(np.isinf(e[2]))
    (True, True)
    """
    mean = np.asarray(mean, np.float64)
    var = np.asarray(var, np.float64)
    one = mean.ndim == 1
    if one:
        mean, var = mean[:, None], var[:, None]
    n, k = mean.shape
    skip = np.zeros(n, bool) if skip is None else np.asarray(skip, bool)
    cv2_all = var / np.maximum(mean, 1.0) ** 2
    out = np.full((len(candidates), k), np.inf)
    # candidates of one length whose frames are all usable are fitted together (same
    # arithmetic, one row each); those with skipped frames one at a time
    groups: dict[int, list[int]] = {}
    for i, (middle, length) in enumerate(candidates):
        groups.setdefault(int(length), []).append(i)
    skipped = np.r_[0, np.cumsum(skip)]  # skipped[j] = skipped frames before frame j
    for length, rows in groups.items():
        idx = np.array(rows)
        starts = np.array([int(candidates[i][0]) for i in rows]) - length // 2
        reach = max(ref_frames, margin_frames)
        lo, hi = starts - reach, starts + length + reach  # frames [lo, hi) used
        inside = (lo >= 0) & (hi <= n)
        clean = inside.copy()
        clean[inside] = skipped[hi[inside]] == skipped[lo[inside]]
        if clean.any():
            out[idx[clean]] = _errors_of_starts(mean, cv2_all, starts[clean], length,
                                                ref_frames, margin_frames)
        for i, s0 in zip(idx[inside & ~clean], starts[inside & ~clean]):
            out[i] = _error_with_skips(mean, cv2_all, skip, int(s0), length, ref_frames,
                                       margin_frames)
    return out[:, 0] if one else out


def _errors_of_starts(mean: np.ndarray, cv2_all: np.ndarray, starts: np.ndarray, length: int,
                      ref_frames: int, margin_frames: int) -> np.ndarray:
    """:func:`curve_errors` of dissolves ``[s, s + length)`` for every ``s`` in ``starts``
    (all their frames inside the film, none skipped); shape (len(starts), k)."""
    s = starts[:, None]
    ia = s + np.arange(-ref_frames, 0)
    ib = s + length + np.arange(ref_frames)
    ts = s + np.arange(-margin_frames, length + margin_frames)
    alpha = np.clip((np.arange(-margin_frames, length + margin_frames) + 1) / (length + 1.0),
                    0.0, 1.0)[None, :, None]
    ca = _middle_rows(cv2_all[ia])[:, None, :]
    cb = _middle_rows(cv2_all[ib])[:, None, :]
    ratio = _middle_rows(mean[ib]) / np.maximum(_middle_rows(mean[ia]), 1e-6)
    model = _mix_cv2_columns(alpha, ca, cb, ratio[:, None, :])
    level = np.maximum(0.5 * (ca + cb), 1e-9)[:, 0, :]
    return ((cv2_all[ts] - model) ** 2).mean(axis=1) / (level * level)


def _error_with_skips(mean: np.ndarray, cv2_all: np.ndarray, skip: np.ndarray, s: int,
                      length: int, ref_frames: int, margin_frames: int) -> np.ndarray:
    """:func:`curve_errors` of one dissolve ``[s, s + length)`` whose frames include skipped
    ones (left out); shape (k,), ``inf`` when a side has no reference frame left."""
    e = s + length
    ia = np.arange(s - ref_frames, s)
    ib = np.arange(e, e + ref_frames)
    ia, ib = ia[~skip[ia]], ib[~skip[ib]]
    if ia.size == 0 or ib.size == 0:
        return np.full(mean.shape[1], np.inf)
    ts = np.arange(s - margin_frames, e + margin_frames)
    ts = ts[~skip[ts]]
    alpha = np.clip((ts - s + 1) / (length + 1.0), 0.0, 1.0)[:, None]
    ca, cb = _middle_rows(cv2_all[ia][None])[0], _middle_rows(cv2_all[ib][None])[0]
    ratio = _middle_rows(mean[ib][None])[0] / np.maximum(_middle_rows(mean[ia][None])[0], 1e-6)
    model = _mix_cv2_columns(alpha, ca, cb, ratio)
    level = np.maximum(0.5 * (ca + cb), 1e-9)
    return ((cv2_all[ts] - model) ** 2).mean(axis=0) / (level * level)


def _middle_rows(x: np.ndarray) -> np.ndarray:
    """Median over axis 1 of ``x`` (g, r, k) with few rows ``r`` (NaN-free): shape (g, k)."""
    v = np.sort(x, axis=1)
    r = v.shape[1] // 2
    return v[:, r] if v.shape[1] % 2 else (v[:, r - 1] + v[:, r]) / 2.0


def _mix_cv2_columns(alpha, cv2_a, cv2_b, ratio):
    """:func:`mix_cv2` broadcast over columns (same arithmetic)."""
    m = (1.0 - alpha) + alpha * ratio
    return ((1.0 - alpha) ** 2 * cv2_a + alpha ** 2 * cv2_b * ratio * ratio) / np.maximum(m * m, 1e-12)


__all__ = ["curve_errors", "fit_dissolve", "mix_cv2"]
