"""``exemplar-propagate``: reference correspondence + bidirectional optical-flow propagation.

The CPU winner of the measured classical baselines (seed note 001, §9.3) is DIS-flow propagation
from a coloured key frame; correspondence to the reference is the robust fallback where flow
fails (occlusions, new content, drift). This engine combines them over the whole shot, at the
analysis resolution, in two passes over the source (so memory stays bounded at any frame size):

**Analysis pass** (:meth:`ExemplarPropagateColorizer.analyse_shot`), every frame at analysis size:

1. *Flow.* DIS optical flow between consecutive frames, both directions, and the
   forward–backward consistency masks (Ruder et al. 2016) that mark occlusions.
2. *Key frames.* For each reference, the frame whose luminance layout correlates best with it
   (not necessarily frame 0; :func:`~reel.tasks.colorizers.correspondence.select_keyframes`).
3. *Reference evidence.* From each key frame outward in both directions, every frame is aligned
   to the reference with DIS flow seeded by the flow composed along the shot
   (``frame → neighbour → reference``) and refined against the reference itself, so the link to
   the reference never accumulates drift; confidence = forward–backward consistency × photometric
   agreement (:class:`~reel.tasks.colorizers.correspondence.ReferenceAligner`). When a tracked
   alignment loses more than half of the key frame's confidence, an untracked alignment is tried
   too and the better one kept per pixel (re-acquisition). Where the alignment is weak, feature
   matching on multi-scale luminance features adds lower-weighted evidence on every
   ``knn_every_frames``-th frame and on key frames.
4. *Bidirectional propagation.* A forward recursion carries colour and confidence from frame to
   frame along the flow (confidence × ``propagation_decay`` per frame, 0 where the
   forward–backward check fails) and fuses it with each frame's reference evidence by confidence:
   ``ab = (w_ref ab_ref + c_prop ab_prop) / (w_ref + c_prop)``; a backward recursion does the same
   from the last frame; the two are fused by confidence. Colour from the reference therefore
   re-anchors every frame where it is trustworthy, and propagation carries it through occlusions
   and content the reference lacks, from whichever side saw it last.
5. *Edge-aware refinement.* Pixels with low final confidence take the L-guided average of their
   confident neighbours (:func:`~reel.tasks.colorizers.correspondence.refine_low_confidence`).

**Render pass** (:meth:`ExemplarPropagateColorizer.render_shot`): a flow-guided temporal
smoothing over the frame and its two neighbours *inside the shot* (nothing bleeds across the shot's
ends), then L-guided upsampling of ab to full resolution and gamut limiting
(:meth:`~reel.tasks.colorizers.base.Colorizer.to_full`). The output's L is the source's L.

**Palette constraint** (optional; notes 003 §9.1). With a shot palette (``start_shot``'s
``palette_lab``/weights), ``palette_strength > 0`` pulls the chroma of low-confidence pixels
toward the palette colour their luminance selects (:func:`~reel.tasks.colorizers.base.palette_chroma`:
soft assignment in L after remapping the shot's L statistics to the palette's), with weight
``palette_strength · clip(1 − confidence / palette_low_confidence, 0, 1)``
(:func:`~reel.tasks.colorizers.base.pull_to_palette`), on the analysis grid before upsampling.
``palette_fill > 0`` colours shots *without references* that way (confidence 0 everywhere,
computed directly at full resolution since it depends on L only) instead of leaving them gray;
their reported confidence stays 0. With both at 0, or without a
palette, the output is exactly the engine's output without this feature.

Analysis arrays (a few bytes per analysis pixel and frame) stay in memory up to
``max_in_memory_mb``, beyond that in temporary memory-mapped files. Without references the engine
outputs gray with confidence 0. The per-frame confidence is the mean of the final per-pixel map.

Example
-------
>>> import numpy as np
>>> from reel.tasks.colorizers import COLORIZERS
>>> from reel.tasks.colorspace import rgb_to_lab
>>> rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
>>> lab = rgb_to_lab(rgb)
>>> eng = COLORIZERS.create("exemplar-propagate")
>>> eng.start_shot([lab], None)
>>> out = list(eng.colorize_frames([lab[..., 0], lab[..., 0]]))
>>> out[0][0].shape, all(0.0 < c <= 1.0 for _, c in out)
((48, 64, 2), True)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from reel.tasks.colorizers import COLORIZERS
from reel.tasks.colorizers.base import (
    Colorizer,
    limit_chroma_to_gamut,
    palette_chroma,
    pull_to_palette,
)
from reel.tasks.colorizers.correspondence import (  # noqa: F401  (re-exported)
    check_features,
    Alignment,
    Correspondence,
    ReferenceMatcher,
    confidence_fill,
    exemplar_features,
    make_correspondence,
    normalise_weighted,
    refine_low_confidence,
    select_keyframes,
)
from reel.tasks.colorizers.flowtools import (
    FrameSpool,
    L_to_u8,
    ShotArrays,
    compose,
    dis_flow,
    fb_consistent,
    make_dis,
    warp,
)


def flow_consistency(flow_back: np.ndarray, flow_fwd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward-warp sampling map and validity mask of a backward flow.

    ``flow_back`` maps frame t to t-1 (``I_t(x) ~ I_{t-1}(x + flow_back(x))``), ``flow_fwd`` maps
    t-1 to t. Returns the remap coordinates (h, w, 2) float32 and a bool mask of pixels that
    land inside frame t-1 and pass the forward-backward test of Ruder et al. (2016).
    """
    h, w = flow_back.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_xy = np.dstack([xx + flow_back[..., 0], yy + flow_back[..., 1]])
    return map_xy, fb_consistent(flow_back, flow_fwd)


