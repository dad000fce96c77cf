"""FuseNet: learned edge-band fusion of a regional colour edit (MovingColor seed).

Seed: MovingColor (notes seeds/000_movingcolor.md §2–§4, §8): a regional edit is given as the
clip before (``ab_original``) and after (``ab_edited``) a colour transform of every pixel, and a
coarse, flickering region ``mask``. The network decides how much of the edit each pixel near
the region's border receives, so the result follows the image's own edges and does not flicker.

It predicts a blend weight, and only inside the edge band::

    alpha = w · sigmoid(logit(prior) + net) + (1 − w) · hard
    ab    = ab_original · (1 − alpha) + ab_edited · alpha

``hard`` = mask ≥ 0.5; ``w`` ∈ [0, 1] the band weight (1 near the border, tapering to exactly 0
at ``band_px``: :func:`reel.tasks.fusers.band_weight`, passed in); ``prior`` the mask blurred
(σ = ``prior_sigma_px``), or a given prior weight (``FuseConfig.prior = "input"``: the shipped
checkpoint takes the classical ``guided`` fuser's weight and refines it). Outside the band ``alpha`` is exactly 0 or 1, so the region's core is
exactly ``ab_edited`` and everything beyond the band exactly ``ab_original`` (bit for bit).
The last layer is zero-initialised: an untrained FuseNet is a feather of the coarse mask.

Blocks (at 1/4 of the frame):

- **spectral (FFC) blocks**: channels split into a local branch (3×3 conv) and a global branch,
  a Fourier unit: ``rfft2`` → real/imag as channels → 1×1 conv → GELU → ``irfft2`` (image-wide
  receptive field in one layer; run in float32);
- **temporal attention**: at every position, each frame's feature attends over the same
  position in all frames of the window (multi-head, with a learned frame-offset embedding), so
  the band's decision is shared across frames (the fix for a flickering mask).

Inputs: ``L`` [0, 100], ``ab_*`` Lab units, ``mask`` and ``band`` [0, 1], each (B, T, C, H, W).

Example
-------
>>> import torch
>>> net = FuseNet(FuseConfig())
>>> L = torch.rand(1, 3, 1, 24, 32) * 100
>>> ab0 = torch.randn(1, 3, 2, 24, 32) * 10; ab1 = ab0 + 20
>>> m = torch.zeros(1, 3, 1, 24, 32); m[..., 6:18, 8:24] = 1
>>> band = torch.zeros_like(m); band[..., 4:20, 6:26] = 1; band[..., 9:15, 11:21] = 0
>>> out = net(L, ab0, ab1, m, band)
>>> bool(torch.equal(out["ab"][..., 0, 0], ab0[..., 0, 0])), out["ab"].shape
(True, torch.Size([1, 3, 2, 24, 32]))
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn


@dataclasses.dataclass
class FuseConfig:
    """Widths and sizes of :class:`FuseNet`.

    Parameters
    ----------
    widths : (int, int, int)
        Channels at full, 1/2 and 1/4 of the frame.
    ffc_blocks : int
        Spectral blocks at 1/4.
    global_ratio : float
        Share of the channels in the FFC's global (Fourier) branch.
    heads : int
        Heads of the temporal attention.
    max_frames : int
        Frame-offset embeddings of the temporal attention (windows may be shorter).
    ab_scale : float
        ab units mapped to 1 inside the network.
    prior_sigma_px : float
        σ (full-resolution pixels) of the blur giving the prior blend weight.
    prior : {"feather", "input"}
        Where the prior blend weight comes from: the coarse mask blurred with
        ``prior_sigma_px`` ("feather"), or an input ``prior_alpha`` — e.g. the classical
        ``guided`` fuser's weight, so the network *refines* the classical engine ("input").
    """

    widths: tuple[int, int, int] = (12, 20, 32)
    ffc_blocks: int = 2
    global_ratio: float = 0.5
    heads: int = 2
    max_frames: int = 32
    ab_scale: float = 64.0
    prior_sigma_px: float = 1.0
    prior: str = "feather"

    def __post_init__(self) -> None:
        if self.prior not in ("feather", "input"):
            raise ValueError(f"prior must be 'feather' or 'input', got {self.prior!r}")
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError("widths must be three positive channel counts")
        if self.widths[2] % self.heads:
            raise ValueError("widths[2] must be divisible by heads")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GELU(),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.GELU())


class FourierUnit(nn.Module):
    """Global branch of an FFC: a 1×1 conv applied to the 2-D spectrum (real, imag)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2 * c, 2 * c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.fft.rfft2(x.float(), norm="ortho")
            z = torch.cat([spec.real, spec.imag], 1)
            z = F.gelu(self.conv(z))
            re, im = z.chunk(2, 1)
            y = torch.fft.irfft2(torch.complex(re, im), s=(h, w), norm="ortho")
        return y.to(x.dtype)


class FFCBlock(nn.Module):
    """Fast Fourier convolution block (local 3×3 branch + global Fourier branch), residual."""

    def __init__(self, c: int, global_ratio: float = 0.5) -> None:
        super().__init__()
        self.cg = max(1, min(c - 1, int(round(c * global_ratio))))
        self.cl = c - self.cg
        self.local = nn.Conv2d(c, self.cl, 3, 1, 1)
        self.to_g = nn.Conv2d(c, self.cg, 1)
        self.fu = FourierUnit(self.cg)
        self.g_out = nn.Conv2d(self.cg, self.cg, 1)
        self.mix = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        loc = self.local(x)
        g = self.to_g(x)
        g = self.g_out(g + self.fu(g))
        return x + self.mix(F.gelu(torch.cat([loc, g], 1)))


