"""Shared training infrastructure: device, checkpoints, model cards, the training loop."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from reel.models.checkpoint import (CheckpointError, file_sha256, load_checkpoint,
                                    read_checkpoint, save_checkpoint, write_model_card)
from reel.models.device import autocast, select_device, uses_gpu
from reel.models.refcolor_net import RefColorConfig, RefColorNet
from reel.models.training import (TRAINERS, TrainOptions, TrainResult, get_trainer,
                                  load_trainers, register_trainer, run_training_loop)


def test_select_device_and_autocast_on_cpu(monkeypatch):
    assert select_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert select_device().type == "cpu"
    with pytest.raises(RuntimeError, match="--device cpu"):
        select_device("cuda")
    with autocast(torch.device("cpu")):
        y = torch.ones(3) @ torch.ones(3)
    assert y.dtype == torch.float32
    assert not uses_gpu("cpu") and uses_gpu("cuda")


def test_select_device_applies_the_thread_setting(reel_home):
    old = torch.get_num_threads()
    try:
        reel_home.processing.torch_threads = 1
        select_device("cpu")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(old)


def test_checkpoint_round_trip_sha256_and_byte_identical_resave(tmp_path):
    torch.manual_seed(0)
    cfg = RefColorConfig(widths=(8, 12, 16), match_dim=8, value_dim=8)
    net = RefColorNet(cfg)
    with torch.no_grad():
        net.out.weight.normal_()
    sha = save_checkpoint(tmp_path / "a.pt", net, cfg, {"steps": 5, "note": "x"})
    assert sha == file_sha256(tmp_path / "a.pt")
    model, cfg2, meta = load_checkpoint(tmp_path / "a.pt", RefColorNet, RefColorConfig)
    assert cfg2 == cfg and meta["steps"] == 5 and meta["sha256"] == sha
    for (k, v), (k2, v2) in zip(net.state_dict().items(), model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    # re-saving the loaded model gives the same bytes (no timestamps, no random ids)
    sha2 = save_checkpoint(tmp_path / "b.pt", model, cfg2, {"steps": 5, "note": "x"})
    assert sha2 == sha
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    header, state = read_checkpoint(tmp_path / "a.pt")
    assert header["config"]["widths"] == [8, 12, 16] and "out.weight" in state


def test_load_refuses_other_files_and_other_models(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a reel checkpoint"):
        load_checkpoint(tmp_path / "x.pt", RefColorNet, RefColorConfig)
    cfg = RefColorConfig(widths=(8, 8, 8))
    save_checkpoint(tmp_path / "s.pt", RefColorNet(cfg), cfg)

    @dataclasses.dataclass
    class Other:
        depth: int = 2

    with pytest.raises(CheckpointError, match="unknown to Other"):
        load_checkpoint(tmp_path / "s.pt", RefColorNet, Other)


def test_model_card_records_what_the_issue_asks(tmp_path):
    p = write_model_card(tmp_path / "m.md", name="demo", description="A demo net.",
                         data="synthetic clips", steps=12, wall_s=3.5,
                         metrics={"psnr": 31.25}, command="reel train demo --steps 12",
                         weights_sha256="ab" * 32, config=RefColorConfig())
    text = p.read_text()
    for needle in ("synthetic clips", "training steps: 12", "wall time: 4 s", "31.25",
                   "`reel train demo --steps 12`", "ab" * 32, '"window": 3'):
        assert needle in text


def _toy_loop(seed):
    torch.manual_seed(seed)
    net = torch.nn.Linear(2, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)

    def batch(step, g):
        x = torch.rand(16, 2, generator=g)
        return x, x @ torch.tensor([[2.0], [-1.0]])

    def loss(m, b):
        ls = ((m(b[0]) - b[1]) ** 2).mean()
        return ls, {"mse": float(ls.detach())}

    seen = []
    vh = {}
    hist = run_training_loop(net, opt, batch, loss, steps=40, seed=seed,
                             progress_cb=lambda s, n, m: seen.append((s, n)),
                             val_fn=lambda m: {"w0": float(m.weight[0, 0])}, val_every=10,
                             val_history=vh)
    return hist, seen, vh


def test_training_loop_is_seeded_logs_every_step_and_validates():
    h1, seen, vh = _toy_loop(3)
    h2, _, _ = _toy_loop(3)
    assert h1 == h2
    assert len(h1["loss"]) == len(h1["mse"]) == len(h1["lr"]) == 40
    assert h1["loss"][-1] < h1["loss"][0]
    assert seen[-1] == (40, 40) and len(seen) == 40
    assert [s for s, _ in vh["w0"]] == [10, 20, 30]


def test_trainer_registry():
    load_trainers()
    assert "refcolor" in TRAINERS and get_trainer("refcolor").model_cls is RefColorNet
    with pytest.raises(KeyError, match="choose one of"):
        get_trainer("no-such-net")

    @register_trainer("toy-test", description="toy")
    def toy(options: TrainOptions, cb=None) -> TrainResult:
        net = torch.nn.Linear(1, 1)
        return TrainResult("toy-test", net, RefColorConfig(), 0, 0.0, {"loss": []}, {})

    try:
        assert get_trainer("toy-test").fn(TrainOptions(), None).name == "toy-test"
        with pytest.raises(ValueError, match="twice"):
            register_trainer("toy-test")(lambda o, c: None)
    finally:
        TRAINERS.pop("toy-test", None)