#: Smallest confidence of colour that derives from any evidence (see ``_step``).
GROUNDED_FLOOR = 1e-3


class ShotFlow:
    """Analysis-resolution gray frames of a shot and the DIS flows between neighbours.

    ``gray[t]`` uint8 (h, w); ``to_prev[t]`` (t ≥ 1) flow from frame t to t-1 and ``to_next[t]``
    (t ≤ T-2) flow from t to t+1, float16 (h, w, 2); with ``masks``: ``ok_prev[t]`` (pixels of t
    whose flow to t-1 passes the forward–backward test) and ``ok_next[t]``, bool.

    Example
    -------
    >>> fr = [np.full((16, 16), v, np.uint8) for v in (10, 20, 30)]
    >>> sf = ShotFlow(fr)
    >>> sf.T, sf.to_prev.shape, bool(sf.ok_next[0].all())
    (3, (3, 16, 16, 2), True)
    >>> sf.close()
    """

    def __init__(self, grays: np.ndarray | Sequence[np.ndarray], *, preset: str = "medium",
                 masks: bool = True, store: ShotArrays | None = None) -> None:
        self.store = store if store is not None else ShotArrays()
        self.gray = grays if isinstance(grays, np.ndarray) else np.stack(grays)
        T, h, w = self.gray.shape
        self.T = T
        self.to_prev = self.store.alloc("to_prev", (T, h, w, 2), np.float16)
        self.to_next = self.store.alloc("to_next", (T, h, w, 2), np.float16)
        self.ok_prev = self.store.alloc("ok_prev", (T, h, w), np.bool_, fill=False) if masks else None
        self.ok_next = self.store.alloc("ok_next", (T, h, w), np.bool_, fill=False) if masks else None
        dis = make_dis(preset)
        for t in range(T - 1):
            a, b = self.gray[t], self.gray[t + 1]
            fwd = dis_flow(a, b, dis=dis)  # t -> t+1
            bwd = dis_flow(b, a, dis=dis)  # t+1 -> t
            self.to_next[t] = fwd
            self.to_prev[t + 1] = bwd
            if masks:
                self.ok_next[t] = fb_consistent(fwd, bwd)
                self.ok_prev[t + 1] = fb_consistent(bwd, fwd)

    def flow(self, t: int, direction: int) -> np.ndarray:
        """Flow from frame t to t + direction (direction ±1), float32."""
        return np.asarray(self.to_next[t] if direction > 0 else self.to_prev[t], np.float32)

    def ok(self, t: int, direction: int) -> np.ndarray:
        return self.ok_next[t] if direction > 0 else self.ok_prev[t]

    def close(self) -> None:
        self.store.close()


