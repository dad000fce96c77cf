"""``learned-fuse``: FuseNet (reel.models.fuse_net) as a fusion engine.

Per call (a window of at most ``window_frames`` consecutive frames of one shot), the whole
window goes through the network as one batch: its spectral blocks see each frame whole and its
temporal attention lets the frames of the window agree on the border. The network predicts the
blend weight only inside the edge band of the coarse mask (``band_px``,
:func:`reel.tasks.fusers.band_weight`); outside it the weight is exactly the hard mask, so the
region's core is exactly ``ab_edited`` and everything beyond the band exactly ``ab_original``
(bit for bit, the contract of every fuser). L is fused with the same weight (``fuse_lab``).

CUDA with AMP when present (``device="auto"``), else CPU with ``settings.processing.torch_threads``;
the class declares ``uses_gpu``. The shipped checkpoint refines the classical ``guided`` fuser
(``FuseConfig.prior = "input"``): its blend weight, computed by a ``guided`` engine kept across
the windows of a shot (its temporal mask stabilisation; ``reset`` resets it), is the network's
prior, so an untrained network would return ``guided`` inside the band. The network itself
carries no state between windows.

Example
-------
>>> import numpy as np
>>> from reel.tasks.fusers import FUSERS
>>> f = FUSERS.create("learned-fuse", device="cpu")
>>> L = np.full((2, 32, 40), 50, np.float32)
>>> ab0 = np.zeros((2, 32, 40, 2), np.float32); ab1 = ab0 + 10
>>> mask = np.zeros((2, 32, 40), np.float32); mask[:, :, 20:] = 1
>>> out = f.fuse_clip(L, ab0, ab1, mask)
>>> float(out[0, 0, 0, 0]), float(out[0, 0, 39, 0])
(0.0, 10.0)
"""

from __future__ import annotations

import numpy as np

from reel.models.inference import LazyNetwork, checkpoint_file
from reel.tasks.fusers import FUSERS, Fuser, band_weight, blend, check_clip

DEFAULT_CHECKPOINT = "fuse"


@FUSERS.register
class LearnedFuser(LazyNetwork, Fuser):
    """FuseNet edge-band fusion (see the module docstring).

    Parameters
    ----------
    checkpoint : str
        Shipped checkpoint name (``fuse``) or path of a ``.pt`` from ``reel train fuse``.
    device : {"auto", "cpu", "cuda"}
        Where the network runs ("auto": CUDA when present); not part of the params.
    band_px : float
        Width (pixels at the frames' resolution) of the band around the coarse mask's border
        where the network may blend (the shipped checkpoint is trained with 10).
    window_frames : int
        Frames per call (one network batch; the temporal attention spans it).
    """

    name, version = "learned-fuse", "1"
    uses_gpu = True

    def __init__(self, checkpoint: str = DEFAULT_CHECKPOINT, device: str = "auto",
                 band_px: float = 10.0, window_frames: int = 12) -> None:
        path = checkpoint_file(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(
                f"FuseNet checkpoint {path} not found; train it with `reel train fuse --out "
                f"{path.parent}` or pass checkpoint=PATH")
        if band_px <= 0 or window_frames < 1:
            raise ValueError("band_px must be > 0 and window_frames >= 1")
        super().__init__(checkpoint=str(checkpoint), band_px=float(band_px),
                         window_frames=int(window_frames))
        self.window_frames = int(window_frames)
        self._init_network(path, device)
        self._guided = None  # the classical fuser a prior='input' FuseNet refines

    def reset(self) -> None:
        if self._guided is not None:
            self._guided.reset()

    def _model_classes(self):
        from reel.models.fuse_net import FuseConfig, FuseNet

        return FuseNet, FuseConfig

    def alpha(self, L: np.ndarray, ab_original: np.ndarray, ab_edited: np.ndarray,
              mask: np.ndarray) -> np.ndarray:
        """Blend weight float32 (T, H, W) in [0, 1]: exactly the hard mask outside the band."""
        import torch

        from reel.models.device import autocast

        check_clip(L, ab_original, ab_edited, mask)
        hard = (np.asarray(mask) >= 0.5).astype(np.uint8)
        band = np.stack([band_weight(h, self.params["band_px"]) for h in hard])
        if not np.any(band > 0):
            return hard.astype(np.float32)
        net, dev = self._network()
        prior = None
        if net.config.prior == "input":
            if self._guided is None:
                self._guided = FUSERS.create("guided")
            prior = self._guided.alpha_clip(np.asarray(L, np.float32), np.asarray(mask))

        def t(x: np.ndarray, channels: bool) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(x, np.float32))
            x = x.permute(0, 3, 1, 2) if channels else x.unsqueeze(1)
            return x.unsqueeze(0).to(dev)

        with torch.inference_mode():
            with autocast(dev):
                out = net(t(L, False), t(ab_original, True), t(ab_edited, True),
                          t(mask, False), t(band, False),
                          None if prior is None else t(prior, False))
            a = out["alpha"][0, :, 0].float().cpu().numpy()
        # exact hard mask where the band weight is 0 (the network does the same; kept explicit)
        return np.where(band > 0, np.clip(a, 0.0, 1.0), hard).astype(np.float32)

    def fuse_clip(self, L, ab_original, ab_edited, mask):
        return blend(ab_original, ab_edited, self.alpha(L, ab_original, ab_edited, mask))

    def fuse_lab(self, L, L_edited, ab_original, ab_edited, mask):
        a = self.alpha(L, ab_original, ab_edited, mask)
        L_out = L if np.array_equal(L, L_edited) else blend(L, L_edited, a)
        return L_out, blend(ab_original, ab_edited, a)


__all__ = ["LearnedFuser"]
