"""Temporally consistent region labels for one shot.

Engines (registry :data:`SEGMENTERS`) turn a shot's gray frames at analysis resolution into a
``(T, h, w)`` ``uint16`` label map whose region ids follow the content through the shot. The
harmonizer and colorizers use them as regions of consistent colour.

``slic-flow`` (default)
    1. **First frame**: SLIC superpixels (scikit-image, deterministic grid initialisation) on L,
       merged by :func:`merge_regions` into at most ``max_regions`` regions: adjacent regions
       closer than ``min_contrast`` (mean L and texture, L units) are merged first, then the
       adjacent pair with the smallest Ward cost ``n_a n_b / (n_a + n_b) * |f_a - f_b|^2`` until
       ``max_regions`` remain. Features: mean L and pooled within-superpixel std of L (texture).
    2. **Propagation**: DIS optical flow (OpenCV, fixed preset) from frame t back to t - 1; the
       previous label map is backward-warped with nearest-neighbour sampling. Pixels where the
       propagation is unreliable (photometric error above ``photometric_tol_gray`` between the
       frame and the previous frame warped by the same flow, both blurred with sigma 1 px and
       the warped one matched to the current mean and std, so grain and flicker do not count)
       take the region with the closest *local* mean luminance among the regions with reliable
       pixels nearby (:meth:`SlicFlowSegmenter.repair`), so labels do not smear into
       disoccluded background. Detached specks of a region are then absorbed by their
       surroundings (:meth:`SlicFlowSegmenter.remove_fragments`).
    3. **Re-segmentation**: when more than ``reseg_fraction`` of the pixels are unreliable, the
       frame is segmented afresh as in 1 and the new regions take the ids of the propagated
       regions they overlap most (greedy one-to-one by overlap, largest first; a new region
       must cover at least ``match_min_overlap`` of its area with that id). Unmatched new
       regions get new ids.
    4. Ids are renumbered 0..K-1 in order of first appearance (raster order, frame by frame).
    5. **Person region** (optional, :mod:`reel.tasks.people`, MediaPipe selfie segmentation when
       installed): person pixels of each frame are overwritten with one extra region, always
       the highest id K, so later stages can address "person"; the regions beneath keep
       propagating. :func:`segment_shot` writes its id to ``regions.json``.

Example
-------
>>> import numpy as np
>>> yy, xx = np.mgrid[:48, :64]
>>> frames = [np.where((abs(xx - 20 - t) < 8) & (abs(yy - 24) < 8), 200, 40).astype(np.uint8)
...           for t in range(6)]
>>> seg = SEGMENTERS.create("slic-flow", max_regions=4).segment(frames)
>>> seg.labels.shape, seg.labels.dtype, seg.n_regions
((6, 48, 64), dtype('uint16'), 2)
"""

from __future__ import annotations

import heapq
import io
import json
import os
import zipfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from reel.registry import Engine, Registry, params_hash
from reel.tasks.colorspace import gray_to_L


@dataclass
class SegmentResult:
    """What :func:`segment_shot` returns to the flow (paths and numbers only)."""

    labels_path: Path
    overlay_path: Path
    n_regions: int
    label_stability: float
    n_frames: int
    #: ``Engine.describe()`` of the segmenter (name, version, parameters).
    engine: dict = field(default_factory=dict)
    seconds: float = 0.0
    #: Id of the person region in the label map (None: no person mask or nobody found).
    person_region: int | None = None
    #: Mean fraction of the frame covered by the person region.
    person_fraction: float = 0.0
    #: Size of labels.npz divided by the number of frames.
    bytes_per_frame: float = 0.0
    #: ``regions.json``: region names ({"person": id}), n_regions, person_fraction.
    regions_path: Path | None = None


@dataclass
class Segmentation:
    """In-memory result of an engine (one shot at analysis resolution)."""

    labels: np.ndarray  # (T, h, w) uint16
    label_stability: float
    n_resegmented: int
    #: Id of the merged person region (always the highest id), None when there is none.
    person_id: int | None = None

    @property
    def n_regions(self) -> int:
        """Number of distinct region ids in the shot."""
        return int(np.unique(self.labels).size) if self.labels.size else 0


SEGMENTERS: Registry["Segmenter"] = Registry("segmentation")

