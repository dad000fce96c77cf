"""`reel benchmark harmonize` on a tiny generated colour clip (one shot, no MLflow)."""

from __future__ import annotations

import csv

import numpy as np

from reel.flows.benchmarks import harmonize as bench


def _video(path, n=12):
    from reel.tasks import media

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    with media.FrameWriter(path, 64, 48, "25/1") as w:
        for t in range(n):
            f = np.zeros((48, 64, 3), np.float32)
            f[:] = (60 + xx[..., None] * 0.8) * np.array([1.0, 0.9, 0.5])  # warm gradient
            f[12:32, 20 + t:40 + t] = (70, 110, 190)                          # a blue box
            f += rng.normal(0, 2, f.shape)
            w.write(np.clip(f, 0, 255).astype(np.uint8))
    (path.parent / f"{path.stem}.cuts.txt").write_text("# one shot\n")
    return path


def test_harmonize_benchmark_writes_results_and_engines_restore(tmp_path):
    vid = _video(tmp_path / "clip.mkv")
    rows = bench.run_benchmark([vid], tmp_path / "out", engines=["none", "temporal-stats"],
                               kinds=["shift"], label_sources=["true-mask"], n_frames=12,
                               width_px=64, log_mlflow=False)
    with open(tmp_path / "out" / "harmonize.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == bench.COLUMNS and len(table) == len(rows)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "fMSE" in summary and "temporal-stats" in summary
    mean = {r["engine"]: r for r in rows if r["video"] == "mean" and r["kind"] == "all"}
    assert set(mean) == {"composite", "none", "temporal-stats"}
    assert mean["none"]["fmse"] == mean["composite"]["fmse"] > 20
    # the perturbed region is given: the harmonizer brings it back toward the truth
    assert mean["temporal-stats"]["fmse"] < 0.7 * mean["none"]["fmse"]
    assert mean["temporal-stats"]["fpsnr"] > mean["none"]["fpsnr"]
