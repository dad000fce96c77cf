"""Synthetic harmonization composites: a region of a ground-truth colour clip gets its colour
perturbed, and a harmonizer must bring it back (``reel benchmark harmonize``; training data of a
learned harmonizer).

Model (seed 002 §8.4, HYouTube-style "one colour transform per clip"): for every pixel p of the
mask M_t of frame t, in CIE Lab,

    ab'(p) = s · R(θ) · ab(p) + Δab,     L'(p) = L(p) + ΔL

with R(θ) the rotation of the ab plane by the hue angle θ (degrees), s the chroma (saturation)
scale and Δab a shift, all constant over the clip (``jitter`` adds a per-frame variation); pixels
outside M_t are returned byte-identical. RGB is rebuilt with
:func:`reel.tasks.colorspace.lab_to_rgb`, which keeps L through gamut clipping. The composite's
ground truth is the unperturbed frame.

Reusable pieces (all numpy in, numpy out, deterministic given a seed):

* :class:`ChromaPerturbation` — one transform; ``apply_ab(ab)``; ``describe()``.
* :func:`random_perturbation(rng, kind)` — ``kind`` in :data:`KINDS`: ``shift`` (Lab shift
  |Δab| ∈ [20, 40]), ``scale`` (s ∈ [0.3, 0.55] ∪ [1.7, 2.5]), ``hue`` (|θ| ∈ [60°, 150°]) or
  ``mixed`` (all three, milder each) or ``drift`` (a shift of |Δab| ∈ [15, 30] that moves
  linearly along the clip by a further |δ| ∈ [20, 40] ab units from the first frame to the last:
  a disharmony that changes within the shot).
* :func:`perturb_frame(rgb, mask, perturbation)` — one frame.
* :func:`select_region(labels, rng)` — pick a segmentation region id to perturb.
* :func:`make_composite(frames, labels, seed, kind)` — a whole clip → :class:`Composite`.

Example
-------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> frames = [np.full((32, 48, 3), (180, 120, 60), np.uint8) for _ in range(3)]
>>> labels = np.zeros((3, 16, 24), np.uint16); labels[:, 4:12, 6:18] = 1
>>> comp = make_composite(frames, labels, seed=1, kind="hue")
>>> comp.region_id, comp.masks.shape, bool((comp.frames[0][~comp.masks[0]] == 180).any())
(1, (3, 32, 48), True)
>>> bool(np.abs(comp.frames[0].astype(int) - frames[0]).max() > 20)
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import cv2
import numpy as np

from reel.tasks.colorspace import lab_to_rgb, rgb_to_lab

#: Perturbation kinds of :func:`random_perturbation`.
KINDS = ("shift", "scale", "hue", "mixed", "drift")


@dataclass(frozen=True)
class ChromaPerturbation:
    """``ab' = scale · R(hue_deg) · ab + shift_ab``; ``L' = L + l_shift`` (Lab units).

    Examples
    --------
    >>> p = ChromaPerturbation(shift_ab=(10.0, 0.0), scale=2.0, hue_deg=90.0)
    >>> p.apply_ab(np.array([[[5.0, 0.0]]], np.float32)).round(3).tolist()
    [[[10.0, 10.0]]]
    """

    shift_ab: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    hue_deg: float = 0.0
    l_shift: float = 0.0

    def apply_ab(self, ab: np.ndarray) -> np.ndarray:
        """Perturb ab float (..., 2); returns float32 of the same shape."""
        th = math.radians(self.hue_deg)
        c, s = math.cos(th), math.sin(th)
        a, b = ab[..., 0].astype(np.float32), ab[..., 1].astype(np.float32)
        out = np.empty(ab.shape, np.float32)
        out[..., 0] = self.scale * (c * a - s * b) + self.shift_ab[0]
        out[..., 1] = self.scale * (s * a + c * b) + self.shift_ab[1]
        return out

    def describe(self) -> dict:
        d = asdict(self)
        d["shift_ab"] = [round(float(v), 3) for v in self.shift_ab]
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def random_perturbation(rng: np.random.Generator, kind: str = "mixed") -> ChromaPerturbation:
    """Draw one perturbation of ``kind`` (:data:`KINDS`) with ``rng`` (see the module doc).

    >>> random_perturbation(np.random.default_rng(0), "shift").scale
    1.0
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def shift(lo: float, hi: float) -> tuple[float, float]:
        r, phi = rng.uniform(lo, hi), rng.uniform(0.0, 2 * math.pi)
        return (float(r * math.cos(phi)), float(r * math.sin(phi)))

    def signed(lo: float, hi: float) -> float:
        return float(rng.choice([-1.0, 1.0]) * rng.uniform(lo, hi))

    if kind == "shift":
        return ChromaPerturbation(shift_ab=shift(20.0, 40.0))
    if kind == "scale":
        s = rng.uniform(0.3, 0.55) if rng.random() < 0.5 else rng.uniform(1.7, 2.5)
        return ChromaPerturbation(scale=float(s))
    if kind == "hue":
        return ChromaPerturbation(hue_deg=signed(60.0, 150.0))
    if kind == "drift":
        return ChromaPerturbation(shift_ab=shift(15.0, 30.0))
    return ChromaPerturbation(shift_ab=shift(10.0, 25.0), scale=float(rng.uniform(0.6, 1.6)),
                              hue_deg=signed(20.0, 90.0))


