"""Harmonization: pull out-of-place regions of a colorized shot toward the scene and the palette.

Runs after colorization, per shot. It only changes chroma (CIE Lab a, b); the luminance of every
output frame is the colorized frame's L (itself the source's L), recombined with
:func:`reel.tasks.colorspace.lab_to_rgb`, which corrects for gamut clipping.

Streaming, per-shot interface (engines in :data:`HARMONIZERS`):

1. pass 1: :class:`ShotChromaStats` accumulates per-region ab statistics (count, mean, std) over
   frames sampled evenly through the shot (engine's :meth:`Harmonizer.stats_stride`);
2. :meth:`Harmonizer.fit` turns them into one transform per region, constant over the shot (so the
   harmonizer adds no flicker);
3. pass 2: :meth:`Harmonizer.apply` maps each frame's ``(L, ab, labels)`` to new ``ab``.

Engines
-------
``none``
    Identity (the output frames are the input frames, re-encoded losslessly).
``palette-stats`` (default)
    Classical statistics transfer (Reinhard et al. 2001, masked, shot-level; seed notes 002 §9.1
    and 003 §9.4/9.6). See :class:`PaletteStatsHarmonizer`.

Example
-------
>>> import numpy as np
>>> ab = np.zeros((40, 40, 2), np.float32); ab[..., 1] = 20.0          # yellowish scene
>>> labels = np.zeros((40, 40), np.uint16); labels[10:30, 10:30] = 1
>>> ab[10:30, 10:30] = (60.0, -60.0)                                     # a purple blotch
>>> stats = ShotChromaStats(); stats.update(ab, labels)
>>> h = HARMONIZERS.create("palette-stats", strength=1.0, feather_px=0.0)
>>> h.fit(stats)
>>> out = h.apply(np.full((40, 40), 50, np.float32), ab, labels)
>>> out[20, 20].round(1).tolist(), out[0, 0].tolist()
([0.0, 20.0], [0.0, 20.0])
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reel.registry import Engine, Registry
from reel.tasks.colorspace import lab_to_rgb, rgb_to_lab

HARMONIZERS: Registry["Harmonizer"] = Registry("harmonization")


# Statistics ----------------------------------------------------------------------------------
class ShotChromaStats:
    """Per-region chroma statistics of one shot, accumulated frame by frame.

    For every label ``r`` it keeps the pixel count and the sums of a, b, a², b² over all frames
    passed to :meth:`update`, from which :attr:`mean_ab` and :attr:`std_ab` (population std, per
    channel, ab units) follow. Labels are the segmentation's region ids (``uint16``); a frame
    without labels counts as the single region 0.

    Examples
    --------
    >>> import numpy as np
    >>> s = ShotChromaStats()
    >>> s.update(np.full((2, 2, 2), 3.0, np.float32))
    >>> s.labels.tolist(), s.mean_ab.tolist(), s.n_frames
    ([0], [[3.0, 3.0]], 1)
    """

    def __init__(self) -> None:
        self._count = np.zeros(0, np.float64)
        self._sum = np.zeros((0, 2), np.float64)
        self._sumsq = np.zeros((0, 2), np.float64)
        self.n_frames = 0

    def update(self, ab: np.ndarray, labels: np.ndarray | None = None) -> None:
        """Add one frame: ``ab`` float (h, w, 2) and ``labels`` integer (h, w) of the same size."""
        ab = np.asarray(ab, np.float64)
        if ab.ndim != 3 or ab.shape[2] != 2:
            raise ValueError(f"ab must be (h, w, 2), got {ab.shape}")
        if labels is None:
            lab = np.zeros(ab.shape[:2], np.int64)
        else:
            if labels.shape != ab.shape[:2]:
                raise ValueError(f"labels {labels.shape} and ab {ab.shape[:2]} differ in size")
            lab = labels.astype(np.int64, copy=False)
        flat = lab.ravel()
        n = int(flat.max()) + 1 if flat.size else 1
        self._grow(n)
        self._count[:n] += np.bincount(flat, minlength=n)
        for c in range(2):
            v = ab[..., c].ravel()
            self._sum[:n, c] += np.bincount(flat, weights=v, minlength=n)
            self._sumsq[:n, c] += np.bincount(flat, weights=v * v, minlength=n)
        self.n_frames += 1

    def _grow(self, n: int) -> None:
        m = self._count.shape[0]
        if n > m:
            self._count = np.concatenate([self._count, np.zeros(n - m)])
            self._sum = np.concatenate([self._sum, np.zeros((n - m, 2))])
            self._sumsq = np.concatenate([self._sumsq, np.zeros((n - m, 2))])

    def pooled(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and population std of (a, b) over all pixels of the regions ``labels``."""
        keep = np.zeros(self._count.shape[0], bool)
        lab = np.asarray(labels, np.int64)
        keep[lab[(lab >= 0) & (lab < keep.size)]] = True
        n = self._count[keep].sum()
        if n <= 0:
            return np.zeros(2), np.zeros(2)
        m = self._sum[keep].sum(0) / n
        var = self._sumsq[keep].sum(0) / n - m * m
        return m, np.sqrt(np.clip(var, 0.0, None))

    @property
    def labels(self) -> np.ndarray:
        """Region ids seen (int64, ascending)."""
        return np.flatnonzero(self._count > 0)

    @property
    def counts(self) -> np.ndarray:
        """Pixel count per seen region (float64, aligned with :attr:`labels`)."""
        return self._count[self.labels]

    @property
    def mean_ab(self) -> np.ndarray:
        """Mean (a, b) per seen region, float64 (n, 2)."""
        k = self.labels
        return self._sum[k] / self._count[k, None]

    @property
    def std_ab(self) -> np.ndarray:
        """Population std of a and of b per seen region, float64 (n, 2)."""
        k = self.labels
        m = self._sum[k] / self._count[k, None]
        var = self._sumsq[k] / self._count[k, None] - m * m
        return np.sqrt(np.clip(var, 0.0, None))


