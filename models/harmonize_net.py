"""HarmonizeNet: learned spatio-temporal harmonization of a foreground region's chroma.

Seed: spatio-temporal harmonization (notes seeds/002 §2–§4, §8). A composite frame has a
foreground region (``mask`` = 1) whose colours do not match the background. The network
predicts, per pixel of the foreground, an affine correction of the chroma
``ab' = ab + m · (g ⊙ ab + o)`` (``g``: gain − 1, ``o``: offset, per channel a and b), from:

- **multiscale non-local fg/bg attention**: at 1/4 and 1/8 of the frame, every position attends
  to the *background* tokens (1/8 grid) only — the attention logits carry ``log(1 − m_key)``,
  so foreground keys get (almost) no weight — and adds what it gathered to its features. This is
  how a foreground pixel "looks up" the scene colours it must agree with;
- **masked statistics**: per frame, the mean and std of a, b over the foreground and over the
  background (8 numbers, the Reinhard ingredients) modulate the 1/8 features (FiLM);
- **temporal aggregator**: a ConvGRU at 1/8 runs over the frames in order, so the correction of
  frame t depends on frames ≤ t (the same state is carried frame by frame by the streaming
  engine ``learned-harmonize``; a clip passed at once gives the same result);
- a U-Net decoder 1/8 → 1/4 → 1/2 whose last conv is **zero-initialised**: at initialisation
  ``g = o = 0`` and the network returns its input composite exactly.

Units: ``L`` in [0, 100], ``ab`` in Lab units, ``mask`` in [0, 1]; inside, L/50 − 1 and
ab/``ab_scale``. Pixels outside the mask are returned bit-identical. Sizes need not be
multiples of 8 (edge-padded inside).

Example
-------
>>> import torch
>>> net = HarmonizeNet(HarmonizeConfig())
>>> L = torch.rand(1, 2, 1, 24, 32) * 100
>>> ab = torch.randn(1, 2, 2, 24, 32) * 20
>>> m = torch.zeros(1, 2, 1, 24, 32); m[..., 8:16, 8:20] = 1
>>> out = net(L, ab, m)
>>> out["ab"].shape, bool(torch.equal(out["ab"], ab))
(torch.Size([1, 2, 2, 24, 32]), True)
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class HarmonizeConfig:
    """Widths and sizes of :class:`HarmonizeNet`.

    Parameters
    ----------
    widths : (int, int, int)
        Channels at 1/2, 1/4 and 1/8 of the frame.
    attn_dim : int
        Query/key dimension of the fg/bg attention (both scales).
    ab_scale : float
        ab units mapped to 1 inside the network (and of the predicted offset).
    max_gain : float
        Bound of the predicted gain − 1 (tanh-limited), per channel.
    """

    widths: tuple[int, int, int] = (12, 16, 24)
    attn_dim: int = 12
    ab_scale: float = 64.0
    max_gain: float = 1.0

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError("widths must be three positive channel counts")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.GELU())


def masked_stats(ab: torch.Tensor, mask: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean and std of a, b over the foreground and the background, per sample.

    ``ab`` (N, 2, H, W), ``mask`` (N, 1, H, W) in [0, 1] -> (N, 8): fg mean a, b, fg std a, b,
    bg mean a, b, bg std a, b (in the units of ``ab``).

    >>> ab = torch.zeros(1, 2, 2, 2); ab[0, 0, 0, 0] = 4.0
    >>> m = torch.zeros(1, 1, 2, 2); m[0, 0, 0, 0] = 1
    >>> [round(v, 2) for v in masked_stats(ab, m)[0, [0, 4]].tolist()]
    [4.0, 0.0]
    """
    out = []
    for w in (mask, 1.0 - mask):
        n = w.sum((2, 3)) + eps
        mu = (ab * w).sum((2, 3)) / n
        var = (((ab - mu[..., None, None]) ** 2) * w).sum((2, 3)) / n
        out += [mu, torch.sqrt(var + 1e-6)]
    return torch.cat(out, 1)


class FgBgAttention(nn.Module):
    """Every query position attends to background key positions (non-local fg/bg adjustment).

    ``feat_q`` (N, Cq, h, w), ``feat_k`` (N, Ck, h', w'), ``bg_k`` (N, 1, h', w') in [0, 1]
    (the background share of each key cell) -> features (N, Cq, h, w) added to ``feat_q``.
    Logits are ``q·k / sqrt(d) + log(bg_k + 1e-4)``, so foreground keys get ~1e-4 of the weight.
    """

    def __init__(self, cq: int, ck: int, dim: int) -> None:
        super().__init__()
        self.q = nn.Conv2d(cq, dim, 1)
        self.k = nn.Conv2d(ck, dim, 1)
        self.v = nn.Conv2d(ck, cq, 1)
        self.out = nn.Conv2d(cq, cq, 1)
        self.scale = dim ** -0.5

    def forward(self, feat_q: torch.Tensor, feat_k: torch.Tensor, bg_k: torch.Tensor
                ) -> torch.Tensor:
        n, c, h, w = feat_q.shape
        q = self.q(feat_q).flatten(2).transpose(1, 2)            # N, hw, d
        k = self.k(feat_k).flatten(2)                             # N, d, h'w'
        v = self.v(feat_k).flatten(2).transpose(1, 2)            # N, h'w', C
        logits = torch.bmm(q, k) * self.scale + torch.log(bg_k.flatten(2) + 1e-4)
        att = torch.softmax(logits.float(), -1).to(v.dtype)
        ctx = torch.bmm(att, v).transpose(1, 2).reshape(n, c, h, w)
        return feat_q + self.out(ctx)


