"""Base class of the colorization engines and the helpers they share.

A colorizer turns luminance into chroma: it receives the L channel of each frame of a shot, in
frame order, and returns ``ab`` at the frame's full resolution. Analysis (matching, flow) runs at
a reduced *analysis resolution*; the low-resolution ``ab`` is upsampled and refined with a guided
filter whose guide is the full-resolution L, so chroma edges follow luminance edges, and its
chroma is limited to what sRGB can show at each pixel's L, so recombining it with the source L
(``colorspace.lab_to_rgb``) keeps the source luminance (:meth:`Colorizer.to_full`).

Streaming interface (one engine instance handles one shot at a time)::

    engine.start_shot(references_lab, palette_lab)   # resets all per-shot state
    for L in frames_L:                               # float32 (H, W) in [0, 100]
        ab, confidence = engine.colorize_frame(L)    # float32 (H, W, 2), float in [0, 1]

Engines that need look-ahead override :meth:`Colorizer.colorize_frames` instead.

Example
-------
>>> import numpy as np
>>> from reel.tasks.colorizers import COLORIZERS
>>> eng = COLORIZERS.create("gray")
>>> eng.start_shot([], None)
>>> ab, conf = eng.colorize_frame(np.full((4, 6), 50, np.float32))
>>> ab.shape, conf
((4, 6, 2), 0.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from reel.registry import Engine


class Colorizer(Engine):
    """Base class of every colorization engine.

    Parameters
    ----------
    analysis_width_px : int
        Width at which matching and flow run (never larger than the frame itself; the height
        follows the frame's aspect ratio).
    guided_radius_px : int
        Radius of the L-guided filter that refines the upsampled ``ab``, in *analysis* pixels
        (scaled to full resolution when applied).
    guided_eps : float
        Regularisation of the guided filter, with the guide L scaled to [0, 1]. Smaller keeps
        more of the luminance edges in the chroma.
    **params
        Engine-specific parameters, recorded with the common ones in :attr:`params`.
    """

    def __init__(
        self,
        analysis_width_px: int = 320,
        guided_radius_px: int = 1,
        guided_eps: float = 1e-4,
        **params: Any,
    ) -> None:
        if int(analysis_width_px) < 8:
            raise ValueError(f"analysis_width_px must be >= 8, got {analysis_width_px}")
        super().__init__(
            analysis_width_px=int(analysis_width_px),
            guided_radius_px=int(guided_radius_px),
            guided_eps=float(guided_eps),
            **params,
        )
        self.analysis_width_px = int(analysis_width_px)
        self.guided_radius_px = int(guided_radius_px)
        self.guided_eps = float(guided_eps)
        self.references_lab: list[np.ndarray] = []
        self.palette_lab: np.ndarray | None = None
        self.palette_weights: np.ndarray | None = None

    # --- the interface -------------------------------------------------------------------------
    def start_shot(
        self, references_lab: Sequence[np.ndarray], palette_lab: np.ndarray | None = None,
        palette_weights: np.ndarray | None = None,
    ) -> None:
        """Forget the previous shot and take this shot's references and palette.

        Parameters
        ----------
        references_lab : sequence of float32 (h, w, 3)
            Colour references in Lab (any sizes); may be empty.
        palette_lab : float32 (k, 3) or None
            Palette colours in Lab, if one was extracted for the shot.
        palette_weights : float32 (k,) or None
            The palette colours' weights (pixel shares); None means equal weights.
        """
        refs = []
        for i, ref in enumerate(references_lab):
            ref = np.asarray(ref, dtype=np.float32)
            if ref.ndim != 3 or ref.shape[2] != 3:
                raise ValueError(f"reference {i} must be Lab (h, w, 3), got {ref.shape}")
            refs.append(ref)
        self.references_lab = refs
        if palette_lab is not None:
            palette_lab = np.asarray(palette_lab, dtype=np.float32).reshape(-1, 3)
            if palette_weights is not None:
                palette_weights = np.asarray(palette_weights, dtype=np.float32).reshape(-1)
                if palette_weights.shape[0] != palette_lab.shape[0]:
                    raise ValueError(f"{palette_lab.shape[0]} palette colours but "
                                     f"{palette_weights.shape[0]} weights")
        else:
            palette_weights = None
        self.palette_lab = palette_lab
        self.palette_weights = palette_weights

    def set_palette_weights(self, palette_weights: np.ndarray | None) -> None:
        """Give the current shot's palette colours their weights after :meth:`start_shot`
        (for engines whose ``start_shot`` takes only references and colours)."""
        if palette_weights is None or self.palette_lab is None:
            self.palette_weights = None
            return
        w = np.asarray(palette_weights, dtype=np.float32).reshape(-1)
        if w.shape[0] != self.palette_lab.shape[0]:
            raise ValueError(f"{self.palette_lab.shape[0]} palette colours but {w.shape[0]} weights")
        self.palette_weights = w

    def colorize_frame(self, L: np.ndarray) -> tuple[np.ndarray, float]:
        """Chroma of the next frame of the shot.

        Parameters
        ----------
        L : float32 (H, W)
            Luminance in [0, 100].

        Returns
        -------
        ab : float32 (H, W, 2)
        confidence : float
            Mean per-pixel confidence in [0, 1] (0 when the engine has no evidence).
        """
        raise NotImplementedError

    def colorize_frames(self, frames_L: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, float]]:
        """Chroma of every frame of the shot, in order (override for look-ahead engines).

        Two-pass engines (:attr:`two_pass`) hold the given frames in a list here; callers with
        long shots should hand :func:`reel.tasks.colorize.colorize_L_frames` a callable that
        re-reads the shot instead, so only analysis-resolution data is kept.
        """
        if self.two_pass:
            frames = list(frames_L)
            self.analyse_shot(frames)
            yield from self.render_shot(frames)
            return
        for L in frames_L:
            yield self.colorize_frame(L)

    # --- two-pass engines ------------------------------------------------------------------------
    #: True for engines that need the whole shot before answering: they read it twice, once in
    #: :meth:`analyse_shot` (analysis resolution only is kept) and once in :meth:`render_shot`.
    two_pass: bool = False

    def analyse_shot(self, frames_L: Iterable[np.ndarray]) -> None:
        """First pass of a two-pass engine over the shot's L frames (float32 (H, W), [0, 100])."""
        raise NotImplementedError(f"{self.name} is not a two-pass engine")

    def render_shot(self, frames_L: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, float]]:
        """Second pass of a two-pass engine: the same frames again, yields ``(ab, confidence)``."""
        raise NotImplementedError(f"{self.name} is not a two-pass engine")

    # --- helpers for subclasses ----------------------------------------------------------------
    def analysis_size(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(width, height) of the analysis grid for an image of ``shape`` (H, W, ...)."""
        return analysis_size(shape, self.analysis_width_px)

    def to_analysis(self, image: np.ndarray) -> np.ndarray:
        """Resize ``image`` (H, W[, C]) to the analysis grid (area interpolation)."""
        w, h = self.analysis_size(image.shape)
        if (h, w) == image.shape[:2]:
            return np.ascontiguousarray(image, dtype=np.float32)
        return cv2.resize(image.astype(np.float32, copy=False), (w, h),
                          interpolation=cv2.INTER_AREA)

    def to_full(
        self, ab_small: np.ndarray, L: np.ndarray, L_small: np.ndarray | None = None
    ) -> np.ndarray:
        """Upsample analysis-grid ``ab`` to the size of ``L`` with the L-guided filter, then
        limit its chroma to what sRGB can show at each pixel's L (:func:`limit_chroma_to_gamut`).

        ``L_small`` is ``L`` on the analysis grid (recomputed when not given).
        """
        ab = upsample_ab(ab_small, L, L_small, radius_px=self.guided_radius_px, eps=self.guided_eps)
        return limit_chroma_to_gamut(L, ab)

    @staticmethod
    def neutral(L: np.ndarray) -> np.ndarray:
        """ab = 0 (gray) at the size of ``L``."""
        return np.zeros(L.shape[:2] + (2,), np.float32)


# ---------------------------------------------------------------------------------------------
# Shared array helpers (plain functions over numpy arrays)
# ---------------------------------------------------------------------------------------------
def analysis_size(shape: tuple[int, ...], analysis_width_px: int) -> tuple[int, int]:
    """(width, height) of the analysis grid: width ``min(W, analysis_width_px)``, same aspect.

    Example
    -------
    >>> analysis_size((1080, 1920), 320)
    (320, 180)
    """
    h, w = int(shape[0]), int(shape[1])
    aw = min(w, int(analysis_width_px))
    ah = max(1, int(round(h * aw / w)))
    return aw, ah


def upsample_ab(
    ab_small: np.ndarray,
    L: np.ndarray,
    L_small: np.ndarray | None = None,
    *,
    radius_px: int = 1,
    eps: float = 1e-4,
) -> np.ndarray:
    """Guided upsampling of ``ab`` (h, w, 2) to the size of ``L`` (H, W), float32 (H, W, 2).

    The guided filter of He et al. (2013), in its "fast" form: the local linear model
    ``ab = A * L + B`` (guide L scaled to [0, 1]) is fitted over (2 r + 1)^2 windows on the
    analysis grid, where ``L_small`` lives, and the averaged coefficients A, B are upsampled
    bilinearly and applied to the full-resolution L. Chroma edges therefore follow the luminance
    edges of the full-resolution frame at the cost of one resize. When the grids are equal this
    is the ordinary guided filter. ``radius_px`` is in analysis pixels; ``radius_px <= 0`` gives
    plain bilinear upsampling.

    Example
    -------
    >>> L = np.tile(np.linspace(0, 100, 8, dtype=np.float32), (4, 1))
    >>> out = upsample_ab(np.ones((2, 4, 2), np.float32), L)
    >>> out.shape, bool(np.allclose(out, 1.0, atol=1e-3))
    ((4, 8, 2), True)
    """
    H, W = L.shape[:2]
    h, w = ab_small.shape[:2]
    ab = ab_small.astype(np.float32, copy=False)
    if radius_px <= 0:
        if (h, w) == (H, W):
            return ab.copy()
        return cv2.resize(ab, (W, H), interpolation=cv2.INTER_LINEAR).reshape(H, W, 2)
    if L_small is None:
        L_small = L if (h, w) == (H, W) else cv2.resize(
            L.astype(np.float32, copy=False), (w, h), interpolation=cv2.INTER_AREA)
    if L_small.shape[:2] != (h, w):
        raise ValueError(f"L_small {L_small.shape[:2]} does not match ab {ab.shape[:2]}")
    k = (2 * int(radius_px) + 1,) * 2

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.blur(x, k, borderType=cv2.BORDER_REFLECT).reshape(x.shape)

    g = L_small.astype(np.float32) * np.float32(0.01)
    mean_g = box(g)
    var_g = box(g * g) - mean_g * mean_g
    mean_ab = box(ab)
    cov = box(ab * g[..., None]) - mean_g[..., None] * mean_ab
    A = cov / (var_g[..., None] + np.float32(eps))
    B = mean_ab - A * mean_g[..., None]
    coeffs = np.concatenate([box(A), box(B)], axis=-1)  # (h, w, 4)
    if (h, w) != (H, W):
        coeffs = cv2.resize(coeffs, (W, H), interpolation=cv2.INTER_LINEAR)
    guide = L.astype(np.float32, copy=False) * np.float32(0.01)
    return (coeffs[..., :2] * guide[..., None] + coeffs[..., 2:]).astype(np.float32, copy=False)


#: Grid of the max-chroma table: L step and hue step (degrees).
_GAMUT_L_STEP = 0.5
_GAMUT_HUE_STEP_DEG = 2.0
#: D65 white and XYZ -> linear sRGB matrix, as in OpenCV's Lab conversions.
_WHITE_XZ = (0.950456, 1.088754)
_XYZ_TO_RGB = np.array([[3.240479, -1.53715, -0.498535],
                        [-0.969256, 1.875991, 0.041556],
                        [0.055648, -0.204043, 1.057311]])


def _lab_to_linear_rgb(lab: np.ndarray) -> np.ndarray:
    """Unclipped linear sRGB of float Lab (..., 3) (OpenCV clips its output, so it cannot
    tell in-gamut colours from out-of-gamut ones)."""
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0

    def finv(t: np.ndarray) -> np.ndarray:
        return np.where(t > 6.0 / 29.0, t**3, (t - 16.0 / 116.0) / 7.787)

    xyz = np.stack([finv(fx) * _WHITE_XZ[0], finv(fy), finv(fz) * _WHITE_XZ[1]], axis=-1)
    return xyz @ _XYZ_TO_RGB.T


@lru_cache(maxsize=1)
def _max_chroma_table() -> np.ndarray:
    """Conservative largest in-sRGB-gamut chroma per (L, hue) cell, float32 (200, 180).

    Entry [i, j] covers L in [0.5 i, 0.5 (i + 1)] and hue in [2 j, 2 (j + 1)) degrees: it is the
    minimum, over the cell's four corners, of the max chroma found by bisection on the
    unclipped Lab -> linear RGB conversion. Computed once per process (tens of milliseconds).
    """
    Ls = np.arange(0.0, 100.0 + 1e-9, _GAMUT_L_STEP)
    hues = np.deg2rad(np.arange(0.0, 360.0, _GAMUT_HUE_STEP_DEG))
    Lg, Hg = np.meshgrid(Ls, hues, indexing="ij")
    lo = np.zeros_like(Lg)
    hi = np.full_like(Lg, 200.0)
    for _ in range(18):  # 200 / 2^18: well below 0.001 chroma units
        mid = 0.5 * (lo + hi)
        rgb = _lab_to_linear_rgb(np.stack([Lg, mid * np.cos(Hg), mid * np.sin(Hg)], axis=-1))
        inside = np.all((rgb >= 0.0) & (rgb <= 1.0), axis=-1)
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    corners = np.minimum(lo[:-1], lo[1:])  # L cell
    corners = np.minimum(corners, np.roll(corners, -1, axis=1))  # hue cell (wraps)
    return np.ascontiguousarray(corners, dtype=np.float32)


def limit_chroma_to_gamut(L: np.ndarray, ab: np.ndarray, *, margin: float = 0.97) -> np.ndarray:
    """Scale ``ab`` toward 0 (hue kept) where ``(L, ab)`` lies outside the sRGB gamut.

    The limit is ``margin`` times the conservative max chroma of the pixel's (L, hue) cell
    (:func:`_max_chroma_table`), so ``lab_to_rgb`` rarely has to clip and the output keeps the
    source luminance even in highlights and deep shadows, where sRGB holds little chroma.
    Returns a new float32 (H, W, 2) array.

    Example
    -------
    >>> L = np.array([[50.0, 99.5]], np.float32)
    >>> ab = np.array([[[20.0, 10.0], [40.0, 40.0]]], np.float32)
    >>> out = limit_chroma_to_gamut(L, ab)
    >>> out[0, 0].tolist(), bool(np.hypot(*out[0, 1]) < 3.0)
    ([20.0, 10.0], True)
    """
    table = _max_chroma_table()
    n_L, n_h = table.shape
    a = np.ascontiguousarray(ab[..., 0], dtype=np.float32)
    b = np.ascontiguousarray(ab[..., 1], dtype=np.float32)
    chroma, hue_deg = cv2.cartToPolar(a, b, angleInDegrees=True)
    idx = (L.astype(np.float32, copy=False) * np.float32(1.0 / _GAMUT_L_STEP)).astype(np.int32)
    np.clip(idx, 0, n_L - 1, out=idx)
    idx *= n_h
    hue_idx = (hue_deg * np.float32(1.0 / _GAMUT_HUE_STEP_DEG)).astype(np.int32)
    hue_idx %= n_h
    idx += hue_idx
    cmax = table.ravel().take(idx)
    cmax *= np.float32(margin)
    scale = np.minimum(cmax / np.maximum(chroma, np.float32(1e-6)), np.float32(1.0))
    return ab.astype(np.float32, copy=False) * scale[..., None]


def palette_chroma(
    L: np.ndarray,
    colors_lab: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    sigma_L: float = 10.0,
    L_stats: tuple[float, float] | None = None,
) -> np.ndarray:
    """Chroma that a palette gives each pixel by its luminance (notes 003 §9.1), float32 (H, W, 2).

    1. Optionally (``L_stats = (mean, std)`` of the shot's L) remap L to the palette's weighted
       L distribution, Welsh-style: ``L' = (L − mean) σ_P / std + μ_P`` (σ_P floored at 1), so a
       darker or brighter shot still meets the palette's tones; shot statistics, not per-frame
       ones, so the mapping cannot flicker.
    2. Soft assignment in L: ``α_k(x) ∝ w_k exp(−(L'(x) − L_k)² / (2 σ_L²))``, normalised over
       the palette colours of weight > 0 (all colours when no weights are given).
    3. ``ab(x) = Σ_k α_k(x) (a_k, b_k)``.

    Deterministic in L, hence temporally stable; it knows brightness, not objects.

    Example
    -------
    >>> pal = np.array([[20, 30, 10], [80, -10, 40]], np.float32)
    >>> ab = palette_chroma(np.array([[20.0, 80.0]], np.float32), pal, np.array([0.5, 0.5]))
    >>> np.round(ab, 1).tolist()
    [[[30.0, 10.0], [-10.0, 40.0]]]
    """
    cols = np.asarray(colors_lab, np.float32).reshape(-1, 3)
    w = (np.ones(cols.shape[0], np.float32) if weights is None
         else np.asarray(weights, np.float32).reshape(-1))
    use = w > 0
    if not np.any(use):
        use[:] = True
        w = np.ones_like(w)
    cols, w = cols[use], w[use] / w[use].sum()
    L = np.asarray(L, np.float32)
    if L_stats is not None:
        mu_p = float((w * cols[:, 0]).sum())
        sd_p = max(float(np.sqrt((w * (cols[:, 0] - mu_p) ** 2).sum())), 1.0)
        mean, std = float(L_stats[0]), max(float(L_stats[1]), 1.0)
        L = (L - np.float32(mean)) * np.float32(sd_p / std) + np.float32(mu_p)
    d = L[..., None] - cols[:, 0]
    logit = np.log(w)[None] - d.reshape(-1, cols.shape[0]) ** 2 / np.float32(2.0 * sigma_L ** 2)
    logit -= logit.max(axis=1, keepdims=True)
    alpha = np.exp(logit)
    alpha /= alpha.sum(axis=1, keepdims=True)
    return (alpha @ cols[:, 1:]).reshape(L.shape + (2,)).astype(np.float32)


def pull_to_palette(
    ab: np.ndarray, confidence: np.ndarray, palette_ab: np.ndarray, *,
    strength: float = 1.0, low_confidence: float = 1.0,
) -> np.ndarray:
    """Blend ``ab`` toward ``palette_ab`` where ``confidence`` is low, float32 (H, W, 2).

    Weight ``β = strength · clip(1 − confidence / low_confidence, 0, 1)``: with
    ``low_confidence = 1`` this is ``strength · (1 − confidence)``; smaller values leave pixels
    above that confidence untouched. ``ab + β (palette_ab − ab)``.

    Example
    -------
    >>> ab = np.zeros((1, 2, 2), np.float32); pal = np.full((1, 2, 2), 10, np.float32)
    >>> pull_to_palette(ab, np.array([[0.0, 1.0]]), pal)[..., 0].tolist()
    [[10.0, 0.0]]
    """
    c = np.asarray(confidence, np.float32)
    beta = np.float32(strength) * np.clip(1.0 - c / np.float32(max(low_confidence, 1e-6)), 0.0, 1.0)
    ab = ab.astype(np.float32, copy=False)
    return ab + beta[..., None] * (palette_ab - ab)


def normalized_luminance(L: np.ndarray) -> np.ndarray:
    """(L - mean) / std over the image, float32; the std is floored at 1 L unit (flat frames).

    This is Welsh et al.'s luminance remapping expressed in a common normalised space: matching
    normalised target against normalised reference equals remapping the reference to the target's
    mean and standard deviation.
    """
    L = L.astype(np.float32, copy=False)
    mean = float(L.mean(dtype=np.float64))
    std = max(float(L.std(dtype=np.float64)), 1.0)
    return (L - np.float32(mean)) / np.float32(std)


def local_std(image: np.ndarray, size_px: int) -> np.ndarray:
    """Standard deviation of ``image`` over a ``size_px`` x ``size_px`` box, float32."""
    image = image.astype(np.float32, copy=False)
    k = (int(size_px), int(size_px))
    mean = cv2.blur(image, k, borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.blur(image * image, k, borderType=cv2.BORDER_REFLECT)
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0.0)).astype(np.float32)


def jittered_grid_indices(h: int, w: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Flat indices of about ``n_samples`` pixels of an (h, w) grid, one random pixel per cell.

    The grid cells are square; the result is sorted and at most ``h * w`` long (every pixel when
    ``n_samples >= h * w``).

    Example
    -------
    >>> idx = jittered_grid_indices(10, 20, 50, np.random.default_rng(0))
    >>> 30 <= len(idx) <= 200
    True
    """
    n = h * w
    if n_samples >= n:
        return np.arange(n, dtype=np.int64)
    step = max(1, int(np.floor(np.sqrt(n / max(n_samples, 1)))))
    ys = np.arange(0, h, step)
    xs = np.arange(0, w, step)
    cy, cx = np.meshgrid(ys, xs, indexing="ij")
    jy = rng.integers(0, step, size=cy.shape)
    jx = rng.integers(0, step, size=cx.shape)
    y = np.minimum(cy + jy, h - 1)
    x = np.minimum(cx + jx, w - 1)
    return np.unique((y * w + x).ravel()).astype(np.int64)