@COLORIZERS.register
class ExemplarPropagateColorizer(Colorizer):
    """Reference correspondence + bidirectional DIS-flow propagation (see the module docstring).

    Parameters
    ----------
    align_sigma_L : float
        L tolerance (L* units) of the reference alignment's photometric confidence.
    align_weight : float
        Weight of the reference alignment against propagated colour (confidence 1 each).
    knn_weight, knn_threshold : float
        Weight of feature matches, and the weight (reference evidence + propagated confidence)
        below which a pixel is matched.
    knn_every_frames : int
        Feature matching runs on key frames and every n-th frame (0: key frames only); colour
        found there propagates to the frames between. -1 (default) picks 0 for hand-crafted
        features and 4 for ``efficientnet-lite0``: on the colorization benchmark, hand-crafted
        matches on content the reference does not show were worse than the colour propagation
        drags in from the neighbourhood (bigbuckbunny −3 dB, bikes +0.7 dB), ImageNet ones better.
    k_neighbors, match_bandwidth, max_reference_samples, position_weight, knn_stride_px, knn_eps,
    knn_spread_ab, features
        Feature matcher (:class:`~reel.tasks.colorizers.correspondence.ReferenceMatcher`;
        ``knn_spread_ab`` is its ``spread_ab``).
    propagation_decay : float
        Factor applied to propagated confidence per frame (older colour counts less).
    unverified_weight : float
        Factor on the propagated confidence of pixels whose flow fails the forward–backward test
        (occluded, entering the frame): small, so such colour yields to any real evidence, but
        above 0, so it still wins over colour that was never grounded in any evidence.
    reacquire_ratio : float
        Try an untracked alignment when a frame's mean alignment confidence falls below this
        fraction of its key frame's (0 disables).
    track_min_ratio : float
        A reference is tracked through the shot only when its key-frame alignment's mean
        confidence reaches this fraction of the best reference's (0: track every reference);
        the others give evidence at their key frame only (and to the feature matcher). Tracking
        is the engine's main cost (two DIS flows per frame and reference), and a reference the
        shot does not show aligns nowhere: on the bikes sample the ranker's 2nd and 3rd
        references align with mean confidence 0.00-0.04 against 0.99 for the right one, and
        tracking them cost 40 % of the engine's CPU time and 0.4 dB of PSNR (docs/stages.md,
        Colorization).
    refine_radius_px : int
        Radius (analysis pixels) of the edge-aware refinement of unconfident pixels.
    temporal_weight : float
        Weight of each flow-warped neighbour in the render-time temporal smoothing (0 disables).
    flow_preset : str
        DIS preset for all flows (``ultrafast``, ``fast``, ``medium``).
    max_in_memory_mb : float
        Analysis arrays beyond this go to temporary memory-mapped files.
    seed : int
        Seed of the reference subsampling.
    palette_strength : float
        Pull of low-confidence chroma toward the palette in shots with references (0: off).
    palette_low_confidence : float
        Confidence at and above which pixels are not pulled (1: weight ``strength·(1−conf)``).
    palette_fill : float
        Chroma gain of the palette colours in shots without references (0: gray, as before).
    palette_sigma_L : float
        L tolerance (L* units) of the palette's soft assignment (notes 003 §9.1 suggest ≈10;
        5 keeps reference-less shots more colourful: Calais shot 0, colourfulness 18.5 vs 7.0
        and palette coverage 0.67 vs 0.40).
    **common
        ``analysis_width_px``, ``guided_radius_px``, ``guided_eps`` (see :class:`Colorizer`).
    """

    name, version = "exemplar-propagate", "3"
    two_pass = True

    def __init__(
        self,
        align_sigma_L: float = 6.0,
        align_weight: float = 1.0,
        knn_weight: float = 0.5,
        knn_threshold: float = 0.3,
        knn_every_frames: int = -1,
        k_neighbors: int = 4,
        match_bandwidth: float = 0.3,
        max_reference_samples: int = 10000,
        position_weight: float = 0.5,
        knn_stride_px: int = 2,
        knn_eps: float = 0.5,
        knn_spread_ab: float = 8.0,
        features: str = "handcrafted",
        propagation_decay: float = 0.95,
        reacquire_ratio: float = 0.5,
        track_min_ratio: float = 0.1,
        unverified_weight: float = 0.05,
        refine_radius_px: int = 2,
        temporal_weight: float = 0.5,
        flow_preset: str = "medium",
        max_in_memory_mb: float = 256.0,
        seed: int = 0,
        palette_strength: float = 0.0,
        palette_low_confidence: float = 1.0,
        palette_fill: float = 1.0,
        palette_sigma_L: float = 5.0,
        **common,
    ) -> None:
        super().__init__(
            align_sigma_L=float(align_sigma_L), align_weight=float(align_weight),
            knn_weight=float(knn_weight), knn_threshold=float(knn_threshold),
            knn_every_frames=int(knn_every_frames), k_neighbors=int(k_neighbors),
            match_bandwidth=float(match_bandwidth), max_reference_samples=int(max_reference_samples),
            position_weight=float(position_weight), knn_stride_px=int(knn_stride_px),
            knn_eps=float(knn_eps), knn_spread_ab=float(knn_spread_ab), features=str(features),
            propagation_decay=float(propagation_decay), reacquire_ratio=float(reacquire_ratio),
            track_min_ratio=float(track_min_ratio), unverified_weight=float(unverified_weight),
            refine_radius_px=int(refine_radius_px), temporal_weight=float(temporal_weight),
            flow_preset=str(flow_preset), max_in_memory_mb=float(max_in_memory_mb), seed=int(seed),
            palette_strength=float(palette_strength),
            palette_low_confidence=float(palette_low_confidence),
            palette_fill=float(palette_fill), palette_sigma_L=float(palette_sigma_L),
            **common,
        )
        check_features(self, features)
        self._corr: Correspondence | None = None
        self._reset_state()

    # --- per-shot state -------------------------------------------------------------------------
    def _reset_state(self) -> None:
        if getattr(self, "_flow", None) is not None:
            self._flow.close()
        if getattr(self, "_spool", None) is not None:
            self._spool.close()
        self._flow: ShotFlow | None = None
        self._spool: FrameSpool | None = None
        self._ab: np.ndarray | None = None
        self._conf: np.ndarray | None = None
        self._conf_mean: np.ndarray | None = None
        self._knn = None
        self._knn_frames: set[int] = set()
        self._n_frames = 0
        self._L_stats: tuple[float, float] | None = None
        #: per reference of the current shot: tracked beyond its key frame (``track_min_ratio``)
        self.tracked: list[bool] = []
        self.keyframes: list[int] = []

    def start_shot(
        self, references_lab: Sequence[np.ndarray], palette_lab: np.ndarray | None = None,
        palette_weights: np.ndarray | None = None,
    ) -> None:
        super().start_shot(references_lab, palette_lab, palette_weights)
        self._reset_state()
        self._corr = make_correspondence(self, self.references_lab) if self.references_lab else None

    def colorize_frame(self, L: np.ndarray) -> tuple[np.ndarray, float]:
        raise TypeError("exemplar-propagate needs the whole shot: use colorize_frames or "
                        "analyse_shot + render_shot")

    # --- pass 1 ---------------------------------------------------------------------------------
    def analyse_shot(self, frames_L: Iterable[np.ndarray]) -> None:
        self._reset_state()
        p = self.params
        if self._corr is None:  # gray output: only count the frames
            if self._palette_on(p["palette_fill"]):  # ... or palette colours: L statistics too
                acc = np.zeros(3)
                for L in frames_L:
                    La = self.to_analysis(L).astype(np.float64)
                    acc += (1.0, La.mean(), (La * La).mean())
                    self._n_frames += 1
                self._set_L_stats(acc)
            else:
                self._n_frames = sum(1 for _ in frames_L)
            return
        self._spool = FrameSpool(max_in_memory_mb=p["max_in_memory_mb"] / 8)
        for L in frames_L:
            self._spool.append(L_to_u8(self.to_analysis(L)))
        self._n_frames = len(self._spool)
        if self._n_frames == 0:
            return
        grays = self._spool.finish()
        if self._palette_on(p["palette_strength"]):
            acc = np.zeros(3)
            for g in grays:
                La = g.astype(np.float64) * (1.0 / 2.55)
                acc += (1.0, La.mean(), (La * La).mean())
            self._set_L_stats(acc)
        store = ShotArrays(max_in_memory_mb=p["max_in_memory_mb"])
        self._flow = flow = ShotFlow(grays, preset=p["flow_preset"], store=store)
        T, h, w = grays.shape
        corr = self._corr
        corr.prepare((h, w))

        def L_of(t: int) -> np.ndarray:
            return grays[t].astype(np.float32) * np.float32(1.0 / 2.55)

        # 2. key frames
        refs_L = [a.L for a in corr.aligners]
        self.keyframes = (select_keyframes([L_of(t) for t in range(T)], refs_L) if T > 1
                          else [0] * len(refs_L))

        # 3. reference evidence: weighted ab sum and weight per frame
        ev_num = store.alloc("ev_num", (T, h, w, 2), np.float32)
        ev_w = store.alloc("ev_w", (T, h, w), np.float32)
        keys = [aligner.align(grays[k], L_of(k)) for aligner, k in zip(corr.aligners, self.keyframes)]
        key_conf = [float(a.conf.mean(dtype=np.float64)) for a in keys]
        floor = p["track_min_ratio"] * max(key_conf, default=0.0)
        self.tracked = [c >= floor for c in key_conf]
        for aligner, k, key, tracked in zip(corr.aligners, self.keyframes, keys, self.tracked):
            self._track_reference(aligner, k, key, grays, L_of, ev_num, ev_w, tracked=tracked)

        # feature matches, computed on demand for pixels that nothing else explains
        if corr.matcher is not None:
            self._knn = (store.alloc("knn_ab", (T, h, w, 2), np.float16),
                         store.alloc("knn_c", (T, h, w), np.float16),
                         store.alloc("knn_done", (T, h, w), np.bool_, fill=False))
        every, k0 = p["knn_every_frames"], min(self.keyframes)
        if every < 0:  # auto: see the parameter's documentation
            every = 0 if p["features"] == "handcrafted" else 4
        self._knn_frames = {t for t in range(T) if t in self.keyframes
                            or (every > 0 and (t - k0) % every == 0)}
        self._L_of = L_of

        # 4. forward and backward recursions, fused by confidence
        self._ab = ab_out = store.alloc("ab", (T, h, w, 2), np.float16)
        self._conf = c_out = store.alloc("conf", (T, h, w), np.float16)
        decay = np.float32(p["propagation_decay"])
        self._unverified = float(p["unverified_weight"])
        state = None
        for t in range(T):  # forward
            state = self._step(state, t, -1, ev_num[t], ev_w[t], decay)
            ab_out[t], c_out[t] = state
        state = None
        self._conf_mean = np.zeros(T, np.float64)
        for t in range(T - 1, -1, -1):  # backward, then fuse with the forward result
            state = self._step(state, t, +1, ev_num[t], ev_w[t], decay)
            ab_f, c_f = ab_out[t].astype(np.float32), c_out[t].astype(np.float32)
            ab_b, c_b = state
            tot = c_f + c_b
            fused = (c_f[..., None] * ab_f + c_b[..., None] * ab_b) / np.maximum(tot, 1e-6)[..., None]
            ab = np.where((tot > 1e-6)[..., None], fused, 0.5 * (ab_f + ab_b))
            conf = np.maximum(c_f, c_b)
            ab = refine_low_confidence(ab, conf, L_of(t), radius_px=p["refine_radius_px"])
            ab_out[t], c_out[t] = ab, conf
            self._conf_mean[t] = float(conf.mean(dtype=np.float64))
        for name in ("ev_num", "ev_w", "knn_ab", "knn_c", "knn_done"):
            store.arrays.pop(name, None)
        self._knn = None

    def _track_reference(self, aligner, k: int, key: Alignment, grays, L_of, ev_num, ev_w, *,
                         tracked: bool = True) -> None:
        """Add one reference's evidence: its key-frame alignment ``key`` (frame ``k``) and, when
        ``tracked``, every other frame aligned by tracking outward from ``k``."""
        flow, T = self._flow, self._flow.T
        wa = np.float32(self._corr.align_weight)
        ratio = self.params["reacquire_ratio"]

        def add(t: int, al: Alignment) -> None:
            c = wa * al.conf
            ev_num[t] += c[..., None] * al.ab
            ev_w[t] += c

        add(k, key)
        key_conf = float(key.conf.mean(dtype=np.float64))
        for direction in ((+1, -1) if tracked else ()):
            prev, t = key, k + direction
            while 0 <= t < T:
                # the flow from t to its predecessor (the frame we come from) and back
                f_back = flow.flow(t, -direction)
                f_fwd = flow.flow(t - direction, direction)
                al = aligner.align(grays[t], L_of(t), compose(f_back, prev.flow_to_ref),
                                   compose(prev.flow_from_ref, f_fwd))
                if ratio > 0 and float(al.conf.mean(dtype=np.float64)) < ratio * key_conf:
                    fresh = aligner.align(grays[t], L_of(t))
                    better = fresh.conf > al.conf
                    if better.any():
                        b = better[..., None]
                        al = Alignment(np.where(b, fresh.ab, al.ab),
                                       np.maximum(fresh.conf, al.conf),
                                       np.where(b, fresh.flow_to_ref, al.flow_to_ref),
                                       np.where(b, fresh.flow_from_ref, al.flow_from_ref))
                add(t, al)
                prev, t = al, t + direction

    def _step(self, state, t: int, towards: int, ev_num, ev_w, decay):
        """One recursion step at frame t: propagate ``state`` from frame ``t + towards`` and fuse
        it with the reference evidence (and feature matches where neither explains a pixel)."""
        num = np.array(ev_num, np.float32)
        w_e = np.array(ev_w, np.float32)
        if state is None:
            ab_p = None
            c_p = np.zeros_like(w_e)
        else:
            ab_s, c_s = state
            f = self._flow.flow(t, towards)          # t -> the frame the state lives on
            ab_p = warp(ab_s, f)
            # colour whose flow fails the forward-backward test keeps a trace of confidence: it
            # still beats colour that was never grounded (e.g. a pass starting without evidence)
            ok = self._flow.ok(t, towards)
            c_w = warp(c_s, f)
            c_p = c_w * decay * np.where(ok, np.float32(1.0), np.float32(self._unverified))
            # grounded colour never decays to nothing (a chain of failures at a frame border
            # would otherwise underflow to 0 and lose to ungrounded colour)
            c_p = np.where(c_w > 0, np.maximum(c_p, np.float32(GROUNDED_FLOOR)), np.float32(0.0))
        conf = np.maximum(np.minimum(w_e, 1.0), c_p)
        wk = self._knn_weight(t, w_e + c_p)
        if wk is not None:
            num += wk[..., None] * self._knn[0][t].astype(np.float32)
            w_e += wk
            conf = np.maximum(conf, wk)
        tot = w_e + c_p
        if ab_p is None:
            ab, _ = normalise_weighted(num, w_e)
            return ab, conf.astype(np.float32)
        ab = np.where((tot > 1e-6)[..., None],
                      (num + c_p[..., None] * ab_p) / np.maximum(tot, 1e-6)[..., None], ab_p)
        return ab.astype(np.float32), conf.astype(np.float32)

    def _knn_weight(self, t: int, weight: np.ndarray) -> np.ndarray | None:
        """Weight of frame t's feature matches at pixels whose ``weight`` is below the
        threshold (matching the ones not matched yet), or None."""
        corr = self._corr
        if self._knn is None or t not in self._knn_frames:
            return None
        lost = weight < corr.knn_threshold
        if not lost.any():
            return None
        ab_k, c_k, done = self._knn[0], self._knn[1], self._knn[2]
        todo = lost & ~done[t]
        if todo.any():
            ab_new, c_new = corr.matcher.match(self._L_of(t), where=todo)
            ab_k[t][todo] = ab_new[todo]
            c_k[t][todo] = c_new[todo]
            done[t] |= todo
        return np.float32(corr.knn_weight) * c_k[t].astype(np.float32) * lost

    # --- pass 2 ---------------------------------------------------------------------------------
    def render_shot(self, frames_L: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, float]]:
        try:
            n = 0
            for t, L in enumerate(frames_L):
                if t >= self._n_frames:
                    raise ValueError(f"render pass got more frames than the analysis pass "
                                     f"({self._n_frames})")
                n += 1
                if self._ab is None:
                    if self._L_stats is not None:  # no references: palette colours (conf 0),
                        # a function of L, so computed at full resolution (no upsampling)
                        ab = self._palette_ab(L) * np.float32(self.params["palette_fill"])
                        yield limit_chroma_to_gamut(L, ab), 0.0
                    else:
                        yield self.neutral(L), 0.0
                    continue
                ab = self._smoothed(t)
                La = self.to_analysis(L)
                if self._L_stats is not None:  # palette constraint on low-confidence pixels
                    ab = pull_to_palette(ab, self._conf[t].astype(np.float32), self._palette_ab(La),
                                         strength=self.params["palette_strength"],
                                         low_confidence=self.params["palette_low_confidence"])
                yield self.to_full(ab, L, La), float(self._conf_mean[t])
            if n != self._n_frames:
                raise ValueError(f"render pass got {n} frames, the analysis pass {self._n_frames}")
        finally:
            self._reset_state()

    # --- palette constraint -----------------------------------------------------------------------
    def _palette_on(self, amount: float) -> bool:
        return amount > 0 and self.palette_lab is not None and len(self.palette_lab) > 0

    def _set_L_stats(self, acc: np.ndarray) -> None:
        """Shot L mean and std from accumulated (frames, Σ mean, Σ mean of squares)."""
        if acc[0] <= 0:
            return
        mean = acc[1] / acc[0]
        self._L_stats = (float(mean), float(np.sqrt(max(acc[2] / acc[0] - mean * mean, 0.0))))

    def _palette_ab(self, La: np.ndarray) -> np.ndarray:
        return palette_chroma(La, self.palette_lab, self.palette_weights,
                              sigma_L=self.params["palette_sigma_L"], L_stats=self._L_stats)

    def _smoothed(self, t: int) -> np.ndarray:
        """Frame t's ab averaged with its flow-warped neighbours inside the shot."""
        ab = self._ab[t].astype(np.float32)
        a = np.float32(self.params["temporal_weight"])
        if a <= 0 or self._flow is None:
            return ab
        num = ab.copy()
        den = np.ones(ab.shape[:2], np.float32)
        for d in (-1, +1):
            u = t + d
            if 0 <= u < self._flow.T:
                wgt = a * self._flow.ok(t, d).astype(np.float32)
                num += wgt[..., None] * warp(self._ab[u].astype(np.float32), self._flow.flow(t, d))
                den += wgt
        return num / den[..., None]
