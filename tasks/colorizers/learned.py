"""``learned-refcolor``: exemplar-propagate refined by RefColorNet (reel.models.refcolor_net).

The engine runs the classical ``exemplar-propagate`` (both passes, unchanged) and, for every
frame, hands the network a 3-frame window of its analysis-grid chroma, its per-pixel confidence,
the gray frames and the shot's references; the network adds a learned residual to the centre
frame's chroma, which is then upsampled (L-guided) and gamut-limited exactly like the classical
output. The network's last layer is zero-initialised, so an untrained network reproduces the
classical result exactly; the shipped checkpoint (``models/checkpoints/refcolor.pt``, trained by
``reel train refcolor``) adds what it learned on synthetic clips.

The residual is post-processed before it is added: gated by the classical confidence
(:func:`band_gate`: none where the confidence is below ``gate_low``, ``1 - confidence`` above
``gate_high``; skipped for a network that gates internally) and
filtered recursively along the classical engine's own DIS flow (:func:`filter_residual`,
``temporal_blend``), so a per-frame residual cannot flicker: it moves with the content and
changes by at most ``temporal_blend`` times its per-frame innovation.

Frames are batched per shot (``batch_frames``); CUDA with AMP when present (``device="auto"``),
else CPU with ``settings.processing.torch_threads``; the engine class declares ``uses_gpu`` so
the flow holds a ``gpu`` slot while it runs on CUDA. Shots without references get the classical
output (gray, or palette colours) untouched.

The helper :func:`classical_analysis` (the classical engine's analysis-grid chroma and
confidence for a clip) is also what the trainer uses to build its inputs.

Example
-------
>>> import numpy as np
>>> from reel.tasks.colorizers import COLORIZERS
>>> eng = COLORIZERS.create("learned-refcolor", device="cpu")
>>> ref = np.dstack([np.full((16, 24), 50.0), np.full((16, 24), 20.0), np.zeros((16, 24))])
>>> eng.start_shot([ref.astype(np.float32)])
>>> out = list(eng.colorize_frames([np.full((16, 24), 50, np.float32)] * 3))
>>> out[0][0].shape
(16, 24, 2)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reel.models.inference import LazyNetwork, checkpoint_file
from reel.tasks.colorizers import COLORIZERS
from reel.tasks.colorizers.base import Colorizer
from reel.tasks.colorizers.exemplar import ExemplarPropagateColorizer
from reel.tasks.colorizers.flowtools import warp

DEFAULT_CHECKPOINT = "refcolor"
#: residual post-processing defaults (version 7), chosen by :func:`select_postprocess` on
#: held-out clips (synthetic from unseen stills + clips of held-out real videos; see
#: docs/models.md): the plain ``1 - confidence`` gate, no temporal filtering
GATE_LOW, GATE_HIGH, TEMPORAL_BLEND, NEW_CONTENT_BLEND = 0.0, 0.0, 1.0, 1.0


class _ClassicalTap(ExemplarPropagateColorizer):
    """exemplar-propagate whose per-frame output is intercepted *before* upsampling.

    While ``_tapping`` is set, :meth:`to_full` returns ``(ab_small, L, L_small, conf_small)``
    instead of the full-resolution chroma, so the classical engine's own render pass (with all
    its options) produces the network's inputs.
    """

    _tapping = False

    def to_full(self, ab_small, L, L_small=None):  # noqa: D401 - see class docstring
        if not self._tapping:
            return super().to_full(ab_small, L, L_small)
        if L_small is None:
            L_small = self.to_analysis(L)
        conf = getattr(self, "_conf", None)
        t = self._tap_t
        self._tap_t += 1
        c = (np.zeros(ab_small.shape[:2], np.float32) if conf is None
             else np.asarray(conf[t], np.float32))
        # the classical engine's own DIS flow t -> t-1 and its forward-backward mask
        sf = getattr(self, "_flow", None)
        motion = None
        if sf is not None and t > 0:
            motion = (sf.flow(t, -1).copy(), np.asarray(sf.ok(t, -1), bool).copy())
        return (np.asarray(ab_small, np.float32).copy(), L, L_small, c, motion)

    def tapped_render(self, frames_L: Iterable[np.ndarray]) -> Iterator[tuple]:
        """Second pass yielding ``(ab_small, L, L_small, conf_small, conf_mean, motion)`` per
        frame, ``motion`` = ``(flow to the previous frame (h, w, 2) px, bool mask of pixels
        whose flow passes the forward-backward test)`` or None on the shot's first frame
        (needs references: without them there is no analysis-grid chroma)."""
        self._tapping, self._tap_t = True, 0
        try:
            for (ab_s, L, L_s, c, motion), conf_mean in super().render_shot(frames_L):
                yield ab_s, L, L_s, c, conf_mean, motion
        finally:
            self._tapping = False


def band_gate(confidence: np.ndarray, low: float, high: float) -> np.ndarray:
    """Weight of the learned residual as a function of the classical confidence (band gate).

    ``w(c) = smoothstep((c - low) / (high - low)) · (1 - c)``: 0 where the classical engine has
    no evidence (``c <= low``: content the reference does not show, where the residual only
    copies reference colours into unseen content), ``1 - c`` where it has (``c >= high``: a
    confident classical pixel is kept), a smooth ramp between. The ramp factor is monotone in
    ``c``; the product peaks inside the band when it is wide. ``low == high`` is a step at
    ``low``; ``low = high = 0`` is the plain ``1 - c`` gate (engine version 2).

    Parameters
    ----------
    confidence : float32 (h, w) in [0, 1], the classical engine's per-pixel confidence
    low, high : float, 0 <= low <= high <= 1

    Returns
    -------
    float32 (h, w) in [0, 1]

    Example
    -------
    >>> [round(float(w), 3) for w in band_gate(np.array([0.1, 0.5, 0.8], np.float32), 0.2, 0.6)]
    [0.0, 0.422, 0.2]
    """
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    c = np.clip(np.asarray(confidence, np.float32), 0.0, 1.0)
    if high > low:
        x = np.clip((c - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
        ramp = x * x * (np.float32(3.0) - np.float32(2.0) * x)
    else:
        ramp = (c >= np.float32(low)).astype(np.float32)
    return (ramp * (np.float32(1.0) - c)).astype(np.float32)


def gate_residual(residual_ab: np.ndarray, confidence: np.ndarray, low: float, high: float
                  ) -> np.ndarray:
    """The chroma residual float32 (h, w, 2) times :func:`band_gate` ``(confidence, low, high)``.

    Example
    -------
    >>> r = np.ones((1, 2, 2), np.float32)
    >>> gate_residual(r, np.array([[0.0, 1.0]], np.float32), 0.0, 0.0)[0, :, 0].tolist()
    [1.0, 0.0]
    """
    g = band_gate(confidence, low, high)
    return (np.asarray(residual_ab, np.float32) * g[..., None]).astype(np.float32)


def filter_residual(residual_ab: np.ndarray, previous_ab: np.ndarray | None,
                    motion: tuple[np.ndarray, np.ndarray] | None, blend: float,
                    new_blend: float = 1.0) -> np.ndarray:
    """Recursive filter of a per-frame chroma residual along the flow (no flicker).

    ``out = blend · residual + (1 - blend) · warp(previous, flow)`` on pixels whose flow to the
    previous frame passes the forward-backward test, ``new_blend · residual`` elsewhere
    (occluded or new content, which has no filtered history: its history counts as 0, the
    classical result), and the plain residual on a shot's first frame. The residual then moves
    with the content and changes at most by ``blend`` times its per-frame innovation, so a
    static scene keeps a constant residual and flicker is damped; with ``new_blend < 1`` newly
    visible content fades its residual in over a few frames instead of switching it on at once.

    Parameters
    ----------
    residual_ab : float32 (h, w, 2)
        This frame's residual (Lab units).
    previous_ab : float32 (h, w, 2) or None
        The previous frame's *filtered* residual (None on the first frame of a shot).
    motion : (flow (h, w, 2) float32 px, ok (h, w) bool) or None
        Flow from this frame to the previous one (``prev(x + flow(x))`` matches ``this(x)``)
        and its validity mask.
    blend : float in (0, 1]
        Weight of the new residual (1: no filtering).
    new_blend : float in (0, 1]
        Weight of the residual on pixels without a valid flow to the previous frame (1: the
        full residual at once, engine version 3).

    Example
    -------
    >>> r0 = np.ones((2, 3, 2), np.float32)
    >>> m = (np.zeros((2, 3, 2), np.float32), np.ones((2, 3), bool))
    >>> float(filter_residual(3 * r0, r0, m, 0.25)[0, 0, 0])
    1.5
    """
    r = np.asarray(residual_ab, np.float32)
    if previous_ab is None or motion is None:
        return r.copy()
    nb = np.float32(new_blend)
    if blend >= 1.0 and new_blend >= 1.0:
        return r.copy()
    flow, ok = motion
    prev = warp(np.asarray(previous_ab, np.float32), np.asarray(flow, np.float32))
    b = np.float32(blend)
    mixed = b * r + (np.float32(1.0) - b) * prev
    return np.where(np.asarray(ok, bool)[..., None], mixed, nb * r).astype(np.float32)


def classical_analysis(frames_L: Sequence[np.ndarray], reference_lab: np.ndarray,
                       **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """exemplar-propagate's analysis-grid chroma and per-pixel confidence for a short clip.

    Parameters
    ----------
    frames_L : sequence of float32 (H, W) in [0, 100]
    reference_lab : float32 (h, w, 3)
    **params : exemplar-propagate parameters (``analysis_width_px`` defaults to the frame width,
        so the outputs have the frames' size).

    Returns
    -------
    ab : float32 (T, h, w, 2); confidence : float32 (T, h, w) in [0, 1]
    """
    ab, conf, _motions = _classical_run(frames_L, reference_lab, **params)
    return ab, conf


def _classical_run(frames_L: Sequence[np.ndarray], reference_lab: np.ndarray, **params: Any
                   ) -> tuple[np.ndarray, np.ndarray, list]:
    """:func:`classical_analysis` plus the engine's per-frame ``motion`` (see tapped_render)."""
    params.setdefault("analysis_width_px", int(frames_L[0].shape[1]))
    eng = _ClassicalTap(**params)
    eng.start_shot([np.asarray(reference_lab, np.float32)])
    eng.analyse_shot(list(frames_L))
    abs_, confs, motions = [], [], []
    for ab_s, _L, _Ls, c, _m, motion in eng.tapped_render(list(frames_L)):
        abs_.append(ab_s)
        confs.append(c)
        motions.append(motion)
    return np.stack(abs_).astype(np.float32), np.stack(confs).astype(np.float32), motions


#: Stills of the post-processing selection clips (the trainer's validation stills): neither is a
#: training still. Each clip's background is one of them and its sprite (in 70 % of the clips)
#: is cut from the other, so the sprite is content the reference may not show, as in a real shot.
SELECTION_IMAGES = ("skimage:coffee", "skimage:stereo_motorcycle")


def select_postprocess(checkpoint: str = DEFAULT_CHECKPOINT, *, clips: int = 12,
                       frames: int = 12, size: tuple[int, int] = (96, 128), seed: int = 1000,
                       late_sprite_prob: float = 0.5,
                       video_clips: int = 12, videos: Sequence[str] | None = None,
                       video_fn: Any = None,
                       bands: Sequence[tuple[float, float]] | None = None,
                       blends: Sequence[float] = (0.02, 0.05, 0.1, 0.25, 0.6, 1.0),
                       new_blends: Sequence[float] = (1.0, 0.5, 0.25),
                       progress: Any = None) -> dict[str, Any]:
    """Choose the residual gate band and temporal filter on held-out clips.

    Never looks at the benchmark videos. Two kinds of clips, pooled:

    - ``clips`` synthetic clips from :func:`reel.models.refcolor_train.build_dataset` on
      :data:`SELECTION_IMAGES` (two stills training never sees, one the background and the
      other the sprite) with ``late_sprite_prob`` of the sprites appearing only after the
      reference frame (content the reference does not show, i.e. low classical confidence);
    - ``video_clips`` clips cut from the held-out real colour videos ``videos`` (default
      :data:`reel.models.refcolor_train.VAL_VIDEOS`, fetched from Debian packages by
      ``video_fn``, default :func:`reel.tasks.samples.training_video_shots`), reference = the
      clip's first frame (:func:`reel.models.refcolor_train.build_video_dataset`).

    The real classical engine and the engine's own network call
    (:meth:`LearnedRefColorizer.raw_residuals`) produce the inputs.

    1. Gate: the band ``(low, high)`` maximising the mean RGB PSNR (MAX 255) of frames 1..T-1
       (frame 0 is the reference), residual gated, unfiltered.
    2. Temporal filter (:func:`filter_residual`), with that band: the pair ``(blend,
       new_blend)`` of the grid ``blends`` × ``new_blends`` giving the highest PSNR among those
       whose chroma warp error (:func:`reel.tasks.qc.warp_error_ab`, DIS flow on the gray
       frames) is not above the classical engine's on the same clips; if none, the lowest warp
       error.

    Returns
    -------
    dict with ``gate_low``, ``gate_high``, ``temporal_blend``, ``new_content_blend`` and the
    tables ``gates`` (band -> PSNR) and ``blend_rows`` ((blend, new_blend) -> PSNR, warp
    error), plus the classical and ungated references.

    Example (about a minute on one CPU thread)::

        python -c "from reel.tasks.colorizers.learned import report_postprocess_selection as r; r()"
    """
    from reel.models.refcolor_train import (VAL_VIDEOS, _rgb_psnr, build_dataset,
                                            build_video_dataset, concat_datasets)
    from reel.tasks.qc import warp_error_ab

    motions: list[list] = []

    def classical_fn(fr, ref):
        ab, conf, mo = _classical_run(fr, ref)
        motions.append(mo)
        return ab, conf

    data = build_dataset(SELECTION_IMAGES, clips, classical_fn, frames=frames, size=size, seed=seed,
                         late_sprite_prob=late_sprite_prob, cache_dir=None)
    n_synthetic = clips
    if video_clips > 0:
        if video_fn is None:
            from reel.tasks.samples import training_video_shots as video_fn
        shots = video_fn(tuple(videos if videos is not None else VAL_VIDEOS))
        data = concat_datasets(data, build_video_dataset(
            shots, video_clips, classical_fn, frames=frames, size=size, seed=seed + 1,
            cache_dir=None))
    clips = len(data["lab"])
    lab = data["lab"].astype(np.float32)
    ab_cls = data["ab_cls"].astype(np.float32)
    conf = data["conf"].astype(np.float32)
    eng = LearnedRefColorizer(checkpoint=checkpoint, device="cpu")
    k = eng._network()[0].config.window // 2
    raw = np.empty_like(ab_cls)
    for i in range(clips):
        eng.start_shot([lab[i, 0].copy()])
        ready = []
        for t in range(frames):
            idx = [min(max(u, 0), frames - 1) for u in range(t - k, t + k + 1)]
            ready.append((None, lab[i, idx, ..., 0], ab_cls[i, idx], conf[i, idx]))
        raw[i] = eng.raw_residuals(ready)
        if progress:
            progress(i + 1, clips)

    def psnr(ab: np.ndarray, part: range | None = None) -> float:
        return float(np.mean([_rgb_psnr(lab[i, t], ab[i, t])
                              for i in (part or range(clips)) for t in range(1, frames)]))

    def rgb_u8(i: int, ab_i: np.ndarray) -> list[np.ndarray]:
        out = []
        for t in range(frames):
            x = np.concatenate([lab[i, t, ..., :1], ab_i[t]], -1).astype(np.float32)
            out.append((np.clip(cv2.cvtColor(x, cv2.COLOR_Lab2RGB), 0, 1) * 255 + 0.5
                        ).astype(np.uint8))
        return out

    gray = [[np.round(lab[i, t, ..., 0] * 2.55).astype(np.uint8) for t in range(frames)]
            for i in range(clips)]

    def warp_err(ab: np.ndarray) -> float:
        return float(np.mean([warp_error_ab(rgb_u8(i, ab[i]), gray[i]) for i in range(clips)]))

    if bands is None:
        bands = [(0.0, 0.0)] + [(lo, hi) for lo in (0.0, 0.1, 0.2, 0.3, 0.4)
                                for hi in (0.2, 0.4, 0.6, 0.8) if hi > lo]
    gates = {}
    for lo, hi in bands:
        g = np.stack([[band_gate(conf[i, t], lo, hi) for t in range(frames)]
                      for i in range(clips)])
        gates[(lo, hi)] = (psnr(ab_cls + raw * g[..., None]), g)
    lo, hi = max(gates, key=lambda b: gates[b][0])
    g = gates[(lo, hi)][1]
    gated = raw * g[..., None]

    def filtered(b: float, nb: float) -> np.ndarray:
        filt = np.empty_like(gated)
        for i in range(clips):
            prev = None
            for t in range(frames):
                prev = filter_residual(gated[i, t], prev, motions[i][t], b, nb)
                filt[i, t] = prev
        return filt

    blend_rows = {}
    for nb in new_blends:
        for b in blends:
            out = ab_cls + filtered(b, nb)
            blend_rows[(float(b), float(nb))] = (psnr(out), warp_err(out))
    cls_we = warp_err(ab_cls)
    ok = [b for b, (_p, we) in blend_rows.items() if we <= cls_we]
    best_b, best_nb = (max(ok, key=lambda b: blend_rows[b][0]) if ok
                       else min(blend_rows, key=lambda b: blend_rows[b][1]))
    parts = {"synthetic": range(n_synthetic), "video": range(n_synthetic, clips)}
    chosen = filtered(best_b, best_nb)
    by_part = {name: {"clips": len(r), "psnr_classical": psnr(ab_cls, r),
                      "psnr_selected": psnr(ab_cls + chosen, r)}
               for name, r in parts.items() if len(r)}
    return {"gate_low": lo, "gate_high": hi, "temporal_blend": best_b,
            "new_content_blend": best_nb, "by_part": by_part,
            "psnr_classical": psnr(ab_cls), "warp_classical": cls_we,
            "psnr_ungated": psnr(ab_cls + raw),
            "low_conf_share": float((conf[:, 1:] < 0.2).mean()),
            "gates": {b: v[0] for b, v in gates.items()}, "blend_rows": blend_rows}


def report_postprocess_selection(checkpoint: str = DEFAULT_CHECKPOINT, **kwargs: Any
                                 ) -> dict[str, Any]:
    """Run :func:`select_postprocess` (1 torch thread) and print its tables; returns its dict."""
    import torch

    torch.set_num_threads(1)
    r = select_postprocess(checkpoint, **kwargs)
    print(f"classical PSNR {r['psnr_classical']:.3f} dB, warp {r['warp_classical']:.4f}; "
          f"ungated residual {r['psnr_ungated']:.3f} dB; pixels with confidence < 0.2 "
          f"(frames 1..): {r['low_conf_share']:.1%}")
    for (lo, hi), p in r["gates"].items():
        print(f"gate low={lo:.1f} high={hi:.1f}: PSNR {p:.3f} dB")
    for (b, nb), (p, we) in r["blend_rows"].items():
        print(f"temporal_blend={b:.2f} new_content_blend={nb:.2f}: PSNR {p:.3f} dB, "
              f"warp {we:.4f}")
    for name, v in r["by_part"].items():
        print(f"{name} clips ({v['clips']}): classical {v['psnr_classical']:.3f} dB, "
              f"selected {v['psnr_selected']:.3f} dB")
    print(f"selected: gate_low={r['gate_low']}, gate_high={r['gate_high']}, "
          f"temporal_blend={r['temporal_blend']}, new_content_blend={r['new_content_blend']}")
    return r


def checkpoint_path(name_or_path: str | os.PathLike | None) -> Path:
    """The shipped checkpoint ``models/checkpoints/<name>.pt`` or an explicit file path."""
    return checkpoint_file(DEFAULT_CHECKPOINT if name_or_path is None else name_or_path)


@COLORIZERS.register
class LearnedRefColorizer(LazyNetwork, _ClassicalTap):
    """exemplar-propagate + RefColorNet residual refinement (see module docstring).

    Parameters
    ----------
    checkpoint : str
        Name of a shipped checkpoint (``refcolor``) or path of a ``.pt`` written by
        ``reel train refcolor``.
    device : {"auto", "cpu", "cuda"}
        Where the network runs ("auto": CUDA when present).
    batch_frames : int
        Frames refined per network call.
    residual_gain : float
        Scale of the learned residual (0 gives exactly exemplar-propagate; 1 as trained).
    gate_low, gate_high : float, 0 <= gate_low <= gate_high <= 1
        Confidence band of the residual gate :func:`band_gate`: no residual where the classical
        confidence is <= ``gate_low``, ``(1 - confidence)`` times it above ``gate_high``
        (``0, 0``: the plain ``1 - confidence`` gate of version 2). Not applied when the
        checkpoint's network gates internally (``RefColorConfig.confidence_gate > 0``).
        Defaults selected on held-out clips (synthetic and of held-out real videos,
        :func:`select_postprocess`), not on the benchmark videos.
    temporal_blend : float in (0, 1]
        The residual is filtered recursively along the classical engine's own DIS flow
        (:func:`filter_residual`): each frame contributes this fraction of its new residual
        where the flow is reliable (1: per-frame residuals, no filtering).
    new_content_blend : float in (0, 1]
        Fraction of the residual given at once to pixels without a reliable flow to the previous
        frame (occluded or newly visible content); it then fades in at ``temporal_blend`` per
        frame (1: the full residual at once, version 3).
    network_width_px : int
        Width at which the network runs (its inputs are area-downscaled from the analysis grid
        and the residual is upsampled back); 0 runs it on the analysis grid.
    **params
        exemplar-propagate's parameters and the common ones.
    """

    name = "learned-refcolor"
    version = "7"  # version 6 was a candidate checkpoint that was not shipped
    uses_gpu = True
    two_pass = True

    def __init__(self, checkpoint: str = DEFAULT_CHECKPOINT, device: str = "auto",
                 batch_frames: int = 8, residual_gain: float = 1.0,
                 gate_low: float = GATE_LOW, gate_high: float = GATE_HIGH,
                 temporal_blend: float = TEMPORAL_BLEND,
                 new_content_blend: float = NEW_CONTENT_BLEND,
                 network_width_px: int = 0, **params: Any) -> None:
        path = checkpoint_path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"RefColorNet checkpoint {path} not found; train it with "
                f"`reel train refcolor --out {path.parent}` or pass checkpoint=PATH")
        if not 0.0 <= float(gate_low) <= float(gate_high) <= 1.0:
            raise ValueError("gate_low/gate_high must satisfy 0 <= gate_low <= gate_high <= 1, "
                             f"got {gate_low}, {gate_high}")
        if not 0.0 < float(temporal_blend) <= 1.0:
            raise ValueError(f"temporal_blend must be in (0, 1], got {temporal_blend}")
        if not 0.0 < float(new_content_blend) <= 1.0:
            raise ValueError(f"new_content_blend must be in (0, 1], got {new_content_blend}")
        super().__init__(checkpoint=str(checkpoint), batch_frames=int(batch_frames),
                         residual_gain=float(residual_gain),
                         gate_low=float(gate_low), gate_high=float(gate_high),
                         temporal_blend=float(temporal_blend),
                         new_content_blend=float(new_content_blend),
                         network_width_px=int(network_width_px), **params)
        self._init_network(path, device)
        self.batch_frames = max(1, int(batch_frames))
        self.residual_gain = float(residual_gain)
        self.gate_low, self.gate_high = float(gate_low), float(gate_high)
        self.temporal_blend = float(temporal_blend)
        self.new_content_blend = float(new_content_blend)
        self.network_width_px = max(0, int(network_width_px))
        self._res_prev: np.ndarray | None = None

    def _model_classes(self):
        from reel.models.refcolor_net import RefColorConfig, RefColorNet

        return RefColorNet, RefColorConfig

    # --- pass 2 ----------------------------------------------------------------------------------
    def render_shot(self, frames_L: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, float]]:
        if getattr(self, "_ab", None) is None or not self.references_lab:
            # no references: exactly the classical output (gray, or palette colours)
            yield from ExemplarPropagateColorizer.render_shot(self, frames_L)
            return
        net, _dev = self._network()
        k = net.config.window // 2
        self._res_prev = None  # the residual filter restarts at every shot
        items: dict[int, tuple] = {}
        ready: list[tuple] = []
        nxt = 0  # next frame to refine

        def take(t: int, last: int) -> tuple:
            idx = [min(max(u, 0), last) for u in range(t - k, t + k + 1)]
            win = [items[u] for u in idx]
            return (items[t], np.stack([w[2] for w in win]), np.stack([w[0] for w in win]),
                    np.stack([w[3] for w in win]))

        i = -1
        for i, item in enumerate(self.tapped_render(frames_L)):
            items[i] = item  # (ab_s, L, L_s, conf, conf_mean, motion)
            while nxt + k <= i:
                ready.append(take(nxt, i))
                nxt += 1
                items.pop(nxt - 1 - k, None)
                if len(ready) >= self.batch_frames:
                    yield from self._refine(ready)
                    ready = []
        while nxt <= i:
            ready.append(take(nxt, i))
            nxt += 1
            if len(ready) >= self.batch_frames:
                yield from self._refine(ready)
                ready = []
        if ready:
            yield from self._refine(ready)

    def _refine(self, ready: list[tuple]) -> Iterator[tuple[np.ndarray, float]]:
        """Run the network on a batch of windows and yield the upsampled refined chroma."""
        for (centre, *_), r in zip(ready, self.raw_residuals(ready)):
            ab_s, L, L_s, c, conf_mean, motion = centre
            r = r * np.float32(self.residual_gain)
            if not self._network()[0].config.confidence_gate:  # (a gating network gates itself)
                r = gate_residual(r, c, self.gate_low, self.gate_high)
            r = filter_residual(r, self._res_prev, motion, self.temporal_blend,
                                self.new_content_blend)
            self._res_prev = r
            yield Colorizer.to_full(self, ab_s + r, L, L_s), conf_mean

    def raw_residuals(self, ready: list[tuple]) -> np.ndarray:
        """The network's residuals float32 (B, h, w, 2) for windows ``(centre, L (T, h, w),
        ab (T, h, w, 2), conf (T, h, w))`` on the analysis grid (before gain, gate, filter)."""
        import torch

        from reel.models.device import autocast

        net, dev = self._network()
        h, w = ready[0][1].shape[1:3]
        nw = self.network_width_px
        size = (w, h) if nw <= 0 or nw >= w else (nw, max(8, int(round(h * nw / w))))

        def fit(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, np.float32)
            if x.shape[:2] == (size[1], size[0]):
                return x
            return cv2.resize(x, size, interpolation=cv2.INTER_AREA)

        def fit_all(a: np.ndarray) -> np.ndarray:
            return np.stack([fit(x) for x in a])

        ref = np.stack([fit(r) for r in self.references_lab])
        with torch.inference_mode():
            L_t = torch.from_numpy(np.stack([fit_all(r[1]) for r in ready])).unsqueeze(2).to(dev)
            ab_t = torch.from_numpy(np.stack([fit_all(r[2]) for r in ready])).permute(
                0, 1, 4, 2, 3).to(dev)
            c_t = torch.from_numpy(np.stack([fit_all(r[3]) for r in ready])).unsqueeze(2).to(dev)
            r_t = torch.from_numpy(ref).permute(0, 3, 1, 2).unsqueeze(0).to(dev)
            r_t = r_t.expand(L_t.shape[0], *r_t.shape[1:])
            with autocast(dev):
                out = net(L_t, ab_t, c_t, r_t)
            res = out["residual"].float().permute(0, 2, 3, 1).cpu().numpy()
        if size != (w, h):
            res = np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in res])
        return res.astype(np.float32)


__all__ = ["LearnedRefColorizer", "band_gate", "checkpoint_path", "classical_analysis",
           "filter_residual", "gate_residual", "report_postprocess_selection",
           "select_postprocess"]
