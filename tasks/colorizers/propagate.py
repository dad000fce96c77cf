"""``flow-propagate``: colour the key frame from the reference, then carry it by optical flow only.

The classical propagation baseline (seed note 001, §9.3 "sequential DIS-flow propagation from
the reference"): the key frame is the frame that best matches a reference
(:func:`~reel.tasks.colorizers.correspondence.select_keyframes`), coloured by the same
correspondence as ``exemplar-propagate`` uses; its ab is then warped frame by frame with DIS flow
towards both ends of the shot. No occlusion test, no re-anchoring, no fusion: whatever the flow
drags along stays. Two passes over the source (analysis, then render), analysis-resolution state
only. The per-frame confidence is the key frame's mean confidence times ``0.98^distance``
(a bookkeeping value: this engine has no per-frame evidence).

Example
-------
>>> import numpy as np
>>> from reel.tasks.colorizers import COLORIZERS
>>> from reel.tasks.colorspace import rgb_to_lab
>>> lab = rgb_to_lab(np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8))
>>> eng = COLORIZERS.create("flow-propagate")
>>> eng.start_shot([lab], None)
>>> [round(c, 3) for _, c in eng.colorize_frames([lab[..., 0]] * 3)]
[1.0, 0.98, 0.96]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from reel.tasks.colorizers import COLORIZERS
from reel.tasks.colorizers.base import Colorizer
from reel.tasks.colorizers.correspondence import (
    check_features,
    Correspondence,
    make_correspondence,
    refine_low_confidence,
    luminance_layout,
)
from reel.tasks.colorizers.exemplar import ShotFlow
from reel.tasks.colorizers.flowtools import FrameSpool, L_to_u8, ShotArrays, warp


@COLORIZERS.register
class FlowPropagateColorizer(Colorizer):
    """Key frame from the reference, then DIS-flow warping only (a baseline).

    Parameters
    ----------
    flow_preset : str
        DIS preset of the frame-to-frame flow.
    align_sigma_L, align_weight, knn_weight, knn_threshold, k_neighbors, match_bandwidth,
    max_reference_samples, position_weight, knn_stride_px, knn_eps, knn_spread_ab, features,
    refine_radius_px
        Key-frame correspondence, as in ``correspondence`` / ``exemplar-propagate``.
    max_in_memory_mb : float
        Analysis arrays beyond this go to temporary memory-mapped files.
    seed : int
        Seed of the reference subsampling.
    """

    name, version = "flow-propagate", "1"
    two_pass = True

    def __init__(
        self,
        flow_preset: str = "medium",
        align_sigma_L: float = 6.0,
        align_weight: float = 1.0,
        knn_weight: float = 0.5,
        knn_threshold: float = 0.3,
        k_neighbors: int = 4,
        match_bandwidth: float = 0.3,
        max_reference_samples: int = 10000,
        position_weight: float = 0.5,
        knn_stride_px: int = 2,
        knn_eps: float = 0.5,
        knn_spread_ab: float = 8.0,
        features: str = "handcrafted",
        refine_radius_px: int = 2,
        max_in_memory_mb: float = 256.0,
        seed: int = 0,
        **common,
    ) -> None:
        super().__init__(
            flow_preset=str(flow_preset), align_sigma_L=float(align_sigma_L),
            align_weight=float(align_weight), knn_weight=float(knn_weight),
            knn_threshold=float(knn_threshold), k_neighbors=int(k_neighbors),
            match_bandwidth=float(match_bandwidth), max_reference_samples=int(max_reference_samples),
            position_weight=float(position_weight), knn_stride_px=int(knn_stride_px),
            knn_eps=float(knn_eps), knn_spread_ab=float(knn_spread_ab), features=str(features),
            refine_radius_px=int(refine_radius_px),
            max_in_memory_mb=float(max_in_memory_mb), seed=int(seed), **common,
        )
        check_features(self, features)
        self._corr: Correspondence | None = None
        self._store: ShotArrays | None = None
        self._spool: FrameSpool | None = None
        self._ab: np.ndarray | None = None
        self._conf: list[float] = []
        self._n_frames = 0
        self.keyframe = 0

    def start_shot(
        self, references_lab: Sequence[np.ndarray], palette_lab: np.ndarray | None = None
    ) -> None:
        super().start_shot(references_lab, palette_lab)
        self._close()
        self._corr = make_correspondence(self, self.references_lab) if self.references_lab else None

    def _close(self) -> None:
        for obj in (self._store, self._spool):
            if obj is not None:
                obj.close()
        self._store = self._spool = None
        self._ab = None
        self._conf = []

    def colorize_frame(self, L: np.ndarray) -> tuple[np.ndarray, float]:
        raise TypeError("flow-propagate needs the whole shot: use colorize_frames")

    def analyse_shot(self, frames_L: Iterable[np.ndarray]) -> None:
        self._close()
        p = self.params
        if self._corr is None:
            self._n_frames = sum(1 for _ in frames_L)
            return
        self._spool = FrameSpool(max_in_memory_mb=p["max_in_memory_mb"] / 8)
        for L in frames_L:
            self._spool.append(L_to_u8(self.to_analysis(L)))
        T = self._n_frames = len(self._spool)
        if T == 0:
            return
        grays = self._spool.finish()
        self._store = store = ShotArrays(max_in_memory_mb=p["max_in_memory_mb"])
        flow = ShotFlow(grays, preset=p["flow_preset"], masks=False, store=store)
        T, h, w = grays.shape
        corr = self._corr
        corr.prepare((h, w))
        Ls = grays.astype(np.float32) * np.float32(1.0 / 2.55) if T * h * w < 2**24 else None

        def L_of(t: int) -> np.ndarray:
            return Ls[t] if Ls is not None else grays[t].astype(np.float32) * np.float32(1.0 / 2.55)

        # the single best (frame, reference) pair
        layouts = np.stack([luminance_layout(L_of(t)) for t in range(T)])
        sims = np.round(np.stack([layouts @ luminance_layout(a.L) for a in corr.aligners], axis=1), 5)
        self.keyframe = k = int(np.unravel_index(int(np.argmax(sims)), sims.shape)[0])
        ab_k, conf_k = corr.match(L_of(k), grays[k])
        ab_k = refine_low_confidence(ab_k, conf_k, L_of(k), radius_px=p["refine_radius_px"])
        c0 = float(conf_k.mean(dtype=np.float64))

        self._ab = ab_out = store.alloc("ab", (T, h, w, 2), np.float16, fill=None)
        ab_out[k] = ab_k
        for direction in (+1, -1):
            ab, t = ab_k, k + direction
            while 0 <= t < T:
                ab = warp(ab, flow.flow(t, -direction))
                ab_out[t] = ab
                t += direction
        self._conf = [c0 * 0.98 ** abs(t - k) for t in range(T)]
        for name in ("to_prev", "to_next"):  # only ab is needed to render
            store.arrays.pop(name, None)

    def render_shot(self, frames_L: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, float]]:
        try:
            n = 0
            for t, L in enumerate(frames_L):
                if t >= self._n_frames:
                    raise ValueError(f"render pass got more frames than the analysis pass "
                                     f"({self._n_frames})")
                n += 1
                if self._ab is None:
                    yield self.neutral(L), 0.0
                    continue
                yield self.to_full(self._ab[t].astype(np.float32), L, self.to_analysis(L)), self._conf[t]
            if n != self._n_frames:
                raise ValueError(f"render pass got {n} frames, the analysis pass {self._n_frames}")
        finally:
            self._close()
