"""Colour-space helpers shared by the stages (CIE Lab, D65, sRGB).

Ranges: RGB ``uint8`` in [0, 255]; Lab ``float32`` with L in [0, 100] and a, b roughly in
[-128, 127]. Conversions use OpenCV's float path, which is deterministic and fast.

Example
-------
>>> import numpy as np
>>> from reel.tasks.colorspace import gray_to_L, lab_to_rgb
>>> g = np.full((2, 2), 128, np.uint8)
>>> L = gray_to_L(g)
>>> rgb = lab_to_rgb(L, np.zeros((2, 2, 2), np.float32))
>>> int(rgb[0, 0, 0])
128
"""

from __future__ import annotations

import cv2
import numpy as np


def rgb_to_lab(rgb_u8: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 Lab (H, W, 3)."""
    if rgb_u8.dtype != np.uint8 or rgb_u8.ndim != 3 or rgb_u8.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3) RGB, got {rgb_u8.dtype} {rgb_u8.shape}")
    return cv2.cvtColor(rgb_u8.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def gray_to_L(gray_u8: np.ndarray) -> np.ndarray:
    """uint8 gray (H, W) -> float32 L (H, W) in [0, 100] (gray treated as R = G = B)."""
    if gray_u8.dtype != np.uint8 or gray_u8.ndim != 2:
        raise ValueError(f"expected uint8 (H, W) gray, got {gray_u8.dtype} {gray_u8.shape}")
    return _GRAY_TO_L[gray_u8]


def lab_to_rgb(L: np.ndarray, ab: np.ndarray, *, l_correction_iters: int = 2) -> np.ndarray:
    """Recombine luminance ``L`` (H, W) with chroma ``ab`` (H, W, 2) into uint8 RGB.

    Out-of-gamut chroma is clipped by the conversion, which would shift luminance; a few
    correction passes re-solve L so the *output's* L matches the requested L (the source
    luminance is never altered beyond 8-bit quantisation).
    """
    L = L.astype(np.float32, copy=False)
    target = L
    L_in = L.copy()
    rgb = None
    for _ in range(max(1, l_correction_iters + 1)):
        lab = np.dstack([L_in, ab.astype(np.float32, copy=False)])
        rgb_f = np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)
        rgb = np.round(rgb_f * 255.0).astype(np.uint8)
        err = target - rgb_to_lab(rgb)[..., 0]
        if float(np.abs(err).max()) < 0.25:
            break
        L_in = np.clip(L_in + err, 0.0, 100.0)
    return rgb


def rgb_to_gray(rgb_u8: np.ndarray) -> np.ndarray:
    """uint8 RGB -> uint8 gray whose L equals the RGB's L (through Lab, not Rec.601 luma)."""
    L = rgb_to_lab(rgb_u8)[..., 0]
    return L_to_gray(L)


def L_to_gray(L: np.ndarray) -> np.ndarray:
    """float L in [0, 100] -> nearest uint8 gray level (inverse of :func:`gray_to_L`)."""
    idx = np.searchsorted(_GRAY_TO_L, L.astype(np.float32))
    idx = np.clip(idx, 1, 255)
    lo = _GRAY_TO_L[idx - 1]
    hi = _GRAY_TO_L[idx]
    idx = np.where(np.abs(L - lo) <= np.abs(hi - L), idx - 1, idx)
    return idx.astype(np.uint8)


def _gray_lut() -> np.ndarray:
    g = np.arange(256, dtype=np.uint8).reshape(1, 256, 1).repeat(3, axis=2)
    return cv2.cvtColor(g.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[0, :, 0].copy()


_GRAY_TO_L = _gray_lut()
