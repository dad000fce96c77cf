"""`reel benchmark colorize` on a tiny generated dataset (two colour clips, one with a cuts file)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from typer.testing import CliRunner

from reel.flows.cli import app

W, H = 96, 64


def _pan(img: np.ndarray, n: int, step_px: int = 2) -> list[np.ndarray]:
    big = cv2.resize(img, (W + step_px * n, H + 4), interpolation=cv2.INTER_AREA)
    return [np.ascontiguousarray(big[2:2 + H, i * step_px:i * step_px + W]) for i in range(n)]


def _write(path: Path, frames: list[np.ndarray]) -> Path:
    from reel.tasks.media import FrameWriter

    with FrameWriter(path, W, H, "25/1", pix_fmt_in="rgb24") as w:
        for f in frames:
            w.write(f)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("colorize-dataset")
    _write(d / "cut.mkv", _pan(data.astronaut(), 6) + _pan(data.coffee(), 6))
    (d / "cut.cuts.txt").write_text("# first frame of the second shot\n6\n")
    _write(d / "pan.mkv", _pan(data.chelsea(), 8))
    (d / "notes.txt").write_text("not a video")
    return d


def test_run_benchmark_rows_csv_and_mlflow(reel_home, dataset, tmp_path):
    import mlflow

    from reel.flows.benchmarks import colorize as bench

    videos = bench.dataset_videos(dataset)
    assert [v.name for v in videos] == ["cut.mkv", "pan.mkv"]
    out = tmp_path / "out"
    methods = ["gray", "flow-propagate", "exemplar-propagate", "exemplar-propagate:temporal_weight=0"]
    rows = bench.run_benchmark(videos, out, methods=methods, analysis_width_px=96)

    with open(out / "colorize.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["method", "video", "psnr", "ssim", "cdc", "warp_error",
                              "colorfulness", "sec_per_frame"]
    keys = [(r["method"], r["video"]) for r in table]
    for m in methods:
        assert [k for k in keys if k[0] == m] == [(m, "cut"), (m, "pan"), (m, "mean")]
    assert [k for k in keys if k[0] == "ground-truth"] == [
        ("ground-truth", "cut"), ("ground-truth", "pan"), ("ground-truth", "mean")]
    by = {(r["method"], r["video"]): r for r in rows}
    gt = by[("ground-truth", "cut")]
    assert math.isnan(gt["psnr"]) and math.isnan(gt["sec_per_frame"])
    assert gt["colorfulness"] > 10 and gt["cdc"] > 0 and gt["warp_error"] > 0
    gray, ex = by[("gray", "mean")], by[("exemplar-propagate", "mean")]
    assert gray["colorfulness"] == 0.0 and gray["warp_error"] < 1e-3
    assert ex["psnr"] > gray["psnr"] + 8.0 and ex["ssim"] > gray["ssim"]
    assert ex["colorfulness"] > 0.5 * by[("ground-truth", "mean")]["colorfulness"]
    assert 0 < ex["sec_per_frame"] < 5 and ex["cpu_sec_per_frame"] > 0
    assert by[("exemplar-propagate", "mean")]["psnr"] == pytest.approx(
        (by[("exemplar-propagate", "cut")]["psnr"] + by[("exemplar-propagate", "pan")]["psnr"]) / 2)
    summary = (out / "summary.md").read_text()
    assert "exemplar-propagate mean PSNR" in summary and "cpu_sec_per_frame" in summary

    mlflow.set_tracking_uri(reel_home.mlflow_tracking_uri)
    exp = mlflow.get_experiment_by_name("reel-benchmarks")
    run = mlflow.search_runs([exp.experiment_id], output_format="list")[0]
    assert run.data.tags["reel.benchmark"] == "colorize"
    assert run.data.metrics["exemplar-propagate.cut.psnr"] == pytest.approx(
        by[("exemplar-propagate", "cut")]["psnr"])


def test_benchmark_protocol_pieces(dataset):
    from reel.flows.benchmarks import colorize as bench

    assert bench.read_cuts(dataset / "cut.cuts.txt") == [6]
    label, name, params = bench.parse_method("welsh:n_samples=50;seed=3")
    assert (label, name, params) == ("welsh:n_samples=50;seed=3", "welsh", {"n_samples": 50, "seed": 3})
    with pytest.raises(ValueError):
        bench.parse_method("welsh:n_samples")
    with pytest.raises(FileNotFoundError):
        bench.dataset_videos(dataset / "missing")


def test_benchmark_cli(reel_home, dataset, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    res = runner.invoke(app, ["benchmark", "colorize", "--dataset", str(dataset), "--out", str(out),
                              "--methods", "gray,reinhard-global", "--no-mlflow"])
    assert res.exit_code == 0, res.output
    assert (out / "colorize.csv").is_file() and (out / "summary.md").is_file()
    bad = runner.invoke(app, ["benchmark", "colorize", "--dataset", str(dataset), "--out", str(out),
                              "--methods", "nope", "--no-mlflow"])
    assert bad.exit_code != 0 and "nope" in bad.output


def test_benchmark_cli_refuses_held_out_with_a_dataset(dataset, tmp_path):
    res = CliRunner().invoke(app, ["benchmark", "colorize", "--held-out", "--dataset",
                                   str(dataset), "--out", str(tmp_path / "x"), "--no-mlflow"])
    assert res.exit_code != 0 and "--held-out and --dataset" in " ".join(res.output.split())
    assert not (tmp_path / "x").exists()


def test_dataset_folders_take_every_film_suffix_ingest_takes(tmp_path):
    from reel.flows.benchmarks.common import VIDEO_SUFFIXES, dataset_videos
    from reel.flows.ingest import FILM_SUFFIXES

    assert set(VIDEO_SUFFIXES) == FILM_SUFFIXES and ".mpg" in VIDEO_SUFFIXES
    for name in ("a.mpg", "b.ts", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in dataset_videos(tmp_path)] == ["a.mpg", "b.ts"]


@pytest.mark.slow
def test_benchmark_cli_runs_on_the_held_out_videos(reel_home, tmp_path, monkeypatch):
    import shutil

    from reel.models import refcolor_train

    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available (the held-out videos come from Debian packages)")
    # the two live-action held-out videos only: the animated one (2198 frames, fetched and
    # checked in tests/tasks/test_samples.py) would add minutes
    assert refcolor_train.HELD_OUT_VIDEOS == ("city", "diver", "fillets")
    monkeypatch.setattr(refcolor_train, "HELD_OUT_VIDEOS", ("city", "diver"))
    out = tmp_path / "held-out"
    res = CliRunner().invoke(app, ["benchmark", "colorize", "--held-out", "--out", str(out),
                                   "--methods", "gray", "--analysis-width-px", "160",
                                   "--no-mlflow"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((out / "colorize.csv").open()))
    gray = {r["video"]: r for r in rows if r["method"] == "gray"}
    assert set(gray) == {"cityCC0", "diver", "mean"}
    assert all(10.0 < float(r["psnr"]) < 60.0 for r in gray.values())
