"""Fusion engines for regional colour edits, registered by name in :data:`FUSERS`.

A regional edit changes the colour of one region of a shot. The region comes from a coarse,
slightly flickering mask (segmentation labels at analysis resolution, upsampled). A *fuser*
decides, pixel by pixel, how much of the edited colour each pixel receives, so that no seam or
halo appears at the region's border and the border does not flicker.

Interface (stable; a learned engine plugs in here)
--------------------------------------------------
``class Fuser(Engine)`` with

``fuse_clip(L, ab_original, ab_edited, mask) -> ab_fused``
    ``L`` float32 ``(T, H, W)`` in [0, 100] (the guide: luminance of the frames),
    ``ab_original`` / ``ab_edited`` float32 ``(T, H, W, 2)`` (Lab a/b, the frames before and
    after the colour transform was applied to *every* pixel), ``mask`` float32 ``(T, H, W)`` in
    [0, 1] (the coarse region mask, 1 inside). Returns float32 ``(T, H, W, 2)``.
``fuse_lab(L, L_edited, ab_original, ab_edited, mask) -> (L_fused, ab_fused)``
    The same when the edit also changes luminance (``brightness``). The default implementation
    calls ``fuse_clip`` once and transfers its per-pixel blend weight to L (see
    :meth:`Fuser.fuse_lab`); engines that know their weight override it.
``reset()``
    Forget temporal state. The edit task calls it at the start of every shot, then calls
    ``fuse_clip`` / ``fuse_lab`` on consecutive windows of that shot *in order* (at most
    ``window_frames`` frames each), so an engine may carry temporal state from one window to the
    next.

Contract every engine keeps: pixels far from the mask border (outside the engine's edge band)
get exactly ``ab_original`` (mask 0) or exactly ``ab_edited`` (mask 1), bit for bit.

Engines (``tasks/fusers/classic.py``)
-------------------------------------
``hard``      the mask thresholded at 0.5, no blending (the seam baseline).
``feather``   the mask blurred with a Gaussian (``sigma_px``) inside a band of ``3 sigma``.
``guided``    (default) the mask stabilised over time (flow-warped EMA), then refined by a guided
              filter with L as the guide, so the transition follows the image's own edges; used
              inside a band of ``band_px`` pixels around the stabilised border.

Example
-------
>>> import numpy as np
>>> from reel.tasks.fusers import FUSERS
>>> FUSERS.names()
['feather', 'guided', 'hard', 'learned-fuse']
>>> L = np.full((2, 16, 16), 50, np.float32)
>>> ab0 = np.zeros((2, 16, 16, 2), np.float32); ab1 = ab0 + 10
>>> mask = np.zeros((2, 16, 16), np.float32); mask[:, :, 8:] = 1
>>> out = FUSERS.create("feather", sigma_px=1.0).fuse_clip(L, ab0, ab1, mask)
>>> float(out[0, 0, 0, 0]), float(out[0, 0, 15, 0])
(0.0, 10.0)
"""

from __future__ import annotations

import cv2
import numpy as np

from reel.registry import Engine, Registry

FUSERS: Registry["Fuser"] = Registry("fusion")


def check_clip(L: np.ndarray, ab_original: np.ndarray, ab_edited: np.ndarray,
               mask: np.ndarray) -> None:
    """Raise ``ValueError`` unless the four arrays follow the :class:`Fuser` interface."""
    if L.ndim != 3:
        raise ValueError(f"L must be (T, H, W), got {L.shape}")
    T, H, W = L.shape
    for name, arr in (("ab_original", ab_original), ("ab_edited", ab_edited)):
        if arr.shape != (T, H, W, 2):
            raise ValueError(f"{name} must be {(T, H, W, 2)}, got {arr.shape}")
    if mask.shape != (T, H, W):
        raise ValueError(f"mask must be {(T, H, W)}, got {mask.shape}")