#: Temporary id of person pixels inside an engine (renumbered to the highest id at the end).
PERSON_SENTINEL = 65535


class Segmenter(Engine):
    """Base class: ``segment(frames) -> Segmentation`` over uint8 gray frames (h, w).

    ``person_mask``, when given, is called on every frame in order and returns a bool (h, w)
    mask; its pixels form one extra region, the person region (:attr:`Segmentation.person_id`).
    """

    def segment(self, frames: Iterable[np.ndarray],
                person_mask: Callable[[np.ndarray], np.ndarray] | None = None) -> Segmentation:
        raise NotImplementedError


# Label stability ------------------------------------------------------------------------------
def pair_stability(labels_a: np.ndarray, labels_b: np.ndarray, flow_ab: np.ndarray) -> tuple[int, int]:
    """``(survived, counted)`` pixels for one frame pair (see :func:`label_stability`)."""
    h, w = labels_a.shape
    yy, xx = np.mgrid[0:h, 0:w]
    tx = np.rint(xx + flow_ab[..., 0]).astype(np.int64)
    ty = np.rint(yy + flow_ab[..., 1]).astype(np.int64)
    inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    same = labels_b[ty[inside], tx[inside]] == labels_a[inside]
    return int(same.sum()), int(inside.sum())


def label_stability(labels: np.ndarray, flows: Iterable[np.ndarray]) -> float:
    """Fraction of pixels whose region id survives flow warping to the next frame.

    For each consecutive pair (i, i + 1), ``flows[i]`` is the forward flow (h, w, 2), (dx, dy)
    in pixels, with ``frame_i(x) ~ frame_{i+1}(x + flows[i](x))``. A pixel x of frame i is
    *counted* when ``round(x + flows[i](x))`` lies inside the frame, and *survives* when
    ``labels[i + 1]`` at that point equals ``labels[i][x]``. The result is survived / counted
    summed over all pairs; 1.0 when there are fewer than two frames or nothing is counted.

    Parameters
    ----------
    labels : (T, h, w) integer array
    flows : T - 1 float arrays (h, w, 2), or an array (T - 1, h, w, 2)

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((2, 4, 4), np.uint16); lab[0, :, 2:] = 1; lab[1, :, 3:] = 1
    >>> flow = np.zeros((1, 4, 4, 2), np.float32); flow[0, ..., 0] = 1.0   # everything moves right
    >>> label_stability(lab, flow)   # the 3 columns that stay inside all keep their id
    1.0
    >>> label_stability(lab, np.zeros_like(flow))   # no motion: column 2 changes id
    0.75
    """
    labels = np.asarray(labels)
    survived = counted = 0
    for i, flow in enumerate(flows):
        if i + 1 >= labels.shape[0]:
            break
        s, c = pair_stability(labels[i], labels[i + 1], np.asarray(flow))
        survived += s
        counted += c
    return float(survived / counted) if counted else 1.0


