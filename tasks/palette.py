"""Colour palettes: k-means in CIE Lab over reference stills (seed notes 003, section 8.1).

A palette is ``k`` Lab colours with weights (fraction of sampled pixels in each cluster), ordered
by weight descending, ties broken by L descending. It is the global colour prior that colorizers
and the harmonizer share across the shots of an item; it is stored as a small JSON file.

Procedure (:func:`extract_palette`):

1. pool the pixels of all images and draw at most ``max_pixels`` of them without replacement with
   ``numpy.random.default_rng(seed)`` (uniform over all pooled pixels, so a larger image
   contributes more pixels);
2. optionally drop near-gray pixels whose population variance across (R, G, B) is below
   ``min_rgb_var`` (the paper's GMM filter uses 50 on the 0..255 scale);
3. convert the sample (not the whole image) to Lab with :func:`reel.tasks.colorspace.rgb_to_lab`;
4. ``sklearn.cluster.KMeans(k, init="k-means++", n_init=4, max_iter=300, tol=1e-4,
   random_state=seed)``;
5. weights = cluster sizes / sample size; order by weight descending, then L descending;
6. when the sample holds fewer than ``k`` distinct colours, cluster into that many and pad by
   repeating the heaviest centre with weight 0, so every palette has exactly ``k`` rows.

Example
-------
>>> import numpy as np
>>> img = np.zeros((10, 10, 3), np.uint8); img[:, :6] = (200, 30, 30); img[:, 6:] = (20, 40, 160)
>>> pal = extract_palette([img], k=2, seed=0)
>>> [round(float(w), 2) for w in pal.weights]
[0.6, 0.4]
>>> [tuple(int(v) for v in c) for c in pal.to_rgb()]
[(200, 30, 30), (20, 40, 160)]
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from reel.tasks.colorspace import lab_to_rgb, rgb_to_lab

#: Version of the palette record and of the extraction procedure above.
PALETTE_SCHEMA_VERSION = 1

#: Chroma C* = sqrt(a^2 + b^2) below which a palette colour counts as achromatic.
ACHROMATIC_CHROMA = 5.0


@dataclass(eq=False)
class Palette:
    """``k`` CIE Lab colours with weights, heaviest first.

    Attributes
    ----------
    colors_lab : (k, 3) float32
        L in [0, 100], a and b roughly in [-128, 127].
    weights : (k,) float32
        Fraction of sampled pixels per colour; sums to 1 (padding colours have weight 0).
    k : int
        Number of colours.
    seed : int
        Seed of the pixel subsample and of k-means.
    sources : list of str
        Where the pixels came from (file paths, or ``array<i>:<h>x<w>:sha256=<16 hex>``).
    """

    colors_lab: np.ndarray
    weights: np.ndarray
    k: int
    seed: int
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.colors_lab = np.asarray(self.colors_lab, dtype=np.float32).reshape(-1, 3)
        self.weights = np.asarray(self.weights, dtype=np.float32).reshape(-1)
        if self.colors_lab.shape[0] != self.k or self.weights.shape[0] != self.k:
            raise ValueError(
                f"palette of k={self.k} has {self.colors_lab.shape[0]} colours and "
                f"{self.weights.shape[0]} weights"
            )
        self.sources = [str(s) for s in self.sources]

    # Conversions ---------------------------------------------------------------------------
    def to_rgb(self) -> np.ndarray:
        """Colours as uint8 sRGB, shape (k, 3), L preserved under gamut clipping."""
        L = self.colors_lab[None, :, 0]
        ab = self.colors_lab[None, :, 1:]
        return lab_to_rgb(L, ab)[0]

    def to_hex(self) -> list[str]:
        """Colours as ``#rrggbb`` strings (for people and dashboards)."""
        return ["#%02x%02x%02x" % tuple(int(v) for v in c) for c in self.to_rgb()]

    def to_vector(self) -> np.ndarray:
        """The (3k,) float32 encoding ``[L/100, a/110, b/110] * k`` in palette order."""
        scale = np.array([100.0, 110.0, 110.0], np.float32)
        return (self.colors_lab / scale).reshape(-1).astype(np.float32)

    @property
    def is_achromatic(self) -> bool:
        """True when every colour with weight > 0 has chroma below :data:`ACHROMATIC_CHROMA`."""
        chroma = np.hypot(self.colors_lab[:, 1], self.colors_lab[:, 2])
        return bool(np.all(chroma[self.weights > 0] < ACHROMATIC_CHROMA))

    # Persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "schema_version": PALETTE_SCHEMA_VERSION,
            "k": int(self.k),
            "seed": int(self.seed),
            "colors_lab": [[float(v) for v in c] for c in self.colors_lab],
            "weights": [float(w) for w in self.weights],
            "hex": self.to_hex(),
            "sources": list(self.sources),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the palette as JSON (atomically: temporary name, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Palette":
        """Read a palette written by :meth:`save` (float32 values round-trip exactly)."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        version = int(data.get("schema_version", 0))
        if version > PALETTE_SCHEMA_VERSION:
            raise ValueError(f"{path}: palette schema {version} is newer than {PALETTE_SCHEMA_VERSION}")
        return cls(
            colors_lab=np.array(data["colors_lab"], np.float32),
            weights=np.array(data["weights"], np.float32),
            k=int(data["k"]),
            seed=int(data["seed"]),
            sources=list(data.get("sources", [])),
        )

    def swatch(self, path: str | os.PathLike, width_px: int = 500, height_px: int = 100) -> Path:
        """Write a PNG of vertical bands, each as wide as its colour's weight (heaviest left).

        Widths are rounded by largest remainder so they sum exactly to ``width_px``.
        """
        if width_px < 1 or height_px < 1:
            raise ValueError("swatch size must be positive")
        widths = _largest_remainder(self.weights.astype(np.float64), width_px)
        rgb = self.to_rgb()
        img = np.zeros((height_px, width_px, 3), np.uint8)
        x = 0
        for c, w in zip(rgb, widths):
            img[:, x:x + w] = c
            x += w
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.png")
        if not cv2.imwrite(str(tmp), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {path}")
        os.replace(tmp, path)
        return path


def extract_palette(
    images: Sequence[np.ndarray] | Sequence[str | os.PathLike],
    *,
    k: int = 5,
    seed: int = 0,
    max_pixels: int = 20000,
    min_rgb_var: float | None = None,
    n_init: int = 4,
) -> Palette:
    """Palette of ``k`` Lab colours of a set of RGB images by seeded k-means.

    Parameters
    ----------
    images : list of uint8 (H, W, 3) RGB arrays, or list of image file paths
        Reference stills or key frames. Paths are read with OpenCV (any format it reads).
    k : int
        Number of palette colours.
    seed : int
        Seed of the pixel subsample and of k-means initialisation.
    max_pixels : int
        Size of the pixel sample clustered (drawn uniformly without replacement).
    min_rgb_var : float or None
        If set, drop pixels whose variance across R, G, B (0..255 scale) is below it
        ("vivid" mode, like the paper's GMM filter with 50). Falls back to all pixels when the
        filter would leave none.
    n_init : int
        k-means restarts (fixed, part of the procedure).

    Returns
    -------
    Palette
        ``k`` colours ordered by weight descending, ties by L descending.

    Examples
    --------
    >>> import numpy as np
    >>> pal = extract_palette([np.full((4, 4, 3), 128, np.uint8)], k=3)
    >>> pal.weights.tolist(), pal.is_achromatic
    ([1.0, 0.0, 0.0], True)
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    if max_pixels < 1:
        raise ValueError("max_pixels must be >= 1")
    if len(images) == 0:
        raise ValueError("extract_palette needs at least one image")
    arrays, sources = _load_images(images)

    sizes = np.array([a.shape[0] * a.shape[1] for a in arrays], np.int64)
    total = int(sizes.sum())
    if total == 0:
        raise ValueError("images hold no pixels")
    rng = np.random.default_rng(seed)
    if total > max_pixels:
        idx = np.sort(rng.choice(total, size=max_pixels, replace=False))
    else:
        idx = np.arange(total)
    # Map global pixel indices to (image, local index) and gather the sample.
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    which = np.searchsorted(offsets, idx, side="right") - 1
    parts = []
    for i, a in enumerate(arrays):
        local = idx[which == i] - offsets[i]
        if local.size:
            parts.append(a.reshape(-1, 3)[local])
    sample = np.concatenate(parts, axis=0)

    if min_rgb_var is not None:
        keep = sample.astype(np.float64).var(axis=1) >= float(min_rgb_var)
        if np.any(keep):
            sample = sample[keep]

    lab = rgb_to_lab(np.ascontiguousarray(sample[None])).reshape(-1, 3).astype(np.float64)
    n_distinct = int(np.unique(sample, axis=0).shape[0])
    n_clusters = min(k, n_distinct)

    if n_clusters == 1:
        centers = lab.mean(axis=0, keepdims=True)
        labels = np.zeros(lab.shape[0], np.int64)
    else:
        from sklearn.cluster import KMeans

        km = KMeans(
            n_clusters=n_clusters, init="k-means++", n_init=n_init, max_iter=300, tol=1e-4,
            random_state=seed,
        ).fit(lab)
        # Recompute centres as exact means of their members (k-means may stop before the
        # last assignment/update pair agrees); deterministic and what "cluster colour" means.
        labels = km.labels_.astype(np.int64)
        centers = np.stack([
            lab[labels == j].mean(axis=0) if np.any(labels == j) else km.cluster_centers_[j]
            for j in range(n_clusters)
        ])
    counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    weights = counts / counts.sum()
    order = np.lexsort((-centers[:, 0], -weights))
    centers, weights = centers[order], weights[order]
    if n_clusters < k:
        pad = k - n_clusters
        centers = np.concatenate([centers, np.repeat(centers[:1], pad, axis=0)])
        weights = np.concatenate([weights, np.zeros(pad)])
    return Palette(
        colors_lab=centers.astype(np.float32),
        weights=weights.astype(np.float32),
        k=k,
        seed=seed,
        sources=sources,
    )


def nearest_palette_ab(
    ab: np.ndarray, palette: Palette, L: np.ndarray | None = None, *, include_empty: bool = False
) -> np.ndarray:
    """Snap each pixel's chroma to the nearest palette colour.

    Parameters
    ----------
    ab : float (..., 2)
        Chroma to snap.
    palette : Palette
    L : float (...), optional
        Luminance; when given, nearness is measured in full Lab (ΔE76), else in the ab plane.
    include_empty : bool
        Also consider colours of weight 0 (padding); off by default.

    Returns
    -------
    float32 (..., 2)
        The ab of the nearest palette colour per pixel.

    Examples
    --------
    >>> import numpy as np
    >>> pal = Palette(np.array([[50, 40, 0], [50, -40, 0]], np.float32), np.array([.5, .5]), 2, 0)
    >>> nearest_palette_ab(np.array([[30.0, 5.0], [-10.0, 0.0]]), pal).tolist()
    [[40.0, 0.0], [-40.0, 0.0]]
    """
    ab = np.asarray(ab, np.float32)
    if ab.shape[-1] != 2:
        raise ValueError(f"ab must end in 2 channels, got {ab.shape}")
    use = np.ones(palette.k, bool) if include_empty else palette.weights > 0
    if not np.any(use):
        use[:] = True
    cols = palette.colors_lab[use]
    if L is None:
        d = ((ab[..., None, :] - cols[:, 1:]) ** 2).sum(-1)
    else:
        lab = np.concatenate([np.asarray(L, np.float32)[..., None], ab], axis=-1)
        d = ((lab[..., None, :] - cols) ** 2).sum(-1)
    nearest = np.argmin(d, axis=-1)
    return cols[nearest][..., 1:].astype(np.float32)


# Helpers --------------------------------------------------------------------------------------
def _load_images(images) -> tuple[list[np.ndarray], list[str]]:
    arrays: list[np.ndarray] = []
    sources: list[str] = []
    for i, im in enumerate(images):
        if isinstance(im, (str, os.PathLike)):
            bgr = cv2.imread(str(im), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ValueError(f"cannot read image {im}")
            arrays.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            sources.append(str(im))
        else:
            a = np.asarray(im)
            if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
                raise ValueError(f"image {i}: expected uint8 (H, W, 3) RGB, got {a.dtype} {a.shape}")
            a = np.ascontiguousarray(a)
            digest = hashlib.sha256(a.tobytes()).hexdigest()[:16]
            arrays.append(a)
            sources.append(f"array{i}:{a.shape[0]}x{a.shape[1]}:sha256={digest}")
    return arrays, sources


def _largest_remainder(weights: np.ndarray, total: int) -> list[int]:
    w = np.clip(weights, 0, None)
    if w.sum() <= 0:
        w = np.ones_like(w)
    exact = w / w.sum() * total
    base = np.floor(exact).astype(int)
    rest = total - int(base.sum())
    # Stable: larger remainder first, then earlier (heavier) colour.
    order = sorted(range(len(w)), key=lambda i: (-(exact[i] - base[i]), i))
    for i in order[:rest]:
        base[i] += 1
    return [int(b) for b in base]


__all__ = [
    "ACHROMATIC_CHROMA",
    "PALETTE_SCHEMA_VERSION",
    "Palette",
    "extract_palette",
    "nearest_palette_ab",
]