class ConvGRU(nn.Module):
    """Convolutional GRU cell (3×3 gates); ``h`` None starts from zeros."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.zr = nn.Conv2d(2 * c, 2 * c, 3, 1, 1)
        self.cand = nn.Conv2d(2 * c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if h is None:
            h = torch.zeros_like(x)
        z, r = torch.sigmoid(self.zr(torch.cat([x, h], 1))).chunk(2, 1)
        c = torch.tanh(self.cand(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * c


class HarmonizeNet(nn.Module):
    """Foreground chroma correction from fg/bg attention, statistics and a temporal GRU
    (see the module docstring)."""

    def __init__(self, config: HarmonizeConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or HarmonizeConfig()
        c1, c2, c3 = config.widths
        self.enc1 = _conv(4, c1, 2)
        self.enc2 = _conv(c1, c2, 2)
        self.enc3 = _conv(c2, c3, 2)
        self.stats = nn.Sequential(nn.Linear(8, 2 * c3), nn.GELU(), nn.Linear(2 * c3, 2 * c3))
        self.att8 = FgBgAttention(c3, c3, config.attn_dim)
        self.att4 = FgBgAttention(c2, c3, config.attn_dim)
        self.gru = ConvGRU(c3)
        self.dec4 = _conv(c3 + c2, c2)
        self.dec2 = _conv(c2 + c1, c1)
        self.head = nn.Conv2d(c1, 4, 3, 1, 1)
        self.reset_identity()

    def reset_identity(self) -> None:
        """Zero the output layer: the network then returns its input exactly."""
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, L: torch.Tensor, ab: torch.Tensor, mask: torch.Tensor,
                hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Harmonize a clip.

        Parameters
        ----------
        L : (B, T, 1, H, W) in [0, 100]
        ab : (B, T, 2, H, W) Lab units
        mask : (B, T, 1, H, W) in [0, 1], the foreground
        hidden : (B, C3, ⌈H/8⌉, ⌈W/8⌉) or None
            GRU state after the previous frame (streaming); None at the start of a shot.

        Returns
        -------
        dict
            ``ab`` (B, T, 2, H, W) harmonized chroma (= input outside the mask), ``gain`` and
            ``offset`` (B, T, 2, H, W) in ab units (offset) and ratio − 1 (gain), ``hidden``
            (the GRU state after the last frame).
        """
        B, T, _, H, W = L.shape
        cfg = self.config
        s = float(cfg.ab_scale)
        x_L = (L.float() / 50.0 - 1.0).flatten(0, 1)
        x_ab = (ab.float() / s).flatten(0, 1)
        m = mask.float().flatten(0, 1)
        x = _pad8(torch.cat([x_L, x_ab, m], 1))
        mp = _pad8(m)
        f1 = self.enc1(x)
        f2 = self.enc2(f1)
        f3 = self.enc3(f2)
        bg8 = 1.0 - F.adaptive_avg_pool2d(mp, f3.shape[-2:])
        gamma, beta = self.stats(masked_stats(x_ab, m)).chunk(2, 1)
        f3 = f3 * (1 + gamma[..., None, None]) + beta[..., None, None]
        f3 = self.att8(f3, f3, bg8)
        f2 = self.att4(f2, f3, bg8)
        f3 = f3.unflatten(0, (B, T))
        hs = []
        h = hidden
        for t in range(T):
            h = self.gru(f3[:, t], h)
            hs.append(h)
        g3 = torch.stack(hs, 1).flatten(0, 1)
        d4 = self.dec4(torch.cat([F.interpolate(g3, size=f2.shape[-2:], mode="bilinear",
                                                align_corners=False), f2], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d4, size=f1.shape[-2:], mode="bilinear",
                                                align_corners=False), f1], 1))
        p = self.head(d2).float()
        p = F.interpolate(p, size=x.shape[-2:], mode="bilinear", align_corners=False)[..., :H, :W]
        gain = cfg.max_gain * torch.tanh(p[:, :2])
        offset = p[:, 2:] * s
        ab_f = ab.float().flatten(0, 1)
        out = ab_f + m * (gain * ab_f + offset)
        out = torch.where(m > 0, out, ab_f)
        return {"ab": out.unflatten(0, (B, T)), "gain": gain.unflatten(0, (B, T)),
                "offset": offset.unflatten(0, (B, T)), "hidden": h}


def _pad8(x: torch.Tensor) -> torch.Tensor:
    """Edge-pad the last two dims up to multiples of 8."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % 8, (-w) % 8
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ConvGRU", "FgBgAttention", "HarmonizeConfig", "HarmonizeNet", "count_parameters",
           "masked_stats"]