# First-frame regions --------------------------------------------------------------------------
def merge_regions(
    labels: np.ndarray, L: np.ndarray, max_regions: int, min_contrast: float, texture_weight: float = 1.0
) -> np.ndarray:
    """Greedily merge adjacent regions of an over-segmentation ``labels`` (h, w) of ``L``.

    Each region is described by ``f = (mean L, texture_weight * texture)`` where texture is the
    pooled within-superpixel standard deviation of L, ``sqrt(sum n_i var_i / sum n_i)`` over the
    input regions i it contains (so step edges between superpixels do not count as texture).
    Phase 1 merges the closest adjacent pair (Euclidean distance of ``f``) while it is closer
    than ``min_contrast``. Phase 2 merges the adjacent pair with the smallest Ward cost
    ``n_a n_b / (n_a + n_b) * |f_a - f_b|^2`` while more than ``max_regions`` remain. Ties go to
    the lower ids. Returns int32 labels renumbered 0..K-1 in raster order of first appearance.
    """
    labels = _renumber(labels.astype(np.int64))
    n = int(labels.max()) + 1
    flat = labels.ravel()
    Lf = L.astype(np.float64).ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)
    mean_L = np.bincount(flat, weights=Lf, minlength=n) / np.maximum(count, 1)
    var = np.bincount(flat, weights=Lf * Lf, minlength=n) / np.maximum(count, 1) - mean_L**2
    mean = np.stack([mean_L, np.maximum(var, 0.0)], 1)  # (mean L, pooled variance)

    def feature(i: int) -> np.ndarray:
        return np.array([mean[i, 0], texture_weight * np.sqrt(mean[i, 1])])

    # Adjacency (4-connectivity).
    pairs = np.concatenate([
        np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], 1),
        np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], 1),
    ])
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)
    adj: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in pairs.tolist():
        adj[a].add(b)
        adj[b].add(a)
    parent = list(range(n))
    alive = set(range(n))

    def dist(a: int, b: int) -> float:
        return float(np.linalg.norm(feature(a) - feature(b)))

    def ward(a: int, b: int) -> float:
        return float(count[a] * count[b] / (count[a] + count[b])) * dist(a, b) ** 2

    def merge(a: int, b: int) -> None:  # b into a
        total = count[a] + count[b]
        mean[a] = (mean[a] * count[a] + mean[b] * count[b]) / total
        count[a] = total
        parent[b] = a
        alive.discard(b)
        for c in adj.pop(b):
            adj[c].discard(b)
            if c != a:
                adj[c].add(a)
                adj[a].add(c)
        adj[a].discard(a)

    for phase, cost in ((1, dist), (2, ward)):
        heap = [(cost(a, b), a, b) for a in sorted(alive) for b in sorted(adj[a]) if a < b]
        heapq.heapify(heap)
        while heap:
            if phase == 2 and len(alive) <= max_regions:
                break
            c, a, b = heapq.heappop(heap)
            if a not in alive or b not in alive or b not in adj[a]:
                continue
            if abs(c - cost(a, b)) > 1e-9 * max(1.0, c):  # stale entry
                continue
            if phase == 1 and c >= min_contrast:
                break
            keep, gone = min(a, b), max(a, b)
            merge(keep, gone)
            for d in sorted(adj[keep]):
                x, y = min(keep, d), max(keep, d)
                heapq.heappush(heap, (cost(x, y), x, y))

    root = np.arange(n)
    for i in range(n):
        r = i
        while parent[r] != r:
            r = parent[r]
        root[i] = r
    return _renumber(root[labels]).astype(np.int32)


def superpixels(gray: np.ndarray, *, n_superpixels: int = 300, compactness: float = 0.1) -> np.ndarray:
    """SLIC superpixels (scikit-image, deterministic) of a uint8 gray frame's L. int64 (h, w)."""
    from skimage.segmentation import slic

    return slic(
        gray_to_L(gray), n_segments=n_superpixels, compactness=compactness, channel_axis=None,
        start_label=0, enforce_connectivity=True,
    )


def segment_frame(
    gray: np.ndarray,
    *,
    n_superpixels: int = 300,
    compactness: float = 0.1,
    max_regions: int = 12,
    min_contrast: float = 4.0,
    sp: np.ndarray | None = None,
) -> np.ndarray:
    """Regions of one uint8 gray frame: SLIC on L, then :func:`merge_regions`. int32 (h, w).

    ``sp`` may pass precomputed :func:`superpixels` of the same frame.
    """
    if sp is None:
        sp = superpixels(gray, n_superpixels=n_superpixels, compactness=compactness)
    return merge_regions(sp, gray_to_L(gray), max_regions, min_contrast)


def vote_superpixels(labels: np.ndarray, sp: np.ndarray, reliable: np.ndarray | None = None) -> np.ndarray:
    """Give every superpixel the most frequent label among its (reliable) pixels.

    Superpixels follow the current frame's edges, so this snaps propagated region boundaries
    back onto them. Pixels of a superpixel with no reliable pixel vote all; ties go to the
    lowest label.
    """
    sp = sp.astype(np.int64).ravel()
    lab = labels.astype(np.int64).ravel()
    uniq, inv = np.unique(lab, return_inverse=True)
    n_sp, n_lab = int(sp.max()) + 1, uniq.size
    joint = sp * n_lab + inv
    votes_all = np.bincount(joint, minlength=n_sp * n_lab).reshape(n_sp, n_lab)
    if reliable is not None:
        rel = reliable.ravel()
        votes = np.bincount(joint[rel], minlength=n_sp * n_lab).reshape(n_sp, n_lab)
        empty = votes.sum(1) == 0
        votes[empty] = votes_all[empty]
    else:
        votes = votes_all
    winner = uniq[np.argmax(votes, axis=1)]
    return winner[sp].reshape(labels.shape)


