"""Shot detection: split a film into shots that tile ``[0, n_frames)``.

Engines (registry :data:`SHOT_DETECTORS`) take gray ``uint8`` frames at analysis resolution and
return :class:`Shot` objects. The file-level entry point :func:`detect_shots` streams frames from
:func:`reel.tasks.media.iter_frames`; nothing holds more than a few frames at a time (the score
series, a handful of floats per frame, is kept for the whole film).

Engines
-------
``archival`` (default)
    Built for old film:

    - exposure-normalised frames: each frame's luminance is z-scored, so a global gain/offset
      flicker changes nothing but clipping;
    - a boundary score that is a weighted sum of named per-pair distances in [0, 1]
      (:meth:`ArchivalShotDetector.pair_components`): normalised-luminance histogram, and the
      luminance layout and edge structure of a 64 px thumbnail after compensating the global
      camera shift (phase correlation), ignoring the 10 % most different pixels so dust and
      scratches weigh little;
    - a threshold adaptive to the local score level,
      ``score > max(min_score, median_factor x rolling median)``;
    - rejection of flashes and dust hits: a boundary is not a cut when some frame shortly before
      it agrees with some frame shortly after it (the frames in between are an interruption);
    - a minimum shot length enforced by merging into the neighbour across the weaker boundary.

    Later work can add score components (frame-line jumps for splices, dissolve ramps) without
    changing the selection logic. On the sample films it finds the six shots of ``bikes.mp4``
    exactly, and only the splice (frame 81) of the flickering 1906 Calais film (the
    ``histogram`` baseline also reports frame 39 there).
``histogram``
    Baseline: L1 distance of plain 64-bin gray histograms of consecutive frames, fixed
    threshold. Flicker fools it; it exists to compare against.

Example
-------
>>> import numpy as np
>>> ramp = np.tile(np.linspace(0, 255, 80), (45, 1)).astype(np.uint8)
>>> yy, xx = np.mgrid[:45, :80]
>>> disc = np.where(np.hypot(xx - 40, yy - 22) < 15, 220, 20).astype(np.uint8)
>>> SHOT_DETECTORS.create("archival").detect([ramp] * 12 + [disc] * 12)  # doctest: +NORMALIZE_WHITESPACE
[Shot(start=0, stop=12, transition='start', confidence=1.0),
 Shot(start=12, stop=24, transition='cut', confidence=0.6979)]
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import cv2
import numpy as np

from reel.registry import Engine, Registry

#: Transition kinds a shot may start with.
TRANSITIONS = ("start", "cut", "dissolve", "fade", "splice")


@dataclass(frozen=True)
class Shot:
    """One shot, frames ``[start, stop)`` (source frame numbers).

    ``transition`` is the kind of boundary that *starts* this shot ("start" for the first shot),
    ``confidence`` in [0, 1] how sure the detector is of that boundary.
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


SHOT_DETECTORS: Registry["ShotDetector"] = Registry("shot detection")


@dataclass(frozen=True)
class Boundary:
    """A candidate boundary before frame ``index`` (between ``index - 1`` and ``index``)."""

    index: int
    score: float
    threshold: float
    transition: str = "cut"

    @property
    def confidence(self) -> float:
        """``1 - threshold / score``: 0 at the threshold, 0.5 at twice it, towards 1 above."""
        if self.score <= 0:
            return 0.0
        return float(np.clip(1.0 - self.threshold / self.score, 0.0, 1.0))