class TemporalAttention(nn.Module):
    """Per-position attention across the T frames of a window, residual (pre-norm)."""

    def __init__(self, c: int, heads: int, max_frames: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(c)
        self.attn = nn.MultiheadAttention(c, heads, batch_first=True)
        self.pos = nn.Parameter(torch.zeros(max_frames, c))

    def forward(self, x: torch.Tensor, T: int) -> torch.Tensor:
        bt, c, h, w = x.shape
        B = bt // T
        seq = x.view(B, T, c, h * w).permute(0, 3, 1, 2).reshape(B * h * w, T, c)
        pos = self.pos[torch.arange(T, device=x.device) % self.pos.shape[0]]
        q = self.norm(seq + pos)
        y, _ = self.attn(q, q, q, need_weights=False)
        seq = seq + y
        return seq.view(B, h * w, T, c).permute(0, 2, 3, 1).reshape(bt, c, h, w)


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur (truncated at 3σ, replicate border) of (N, C, H, W)."""
    if sigma_px <= 0:
        return x
    r = max(1, int(math.ceil(3 * sigma_px)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
                          / sigma_px) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


class FuseNet(nn.Module):
    """Edge-band blend weight from spectral and temporal-attention blocks (module docstring)."""

    def __init__(self, config: FuseConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FuseConfig()
        c1, c2, c3 = config.widths
        self.stem = _conv(10, c1)
        self.down2 = _conv(c1, c2, 2)
        self.down4 = _conv(c2, c3, 2)
        self.ffc = nn.ModuleList([FFCBlock(c3, config.global_ratio)
                                  for _ in range(config.ffc_blocks)])
        self.temporal = TemporalAttention(c3, config.heads, config.max_frames)
        self.up2 = _conv(c3 + c2, c2)
        self.up1 = _conv(c2 + c1, c1)
        self.head = nn.Conv2d(c1, 1, 3, 1, 1)
        self.reset_identity()

    def reset_identity(self) -> None:
        """Zero the output layer: the blend weight is then the feathered (prior) mask."""
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, L: torch.Tensor, ab_original: torch.Tensor, ab_edited: torch.Tensor,
                mask: torch.Tensor, band: torch.Tensor,
                prior_alpha: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Fuse a window of frames.

        Parameters
        ----------
        L : (B, T, 1, H, W) in [0, 100]
        ab_original, ab_edited : (B, T, 2, H, W) Lab units
        mask : (B, T, 1, H, W) coarse region mask in [0, 1]
        band : (B, T, 1, H, W) band weight in [0, 1]; exactly 0 where nothing may change
        prior_alpha : (B, T, 1, H, W) in [0, 1], required when ``config.prior == "input"``
            (the blend weight the network starts from; its last layer is zero-initialised)

        Returns
        -------
        dict
            ``ab`` (B, T, 2, H, W) fused chroma, ``alpha`` (B, T, 1, H, W) blend weight,
            ``alpha_band`` (B, T, 1, H, W) the network's weight before the band composition.
        """
        B, T, _, H, W = L.shape
        cfg = self.config
        s = float(cfg.ab_scale)
        ab0 = ab_original.float().flatten(0, 1)
        ab1 = ab_edited.float().flatten(0, 1)
        m = mask.float().flatten(0, 1)
        w = band.float().flatten(0, 1)
        hard = (m >= 0.5).float()
        if cfg.prior == "input":
            if prior_alpha is None:
                raise ValueError("this FuseNet (prior='input') needs prior_alpha")
            prior = prior_alpha.float().flatten(0, 1).clamp(1e-3, 1 - 1e-3)
        else:
            prior = gaussian_blur(hard, cfg.prior_sigma_px).clamp(1e-3, 1 - 1e-3)
        x = torch.cat([L.float().flatten(0, 1) / 50.0 - 1.0, ab0 / s, ab1 / s, (ab1 - ab0) / s,
                       m, w, prior], 1)
        x = _pad4(x)
        f1 = self.stem(x)
        f2 = self.down2(f1)
        f3 = self.down4(f2)
        for blk in self.ffc:
            f3 = blk(f3)
        f3 = self.temporal(f3, T)
        u2 = self.up2(torch.cat([F.interpolate(f3, size=f2.shape[-2:], mode="bilinear",
                                               align_corners=False), f2], 1))
        u1 = self.up1(torch.cat([F.interpolate(u2, size=f1.shape[-2:], mode="bilinear",
                                               align_corners=False), f1], 1))
        logit = self.head(u1).float()[..., :H, :W]
        a_band = torch.sigmoid(torch.logit(prior) + logit)
        alpha = w * a_band + (1.0 - w) * hard
        alpha = torch.where(w > 0, alpha, hard)
        out = ab0 * (1.0 - alpha) + ab1 * alpha
        return {"ab": out.unflatten(0, (B, T)), "alpha": alpha.unflatten(0, (B, T)),
                "alpha_band": a_band.unflatten(0, (B, T))}


def _pad4(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 4, (-w) % 4
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["FFCBlock", "FourierUnit", "FuseConfig", "FuseNet", "TemporalAttention",
           "count_parameters", "gaussian_blur"]