def perturb_frame(rgb_u8: np.ndarray, mask: np.ndarray, perturbation: ChromaPerturbation) -> np.ndarray:
    """Apply ``perturbation`` to the pixels of ``mask`` (bool (H, W)) of a uint8 RGB frame.

    Pixels outside the mask are returned byte-identical; inside, L is kept (plus ``l_shift``)
    through :func:`lab_to_rgb`'s gamut correction.
    """
    out = np.array(rgb_u8, copy=True)
    m = np.asarray(mask, bool)
    if not m.any():
        return out
    ys, xs = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    box = (slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
    lab = rgb_to_lab(np.ascontiguousarray(rgb_u8[box]))
    L = np.clip(lab[..., 0] + perturbation.l_shift, 0.0, 100.0)
    new = lab_to_rgb(L, perturbation.apply_ab(lab[..., 1:]))
    mb = m[box]
    out[box][mb] = new[mb]
    return out


def select_region(labels: np.ndarray, rng: np.random.Generator, *, min_fraction: float = 0.04,
                  max_fraction: float = 0.4, min_presence: float = 0.8) -> int | None:
    """A region id of a label sequence (T, h, w) suitable for perturbing, or ``None``.

    Candidates cover on average ``min_fraction``–``max_fraction`` of the frame and appear in at
    least ``min_presence`` of the frames; one is drawn with ``rng`` (uniformly).
    """
    lab = np.asarray(labels)
    T = lab.shape[0]
    n = int(lab.max()) + 1
    frac = np.zeros(n)
    present = np.zeros(n)
    for t in range(T):
        c = np.bincount(lab[t].ravel().astype(np.int64), minlength=n) / lab[t].size
        frac += c
        present += c > 0
    frac /= T
    present /= T
    cand = np.flatnonzero((frac >= min_fraction) & (frac <= max_fraction) & (present >= min_presence))
    if cand.size == 0:
        return None
    return int(rng.choice(cand))


@dataclass
class Composite:
    """A perturbed clip: ``frames`` list of uint8 RGB (H, W, 3); ``masks`` bool (T, H, W) of the
    perturbed pixels at frame size; the ``region_id`` of ``labels`` that was perturbed; the
    ``perturbation`` (per-frame ones in ``per_frame`` when ``jitter`` > 0)."""

    frames: list[np.ndarray]
    masks: np.ndarray
    region_id: int
    perturbation: ChromaPerturbation
    per_frame: list[ChromaPerturbation] | None = None


def make_composite(frames_rgb: Sequence[np.ndarray], labels: np.ndarray, *, seed: int = 0,
                   kind: str = "mixed", region_id: int | None = None, jitter: float = 0.0,
                   **select: float) -> Composite:
    """Perturb one segmentation region of a clip (the composite generator).

    Parameters
    ----------
    frames_rgb : sequence of uint8 (H, W, 3)
        Ground-truth colour frames (one shot).
    labels : uint16 (T, h, w)
        Region labels of those frames (any resolution; upsampled with nearest neighbour),
        e.g. from ``reel.tasks.segment``; frame t uses map ``min(t, len(labels) - 1)``.
    seed : int
        Seeds both the region choice and the perturbation.
    kind : str
        One of :data:`KINDS`.
    region_id : int, optional
        Region to perturb (default: :func:`select_region`; the largest non-dominant region if
        none qualifies).
    jitter : float
        0 (default): one transform for the whole clip. > 0: per frame, Δab gets Gaussian noise
        of σ = ``jitter`` ab units and θ of σ = ``jitter`` degrees (a flickering disharmony).
    **select
        Keyword arguments of :func:`select_region`.

    Returns
    -------
    Composite
    """
    rng = np.random.default_rng(seed)
    lab = np.asarray(labels)
    if lab.ndim == 2:
        lab = lab[None]
    if region_id is None:
        region_id = select_region(lab, rng, **select)
    if region_id is None:  # fall back: the second-largest region overall
        counts = np.bincount(lab.ravel().astype(np.int64))
        order = np.argsort(counts)[::-1]
        region_id = int(order[1] if order.size > 1 and counts[order[1]] > 0 else order[0])
    pert = random_perturbation(rng, kind)
    drift = np.zeros(2)
    if kind == "drift":
        r, phi = rng.uniform(20.0, 40.0), rng.uniform(0.0, 2 * math.pi)
        drift = np.array([r * math.cos(phi), r * math.sin(phi)])
    H, W = frames_rgb[0].shape[:2]
    T = len(frames_rgb)
    frames, masks, per_frame = [], [], []
    for t, f in enumerate(frames_rgb):
        m_small = (lab[min(t, lab.shape[0] - 1)] == region_id).astype(np.uint8)
        m = cv2.resize(m_small, (W, H), interpolation=cv2.INTER_NEAREST).astype(bool)
        p = pert
        if jitter > 0 or kind == "drift":
            d = drift * (t / max(T - 1, 1) - 0.5)
            p = ChromaPerturbation(
                shift_ab=(pert.shift_ab[0] + float(d[0]) + (float(rng.normal(0, jitter)) if jitter > 0 else 0.0),
                          pert.shift_ab[1] + float(d[1]) + (float(rng.normal(0, jitter)) if jitter > 0 else 0.0)),
                scale=pert.scale,
                hue_deg=pert.hue_deg + (float(rng.normal(0, jitter)) if jitter > 0 else 0.0),
                l_shift=pert.l_shift)
            per_frame.append(p)
        frames.append(perturb_frame(f, m, p))
        masks.append(m)
    return Composite(frames, np.stack(masks), int(region_id), pert, per_frame or None)


# Metrics (seed 002 §5.1, R = 255, per frame then averaged) -------------------------------------
def harmonization_metrics(pred_u8: np.ndarray, target_u8: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MSE, fMSE, PSNR, fPSNR of one frame (seed 002 §5.1), on the 0–255 RGB scale.

    ``MSE = Σ_{p,c} (Ŷ - Y)² / 3N``; ``fMSE = Σ_{p,c} M_p (Ŷ - Y)² / 3N_f`` (foreground only;
    ``nan`` for an empty mask); ``PSNR = 10 log10(255² / MSE)``, ``fPSNR = 10 log10(255² /
    fMSE)``, both capped at 100 dB. Computed at the frames' own size (the papers resize to
    256×256 first).

    >>> a = np.zeros((2, 2, 3), np.uint8); b = a.copy(); b[0, 0] = 10
    >>> m = np.zeros((2, 2), bool); m[0, 0] = True
    >>> {k: round(v, 2) for k, v in harmonization_metrics(b, a, m).items()}
    {'mse': 25.0, 'fmse': 100.0, 'psnr': 34.15, 'fpsnr': 28.13}
    """
    d = (np.asarray(pred_u8, np.float64) - np.asarray(target_u8, np.float64)) ** 2
    m = np.asarray(mask, bool)
    mse = float(d.mean())
    fmse = float(d[m].mean()) if m.any() else float("nan")

    def psnr(e: float) -> float:
        if e != e:
            return float("nan")
        return 100.0 if e <= 0 else min(100.0, 10.0 * math.log10(255.0 ** 2 / e))

    return {"mse": mse, "fmse": fmse, "psnr": psnr(mse), "fpsnr": psnr(fmse)}


__all__ = [
    "ChromaPerturbation",
    "Composite",
    "KINDS",
    "harmonization_metrics",
    "make_composite",
    "perturb_frame",
    "random_perturbation",
    "select_region",
]
