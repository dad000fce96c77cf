"""``exemplar-propagate``: reference matching on hand-crafted features + optical-flow propagation.

The CPU winner of the measured classical baselines (seed note 001, section 9.3) is sequential
DIS-flow propagation from a coloured key frame; the non-local warp to the reference on
hand-crafted features is the robust fallback where flow fails. This engine combines them:

1. **Match** (first frame of the shot, occluded pixels, periodic re-anchoring). Every pixel gets a
   feature vector of its luminance (normalised L at three blur scales, gradients, local std at
   two sizes, weak normalised x, y). The references' pixels (a seeded jittered subsample, all
   references concatenated) are put in a k-d tree; each target pixel takes a softmax-weighted
   mean of the ab of its ``k_neighbors`` nearest reference pixels,
   ``w_j = exp(-(d_j^2 - d_0^2) / (2 h^2))``, and confidence ``exp(-d_0^2 / (2 h^2))`` with
   ``h = match_bandwidth``. The matched ab is then smoothed by an edge-aware, confidence-weighted
   normalised convolution so isolated bad matches are outvoted by confident neighbours.
2. **Propagate** (every later frame). DIS optical flow (``PRESET_MEDIUM``) from frame t to t-1
   warps the previous frame's ab and confidence (backward warping, ``cv2.remap``). A
   forward-backward consistency test (Ruder et al. 2016: a pixel is occluded when
   ``|w + w'|^2 > 0.01 (|w|^2 + |w'|^2) + 0.5``) and the frame border mark pixels whose history is
   lost; those take the matched ab, filled from confident neighbours. The propagated confidence
   decays by ``propagation_decay`` per frame.
3. **Re-anchor** every ``reanchor_every_frames`` frames: the whole frame is matched again and
   blended in with weight ``reanchor_weight * c_match / (reanchor_weight * c_match + c_prop)``,
   which bounds the drift that sequential warping accumulates.

The per-frame confidence is the mean of the per-pixel confidence map. Without references the
engine outputs gray with confidence 0 (a palette alone is not used yet).

Example
-------
>>> import numpy as np
>>> from reel.tasks.colorizers import COLORIZERS
>>> from reel.tasks.colorspace import rgb_to_lab
>>> rng = np.random.default_rng(0)
>>> rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
>>> lab = rgb_to_lab(rgb)
>>> eng = COLORIZERS.create("exemplar-propagate")
>>> eng.start_shot([lab], None)
>>> ab, conf = eng.colorize_frame(lab[..., 0])
>>> ab.shape, 0.0 < conf <= 1.0
((48, 64, 2), True)
"""

from __future__ import annotations

from collections.abc import Sequence

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

#: Blur scales (analysis pixels) of the normalised-luminance features.
FEATURE_BLUR_SIGMAS_PX = (1.0, 3.0, 8.0)
#: Box sizes (analysis pixels) of the local-std features.
FEATURE_STD_WINDOWS_PX = (5, 11)


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