def blend(original: np.ndarray, edited: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``original * (1 - alpha) + edited * alpha`` (float32), exact where alpha is 0 or 1.

    ``alpha`` has the shape of ``original`` without its last axis when that axis is a channel
    axis (``(T, H, W)`` for ``(T, H, W, 2)``), or the same shape.

    >>> blend(np.float32([3.3]), np.float32([7.7]), np.float32([1.0])).tolist() == [np.float32(7.7)]
    True
    """
    a = alpha.astype(np.float32, copy=False)
    if a.ndim == original.ndim - 1:
        a = a[..., None]
    return (original * (1.0 - a) + edited * a).astype(np.float32, copy=False)


def border_distance(hard: np.ndarray) -> np.ndarray:
    """Distance (pixels, float32) of every pixel to the border of a binary mask (H, W).

    Inside pixels: distance to the nearest outside pixel, minus 0.5; outside pixels: distance to
    the nearest inside pixel, minus 0.5 (so two neighbours across the border both read 0.5).
    A mask with no border (all 0 or all 1) gives ``inf`` everywhere.

    >>> m = np.zeros((1, 6), np.uint8); m[0, 3:] = 1
    >>> border_distance(m).tolist()
    [[2.5, 1.5, 0.5, 0.5, 1.5, 2.5]]
    """
    hard = (np.asarray(hard) > 0).astype(np.uint8)
    if hard.min() == hard.max():
        return np.full(hard.shape, np.inf, np.float32)
    d_in = cv2.distanceTransform(hard, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    d_out = cv2.distanceTransform(1 - hard, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return (np.where(hard > 0, d_in, d_out) - 0.5).astype(np.float32)


def band_weight(hard: np.ndarray, band_px: float) -> np.ndarray:
    """Weight (H, W) float32 of the edge band of a binary mask: 1 within ``band_px / 2`` of the
    border, a raised-cosine taper to 0 at ``band_px``, exactly 0 beyond (outside the band).

    >>> m = np.zeros((1, 12), np.uint8); m[0, 6:] = 1
    >>> [round(float(v), 2) for v in band_weight(m, 4.0)[0]]
    [0.0, 0.0, 0.15, 0.85, 1.0, 1.0, 1.0, 1.0, 0.85, 0.15, 0.0, 0.0]
    """
    d = border_distance(hard)
    if band_px <= 0:
        return np.zeros(d.shape, np.float32)
    half = band_px / 2.0
    ramp = np.clip((d - half) / half, 0.0, 1.0)
    w = 0.5 * (1.0 + np.cos(np.pi * ramp))
    w[d >= band_px] = 0.0
    return w.astype(np.float32)


def compose_alpha(hard: np.ndarray, soft: np.ndarray, band_px: float) -> np.ndarray:
    """Blend weight (H, W) float32: ``soft`` inside the edge band of ``hard``, tapering to
    exactly ``hard`` (0 or 1) at the band's edge and beyond, so nothing outside the band changes
    and no step appears where the band ends."""
    h = (np.asarray(hard) > 0).astype(np.float32)
    w = band_weight(h, band_px)
    return np.clip(w * np.clip(soft, 0.0, 1.0) + (1.0 - w) * h, 0.0, 1.0).astype(np.float32)


class Fuser(Engine):
    """Base class of fusion engines (see the module docstring for the interface)."""

    #: Frames per call the edit task should pass (memory: ~40 bytes per pixel per frame).
    window_frames: int = 16

    def reset(self) -> None:
        """Forget temporal state (called at the start of every shot)."""

    def fuse_clip(self, L: np.ndarray, ab_original: np.ndarray, ab_edited: np.ndarray,
                  mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fuse_lab(self, L: np.ndarray, L_edited: np.ndarray, ab_original: np.ndarray,
                 ab_edited: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fuse chroma with :meth:`fuse_clip`; fuse L with the blend weight that the chroma
        result implies: ``(ab_fused - ab_original) . d / |d|^2`` with ``d = ab_edited -
        ab_original`` where ``|d| >= 0.5``, else the mask blurred with sigma 2 px. Engines that
        compute an explicit weight override this (exact for them)."""
        ab = self.fuse_clip(L, ab_original, ab_edited, mask)
        if np.array_equal(L, L_edited):
            return L, ab
        d = ab_edited - ab_original
        n2 = (d * d).sum(-1)
        proj = ((ab - ab_original) * d).sum(-1) / np.maximum(n2, 1e-6)
        soft = np.stack([cv2.GaussianBlur(m.astype(np.float32), (0, 0), 2.0) for m in mask])
        alpha = np.clip(np.where(n2 >= 0.25, proj, soft), 0.0, 1.0)
        return blend(L, L_edited, alpha), ab


class AlphaFuser(Fuser):
    """A fuser that computes one blend weight per pixel (``alpha_clip``) and blends with it."""

    def alpha_clip(self, L: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Blend weight float32 (T, H, W) in [0, 1] for consecutive frames of one shot."""
        raise NotImplementedError

    def fuse_clip(self, L, ab_original, ab_edited, mask):
        check_clip(L, ab_original, ab_edited, mask)
        return blend(ab_original, ab_edited, self.alpha_clip(L, mask))

    def fuse_lab(self, L, L_edited, ab_original, ab_edited, mask):
        check_clip(L, ab_original, ab_edited, mask)
        alpha = self.alpha_clip(L, mask)
        L_out = L if np.array_equal(L, L_edited) else blend(L, L_edited, alpha)
        return L_out, blend(ab_original, ab_edited, alpha)


from reel.tasks.fusers import classic  # noqa: E402,F401  (registers the engines)
from reel.tasks.fusers import learned  # noqa: E402,F401  (registers learned-fuse)

__all__ = ["FUSERS", "AlphaFuser", "Fuser", "band_weight", "blend", "border_distance",
           "check_clip", "compose_alpha"]
