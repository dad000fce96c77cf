"""`reel benchmark fusion` on a tiny generated colour clip: one run, CSV + summary.md, and the
metric columns behave (the ideal row scores zero error; the guided fuser flickers less than the
hard mask in the edge band)."""

from __future__ import annotations

import csv

import numpy as np
from typer.testing import CliRunner

from reel.flows.cli import app


def _clip(path, T=10, H=48, W=64):
    from reel.tasks.media import FrameWriter

    yy, xx = np.mgrid[:H, :W]
    with FrameWriter(path, W, H, "25/1") as w:
        for t in range(T):
            f = np.zeros((H, W, 3), np.uint8)
            f[:] = (190, 175, 150)
            f[(xx - 24 - t) ** 2 + (yy - 24) ** 2 < 180] = (40, 90, 200)
            f[::3] = np.clip(f[::3].astype(int) + 10, 0, 255)
            w.write(f)
    return path


def test_benchmark_fusion_cli_writes_csv_and_summary(reel_home, tmp_path):
    data = tmp_path / "clips"
    data.mkdir()
    _clip(data / "blob.mkv")
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["benchmark", "fusion", "--out", str(out), "--dataset", str(data),
                                      "--frames", "10", "--width", "64", "--edits", "1",
                                      "--no-mlflow"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "fusion.csv")))
    engines = [(r["engine"], r["video"]) for r in rows]
    # ideal + every default engine (learned-fuse included), per video and as the mean row
    from reel.flows.benchmarks.fusion import DEFAULT_ENGINES
    assert ("ideal", "blob") in engines and ("guided", "mean") in engines
    assert ("learned-fuse", "blob") in engines and len(rows) == 2 * (len(DEFAULT_ENGINES) + 1)
    by = {(r["engine"], r["video"]): r for r in rows}
    assert float(by[("ideal", "blob")]["de2000_band"]) == 0.0
    assert float(by[("hard", "blob")]["de2000_band"]) > 0.0
    assert float(by[("guided", "blob")]["td_edit_band"]) < float(by[("hard", "blob")]["td_edit_band"])
    summary = (out / "summary.md").read_text()
    assert "regional-edit fusion" in summary and "| guided | blob |" in summary
    bad = CliRunner().invoke(app, ["benchmark", "fusion", "--out", str(out), "--dataset", str(data),
                                   "--engines", "nope", "--no-mlflow"])
    assert bad.exit_code == 1 and "unknown fusion engine" in " ".join(bad.output.split())