@dataclass
class PaletteColors:
    """The palette as the harmonizer uses it: Lab colours (k, 3) float32 and weights (k,)."""

    colors_lab: np.ndarray
    weights: np.ndarray

    @property
    def ab(self) -> np.ndarray:
        """ab of the colours with weight > 0 (all colours if none has weight), float64 (k', 2)."""
        use = self.weights > 0
        if not np.any(use):
            use = np.ones_like(use)
        return self.colors_lab[use, 1:].astype(np.float64)

    @property
    def mean_ab(self) -> np.ndarray:
        """Weight-averaged ab of the palette, float64 (2,)."""
        w = np.clip(self.weights.astype(np.float64), 0, None)
        if w.sum() <= 0:
            w = np.ones_like(w)
        return (w[:, None] * self.colors_lab[:, 1:]).sum(0) / w.sum()


def load_palette(path: str | os.PathLike) -> PaletteColors:
    """Read a palette file written by :meth:`reel.tasks.palette.Palette.save` (JSON)."""
    from reel.tasks.palette import Palette

    p = Palette.load(path)
    return PaletteColors(np.asarray(p.colors_lab, np.float32), np.asarray(p.weights, np.float32))


# Engines -------------------------------------------------------------------------------------
class Harmonizer(Engine):
    """Interface of a harmonization engine (streaming, one instance per shot).

    Subclasses implement :meth:`fit` and :meth:`apply`; :meth:`apply` must never change L and
    must be a pure function of its inputs once fitted (same transform for every frame).
    """

    def stats_stride(self, n_frames: int | None) -> int | None:
        """Every how many frames pass 1 feeds :class:`ShotChromaStats`; ``None``: no pass 1."""
        return None

    @property
    def analysis_width_px(self) -> int:
        """Width at which statistics are gathered when the shot has no label maps."""
        return int(self.params.get("analysis_width_px", 320))

    def fit(self, stats: ShotChromaStats | None, palette: PaletteColors | None = None) -> None:
        """Derive the shot's transform from its statistics (and the item's palette)."""

    def frame_changes(self, labels: np.ndarray | None) -> bool:
        """Whether :meth:`apply` may change a frame with these labels (False: pass it through)."""
        return True

    def apply(self, L: np.ndarray, ab: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Map one frame's chroma: ``L`` (H, W) in [0, 100], ``ab`` (H, W, 2) -> new ab float32."""
        raise NotImplementedError

    @property
    def n_regions_adjusted(self) -> int:
        return 0


@HARMONIZERS.register
class IdentityHarmonizer(Harmonizer):
    """``none``: returns ``ab`` unchanged."""

    name, version = "none", "1"

    def __init__(self) -> None:
        super().__init__()

    def frame_changes(self, labels: np.ndarray | None) -> bool:
        return False

    def apply(self, L: np.ndarray, ab: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(ab, np.float32)


@HARMONIZERS.register
class PaletteStatsHarmonizer(Harmonizer):
    """``palette-stats``: shot-level masked Reinhard transfer of outlier regions, in ab.

    Fit (per shot, from :class:`ShotChromaStats`):

    * the *background* is the dominant chroma mode of the shot: the region whose mean ab has
      the most pixels (over the sampled frames) of regions within ``distance_threshold_ab`` of
      it (a one-step flat-kernel mode search over region means; or ``background_label``), plus
      all regions within that distance of it. Background regions are never adjusted, and μ_bg,
      σ_bg are the mean/std of ab pooled over their pixels. With two regions this is simply the
      larger one; with an over-segmentation (superpixels) it is the scene's common colour, not
      one arbitrary large segment;
    * a non-background region ``r`` with mean chroma μ_r (ab, per channel) is an *outlier* when
      ``|μ_r - μ_bg| > distance_threshold_ab`` **and** ``min_k |μ_r - p_k| > distance_threshold_ab``
      (p_k: ab of the palette colours with weight > 0; Euclidean distance in the ab plane, i.e.
      ΔE76 ignoring L). Near-neutral regions (``|μ_r| < neutral_chroma_ab``) and regions with
      fewer than ``min_region_fraction`` of the shot's pixels are left alone (gray is always
      plausible; tiny regions have unreliable statistics);
    * target mean μ_t = nearest palette colour's ab if a palette is given, else μ_bg; target
      std σ_t = σ_bg when ``transfer_std`` (Reinhard), else σ_r (mean-only shift), with the
      ratio s = σ_t/σ_r clipped to ``[1/max_std_ratio, max_std_ratio]`` per channel;
    * the transform, blended with ``strength`` α ∈ [0, 1], is per channel
      ``x' = x + α (μ_t + s (x - μ_r) - x) = G x + O`` with ``G = 1 + α (s - 1)`` and
      ``O = α (μ_t - s μ_r)``.

    A shot with a single region (no label maps) has no background: it is compared with the
    palette's weight-averaged ab instead of a single colour (a frame mixes several palette
    colours) and, if farther than the threshold, shifted toward it (mean only).

    Apply (per frame): the per-pixel fields ``G - 1`` and ``O`` are painted from the label map
    (zero outside adjusted regions), blurred with a Gaussian of σ = ``feather_px`` (full-frame
    pixels; truncated at 3σ, computed at label resolution, then bilinearly upsampled) so region
    boundaries get no seams, and applied as ``ab' = ab + (G̃ - 1) ab + Õ``. Pixels farther than
    the kernel radius (⌈3σ⌉, square support, plus one label pixel) from every adjusted region
    are returned bit-identical.

    Parameters
    ----------
    strength : float in [0, 1]
        Blend α between the input and the fully transferred chroma (seed 002 §8.6: ≈0.7 best).
    distance_threshold_ab : float
        Outlier distance in ab units (≈ ΔE76 chroma); 25 is a clearly visible colour difference.
    transfer_std : bool
        Match the std to the background's (Reinhard); False gives the mean-only shift.
    max_std_ratio : float ≥ 1
        Bound on the std scale factor.
    feather_px : float
        Feather σ in full-resolution pixels (0: hard region edges).
    neutral_chroma_ab : float
        Regions whose mean chroma is below this are never adjusted.
    min_region_fraction : float
        Smallest region (fraction of the sampled pixels) that may be adjusted.
    background_label : int or None
        Core region of the background; None finds the dominant chroma mode.
    stats_max_frames : int
        At most this many frames (evenly spaced) feed the statistics.
    analysis_width_px : int
        Width for statistics when the shot has no label maps.
    """

    name, version = "palette-stats", "1"

    def __init__(
        self,
        strength: float = 0.7,
        distance_threshold_ab: float = 25.0,
        transfer_std: bool = True,
        max_std_ratio: float = 2.0,
        feather_px: float = 8.0,
        neutral_chroma_ab: float = 6.0,
        min_region_fraction: float = 0.001,
        background_label: int | None = None,
        stats_max_frames: int = 48,
        analysis_width_px: int = 320,
    ) -> None:
        if not 0.0 <= strength <= 1.0:
            raise ValueError("strength must be in [0, 1]")
        if max_std_ratio < 1.0:
            raise ValueError("max_std_ratio must be >= 1")
        if feather_px < 0 or distance_threshold_ab < 0 or stats_max_frames < 1:
            raise ValueError("feather_px, distance_threshold_ab must be >= 0, stats_max_frames >= 1")
        super().__init__(
            strength=float(strength),
            distance_threshold_ab=float(distance_threshold_ab),
            transfer_std=bool(transfer_std),
            max_std_ratio=float(max_std_ratio),
            feather_px=float(feather_px),
            neutral_chroma_ab=float(neutral_chroma_ab),
            min_region_fraction=float(min_region_fraction),
            background_label=None if background_label is None else int(background_label),
            stats_max_frames=int(stats_max_frames),
            analysis_width_px=int(analysis_width_px),
        )
        # Per-label lookup tables, filled by fit(): gain-1 (dG) and offset (O), shape (n, 2).
        self._dG = np.zeros((1, 2), np.float32)
        self._O = np.zeros((1, 2), np.float32)
        self._adjusted = np.zeros(1, bool)
        self.region_report: list[dict[str, Any]] = []

    def stats_stride(self, n_frames: int | None) -> int | None:
        if not n_frames:
            return 1
        return max(1, math.ceil(n_frames / self.params["stats_max_frames"]))

    @property
    def n_regions_adjusted(self) -> int:
        return int(self._adjusted.sum())

    def fit(self, stats: ShotChromaStats | None, palette: PaletteColors | None = None) -> None:
        p = self.params
        alpha = p["strength"]
        thr = p["distance_threshold_ab"]
        self.region_report = []
        if stats is None or stats.n_frames == 0 or stats.labels.size == 0:
            self._dG = np.zeros((1, 2), np.float32)
            self._O = np.zeros((1, 2), np.float32)
            self._adjusted = np.zeros(1, bool)
            return
        labels, counts = stats.labels, stats.counts
        mean, std = stats.mean_ab, stats.std_ab
        n = int(labels.max()) + 1
        dG = np.zeros((n, 2), np.float64)
        O = np.zeros((n, 2), np.float64)
        adjusted = np.zeros(n, bool)
        total = counts.sum()
        pal_ab = palette.ab if palette is not None else None

        single = labels.size == 1
        in_bg = np.zeros(labels.size, bool)
        mu_bg = sd_bg = None
        if not single:
            in_bg = _background_group(mean, counts, thr, labels, p["background_label"])
            mu_bg, sd_bg = stats.pooled(labels[in_bg])

        for i, lab in enumerate(labels.tolist()):
            mu, sd = mean[i], std[i]
            entry: dict[str, Any] = {"label": lab, "mean_ab": mu.round(3).tolist(),
                                     "fraction": float(counts[i] / total), "adjusted": False}
            self.region_report.append(entry)
            if in_bg[i]:
                entry["role"] = "background"
                continue
            if float(np.hypot(*mu)) < p["neutral_chroma_ab"]:
                continue
            if counts[i] / total < p["min_region_fraction"]:
                continue
            if single:
                if pal_ab is None:
                    continue
                target = palette.mean_ab
                d = float(np.linalg.norm(mu - target))
                if d <= thr:
                    continue
                s = np.ones(2)
            else:
                d_bg = float(np.linalg.norm(mu - mu_bg))
                if pal_ab is not None:
                    dists = np.linalg.norm(pal_ab - mu, axis=1)
                    d_pal = float(dists.min())
                    target = pal_ab[int(np.argmin(dists))]
                else:
                    d_pal = math.inf
                    target = mu_bg
                entry["distance_background_ab"] = round(d_bg, 3)
                entry["distance_palette_ab"] = None if pal_ab is None else round(d_pal, 3)
                if min(d_bg, d_pal) <= thr:
                    continue
                if p["transfer_std"]:
                    s = sd_bg / np.maximum(sd, 1e-6)
                    s = np.where(sd < 1e-3, 1.0, s)  # a flat region has no spread to rescale
                    s = np.clip(s, 1.0 / p["max_std_ratio"], p["max_std_ratio"])
                else:
                    s = np.ones(2)
            dG[lab] = alpha * (s - 1.0)
            O[lab] = alpha * (target - s * mu)
            adjusted[lab] = True
            entry.update(adjusted=True, target_ab=np.asarray(target).round(3).tolist(),
                         std_scale=np.asarray(s).round(4).tolist())
        self._dG = dG.astype(np.float32)
        self._O = O.astype(np.float32)
        self._adjusted = adjusted

    def frame_changes(self, labels: np.ndarray | None) -> bool:
        if not self._adjusted.any():
            return False
        if labels is None:
            return bool(self._adjusted[0])
        present = np.unique(labels)
        present = present[present < self._adjusted.size]
        return bool(self._adjusted[present].any())

    def apply(self, L: np.ndarray, ab: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        ab = np.asarray(ab, np.float32)
        H, W = ab.shape[:2]
        if not self.frame_changes(labels):
            return ab.copy()
        if labels is None:
            return ab + self._dG[0] * ab + self._O[0]
        lab = labels.astype(np.int64, copy=False)
        lab = np.where(lab < self._adjusted.size, lab, 0)  # labels unseen in pass 1: untouched
        unseen = labels.astype(np.int64) >= self._adjusted.size
        fields = np.concatenate([self._dG, self._O], axis=1)[lab]  # (h, w, 4)
        if unseen.any():
            fields[unseen] = 0.0
        h, w = lab.shape
        sigma = self.params["feather_px"] * (w / W)
        if sigma > 0:
            r = max(1, int(math.ceil(3.0 * sigma)))
            fields = cv2.GaussianBlur(fields, (2 * r + 1, 2 * r + 1), sigmaX=sigma, sigmaY=sigma,
                                      borderType=cv2.BORDER_REFLECT)
        if (h, w) != (H, W):
            interp = cv2.INTER_LINEAR if sigma > 0 else cv2.INTER_NEAREST
            fields = cv2.resize(fields, (W, H), interpolation=interp)
        return ab + fields[..., :2] * ab + fields[..., 2:]


def _background_group(mean: np.ndarray, counts: np.ndarray, thr: float, labels: np.ndarray,
                      background_label: int | None, chunk: int = 512) -> np.ndarray:
    """Boolean mask over regions: the dominant chroma mode (see PaletteStatsHarmonizer)."""
    n = mean.shape[0]
    if background_label is not None and np.any(labels == background_label):
        core = int(np.flatnonzero(labels == background_label)[0])
    else:
        mass = np.empty(n, np.float64)
        for i0 in range(0, n, chunk):  # chunked so thousands of regions stay small in memory
            d = np.linalg.norm(mean[i0:i0 + chunk, None, :] - mean[None, :, :], axis=2)
            mass[i0:i0 + chunk] = (d <= thr).astype(np.float64) @ counts
        core = int(np.argmax(mass))  # ties: lowest label
    return np.linalg.norm(mean - mean[core], axis=1) <= thr


# Shot task -----------------------------------------------------------------------------------
@dataclass
class HarmonizeResult:
    """What :func:`harmonize_shot` returns to the flow.

    ``mean_shift_ab`` is the mean, over every pixel of every frame, of the chroma displacement
    ``|ab_out - ab_in|`` (ab units, before 8-bit quantisation); 0 when nothing was adjusted.
    """

    out_path: Path
    n_frames: int
    n_regions_adjusted: int
    mean_shift_ab: float
    engine: dict
    seconds: float


def harmonize_shot(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    labels_path: str | os.PathLike | None = None,
    palette_path: str | os.PathLike | None = None,
    engine: str = "palette-stats",
    **params: Any,
) -> HarmonizeResult:
    """Harmonize one colorized shot file; L is kept, only chroma changes.

    Parameters
    ----------
    in_path : path
        The colorized shot (any video ``media.iter_frames`` reads; frame 0 is the shot's first).
    out_path : path
        Output, lossless FFV1 in Matroska, written atomically by ``media.FrameWriter``.
    labels_path : path, optional
        Segmentation label maps: ``.npz`` with key ``"labels"``, uint16 (T, h, w) at analysis
        resolution (upsampled with nearest neighbour; frame t uses map ``min(t, T - 1)``).
        Without it the whole frame is one region.
    palette_path : path, optional
        The item's palette (``Palette.save`` JSON).
    engine : str
        A name in :data:`HARMONIZERS`.
    **params
        Engine parameters.

    Returns
    -------
    HarmonizeResult

    Notes
    -----
    Two streamed passes: statistics over evenly spaced frames, then the transform. Frames the
    engine leaves alone, and pixels outside the feathered adjusted regions, are written
    byte-identical to the input; the others are ``lab_to_rgb(L_in, ab_out)`` with the frame's
    own L, so luminance is preserved up to 8-bit quantisation.

    Examples
    --------
    >>> res = harmonize_shot("shot.mkv", "harm.mkv", labels_path="labels.npz",
    ...                      palette_path="palette.json")                    # doctest: +SKIP
    >>> res.n_regions_adjusted                                               # doctest: +SKIP
    1
    """
    from reel.tasks import media

    t0 = time.perf_counter()
    eng: Harmonizer = HARMONIZERS.create(engine, **params)
    in_path, out_path = Path(in_path), Path(out_path)
    info = media.probe(in_path)
    W, H = (int(v) for v in info.display_size)  # size of decoded frames
    n_hint = getattr(info, "n_frames", None)

    label_maps = None
    if labels_path is not None:
        with np.load(labels_path) as z:
            label_maps = np.asarray(z["labels"])
        if label_maps.ndim == 2:
            label_maps = label_maps[None]
        if label_maps.ndim != 3 or label_maps.shape[0] == 0:
            raise ValueError(f"{labels_path}: labels must be (T, h, w), got {label_maps.shape}")
    palette = load_palette(palette_path) if palette_path is not None else None

    def labels_at(t: int) -> np.ndarray | None:
        return None if label_maps is None else label_maps[min(t, label_maps.shape[0] - 1)]

    # Pass 1: statistics at label (or analysis) resolution.
    stride = eng.stats_stride(n_hint)
    stats = None
    if stride is not None:
        stats = ShotChromaStats()
        if label_maps is not None:
            sw, sh = label_maps.shape[2], label_maps.shape[1]
        else:
            sw = min(W, eng.analysis_width_px)
            sh = max(1, int(round(H * sw / W)))
        for t, rgb in enumerate(media.iter_frames(in_path, pix_fmt="rgb24")):
            if t % stride:
                continue
            small = rgb if (sw, sh) == (W, H) else cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
            stats.update(rgb_to_lab(small)[..., 1:], labels_at(t))
    eng.fit(stats, palette)

    # Pass 2: apply, recombine with the frame's own L, write.
    n = 0
    shift_sum = 0.0
    with media.FrameWriter(out_path, W, H, info.fps, pix_fmt_in="rgb24") as writer:
        for t, rgb in enumerate(media.iter_frames(in_path, pix_fmt="rgb24")):
            lab_small = labels_at(t)
            if eng.frame_changes(lab_small):
                lab = rgb_to_lab(rgb)
                L, ab = lab[..., 0], lab[..., 1:]
                ab_new = eng.apply(L, ab, lab_small)
                delta = ab_new - ab
                moved = np.any(delta != 0, axis=2)
                shift_sum += float(np.sqrt((delta * delta).sum(axis=2)).mean())
                out = rgb.copy()
                if moved.any():  # recombine only the bounding box of the changed pixels
                    ys, xs = np.flatnonzero(moved.any(1)), np.flatnonzero(moved.any(0))
                    box = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
                    new = lab_to_rgb(np.ascontiguousarray(L[box]), ab_new[box])
                    out[box][moved[box]] = new[moved[box]]
                writer.write(out)
            else:
                writer.write(rgb)
            n += 1
    return HarmonizeResult(
        out_path=out_path,
        n_frames=n,
        n_regions_adjusted=eng.n_regions_adjusted,
        mean_shift_ab=shift_sum / n if n else 0.0,
        engine=eng.describe(),
        seconds=time.perf_counter() - t0,
    )


__all__ = [
    "HARMONIZERS",
    "HarmonizeResult",
    "Harmonizer",
    "IdentityHarmonizer",
    "PaletteColors",
    "PaletteStatsHarmonizer",
    "ShotChromaStats",
    "harmonize_shot",
    "load_palette",
]


def _harmonize_for_flow(colorized, out_path, *, segmentation=None, selection=None,
                        engine: str = "palette-stats", **params) -> HarmonizeResult:
    """Flow adapter: harmonize a colorized shot with its labels and its shot palette."""
    return harmonize_shot(
        colorized.out_path, out_path,
        labels_path=segmentation.labels_path if segmentation is not None else None,
        palette_path=selection.palette_path if selection is not None else None,
        engine=engine, **params)


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="harmonize", cache_policy=NO_CACHE)(_harmonize_for_flow)


harmonize_shot_task = _thin_task()