class ReferenceMatcher:
    """k-nearest-neighbour correspondence from frame pixels to (subsampled) reference pixels.

    Parameters
    ----------
    references_lab : sequence of float32 (h, w, 3)
        References already at analysis resolution.
    max_samples : int
        Reference pixels kept in total (jittered grid, split over the references by area).
    k_neighbors, bandwidth, position_weight : see :class:`ExemplarPropagateColorizer`.
    rng : numpy Generator
        For the jitter.
    """

    def __init__(
        self,
        references_lab: Sequence[np.ndarray],
        *,
        max_samples: int,
        k_neighbors: int,
        bandwidth: float,
        position_weight: float,
        rng: np.random.Generator,
    ) -> None:
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
        self.k = int(min(k_neighbors, len(self.ab)))
        self.bandwidth = float(bandwidth)
        self.position_weight = float(position_weight)

    def match(
        self, L: np.ndarray, where: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Matched ab (h, w, 2) and confidence (h, w) for analysis-grid luminance ``L``.

        Only pixels where ``where`` is True are matched (all when None); others get ab 0, conf 0.
        """
        h, w = L.shape
        feats = exemplar_features(L, position_weight=self.position_weight)
        sel = np.arange(h * w) if where is None else np.flatnonzero(where.ravel())
        ab = np.zeros((h * w, 2), np.float32)
        conf = np.zeros(h * w, np.float32)
        if sel.size:
            dist, idx = self.tree.query(feats[sel].astype(np.float64), k=self.k, workers=1)
            dist = dist.reshape(len(sel), -1)
            idx = idx.reshape(len(sel), -1)
            d2 = dist**2
            two_h2 = 2.0 * self.bandwidth**2
            wts = np.exp(-(d2 - d2[:, :1]) / two_h2)
            wts /= wts.sum(axis=1, keepdims=True)
            ab[sel] = np.einsum("nk,nkc->nc", wts, self.ab[idx]).astype(np.float32)
            conf[sel] = np.exp(-d2[:, 0] / two_h2).astype(np.float32)
        return ab.reshape(h, w, 2), conf.reshape(h, w)


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


def flow_consistency(flow_back: np.ndarray, flow_fwd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp sampling map and validity mask of a backward flow.

    ``flow_back`` maps frame t to t-1 (``I_t(x) ~ I_{t-1}(x + flow_back(x))``), ``flow_fwd`` maps
    t-1 to t. Returns the remap coordinates (h, w, 2) float32 and a bool mask of pixels that
    land inside frame t-1 and pass the forward-backward test of Ruder et al. (2016).
    """
    h, w = flow_back.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_xy = np.dstack([xx + flow_back[..., 0], yy + flow_back[..., 1]])
    fwd_at = cv2.remap(flow_fwd, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip = flow_back + fwd_at
    err = (round_trip**2).sum(axis=-1)
    scale = (flow_back**2).sum(axis=-1) + (fwd_at**2).sum(axis=-1)
    consistent = err <= 0.01 * scale + 0.5
    inside = (
        (map_xy[..., 0] >= 0) & (map_xy[..., 0] <= w - 1)
        & (map_xy[..., 1] >= 0) & (map_xy[..., 1] <= h - 1)
    )
    return map_xy, consistent & inside


@COLORIZERS.register
class ExemplarPropagateColorizer(Colorizer):
    """Reference matching on hand-crafted features, propagated through the shot by DIS flow.

    Parameters
    ----------
    k_neighbors : int
        Reference pixels averaged per frame pixel.
    match_bandwidth : float
        Softmax bandwidth over feature distances (also sets the confidence fall-off).
    max_reference_samples : int
        Reference pixels kept in the k-d tree, all references together.
    position_weight : float
        Weight of the normalised (x, y) features (0 disables the spatial prior).
    fill_radius_px, fill_eps : int, float
        Radius (analysis pixels) and regularisation of the edge-aware, confidence-weighted
        smoothing of matched ab (:func:`confidence_fill`; radius 0 disables it).
    propagation_decay : float
        Factor applied to the propagated confidence at every frame (ages old colour).
    reanchor_every_frames : int
        Re-match the whole frame and blend every this many frames (0 disables).
    reanchor_weight : float
        Weight of the matched ab against the propagated one when re-anchoring.
    seed : int
        Seed of the reference subsampling.
    **common
        ``analysis_width_px``, ``guided_radius_px``, ``guided_eps`` (see :class:`Colorizer`).
    """

    name, version = "exemplar-propagate", "1"

    def __init__(
        self,
        k_neighbors: int = 4,
        match_bandwidth: float = 0.3,
        max_reference_samples: int = 10000,
        position_weight: float = 0.5,
        fill_radius_px: int = 1,
        fill_eps: float = 1e-4,
        propagation_decay: float = 0.98,
        reanchor_every_frames: int = 8,
        reanchor_weight: float = 0.5,
        seed: int = 0,
        **common,
    ) -> None:
        super().__init__(
            k_neighbors=int(k_neighbors),
            match_bandwidth=float(match_bandwidth),
            max_reference_samples=int(max_reference_samples),
            position_weight=float(position_weight),
            fill_radius_px=int(fill_radius_px),
            fill_eps=float(fill_eps),
            propagation_decay=float(propagation_decay),
            reanchor_every_frames=int(reanchor_every_frames),
            reanchor_weight=float(reanchor_weight),
            seed=int(seed),
            **common,
        )
        p = self.params
        self.k_neighbors = p["k_neighbors"]
        self.match_bandwidth = p["match_bandwidth"]
        self.max_reference_samples = p["max_reference_samples"]
        self.position_weight = p["position_weight"]
        self.fill_radius_px = p["fill_radius_px"]
        self.fill_eps = p["fill_eps"]
        self.propagation_decay = p["propagation_decay"]
        self.reanchor_every_frames = p["reanchor_every_frames"]
        self.reanchor_weight = p["reanchor_weight"]
        self.seed = p["seed"]
        self._matcher: ReferenceMatcher | None = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._frame_index = 0
        self._prev_gray: np.ndarray | None = None
        self._ab: np.ndarray | None = None  # analysis-grid state
        self._conf: np.ndarray | None = None

    def start_shot(
        self, references_lab: Sequence[np.ndarray], palette_lab: np.ndarray | None = None
    ) -> None:
        super().start_shot(references_lab, palette_lab)
        self._reset_state()
        self._matcher = None
        if self.references_lab:
            self._matcher = ReferenceMatcher(
                [self.to_analysis(r) for r in self.references_lab],
                max_samples=self.max_reference_samples,
                k_neighbors=self.k_neighbors,
                bandwidth=self.match_bandwidth,
                position_weight=self.position_weight,
                rng=np.random.default_rng(self.seed),
            )
        # A fresh flow object per shot: DIS keeps no state between calls, but this makes sure.
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def colorize_frame(self, L: np.ndarray) -> tuple[np.ndarray, float]:
        if self._matcher is None:
            return self.neutral(L), 0.0
        La = self.to_analysis(L)
        gray = np.clip(np.round(La * 2.55), 0, 255).astype(np.uint8)
        if self._prev_gray is None or self._prev_gray.shape != gray.shape:
            ab, conf = self._match_full(La)
        else:
            ab, conf = self._propagate(La, gray)
        self._prev_gray, self._ab, self._conf = gray, ab, conf
        self._frame_index += 1
        return self.to_full(ab, L, La), float(conf.mean(dtype=np.float64))

    # --- steps ----------------------------------------------------------------------------------
    def _match_full(self, La: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ab, conf = self._matcher.match(La)
        return self._fill(ab, conf, La), conf

    def _fill(self, ab: np.ndarray, conf: np.ndarray, La: np.ndarray) -> np.ndarray:
        return confidence_fill(ab, conf, La, radius_px=self.fill_radius_px, eps=self.fill_eps)

    def _propagate(self, La: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flow_back = self._dis.calc(gray, self._prev_gray, None)
        flow_fwd = self._dis.calc(self._prev_gray, gray, None)
        map_xy, valid = flow_consistency(flow_back, flow_fwd)
        # Backward warp of the previous frame's state (bilinear; border pixels are invalid anyway).
        state = np.dstack([self._ab, self._conf])
        state = cv2.remap(state, map_xy, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        ab = state[..., :2]
        conf = np.where(valid, state[..., 2] * np.float32(self.propagation_decay), 0.0)

        every = self.reanchor_every_frames
        if every > 0 and self._frame_index % every == 0:
            ab_m, conf_m = self._match_full(La)
            wm = np.float32(self.reanchor_weight) * conf_m
            alpha = np.where(wm + conf > 1e-6, wm / np.maximum(wm + conf, 1e-6), 1.0)
            ab = ab + alpha[..., None] * (ab_m - ab)
            conf = np.maximum(conf, conf_m)
        elif not valid.all():
            lost = ~valid
            ab_m, conf_m = self._matcher.match(La, where=lost)
            ab = np.where(lost[..., None], ab_m, ab)
            conf = np.where(lost, conf_m, conf)
            filled = self._fill(ab, conf, La)
            ab = np.where(lost[..., None], filled, ab)
        return ab.astype(np.float32), conf.astype(np.float32)
