"""``learned-harmonize``: HarmonizeNet (reel.models.harmonize_net) as a harmonization engine.

Which pixels are the *foreground* to harmonize is decided like ``palette-stats`` does (same
statistics pass and fit): the regions whose mean chroma lies farther than
``distance_threshold_ab`` from the shot's dominant chroma mode (the background) and, with a palette
(``use_palette``, default), farther than that from every palette colour too; the network decides
how much to change them.
Per frame, the network gets the frame's L and ab at ``work_width_px`` and the foreground mask,
and predicts a per-pixel gain and offset of ab (smooth fields), which are upsampled bilinearly
to the frame's size and applied to the foreground pixels only::

    ab' = ab + strength · m · (gain ⊙ ab + offset)

Pixels outside the foreground keep their chroma bit for bit; L is never changed. The network's
ConvGRU state is carried from frame to frame through the shot (reset by :meth:`fit`), so the
correction is temporally aggregated. Frames without foreground are passed through. A shot without
label maps (a single region) has no background for the attention: it falls back to the
palette-stats mean shift.

The harmonizer interface is streaming (one ``apply`` per frame, in order), so frames go through
the network one at a time (batch 1) with the recurrent state carrying the temporal context.
CUDA with AMP when present (``device="auto"``), else CPU with ``settings.processing.torch_threads``;
the class declares ``uses_gpu``.

Example
-------
>>> import numpy as np
>>> from reel.tasks.harmonize import HARMONIZERS, ShotChromaStats
>>> h = HARMONIZERS.create("learned-harmonize", device="cpu")
>>> ab = np.zeros((32, 48, 2), np.float32); ab[..., 1] = 20.0
>>> labels = np.zeros((32, 48), np.uint16); labels[8:24, 12:36] = 1; ab[8:24, 12:36] = (50, -40)
>>> s = ShotChromaStats(); s.update(ab, labels); h.fit(s)
>>> out = h.apply(np.full((32, 48), 50, np.float32), ab, labels, 0)
>>> out.shape, bool(np.array_equal(out[0, 0], ab[0, 0]))
((32, 48, 2), True)
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from reel.models.inference import LazyNetwork, checkpoint_file
from reel.tasks.harmonize import (HARMONIZERS, PaletteColors, PaletteStatsHarmonizer,
                                  ShotChromaStats)

DEFAULT_CHECKPOINT = "harmonize"


@HARMONIZERS.register
class LearnedHarmonizer(LazyNetwork, PaletteStatsHarmonizer):
    """HarmonizeNet on the out-of-place regions of a shot (see the module docstring).

    Parameters
    ----------
    checkpoint : str
        Shipped checkpoint name (``harmonize``) or path of a ``.pt`` from ``reel train harmonize``.
    device : {"auto", "cpu", "cuda"}
        Where the network runs ("auto": CUDA when present). Not part of the engine's params
        (it does not change what is computed, up to AMP rounding).
    work_width_px : int
        Width at which the network sees the frame (its corrections are smooth fields).
    strength : float in [0, 1]
        Scale of the predicted correction (1: as trained).
    distance_threshold_ab : float
        Foreground selection: regions farther than this (ab units) from the background mode.
    use_palette : bool
        Also require the region to be far from every palette colour (palette-stats' rule;
        without it, harmless regions of an over-segmentation get changed too: full-frame MSE
        119.7 vs 34.4 in ``reel benchmark harmonize``, segmentation labels).
    **params
        palette-stats' other parameters (``neutral_chroma_ab``, ``min_region_fraction``,
        ``background_label``, ``stats_max_frames``, ``analysis_width_px``).
    """

    name, version = "learned-harmonize", "1"
    uses_gpu = True

    def __init__(self, checkpoint: str = DEFAULT_CHECKPOINT, device: str = "auto",
                 work_width_px: int = 160, strength: float = 1.0,
                 distance_threshold_ab: float = 10.0, use_palette: bool = True,
                 **params: Any) -> None:
        path = checkpoint_file(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"HarmonizeNet checkpoint {path} not found; train it with `reel train harmonize "
                f"--out {path.parent}` or pass checkpoint=PATH")
        if work_width_px < 16:
            raise ValueError("work_width_px must be >= 16")
        super().__init__(strength=float(strength), distance_threshold_ab=float(distance_threshold_ab),
                         **params)
        self.params.update(checkpoint=str(checkpoint), work_width_px=int(work_width_px),
                           use_palette=bool(use_palette))
        self._init_network(path, device)
        self._hidden = None

    def _model_classes(self):
        from reel.models.harmonize_net import HarmonizeConfig, HarmonizeNet

        return HarmonizeNet, HarmonizeConfig

    def fit(self, stats: ShotChromaStats | None, palette: PaletteColors | None = None) -> None:
        super().fit(stats, palette if self.params["use_palette"] else None)
        self._hidden = None

    def foreground(self, labels: np.ndarray) -> np.ndarray:
        """bool mask (label resolution) of the regions the network harmonizes."""
        lab = np.asarray(labels).astype(np.int64, copy=False)
        ok = lab < self._adjusted.size
        return ok & self._adjusted[np.where(ok, lab, 0)]

    def apply(self, L: np.ndarray, ab: np.ndarray, labels: np.ndarray | None = None,
              t: int | None = None) -> np.ndarray:
        ab = np.asarray(ab, np.float32)
        if not self.frame_changes(labels, t):
            return ab.copy()
        if labels is None:  # one region, no background to attend to: palette mean shift
            return super().apply(L, ab, labels, t)
        import torch

        from reel.models.device import autocast

        net, dev = self._network()
        H, W = ab.shape[:2]
        fg = self.foreground(labels).astype(np.uint8)
        ww = min(W, int(self.params["work_width_px"]))
        wh = max(8, int(round(H * ww / W)))
        L_s = cv2.resize(np.asarray(L, np.float32), (ww, wh), interpolation=cv2.INTER_AREA)
        ab_s = cv2.resize(ab, (ww, wh), interpolation=cv2.INTER_AREA)
        m_s = cv2.resize(fg, (ww, wh), interpolation=cv2.INTER_NEAREST).astype(np.float32)
        with torch.inference_mode():
            Lt = torch.from_numpy(L_s)[None, None, None].to(dev)
            abt = torch.from_numpy(ab_s).permute(2, 0, 1)[None, None].to(dev)
            mt = torch.from_numpy(m_s)[None, None, None].to(dev)
            with autocast(dev):
                out = net(Lt, abt, mt, self._hidden)
            self._hidden = out["hidden"]
            gain = out["gain"][0, 0].float().permute(1, 2, 0).cpu().numpy()
            offset = out["offset"][0, 0].float().permute(1, 2, 0).cpu().numpy()
        gain = cv2.resize(gain, (W, H), interpolation=cv2.INTER_LINEAR)
        offset = cv2.resize(offset, (W, H), interpolation=cv2.INTER_LINEAR)
        m = cv2.resize(fg, (W, H), interpolation=cv2.INTER_NEAREST).astype(bool)
        res = ab.copy()
        s = np.float32(self.params["strength"])
        res[m] = ab[m] + s * (gain[m] * ab[m] + offset[m])
        return res.astype(np.float32, copy=False)


__all__ = ["LearnedHarmonizer", "checkpoint_file"]
