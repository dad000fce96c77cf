"""Score a harmonize or fuse checkpoint on its trainer's held-out validation clips.

Usage: ``python scripts/validate_checkpoint.py harmonize|fuse CHECKPOINT [VAL_VIDEO_CLIPS]``

Builds (or reuses from ``<home>/cache/train/<name>``) exactly the validation sets the trainer
builds with its defaults and seed 0 — the still clips and ``VAL_VIDEO_CLIPS`` (default 8) clips
of the held-out videos — and prints the trainer's own validation metrics for both parts and
their clip-weighted pooled means. This is how a shipped checkpoint and a candidate are compared
on the same clips (docs/models.md, "Real video for HarmonizeNet and FuseNet").
"""

from __future__ import annotations

import sys

import numpy as np
import torch


def main(name: str, checkpoint: str, n_video: int = 8) -> dict[str, float]:
    from reel.config import get_settings
    from reel.flows.train import trainer_inputs
    from reel.models.checkpoint import load_checkpoint
    from reel.models.refcolor_train import VAL_IMAGES, VAL_VIDEOS, VIDEO_VAL_SEED_OFFSET

    torch.set_num_threads(1)
    fns = trainer_inputs(name)
    cache = get_settings().home / "cache" / "train" / name
    shots = fns["video_fn"](VAL_VIDEOS)
    if name == "harmonize":
        from reel.models import train_harmonize as tm
        from reel.models.harmonize_net import HarmonizeConfig, HarmonizeNet

        d = tm.HarmonizeTrainDefaults()
        kw = dict(frames=d.frames, size=d.size, n_segments=d.n_segments, identity_fraction=0.0,
                  cache_dir=cache)
        parts = {"stills": tm.build_dataset(VAL_IMAGES, d.val_clips, fns["composite_fn"],
                                            seed=1000, **kw),
                 "video": tm.build_video_dataset(shots, n_video, fns["composite_fn"], seed=VIDEO_VAL_SEED_OFFSET,
                                                 max_stride=d.video_max_stride, **kw)}
        model, _c, _m = load_checkpoint(checkpoint, HarmonizeNet, HarmonizeConfig)
    elif name == "fuse":
        from reel.models import train_fuse as tm
        from reel.models.fuse_net import FuseConfig, FuseNet

        d = tm.FuseTrainDefaults()
        model, config, _m = load_checkpoint(checkpoint, FuseNet, FuseConfig)
        kw = dict(frames=d.frames, size=d.size, band_px=d.band_px, cache_dir=cache,
                  prior_fn=fns["prior_fn"] if config.prior == "input" else None)
        parts = {"stills": tm.build_dataset(VAL_IMAGES, d.val_clips, fns["edit_fn"],
                                            fns["band_fn"], seed=1000, **kw),
                 "video": tm.build_video_dataset(shots, n_video, fns["edit_fn"], fns["band_fn"],
                                                 seed=VIDEO_VAL_SEED_OFFSET, max_stride=d.video_max_stride, **kw)}
    else:
        raise SystemExit(f"unknown trainer {name!r}: harmonize or fuse")
    dev = torch.device("cpu")
    scores = {p: tm.evaluate(model, data, dev) for p, data in parts.items()}
    n = {p: len(next(iter(data.values()))) for p, data in parts.items()}
    pooled = {k: float(np.average([scores[p][k] for p in parts], weights=[n[p] for p in parts]))
              for k in scores["stills"]}
    for p in parts:
        print(f"{p} ({n[p]} clips): " + ", ".join(f"{k}={v:.4f}" for k, v in scores[p].items()))
    print("pooled: " + ", ".join(f"{k}={v:.4f}" for k, v in pooled.items()))
    return pooled


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
