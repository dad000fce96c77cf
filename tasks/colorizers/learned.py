"""``learned-refcolor``: exemplar-propagate refined by RefColorNet (reel.models.refcolor_net).

The engine runs the classical ``exemplar-propagate`` (both passes, unchanged) and, for every
frame, hands the network a 3-frame window of its analysis-grid chroma, its per-pixel confidence,
the gray frames and the shot's references; the network adds a learned residual to the centre
frame's chroma, which is then upsampled (L-guided) and gamut-limited exactly like the classical
output. The network's last layer is zero-initialised, so an untrained network reproduces the
classical result exactly; the shipped checkpoint (``models/checkpoints/refcolor.pt``, trained by
``reel train refcolor``) adds what it learned on synthetic clips.

The residual is post-processed before it is added: gated by the classical confidence
(:func:`gate_residual`, ``confidence_gate``, skipped for a network that gates internally) and
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


def gate_residual(residual_ab: np.ndarray, confidence: np.ndarray, strength: float
                  ) -> np.ndarray:
    """Scale a chroma residual down where the classical engine is confident.

    Parameters
    ----------
    residual_ab : float32 (h, w, 2), Lab units
    confidence : float32 (h, w) in [0, 1], the classical engine's per-pixel confidence
    strength : float in [0, 1]
        0: no gating; 1: the residual is multiplied by ``1 - confidence`` (a fully confident
        classical pixel is kept as it is).

    Example
    -------
    >>> r = np.ones((1, 2, 2), np.float32)
    >>> gate_residual(r, np.array([[0.0, 1.0]], np.float32), 1.0)[0, :, 0].tolist()
    [1.0, 0.0]
    """
    g = np.clip(1.0 - np.float32(strength) * np.asarray(confidence, np.float32), 0.0, 1.0)
    return (np.asarray(residual_ab, np.float32) * g[..., None]).astype(np.float32)


def filter_residual(residual_ab: np.ndarray, previous_ab: np.ndarray | None,
                    motion: tuple[np.ndarray, np.ndarray] | None, blend: float) -> np.ndarray:
    """Recursive filter of a per-frame chroma residual along the flow (no flicker).

    ``out = blend · residual + (1 - blend) · warp(previous, flow)`` on pixels whose flow to the
    previous frame passes the forward-backward test, ``residual`` elsewhere (occluded or new
    content) and on a shot's first frame. The residual then moves with the content and changes
    at most by ``blend`` times its per-frame innovation, so a static scene keeps a constant
    residual and flicker is damped.

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

    Example
    -------
    >>> r0 = np.ones((2, 3, 2), np.float32)
    >>> m = (np.zeros((2, 3, 2), np.float32), np.ones((2, 3), bool))
    >>> float(filter_residual(3 * r0, r0, m, 0.25)[0, 0, 0])
    1.5
    """
    r = np.asarray(residual_ab, np.float32)
    if previous_ab is None or motion is None or blend >= 1.0:
        return r.copy()
    flow, ok = motion
    prev = warp(np.asarray(previous_ab, np.float32), np.asarray(flow, np.float32))
    b = np.float32(blend)
    mixed = b * r + (np.float32(1.0) - b) * prev
    return np.where(np.asarray(ok, bool)[..., None], mixed, r).astype(np.float32)


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
    params.setdefault("analysis_width_px", int(frames_L[0].shape[1]))
    eng = _ClassicalTap(**params)
    eng.start_shot([np.asarray(reference_lab, np.float32)])
    eng.analyse_shot(list(frames_L))
    abs_, confs = [], []
    for ab_s, _L, _Ls, c, _m, _motion in eng.tapped_render(list(frames_L)):
        abs_.append(ab_s)
        confs.append(c)
    return np.stack(abs_).astype(np.float32), np.stack(confs).astype(np.float32)


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
    confidence_gate : float in [0, 1]
        The residual is multiplied by ``1 - confidence_gate · confidence`` (the classical
        engine's per-pixel confidence): confident classical pixels are kept (0: no gating).
        Not applied again when the checkpoint's network gates internally
        (``RefColorConfig.confidence_gate > 0``).
    temporal_blend : float in (0, 1]
        The residual is filtered recursively along the classical engine's own DIS flow
        (:func:`filter_residual`): each frame contributes this fraction of its new residual
        where the flow is reliable (1: per-frame residuals, no filtering).
    network_width_px : int
        Width at which the network runs (its inputs are area-downscaled from the analysis grid
        and the residual is upsampled back); 0 runs it on the analysis grid.
    **params
        exemplar-propagate's parameters and the common ones.
    """

    name = "learned-refcolor"
    version = "2"
    uses_gpu = True
    two_pass = True

    def __init__(self, checkpoint: str = DEFAULT_CHECKPOINT, device: str = "auto",
                 batch_frames: int = 8, residual_gain: float = 1.0,
                 confidence_gate: float = 1.0, temporal_blend: float = 0.15,
                 network_width_px: int = 0, **params: Any) -> None:
        path = checkpoint_path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"RefColorNet checkpoint {path} not found; train it with "
                f"`reel train refcolor --out {path.parent}` or pass checkpoint=PATH")
        if not 0.0 <= float(confidence_gate) <= 1.0:
            raise ValueError(f"confidence_gate must be in [0, 1], got {confidence_gate}")
        if not 0.0 < float(temporal_blend) <= 1.0:
            raise ValueError(f"temporal_blend must be in (0, 1], got {temporal_blend}")
        super().__init__(checkpoint=str(checkpoint), batch_frames=int(batch_frames),
                         residual_gain=float(residual_gain),
                         confidence_gate=float(confidence_gate),
                         temporal_blend=float(temporal_blend),
                         network_width_px=int(network_width_px), **params)
        self._init_network(path, device)
        self.batch_frames = max(1, int(batch_frames))
        self.residual_gain = float(residual_gain)
        self.confidence_gate = float(confidence_gate)
        self.temporal_blend = float(temporal_blend)
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
            if self.confidence_gate > 0 and not self._network()[0].config.confidence_gate:
                r = gate_residual(r, c, self.confidence_gate)  # (a gating network gates itself)
            r = filter_residual(r, self._res_prev, motion, self.temporal_blend)
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


__all__ = ["LearnedRefColorizer", "checkpoint_path", "classical_analysis", "filter_residual",
           "gate_residual"]
