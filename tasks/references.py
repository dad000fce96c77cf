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

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from reel.registry import Engine, Registry
from reel.tasks.colorspace import gray_to_L, rgb_to_gray


@dataclass(frozen=True)
class RankedReference:
    """A reference still and its similarity to the shot, in [-1, 1] (higher is better)."""

    path: Path
    score: float


REFERENCE_RANKERS: Registry["ReferenceRanker"] = Registry("reference ranking")


class ReferenceRanker(Engine):
    """Base class: score colour references against gray shot key frames."""

    def score(self, shot_frames: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> np.ndarray:
        """Similarity of each reference (uint8 RGB) to the shot (uint8 gray frames), (n_refs,)."""
        raise NotImplementedError

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

    def score(self, shot_frames, references) -> np.ndarray:
        shot_feats = [self.features(np.asarray(f)) for f in shot_frames]
        scores = np.empty(len(references), np.float64)
        for i, ref in enumerate(references):
            ref = np.asarray(ref)
            gray = ref if ref.ndim == 2 else rgb_to_gray(ref)
            rf = self.features(gray)
            scores[i] = np.mean([self.similarity(sf, rf) for sf in shot_feats])
        return np.clip(scores, -1.0, 1.0)


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


def _centre_unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64).ravel()
    v = v - v.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else np.zeros_like(v)


__all__ = [
    "REFERENCE_RANKERS",
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
                      **params) -> ReferenceSelection:
    """Rank ``library`` for shot ``[start, stop)``, put reviewer pins first, pool a palette.

    Pinned references (chosen by a reviewer) always lead the list with score 1.0; the ranked
    ones follow. The palette (k-means in Lab, :func:`reel.tasks.palette.extract_palette`) is
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
    ranker = REFERENCE_RANKERS.create(engine, **params)
    pins = [RankedReference(Path(p), 1.0) for p in pinned]
    pinned_set = {r.path for r in pins}
    rest = [r for r in rank_references(src, start, stop, [p for p in library if Path(p) not in pinned_set],
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
                              swatch_path=swatch_path, engine=ranker.describe(),
                              seconds=time.perf_counter() - t0)


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="select-references", cache_policy=NO_CACHE)(select_references)


select_references_task = _thin_task()