# Engine ----------------------------------------------------------------------------------------
@SEGMENTERS.register
class SlicFlowSegmenter(Segmenter):
    """SLIC + region merging on the first frame, DIS-flow propagation, re-segment on failure.

    Parameters
    ----------
    n_superpixels : int
        SLIC segments before merging.
    compactness : float
        SLIC compactness; scikit-image rescales the frame to [0, 1] first, so values around
        0.1 balance intensity and space (higher gives squarer superpixels).
    max_regions : int
        At most this many regions per (re-)segmentation.
    min_contrast : float
        Adjacent regions closer than this in (mean L, texture) are always merged.
    photometric_tol_gray : float
        Per-pixel error (gray levels) above which propagation is unreliable there.
    reseg_fraction : float
        Re-segment a frame when more than this fraction of its pixels is unreliable.
    match_min_overlap : float
        A re-segmented region inherits an old id only if that id covers this fraction of it.
    repair_window_px : int
        Window (pixels, odd) in which unreliable pixels look for reliable regions to join.
    snap_to_superpixels : bool
        After propagation, snap labels to the current frame's SLIC superpixels by majority
        vote of their reliable pixels (:func:`vote_superpixels`). Off by default: in fine
        texture, superpixels that straddle a moving boundary make errors self-reinforcing.
    min_fragment_fraction : float
        Detached pieces of a region smaller than this fraction of the frame are absorbed by
        their surroundings after each propagation step.
    flow_preset : str
        DIS preset: "ultrafast", "fast" or "medium".
    """

    name = "slic-flow"
    version = "1"

    _PRESETS = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }

    def __init__(
        self,
        n_superpixels: int = 300,
        compactness: float = 0.1,
        max_regions: int = 12,
        min_contrast: float = 4.0,
        photometric_tol_gray: float = 12.0,
        reseg_fraction: float = 0.2,
        match_min_overlap: float = 0.3,
        repair_window_px: int = 11,
        snap_to_superpixels: bool = False,
        min_fragment_fraction: float = 0.005,
        flow_preset: str = "medium",
    ) -> None:
        if flow_preset not in self._PRESETS:
            raise ValueError(f"flow_preset must be one of {sorted(self._PRESETS)}")
        if max_regions < 1:
            raise ValueError("max_regions must be >= 1")
        super().__init__(
            n_superpixels=int(n_superpixels), compactness=float(compactness),
            max_regions=int(max_regions), min_contrast=float(min_contrast),
            photometric_tol_gray=float(photometric_tol_gray), reseg_fraction=float(reseg_fraction),
            match_min_overlap=float(match_min_overlap), repair_window_px=int(repair_window_px),
            snap_to_superpixels=bool(snap_to_superpixels),
            min_fragment_fraction=float(min_fragment_fraction), flow_preset=flow_preset,
        )
        self.p = dict(self.params)

    # Helpers --------------------------------------------------------------------------------
    def _flow(self) -> cv2.DISOpticalFlow:
        return cv2.DISOpticalFlow_create(self._PRESETS[self.p["flow_preset"]])

    def superpixels(self, gray: np.ndarray) -> np.ndarray:
        return superpixels(gray, n_superpixels=self.p["n_superpixels"], compactness=self.p["compactness"])

    def segment_frame(self, gray: np.ndarray, sp: np.ndarray | None = None) -> np.ndarray:
        return segment_frame(
            gray, n_superpixels=self.p["n_superpixels"], compactness=self.p["compactness"],
            max_regions=self.p["max_regions"], min_contrast=self.p["min_contrast"], sp=sp,
        )

    def match_ids(self, new: np.ndarray, old: np.ndarray, next_id: int) -> tuple[np.ndarray, int]:
        """Give regions of ``new`` the ids of the ``old`` regions they overlap most.

        Greedy one-to-one over (overlap desc, new id, old id); a match needs
        ``overlap >= match_min_overlap * area(new region)``. Unmatched regions get ids from
        ``next_id`` upwards (in order of their label). Returns the relabelled map and next id.
        """
        n_new = int(new.max()) + 1
        old_ids, old_inv = np.unique(old.ravel(), return_inverse=True)
        joint = new.ravel().astype(np.int64) * len(old_ids) + old_inv
        table = np.bincount(joint, minlength=n_new * len(old_ids)).reshape(n_new, len(old_ids))
        area = table.sum(1)
        cand = np.argwhere(table > 0)
        order = sorted(cand.tolist(), key=lambda ij: (-int(table[ij[0], ij[1]]), ij[0], ij[1]))
        mapping = np.full(n_new, -1, np.int64)
        used: set[int] = set()
        for i, j in order:
            if mapping[i] >= 0 or j in used:
                continue
            if table[i, j] >= self.p["match_min_overlap"] * area[i]:
                mapping[i] = int(old_ids[j])
                used.add(j)
        for i in range(n_new):
            if mapping[i] < 0 and area[i] > 0:
                mapping[i] = next_id
                next_id += 1
        return mapping[new], next_id

    def repair(self, labels: np.ndarray, bad: np.ndarray, gray: np.ndarray) -> np.ndarray:
        """Relabel pixels where propagation failed (occlusions, disocclusions, flow errors).

        Reliable pixels keep their propagated id. Each unreliable pixel takes, among the regions
        with reliable pixels inside the ``repair_window_px`` square window around it, the one
        whose *local* mean there (box filter of the lightly blurred frame over that region's
        reliable pixels) is closest to the pixel's value; lower id on ties. Local rather than
        region-wide statistics keep textured regions (whose values span a wide range) from
        losing pixels to a neighbour. Pixels with no reliable pixel in the window keep their
        propagated id.
        """
        cur = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
        good = ~bad
        ids = np.unique(labels[good])
        if ids.size == 0:
            return labels
        k = int(self.p["repair_window_px"]) | 1
        best_cost = np.full(labels.shape, np.inf, np.float32)
        best_id = labels.copy()
        for r in ids:
            m = (good & (labels == r)).astype(np.float32)
            num = cv2.boxFilter(cur * m, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
            den = cv2.boxFilter(m, -1, (k, k), normalize=False, borderType=cv2.BORDER_CONSTANT)
            near = bad & (den > 0.5)
            cost = np.full(labels.shape, np.inf, np.float32)
            cost[near] = np.abs(cur[near] - num[near] / den[near])
            better = cost < best_cost
            best_cost[better] = cost[better]
            best_id[better] = r
        return np.where(bad, best_id, labels)

    def remove_fragments(self, labels: np.ndarray) -> np.ndarray:
        """Give small detached pieces of a region to the region around them.

        For every id, connected components (8-connectivity) other than its largest one and
        smaller than ``min_fragment_fraction`` of the frame take the most frequent id on their
        one-pixel outer ring (lowest id on ties). Larger detached pieces are kept (an object can
        be split by an occluder).
        """
        h, w = labels.shape
        limit = self.p["min_fragment_fraction"] * h * w
        out = labels.copy()
        kernel = np.ones((3, 3), np.uint8)
        for r in np.unique(labels):
            mask = (labels == r).astype(np.uint8)
            n, comp, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            if n <= 2:
                continue
            areas = st[1:, cv2.CC_STAT_AREA]
            largest = 1 + int(np.argmax(areas))
            for c in range(1, n):
                if c == largest or areas[c - 1] >= limit:
                    continue
                # the piece's bounding box grown by the ring's pixel (clipped to the frame)
                x, y, bw, bh = (int(v) for v in st[c, :4])
                win = (slice(max(y - 1, 0), min(y + bh + 1, h)),
                       slice(max(x - 1, 0), min(x + bw + 1, w)))
                piece = comp[win] == c
                ring = (cv2.dilate(piece.astype(np.uint8), kernel) > 0) & ~piece
                box = out[win]  # a view: writing it writes out
                neigh = box[ring]
                neigh = neigh[neigh != r]
                if neigh.size:
                    vals, counts = np.unique(neigh, return_counts=True)
                    box[piece] = vals[int(np.argmax(counts))]
        return out

    # Main -----------------------------------------------------------------------------------
    def segment(self, frames: Iterable[np.ndarray],
                person_mask: Callable[[np.ndarray], np.ndarray] | None = None) -> Segmentation:
        """Labels for a shot's uint8 gray frames; label stability measured with forward flow.

        The stability (see :func:`label_stability`) uses the forward flow frame t-1 -> t,
        computed separately from the backward flow the propagation uses, and is measured on
        the final labels (person region included). With ``person_mask`` the person pixels of
        each frame are overwritten with the person region *after* propagation: the underlying
        regions keep propagating beneath the person, so they reappear with their old ids when
        the person moves away.
        """
        dis_b, dis_f = self._flow(), self._flow()
        out: list[np.ndarray] = []
        prev = prev_lab = prev_final = None
        has_person = False
        next_id = 0
        survived = counted = 0
        n_reseg = 0
        for frame in frames:
            g = np.ascontiguousarray(frame, dtype=np.uint8)
            if g.ndim != 2:
                raise ValueError(f"expected gray (h, w) frames, got {g.shape}")
            if prev is None:
                lab = self.segment_frame(g).astype(np.int64)
                next_id = int(lab.max()) + 1
            else:
                if g.shape != prev.shape:
                    raise ValueError("frame size changed within the shot")
                back = dis_b.calc(g, prev, None)  # g(x) ~ prev(x + back(x))
                h, w = g.shape
                gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
                mx, my = gx + back[..., 0], gy + back[..., 1]
                lab = cv2.remap(
                    prev_lab.astype(np.float32), mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE
                ).astype(np.int64)
                # Photometric check on lightly blurred frames (film grain is not an error).
                warped = cv2.remap(cv2.GaussianBlur(prev.astype(np.float32), (0, 0), 1.0), mx, my,
                                   cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                cur = cv2.GaussianBlur(g.astype(np.float32), (0, 0), 1.0)
                ws, cs = float(warped.std()), float(cur.std())
                matched = (warped - warped.mean()) * (cs / ws if ws > 1e-3 else 1.0) + cur.mean()
                bad = np.abs(matched - cur) > self.p["photometric_tol_gray"]
                sp = self.superpixels(g) if self.p["snap_to_superpixels"] else None
                if float(bad.mean()) > self.p["reseg_fraction"]:
                    fresh = self.segment_frame(g, sp)
                    lab, next_id = self.match_ids(fresh, lab, next_id)
                    n_reseg += 1
                else:
                    if bad.any() and self.p["repair_window_px"] > 0:
                        lab = self.repair(lab, bad, g)
                    if sp is not None:
                        lab = vote_superpixels(lab, sp, ~bad)
                lab = self.remove_fragments(lab)
            if next_id > PERSON_SENTINEL:
                raise ValueError(f"more than {PERSON_SENTINEL} region ids in one shot")
            final = lab
            if person_mask is not None:
                pm = np.asarray(person_mask(g), bool)
                if pm.shape != g.shape:
                    raise ValueError(f"person mask {pm.shape} does not match the frame {g.shape}")
                if pm.any():
                    final = np.where(pm, PERSON_SENTINEL, lab)
                    has_person = True
            if prev is not None:
                fwd = dis_f.calc(prev, g, None)  # prev(x) ~ g(x + fwd(x))
                s, c = pair_stability(prev_final, final, fwd)
                survived += s
                counted += c
            out.append(final.astype(np.uint16))  # ids < next_id <= PERSON_SENTINEL
            prev, prev_lab, prev_final = g, lab, final
        if not out:
            return Segmentation(np.zeros((0, 0, 0), np.uint16), 1.0, 0)
        stability = float(survived / counted) if counted else 1.0
        labels, person_id = _renumber_frames(out, PERSON_SENTINEL if has_person else None)
        return Segmentation(labels, stability, n_reseg, person_id)


# Files -------------------------------------------------------------------------------------------
def save_labels(path: str | os.PathLike, labels: np.ndarray, person_id: int | None = None) -> Path:
    """Write ``labels`` (uint16) as a compressed ``.npz`` with keys ``labels`` and ``person_id``.

    ``person_id`` is a 0-d int32 array, -1 when there is no person region. Byte-for-byte
    deterministic (fixed zip timestamp) and atomic (temporary name, then rename). Read back
    with ``np.load(path)["labels"]`` (see :func:`load_labels`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    members = {"labels": np.ascontiguousarray(labels, dtype=np.uint16),
               "person_id": np.array(-1 if person_id is None else int(person_id), np.int32)}
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as zf:
        for name, arr in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=6)
    os.replace(tmp, path)
    return path


def load_labels(path: str | os.PathLike) -> tuple[np.ndarray, int | None]:
    """``(labels (T, h, w) uint16, person id or None)`` from a :func:`save_labels` file."""
    with np.load(path) as z:
        labels = np.asarray(z["labels"])
        pid = int(z["person_id"]) if "person_id" in z.files else -1
    return labels, (pid if pid >= 0 else None)


def overlay_image(gray: np.ndarray, labels: np.ndarray, alpha: float = 0.3,
                  person_id: int | None = None) -> np.ndarray:
    """BGR uint8 image: ``gray`` tinted per region (fixed colours by id), boundaries in red.

    The person region (``person_id``) is tinted magenta more strongly, outlined in green and
    labelled "person".
    """
    from skimage.segmentation import find_boundaries

    base = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR).astype(np.float32)
    lut = _id_colours(int(labels.max()) + 1)
    tinted = (1 - alpha) * base + alpha * lut[labels]
    person = labels == person_id if person_id is not None else None
    if person is not None and person.any():
        tinted[person] = 0.45 * base[person] + 0.55 * np.array([255.0, 0.0, 255.0], np.float32)
    out = np.clip(np.rint(tinted), 0, 255).astype(np.uint8)
    out[find_boundaries(labels, mode="inner")] = (0, 0, 255)
    if person is not None and person.any():
        out[find_boundaries(person, mode="inner")] = (0, 255, 0)
        ys, xs = np.nonzero(person)
        org = (int(xs.min()), max(int(ys.min()) - 3, 10))
        cv2.putText(out, "person", org, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1, cv2.LINE_AA)
    return out


def segment_shot(
    src: str | os.PathLike,
    start: int,
    stop: int,
    out_dir: str | os.PathLike,
    *,
    engine: str = "slic-flow",
    analysis_width_px: int = 320,
    people: bool | None = None,
    people_params: dict | None = None,
    **params,
) -> SegmentResult:
    """Segment shot ``[start, stop)`` of ``src`` into temporally consistent regions.

    Writes ``out_dir/labels.npz`` ((T, h, w) uint16 at analysis resolution, keys ``labels`` and
    ``person_id``, deflate-compressed), ``out_dir/regions.json`` (``{"regions": {"person": id},
    "n_regions", "person_fraction", "bytes_per_frame"}``) and ``out_dir/overlay.png`` (the
    middle frame with regions tinted, boundaries drawn and the person region outlined).

    Parameters
    ----------
    src : path of the source video
    start, stop : half-open frame range of the shot
    out_dir : the shot's work folder
    engine : name in :data:`SEGMENTERS`
    analysis_width_px : frames are decoded gray at this width (aspect kept)
    people : merge a person region from :class:`reel.tasks.people.PersonMasker`; None (default)
        = when MediaPipe is installed, True = required (ImportError without it), False = never
    people_params : keyword arguments of :class:`~reel.tasks.people.PersonMasker`
    **params : engine parameters

    Examples
    --------
    >>> r = segment_shot("film.mkv", 0, 96, "work/shot-0000")  # doctest: +SKIP
    >>> r.n_regions, round(r.label_stability, 2)  # doctest: +SKIP
    (9, 0.97)
    """
    from reel.tasks import media

    if stop <= start:
        raise ValueError(f"empty shot [{start}, {stop})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    segmenter = SEGMENTERS.create(engine, **params)
    describe = segmenter.describe()
    masker = None
    if people is None or people:
        from reel.tasks import people as ppl

        if people or ppl.people_available():
            masker = ppl.PersonMasker(**(people_params or {}))
            describe["params"] = {**describe["params"], "people": masker.params}
            describe["params_hash"] = params_hash(describe["params"])
            describe["weights_sha256"] = masker.weights_sha256
    mid_offset = (stop - start) // 2
    kept: dict[str, tuple[int, np.ndarray]] = {}

    def frames() -> Iterator[np.ndarray]:
        for i, f in enumerate(media.iter_frames(src, start, stop, pix_fmt="gray", width=analysis_width_px)):
            if i == mid_offset:
                kept["mid"] = (i, f)
            kept["last"] = (i, f)
            yield f

    try:
        seg = segmenter.segment(frames(), person_mask=masker.mask if masker else None)
    finally:
        if masker is not None:
            masker.close()
    n = seg.labels.shape[0]
    if n == 0:
        raise ValueError(f"{src}: no frames decoded in [{start}, {stop})")
    mid, mid_frame = kept.get("mid", kept["last"])
    labels_path = save_labels(out_dir / "labels.npz", seg.labels, seg.person_id)
    bytes_per_frame = labels_path.stat().st_size / n
    person_fraction = (float(np.mean(seg.labels == seg.person_id))
                       if seg.person_id is not None else 0.0)
    regions_path = out_dir / "regions.json"
    doc = {"regions": {"person": seg.person_id} if seg.person_id is not None else {},
           "n_regions": seg.n_regions, "person_fraction": round(person_fraction, 6),
           "people_model": masker.params if masker else None,
           "bytes_per_frame": round(bytes_per_frame, 1)}
    tmp_json = regions_path.with_name(regions_path.name + ".tmp")
    tmp_json.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_json, regions_path)
    overlay_path = out_dir / "overlay.png"
    tmp = out_dir / "overlay.tmp.png"
    if not cv2.imwrite(str(tmp), overlay_image(mid_frame, seg.labels[mid], person_id=seg.person_id)):
        raise OSError(f"could not write {overlay_path}")
    os.replace(tmp, overlay_path)
    return SegmentResult(
        labels_path=labels_path,
        overlay_path=overlay_path,
        n_regions=seg.n_regions,
        label_stability=round(seg.label_stability, 6),
        n_frames=n,
        engine=describe,
        seconds=time.perf_counter() - t0,
        person_region=seg.person_id,
        person_fraction=round(person_fraction, 6),
        bytes_per_frame=round(bytes_per_frame, 1),
        regions_path=regions_path,
    )


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Relabel to 0..K-1 in order of first appearance (C order)."""
    flat = labels.ravel()
    uniq, first = np.unique(flat, return_index=True)
    rank = np.empty(uniq.size, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(uniq.size)
    return rank[np.searchsorted(uniq, flat)].reshape(labels.shape)


def _renumber_frames(frames: list[np.ndarray], person: int | None = None) -> tuple[np.ndarray, int | None]:
    """Stack uint16 label frames, ids renumbered 0..K-1 by first appearance (frame, then raster).

    The id ``person`` (if given and present) is kept out of that order and becomes K, the
    highest id. Returns ``(labels, person id or None)``. Works frame by frame with a lookup
    table, so memory stays at the output array.
    """
    lut = np.full(65536, -1, np.int64)
    k = 0
    for f in frames:
        uniq, first = np.unique(f, return_index=True)
        keep = lut[uniq] < 0
        if person is not None:
            keep &= uniq != person
        new = uniq[keep]
        if new.size:
            for v in new[np.argsort(first[keep], kind="stable")]:
                lut[v] = k
                k += 1
    person_id = None
    if person is not None and any(bool((f == person).any()) for f in frames):
        lut[person] = person_id = k
    out = np.empty((len(frames),) + frames[0].shape, np.uint16)
    for t, f in enumerate(frames):
        out[t] = lut[f]
    return out, person_id


def _id_colours(n: int) -> np.ndarray:
    """``n`` well-spread BGR float colours (golden-ratio hues), fixed for a given id."""
    hues = (np.arange(n) * 0.6180339887) % 1.0
    hsv = np.stack([hues * 180, np.full(n, 200), np.full(n, 255)], 1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0].astype(np.float32)


__all__ = [
    "SEGMENTERS",
    "SegmentResult",
    "Segmentation",
    "Segmenter",
    "SlicFlowSegmenter",
    "label_stability",
    "load_labels",
    "PERSON_SENTINEL",
    "merge_regions",
    "overlay_image",
    "pair_stability",
    "save_labels",
    "segment_frame",
    "segment_shot",
    "superpixels",
    "vote_superpixels",
]


def _thin_task():
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(name="segment", cache_policy=NO_CACHE)(segment_shot)


segment_shot_task = _thin_task()