class ShotDetector(Engine):
    """Base class of shot detectors.

    Subclasses implement :meth:`boundaries`; :meth:`detect` turns them into shots that tile the
    frame range, enforcing ``min_shot_frames``.
    """

    def __init__(self, min_shot_frames: int = 8, **params) -> None:
        if min_shot_frames < 1:
            raise ValueError("min_shot_frames must be >= 1")
        super().__init__(min_shot_frames=int(min_shot_frames), **params)
        self.min_shot_frames = int(min_shot_frames)

    def boundaries(self, frames: Iterable[np.ndarray]) -> tuple[list[Boundary], int]:
        """Candidate boundaries (sorted by index) and the number of frames consumed."""
        raise NotImplementedError

    def detect(self, frames: Iterable[np.ndarray], n_frames: int | None = None) -> list[Shot]:
        """Shots of a stream of uint8 gray frames (H, W) at analysis resolution.

        Parameters
        ----------
        frames : iterable of uint8 (H, W)
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
    neighbour across that boundary.
    """
    if n_frames <= 0:
        return []
    cuts = sorted({c.index: c for c in cuts if 0 < c.index < n_frames}.values(), key=lambda c: c.index)
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


# Archival engine ------------------------------------------------------------------------------
@SHOT_DETECTORS.register
class ArchivalShotDetector(ShotDetector):
    """Flicker-, flash- and dust-tolerant hard-cut detector for archival film.

    Parameters
    ----------
    min_shot_frames : int
        Shortest shot produced; shorter ones are merged into a neighbour.
    min_score : float
        Absolute floor of the threshold (scores are in [0, 1]).
    median_factor : float
        The threshold is ``max(min_score, median_factor * rolling median of scores)``.
    median_window_frames : int
        Length of the centred rolling-median window.
    max_flash_frames : int
        Longest interruption (flash, dust hit, dropped frame) rejected as a non-cut.
    flash_agree_ratio : float
        Frames across an interruption "agree" when their distance is below this fraction of the
        boundary's score.
    weights : dict, optional
        Weights of the score components (``hist``, ``layout``, ``edges``, see
        :meth:`pair_components`); normalised to sum 1. Default 0.3 / 0.35 / 0.35.

    Notes
    -----
    To extend the score, override :meth:`frame_features` (add entries) and
    :meth:`pair_components` (add named distances in [0, 1]) and add the names to
    ``DEFAULT_WEIGHTS``; :meth:`score_series`, the adaptive threshold, flash rejection and
    minimum-length merging work on the combined score unchanged. Transitions other than hard
    cuts (dissolves, fades) are not detected yet: a slow dissolve spreads its change over many
    frames and usually stays below the threshold.
    """

    name = "archival"
    version = "1"

    #: Default component weights of the boundary score.
    DEFAULT_WEIGHTS = {"hist": 0.3, "layout": 0.35, "edges": 0.35}
    HIST_BINS = 24
    HIST_RANGE_Z = 3.0
    #: W1 distance (z units) of histograms mapped to a distance of 1.
    HIST_W1_SCALE = 0.5
    SMALL_WIDTH_PX = 64  # width of the blurred, z-scored thumbnail the structure terms use
    MIN_STD = 2.0  # gray levels; floor of the per-frame std used for normalisation
    TRIM_FRACTION = 0.1  # largest per-pixel differences ignored (dust, scratches, local flashes)
    MAX_SHIFT_FRACTION = 0.25  # global shifts beyond this fraction of the size are not motion

    def __init__(
        self,
        min_shot_frames: int = 8,
        min_score: float = 0.3,
        median_factor: float = 3.0,
        median_window_frames: int = 25,
        max_flash_frames: int = 2,
        flash_agree_ratio: float = 0.5,
        weights: dict[str, float] | None = None,
    ) -> None:
        w = dict(self.DEFAULT_WEIGHTS if weights is None else weights)
        unknown = set(w) - set(self.DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown score components {sorted(unknown)}")
        total = sum(w.values())
        if total <= 0 or any(v < 0 for v in w.values()):
            raise ValueError("score weights must be >= 0 and sum to a positive number")
        w = {k: float(v) / total for k, v in sorted(w.items())}
        super().__init__(
            min_shot_frames=min_shot_frames,
            min_score=float(min_score),
            median_factor=float(median_factor),
            median_window_frames=int(median_window_frames),
            max_flash_frames=int(max_flash_frames),
            flash_agree_ratio=float(flash_agree_ratio),
            weights=w,
        )
        self.min_score = float(min_score)
        self.median_factor = float(median_factor)
        self.median_window_frames = max(1, int(median_window_frames))
        self.max_flash_frames = max(0, int(max_flash_frames))
        self.flash_agree_ratio = float(flash_agree_ratio)
        self.weights = w
        self._windows: dict[tuple[int, int], np.ndarray] = {}

    # Per-frame features --------------------------------------------------------------------
    def frame_features(self, gray: np.ndarray) -> dict[str, np.ndarray]:
        """Exposure-normalised features of one uint8 gray frame.

        The frame is z-scored, ``z = (g - mean) / max(std, MIN_STD)``, which removes any global
        gain and offset (flicker). Features:

        ``hist``
            histogram of z over [-3, 3] (24 bins, sums to 1);
        ``small``
            z blurred and area-resized to 64 px wide (float32), the luminance layout;
        ``grad``
            Sobel gradient magnitude of the lightly blurred ``small`` (edge structure).
        """
        if gray.ndim != 2:
            raise ValueError(f"expected gray (H, W) frames, got shape {gray.shape}")
        f = gray.astype(np.float32)
        z = (f - float(f.mean())) / max(float(f.std()), self.MIN_STD)
        h, w = z.shape
        sw = min(self.SMALL_WIDTH_PX, w)
        sh = max(8, int(round(h * sw / w)))
        blurred = cv2.GaussianBlur(z, (0, 0), max(0.5, 0.6 * w / sw))
        small = cv2.resize(blurred, (sw, sh), interpolation=cv2.INTER_AREA)
        hist, _ = np.histogram(
            np.clip(z, -self.HIST_RANGE_Z, self.HIST_RANGE_Z),
            bins=self.HIST_BINS, range=(-self.HIST_RANGE_Z, self.HIST_RANGE_Z),
        )
        sb = cv2.GaussianBlur(small, (0, 0), 0.8)
        gx = cv2.Sobel(sb, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(sb, cv2.CV_32F, 0, 1, ksize=3)
        return {
            "hist": hist.astype(np.float64) / max(1, z.size),
            "small": small.astype(np.float32),
            "grad": np.sqrt(gx * gx + gy * gy).astype(np.float32),
        }

    # Pair distances -------------------------------------------------------------------------
    def global_shift(self, fa: dict[str, np.ndarray], fb: dict[str, np.ndarray]) -> tuple[float, float]:
        """Global translation (dx, dy) in thumbnail pixels from frame a to frame b.

        Phase correlation of the thumbnails (Hann window); shifts larger than
        ``MAX_SHIFT_FRACTION`` of the size are treated as no motion.
        """
        a, b = fa["small"], fb["small"]
        h, w = a.shape
        win = self._windows.get((h, w))
        if win is None:
            win = self._windows[(h, w)] = cv2.createHanningWindow((w, h), cv2.CV_32F)
        # phaseCorrelate windows its inputs in place (OpenCV 5): give it copies.
        (dx, dy), _ = cv2.phaseCorrelate(a.copy(), b.copy(), win)
        if abs(dx) > self.MAX_SHIFT_FRACTION * w or abs(dy) > self.MAX_SHIFT_FRACTION * h:
            return 0.0, 0.0
        return float(dx), float(dy)

    def pair_components(self, fa: dict[str, np.ndarray], fb: dict[str, np.ndarray]) -> dict[str, float]:
        """Named distances in [0, 1] between two frames' features.

        ``hist``
            1-D Wasserstein distance of the normalised-luminance histograms (z units) / 0.5,
            clipped to 1. Insensitive to motion, sensitive to a change of tonal content.
        ``layout``
            After compensating the global shift (:meth:`global_shift`), the trimmed mean
            (largest 10 % of pixels ignored) of ``|small_a - small_b|`` divided by
            ``1.13 * max(0.3, pooled std)`` (1.13 = mean |X - Y| of independent unit normals),
            clipped to 1.
        ``edges``
            Same for the gradient magnitudes, divided by 1.5 x their mean trimmed magnitude,
            clipped to 1.
        """
        ca, cb = np.cumsum(fa["hist"]), np.cumsum(fb["hist"])
        bin_w = 2.0 * self.HIST_RANGE_Z / self.HIST_BINS
        d_hist = min(1.0, float(np.abs(ca - cb).sum()) * bin_w / self.HIST_W1_SCALE)
        if fa["small"].shape != fb["small"].shape:
            return {"hist": d_hist, "layout": 1.0, "edges": 1.0}
        dx, dy = self.global_shift(fa, fb)
        h, w = fa["small"].shape
        M = np.float32([[1, 0, dx], [0, 1, dy]])
        warp = lambda x: cv2.warpAffine(  # noqa: E731
            x, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan
        )
        za, ga = warp(fa["small"]), warp(fa["grad"])
        valid = np.isfinite(za) & np.isfinite(ga)
        valid[:2], valid[-2:], valid[:, :2], valid[:, -2:] = False, False, False, False
        if valid.sum() < 16:
            return {"hist": d_hist, "layout": 1.0, "edges": 1.0}
        A, B = za[valid], fb["small"][valid]
        scale = 1.13 * max(0.3, float(np.sqrt((A.var() + B.var()) / 2.0)))
        d_layout = min(1.0, _trimmed_mean(np.abs(A - B), self.TRIM_FRACTION) / scale)
        GA, GB = ga[valid], fb["grad"][valid]
        g_scale = 0.5 * (_trimmed_mean(GA, self.TRIM_FRACTION) + _trimmed_mean(GB, self.TRIM_FRACTION))
        if g_scale < 1e-6:
            d_edges = 0.0
        else:
            d_edges = min(1.0, _trimmed_mean(np.abs(GA - GB), self.TRIM_FRACTION) / (1.5 * g_scale))
        return {"hist": d_hist, "layout": d_layout, "edges": d_edges}

    def pair_distance(self, fa: dict[str, np.ndarray], fb: dict[str, np.ndarray]) -> float:
        """Weighted sum of :meth:`pair_components`, in [0, 1]."""
        comps = self.pair_components(fa, fb)
        return float(sum(self.weights[k] * comps[k] for k in self.weights))

    def score_series(self, frames: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
        """Distances ``D[g - 1, t] = d(frame t - g, frame t)`` for gaps g = 1..max_flash+1.

        Row 0 is the boundary score of every frame (NaN at t = 0). The longer-gap rows are
        only computed where they can matter, i.e. when one of the boundaries the pair spans
        scores above ``min_score`` (the lowest possible threshold); elsewhere they are NaN.
        Only the last ``max_flash_frames + 1`` frames' features are held at any time.
        Returns ``(D, n_frames)``.
        """
        n_gaps = self.max_flash_frames + 1
        recent: deque[dict[str, np.ndarray]] = deque(maxlen=n_gaps)
        rows: list[list[float]] = []
        n = 0
        for frame in frames:
            feats = self.frame_features(np.asarray(frame))
            row = [np.nan] * n_gaps
            if recent:
                row[0] = self.pair_distance(recent[-1], feats)
            for g in range(2, len(recent) + 1):
                spanned = [rows[n - j][0] for j in range(1, g)] + [row[0]]
                if np.nanmax(spanned) > self.min_score:
                    row[g - 1] = self.pair_distance(recent[-g], feats)
            rows.append(row)
            recent.append(feats)
            n += 1
        D = np.array(rows, np.float64).T if rows else np.zeros((n_gaps, 0))
        return D, n

    # Boundary selection ---------------------------------------------------------------------
    def thresholds(self, scores: np.ndarray) -> np.ndarray:
        """Adaptive threshold per boundary from the centred rolling median of ``scores``."""
        s = np.nan_to_num(scores, nan=0.0)
        half = self.median_window_frames // 2
        padded = np.pad(s, half, mode="reflect") if s.size > 1 else np.pad(s, half, mode="edge")
        if s.size == 0:
            return s
        win = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)[: s.size]
        med = np.median(win, axis=1)
        return np.maximum(self.min_score, self.median_factor * med)

    def is_interruption(self, D: np.ndarray, b: int) -> bool:
        """True when boundary ``b`` is the edge of a flash/dust/drop of <= max_flash frames.

        That is, some frame ``a`` in ``[b - max_flash, b - 1]`` and some frame ``c >= b`` with
        ``2 <= c - a <= max_flash + 1`` are closer than ``flash_agree_ratio * score(b)``.
        """
        n = D.shape[1]
        s_b = D[0, b]
        m = self.max_flash_frames
        for a in range(b - 1, max(-1, b - 1 - m), -1):
            for c in range(b, min(n, a + m + 2)):
                g = c - a
                if g < 2:
                    continue
                d = D[g - 1, c]
                if np.isfinite(d) and d < self.flash_agree_ratio * s_b:
                    return True
        return False

    def boundaries(self, frames: Iterable[np.ndarray]) -> tuple[list[Boundary], int]:
        D, n = self.score_series(frames)
        if n < 2:
            return [], n
        scores = D[0]
        thr = self.thresholds(scores)
        cuts = []
        for b in range(1, n):
            if scores[b] > thr[b] and not self.is_interruption(D, b):
                cuts.append(Boundary(b, float(scores[b]), float(thr[b]), "cut"))
        return cuts, n


# Histogram baseline ---------------------------------------------------------------------------
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


# File level ----------------------------------------------------------------------------------
def detect_shots(
    path: str | os.PathLike,
    *,
    engine: str = "archival",
    min_shot_frames: int = 8,
    analysis_width_px: int = 160,
    **params,
) -> list[Shot]:
    """Detect the shots of a video file.

    Frames are streamed as gray at ``analysis_width_px`` wide (aspect kept) through
    :func:`reel.tasks.media.iter_frames`; the shots tile ``[0, frames decoded)``.

    Parameters
    ----------
    path : path of the video
    engine : name in :data:`SHOT_DETECTORS`
    min_shot_frames : shortest shot produced
    analysis_width_px : decode width for analysis
    **params : further engine parameters

    Examples
    --------
    >>> shots = detect_shots("film.mkv")  # doctest: +SKIP
    >>> shots[0]  # doctest: +SKIP
    Shot(start=0, stop=96, transition='start', confidence=1.0)
    """
    from reel.tasks import media

    detector = SHOT_DETECTORS.create(engine, min_shot_frames=min_shot_frames, **params)
    frames: Iterator[np.ndarray] = media.iter_frames(path, pix_fmt="gray", width=analysis_width_px)
    return detector.detect(frames)


def _trimmed_mean(x: np.ndarray, trim: float) -> float:
    """Mean of ``x`` without its largest ``trim`` fraction of values."""
    x = np.asarray(x, np.float64).ravel()
    k = max(1, int(x.size * (1.0 - trim)))
    if k >= x.size:
        return float(x.mean())
    return float(np.partition(x, k - 1)[:k].mean())


__all__ = [
    "SHOT_DETECTORS",
    "TRANSITIONS",
    "ArchivalShotDetector",
    "Boundary",
    "HistogramShotDetector",
    "Shot",
    "ShotDetector",
    "boundaries_to_shots",
    "detect_shots",
]


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="detect-shots", cache_policy=NO_CACHE)(detect_shots)


detect_shots_task = _thin_task()
