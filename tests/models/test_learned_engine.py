"""The learned-refcolor engine: exact classical output at init, shipped checkpoint, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reel.models import CHECKPOINTS_DIR
from reel.models.checkpoint import file_sha256, save_checkpoint
from reel.models.refcolor_net import RefColorConfig, RefColorNet
from reel.tasks.colorizers import COLORIZERS
from reel.tasks.colorizers.learned import classical_analysis


def _clip(T=6, H=32, W=48, seed=0):
    """A textured colour scene panning right, as Lab frames (reference = frame 0)."""
    rng = np.random.default_rng(seed)
    big = np.zeros((H, W + 3 * T, 3), np.float32)
    yy, xx = np.mgrid[0:H, 0:W + 3 * T].astype(np.float32)
    big[..., 0] = 50 + 30 * np.sin(xx / 3.0) * np.cos(yy / 4.0) + rng.normal(0, 2, yy.shape)
    big[..., 1] = 40 * np.sin(xx / 9.0)
    big[..., 2] = 30 * np.cos(yy / 7.0)
    return np.stack([big[:, 3 * t:3 * t + W] for t in range(T)])


def _run(engine, clip, refs):
    engine.start_shot(refs)
    return list(engine.colorize_frames([f[..., 0].copy() for f in clip]))


@pytest.fixture(scope="module")
def untrained_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = RefColorConfig(widths=(8, 12, 16), match_dim=8, value_dim=8, head_width=8)
    path = tmp_path_factory.mktemp("ckpt") / "untrained.pt"
    save_checkpoint(path, RefColorNet(cfg), cfg, {"steps": 0})
    return path


@pytest.mark.parametrize("batch_frames", [1, 4])
def test_untrained_network_reproduces_exemplar_propagate_exactly(untrained_ckpt, batch_frames):
    clip = _clip()
    refs = [clip[0]]
    classical = _run(COLORIZERS.create("exemplar-propagate"), clip, refs)
    learned = _run(COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt),
                                     device="cpu", batch_frames=batch_frames), clip, refs)
    assert len(learned) == len(classical) == len(clip)
    for (a, ca), (b, cb) in zip(classical, learned):
        assert a.shape == b.shape == (32, 48, 2) and b.dtype == np.float32
        assert np.array_equal(a, b) and ca == cb


def test_engine_metadata_and_no_reference_shot(untrained_ckpt):
    eng = COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt), device="cpu")
    assert eng.uses_gpu is True and type(eng).uses_gpu is True
    assert eng.weights_sha256 == file_sha256(untrained_ckpt)
    assert eng.describe()["weights_sha256"] == eng.weights_sha256
    assert "device" not in eng.params  # where it runs does not change what it computes
    out = _run(eng, _clip(T=3), [])
    assert all(np.count_nonzero(ab) == 0 and c == 0.0 for ab, c in out)


def test_short_shots_and_missing_checkpoint(untrained_ckpt, tmp_path):
    eng = COLORIZERS.create("learned-refcolor", checkpoint=str(untrained_ckpt), device="cpu")
    for T in (1, 2):
        clip = _clip(T=T)
        assert len(_run(eng, clip, [clip[0]])) == T
    with pytest.raises(FileNotFoundError, match="reel train refcolor"):
        COLORIZERS.create("learned-refcolor", checkpoint=str(tmp_path / "missing.pt"))


@pytest.mark.skipif(not (CHECKPOINTS_DIR / "refcolor.pt").is_file(),
                    reason="shipped checkpoint not built yet")
def test_shipped_checkpoint_refines_deterministically():
    clip = _clip(T=5, seed=1)
    refs = [clip[0]]
    eng = COLORIZERS.create("learned-refcolor", device="cpu")
    assert eng.weights_sha256 == file_sha256(CHECKPOINTS_DIR / "refcolor.pt")
    a = _run(eng, clip, refs)
    b = _run(COLORIZERS.create("learned-refcolor", device="cpu"), clip, refs)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    off = _run(COLORIZERS.create("learned-refcolor", device="cpu", residual_gain=0.0), clip, refs)
    classical = _run(COLORIZERS.create("exemplar-propagate"), clip, refs)
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(off, classical))
    assert all(np.isfinite(x[0]).all() for x in a)


def test_classical_analysis_shapes():
    clip = _clip(T=4)
    ab, conf = classical_analysis([f[..., 0] for f in clip], clip[0])
    assert ab.shape == (4, 32, 48, 2) and conf.shape == (4, 32, 48)
    assert ab.dtype == conf.dtype == np.float32
    assert 0.0 <= conf.min() and conf.max() <= 1.0
    # the reference frame itself is coloured almost perfectly
    assert np.abs(ab[0] - clip[0, ..., 1:]).mean() < 3.0
