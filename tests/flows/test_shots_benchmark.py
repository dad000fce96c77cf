"""`reel benchmark shots`: dataset generator, scoring, shots.csv / summary.md / MLflow."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from reel.flows.benchmarks import shots as bench
from reel.flows.cli import app

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _concat(path: Path, sources: list[str], seconds: float = 1.2, size: str = "160x90") -> Path:
    cmd = ["ffmpeg", "-v", "error", "-y"]
    for src in sources:
        cmd += ["-f", "lavfi", "-i", f"{src}=size={size}:rate=25:duration={seconds}"]
    labels = "".join(f"[{i}:v]" for i in range(len(sources)))
    cmd += ["-filter_complex", f"{labels}concat=n={len(sources)}:v=1[v]", "-map", "[v]",
            "-c:v", "ffv1", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, check=True)
    return path


@pytest.fixture
def dataset(tmp_path):
    d = tmp_path / "ds"
    d.mkdir()
    _concat(d / "a.mkv", ["testsrc2", "smptebars", "testsrc"])
    bench.write_cuts(d / "a.cuts.txt", [30, 60])
    _concat(d / "b.mkv", ["smptebars", "testsrc2"])
    (d / "b.cuts.txt").write_text("# one cut\n30\n\n")
    _concat(d / "no-sidecar.mkv", ["testsrc2"])  # ignored: no cuts file
    return d


def test_plan_and_render_agree():
    for seed in (1, 2, 1001):
        plan = bench.plan_video(seed)
        again = bench.plan_video(seed)
        assert plan == again  # deterministic
        truth = bench.truth_of(plan)
        kinds = [b["type"] for b in truth]
        assert set(kinds) == {"cut", "splice", "dissolve", "fade"} and len(kinds) == 8
        assert all(a.shot != b.shot for a, b in zip(plan.segments, plan.segments[1:]))
        # render with frames that carry (source frame number) so the timeline can be checked
        frames = list(bench.render_plan(plan, lambda seg: [np.full((4, 4), f % 256, np.uint8)
                                                           for f in range(seg.start, seg.stop)]))
        assert len(frames) == bench.plan_length(plan)
        frames_arr = np.array([f[0, 0] for f in frames])
        for b, tr in zip(truth, plan.transitions):
            lo, hi = b["span"]
            assert b["type"] == tr.kind
            if b["type"] in ("cut", "splice"):
                assert hi - lo == 1
            else:
                assert b["frame"] == lo + (hi - lo) // 2
            if b["type"] == "fade":
                assert hi - lo == 2 * tr.fade_frames + tr.black_frames
                if tr.black_frames:
                    assert (frames_arr[lo + tr.fade_frames: hi - tr.fade_frames] == 0).all()
        assert all(0 < f < len(frames) for f in plan.flash_frames)
        spans = [(b["span"][0] - 4, b["span"][1] + 4) for b in truth]
        assert not any(lo <= f < hi for f in plan.flash_frames for lo, hi in spans)
    assert bench.plan_video(1) != bench.plan_video(1001)


def test_read_cuts_and_dataset_listing(dataset):
    assert bench.read_cuts(dataset / "b.cuts.txt") == [30]
    assert [v.name for v, _ in bench.dataset_videos(dataset)] == ["a.mkv", "b.mkv"]
    with pytest.raises(FileNotFoundError):
        bench.dataset_videos(dataset / "missing")


def test_run_benchmark_writes_csv_summary_and_mlflow(reel_home, dataset, tmp_path, monkeypatch):
    import mlflow

    from reel.tasks.shot_detectors import transnet

    # pretend the optional TransNet V2 package is missing: skipped with a note
    monkeypatch.setattr(transnet, "transnet_location", lambda: None)
    out = tmp_path / "out"
    rows = bench.run_benchmark(dataset, out, engines=["archival", "histogram", "transnetv2"],
                               command="reel benchmark shots --test")
    with open(out / "shots.csv") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == ["engine", "video", "precision", "recall", "f1", "fps"]
    got = {(r["engine"], r["video"]): r for r in table}
    assert set(got) == {(e, v) for e in ("archival", "histogram") for v in ("a", "b", "all")}
    for e in ("archival", "histogram"):
        assert float(got[(e, "a")]["f1"]) == 1.0 and float(got[(e, "b")]["f1"]) == 1.0
        assert float(got[(e, "all")]["fps"]) > 0
    pooled = next(r for r in rows if r["engine"] == "archival" and r["video"] == "all")
    assert (pooled["tp"], pooled["fp"], pooled["fn"], pooled["frames"]) == (3, 0, 0, 150)
    summary = (out / "summary.md").read_text()
    assert "| engine | video | precision | recall | f1 | fps |" in summary
    assert "`transnetv2` skipped" in summary and "make install-transnet" in summary
    assert "reel benchmark shots --test" in summary
    assert (out / "shots-detail.csv").is_file()
    det = (out / "detections" / "archival" / "a.csv").read_text().splitlines()
    assert len(det) == 4 and det[2].split(",")[2:4] == ["30", "60"]
    # MLflow: one run in the benchmarks experiment with the numbers and both files
    from reel.flows import tracking

    tracking.setup(reel_home)
    exp = mlflow.get_experiment_by_name("reel-benchmarks")
    runs = mlflow.search_runs([exp.experiment_id], output_format="list")
    assert len(runs) == 1
    assert runs[0].data.metrics["archival.all.f1"] == 1.0
    assert runs[0].data.tags["reel.benchmark"] == "shots"


def test_scores_count_misses_and_false_boundaries(reel_home, dataset, tmp_path):
    bench.write_cuts(dataset / "a.cuts.txt", [30, 45, 61])  # 45 is not a cut; 61 is 1 off
    rows = bench.run_benchmark(dataset, tmp_path / "o", engines=["archival"], log_mlflow=False)
    a = next(r for r in rows if r["video"] == "a")
    assert (a["tp"], a["fp"], a["fn"]) == (2, 0, 1) and a["missed"] == [45]
    assert a["precision"] == 1.0 and a["recall"] == pytest.approx(0.6667)


def test_cli_benchmark_with_dataset(reel_home, dataset, tmp_path):
    out = tmp_path / "cli"
    r = runner.invoke(app, ["benchmark", "shots", "--dataset", str(dataset), "--out", str(out),
                            "--engines", "archival,histogram", "--no-mlflow"])
    assert r.exit_code == 0, r.output
    assert (out / "shots.csv").is_file() and "shot detection" in r.output.lower()
    r = runner.invoke(app, ["benchmark", "shots", "--dataset", str(dataset), "--out", str(out),
                            "--engines", "magic"])
    assert r.exit_code == 1 and "archival" in r.output
    r = runner.invoke(app, ["benchmark", "shots", "--dataset", str(tmp_path / "empty-nothing"),
                            "--out", str(out), "--engines", "archival"])
    assert r.exit_code == 1


def test_degraded_video_from_a_stand_in_clip(tmp_path):
    """The generator on a 250-frame stand-in for bikes.mp4 (same shot ranges): frame count,
    sidecars, and that the damage is there (flicker, gray, flashes)."""
    fake = _concat(tmp_path / "bikes.mkv", ["testsrc2"], seconds=10, size="128x54")
    plan = bench.plan_video(7, height_px=54)
    out = tmp_path / "degraded-7.mkv"
    truth = bench.write_degraded_video(plan, fake, out)
    from reel.tasks.media import iter_frames, probe

    info = probe(out)
    assert info.n_frames == bench.plan_length(plan) and info.fps == "25/1"
    assert bench.read_cuts(tmp_path / "degraded-7.cuts.txt") == [b["frame"] for b in truth]
    side = json.loads((tmp_path / "degraded-7.transitions.json").read_text())
    assert side["seed"] == 7 and side["boundaries"] == truth
    means = np.array([f.mean() for f in iter_frames(out, pix_fmt="gray")])
    for f in plan.flash_frames:
        assert means[f] > np.median(means[max(0, f - 5): f + 6]) + 20


@pytest.mark.slow
def test_generated_dataset_from_the_samples(tmp_path):
    """The default dataset (one degraded seed to stay short): bikes, Calais and a degraded
    video with their sidecars; a second call reuses the cache."""
    samples = tmp_path / "samples"
    src = REPO / "var" / "samples"
    if (src / "bikes.mp4").is_file() and (src / "Shepard_Calais_1906_FrenchGP.ogv").is_file():
        samples.mkdir()
        for name in ("bikes.mp4", "Shepard_Calais_1906_FrenchGP.ogv"):
            shutil.copy(src / name, samples / name)
    elif shutil.which("apt-get") is None:
        pytest.skip("no sample media and no apt-get to fetch the Calais film")
    d = bench.generate_dataset(tmp_path / "ds", samples_dir=samples, seeds=(1001,))
    names = sorted(p.name for p in d.iterdir())
    assert {"bikes.mp4", "bikes.cuts.txt", "Shepard_Calais_1906_FrenchGP.ogv",
            "Shepard_Calais_1906_FrenchGP.cuts.txt", "degraded-1001.mkv", "degraded-1001.cuts.txt",
            "manifest.json"} <= set(names)
    assert bench.read_cuts(d / "bikes.cuts.txt") == [30, 76, 137, 187, 242]
    assert bench.read_cuts(d / "Shepard_Calais_1906_FrenchGP.cuts.txt") == [81]
    stamp = (d / "degraded-1001.mkv").stat().st_mtime_ns
    assert bench.generate_dataset(tmp_path / "ds", samples_dir=samples, seeds=(1001,)) == d
    assert (d / "degraded-1001.mkv").stat().st_mtime_ns == stamp


def test_span_matching_is_information_only():
    # dissolve spans [223, 235) and [247, 259): detections 3 frames early still fall inside
    assert bench._span_matches([226, 250, 100], [229, 253, 100], {229: (223, 235), 253: (247, 259)}, 1) == 3
    # one to one, and cuts keep the ±1 rule
    assert bench._span_matches([226], [229, 231], {229: (223, 235), 231: (231, 232)}, 1) == 1
    assert bench._span_matches([105], [100], {}, 1) == 0
