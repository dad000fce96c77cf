"""Classical fusion engines: ``hard`` and ``feather`` baselines, ``guided`` (edge-aware, stable).

All three are :class:`~reel.tasks.fusers.AlphaFuser`: they compute a blend weight ``alpha``
per pixel and return ``ab_original * (1 - alpha) + ab_edited * alpha``. Parameters in pixels are
at the resolution of the frames the fuser receives.

``guided`` per frame t (see the notes, seeds/000_movingcolor.md §9.2 point 2):

1. **temporal stabilisation** of the coarse mask ``m_t``: the previous stabilised mask
   ``s_{t-1}`` is backward-warped to frame t with DIS optical flow computed on L (at most
   ``flow_width_px`` wide), then ``s_t = (1 - k) m_t + k warp(s_{t-1})`` with
   ``k = (1 - ema) * r``; ``r = exp(-(|L_t - warp(L_{t-1})| / reliable_dL)^2)`` (blurred,
   sigma 1 px) switches the memory off where the flow is wrong (occlusions, cuts). A mask that
   jitters from frame to frame is averaged; a mask that moves with the content follows it.
2. **edge-aware refinement**: ``soft_t = guidedFilter(guide = L_t / 100, src = s_t,
   radius_px, eps)`` (He et al.; OpenCV ximgproc), so the transition snaps to the luminance
   edges near the border and is a smooth ramp where there is no edge (no seam, no halo); then
   steepened about 0.5 by ``sharpen`` (defaults radius 3, eps 1e-4, sharpen 2, ema 0.3 were
   chosen on ``reel benchmark fusion`` clips, see docs/stages.md).
3. **band**: ``alpha_t`` is ``soft_t`` within ``band_px / 2`` of the border of
   ``s_t >= 0.5``, tapered (raised cosine) to exactly that binary mask at ``band_px``.

Simple: one global ``ema``; the guided filter sees L only (no colour guide, since B&W films have
no other); the flow runs forward only (no look-ahead), so a mask that jumps lags by a few frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from reel.tasks.fusers import FUSERS, AlphaFuser, compose_alpha


@FUSERS.register
class HardFuser(AlphaFuser):
    """The mask thresholded at 0.5: the edit stops at a hard, flickering border (baseline)."""

    name, version = "hard", "1"

    def __init__(self) -> None:
        super().__init__()

    def alpha_clip(self, L: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return (mask >= 0.5).astype(np.float32)


@FUSERS.register
class FeatherFuser(AlphaFuser):
    """The mask (thresholded at 0.5) blurred with a Gaussian of ``sigma_px``, applied within a
    band of ``3 sigma_px`` around the border (exactly the hard mask beyond). ``sigma_px = 0``
    is the hard mask."""

    name, version = "feather", "1"

    def __init__(self, sigma_px: float = 3.0) -> None:
        if sigma_px < 0:
            raise ValueError(f"sigma_px must be >= 0, got {sigma_px}")
        super().__init__(sigma_px=float(sigma_px))
        self.sigma_px = float(sigma_px)

    def alpha_clip(self, L: np.ndarray, mask: np.ndarray) -> np.ndarray:
        hard = (mask >= 0.5).astype(np.float32)
        if self.sigma_px <= 0:
            return hard
        out = np.empty_like(hard)
        for t in range(hard.shape[0]):
            soft = cv2.GaussianBlur(hard[t], (0, 0), self.sigma_px, borderType=cv2.BORDER_REFLECT)
            out[t] = compose_alpha(hard[t], soft, 3.0 * self.sigma_px)
        return out


@FUSERS.register
class GuidedFuser(AlphaFuser):
    """Edge-aware (guided filter on L) and temporally stabilised (flow-warped EMA) blend weight.

    Parameters
    ----------
    band_px : width (pixels) of the band around the border where the weight is soft.
    radius_px : guided-filter radius (pixels).
    eps : guided-filter regularisation (guide L / 100 in [0, 1]; 1e-4 ~ edges of > 1 L unit).
    ema : weight of the current frame's mask in the temporal average (1 = no memory).
    reliable_dL : L difference (L units) after flow warping at which memory fades (occlusions).
    flow_width_px : width at which the DIS flow (OpenCV, "fast" preset) is computed.
    sharpen : contrast gain of the refined weight about 0.5 (1 = none): a steeper transition.
    """

    name, version = "guided", "1"
    window_frames = 8

    def __init__(self, band_px: float = 8.0, radius_px: int = 3, eps: float = 1e-4,
                 ema: float = 0.3, reliable_dL: float = 6.0, flow_width_px: int = 320,
                 sharpen: float = 2.0) -> None:
        if not 0 < ema <= 1:
            raise ValueError(f"ema must be in (0, 1], got {ema}")
        if band_px < 0 or radius_px < 1 or eps <= 0 or sharpen < 1:
            raise ValueError("band_px must be >= 0, radius_px >= 1, eps > 0 and sharpen >= 1")
        super().__init__(band_px=float(band_px), radius_px=int(radius_px), eps=float(eps),
                         ema=float(ema), reliable_dL=float(reliable_dL),
                         flow_width_px=int(flow_width_px), sharpen=float(sharpen))
        self.sharpen = float(sharpen)
        self.band_px, self.radius_px, self.eps = float(band_px), int(radius_px), float(eps)
        self.ema, self.reliable_dL, self.flow_width_px = float(ema), float(reliable_dL), int(flow_width_px)
        self._dis = None
        self.reset()

    def reset(self) -> None:
        self._prev_s: np.ndarray | None = None
        self._prev_L: np.ndarray | None = None

    def _flow(self, L_t: np.ndarray, L_prev: np.ndarray) -> np.ndarray:
        """Backward flow (H, W, 2): ``L_t(x) ~ L_prev(x + flow(x))``, computed at low width."""
        H, W = L_t.shape
        scale = min(1.0, self.flow_width_px / W)
        w, h = max(8, int(round(W * scale))), max(8, int(round(H * scale)))

        def u8(L):
            img = np.clip(L * 2.55, 0, 255).astype(np.uint8)
            return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA) if (w, h) != (W, H) else img

        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        flow = self._dis.calc(u8(L_t), u8(L_prev), None)
        if (w, h) != (W, H):
            flow = cv2.resize(flow, (W, H), interpolation=cv2.INTER_LINEAR)
            flow[..., 0] *= W / w
            flow[..., 1] *= H / h
        return flow

    def stabilise(self, L_t: np.ndarray, m_t: np.ndarray) -> np.ndarray:
        """Step 1 for one frame (updates the temporal state); returns ``s_t``."""
        m_t = np.clip(m_t.astype(np.float32), 0.0, 1.0)
        if self._prev_s is None or self._prev_s.shape != m_t.shape or self.ema >= 1.0:
            s = m_t
        else:
            H, W = m_t.shape
            flow = self._flow(L_t, self._prev_L)
            gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
            mx, my = gx + flow[..., 0], gy + flow[..., 1]
            warped_s = cv2.remap(self._prev_s, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            warped_L = cv2.remap(self._prev_L, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            err = cv2.GaussianBlur(np.abs(L_t - warped_L), (0, 0), 1.0)
            r = np.exp(-np.square(err / max(self.reliable_dL, 1e-6)))
            k = (1.0 - self.ema) * r
            s = (1.0 - k) * m_t + k * warped_s
        self._prev_s, self._prev_L = s.astype(np.float32), L_t.astype(np.float32)
        return self._prev_s

    def refine(self, L_t: np.ndarray, s_t: np.ndarray) -> np.ndarray:
        """Steps 2 and 3 for one frame: guided filter, then the band composition."""
        guide = (L_t / 100.0).astype(np.float32)
        soft = cv2.ximgproc.guidedFilter(guide, s_t.astype(np.float32), self.radius_px, self.eps)
        if self.sharpen != 1.0:
            soft = 0.5 + self.sharpen * (soft - 0.5)
        return compose_alpha(s_t >= 0.5, soft, self.band_px)

    def alpha_clip(self, L: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = np.empty(mask.shape, np.float32)
        for t in range(mask.shape[0]):
            s = self.stabilise(L[t].astype(np.float32), mask[t])
            out[t] = self.refine(L[t].astype(np.float32), s)
        return out


__all__ = ["FeatherFuser", "GuidedFuser", "HardFuser"]
