"""`reel benchmark scale` (flows/benchmarks/scale.py): the overhead measurement end to end on a
tiny synthetic film, and the checks on its options."""

from __future__ import annotations

import csv

import pytest


@pytest.mark.slow
def test_overhead_measure_restores_and_transcodes(reel_home, tmp_path):
    from reel.flows.benchmarks import scale

    out = tmp_path / "bench"
    rows = scale.run_benchmark(out, samples_dir=tmp_path / "samples", source="synthetic",
                               width_px=96, max_frames=20, measures=("overhead",),
                               log_mlflow=False)
    by = {r["measure"]: r for r in rows}
    assert set(by) == {"transcode", "restore", "pipeline_over_transcode"}
    assert by["restore"]["frames"] == 20 and by["restore"]["shots"] >= 1
    assert by["transcode"]["value"] > 0 and by["restore"]["value"] > 0
    assert by["restore"]["peak_pss_mb"] == ""  # timed without the memory sampler
    ratio = by["pipeline_over_transcode"]["value"]
    assert ratio == pytest.approx(by["restore"]["value"] / by["transcode"]["value"])
    assert by["pipeline_over_transcode"]["meets_target"] == (ratio <= 8)
    with open(out / "scale.csv") as fh:
        assert [r["measure"] for r in csv.DictReader(fh)] == [r["measure"] for r in rows]
    summary = (out / "summary.md").read_text()
    assert "pipeline_over_transcode" in summary
    # the transcode is timed 3 times (default); its row is their median
    line = next(ln for ln in summary.splitlines() if "transcode runs:" in ln)
    runs = [float(v) for v in line.split("transcode runs:")[1].split(" s;")[0].split(",")]
    assert len(runs) == 3
    assert by["transcode"]["value"] == pytest.approx(sorted(runs)[1], abs=1e-3)


def test_unknown_measure_is_refused(reel_home, tmp_path):
    from typer.testing import CliRunner

    from reel.flows.benchmarks import scale
    from reel.flows.cli import app

    with pytest.raises(ValueError, match="unknown measure"):
        scale.run_benchmark(tmp_path, samples_dir=tmp_path, measures=("speed",))
    res = CliRunner().invoke(app, ["benchmark", "scale", "--out", str(tmp_path),
                                   "--measures", "overhead,sped"])
    assert res.exit_code == 1 and "unknown --measures" in res.output


def test_ratio_rows_without_every_column_are_printed(tmp_path, capsys):
    """A ratio row (no wall time, no memory) must not break the CLI table."""
    from reel.flows import cli
    from reel.flows.benchmarks import scale

    rows = [{c: 1.0 for c in scale.COLUMNS},
            {"measure": "peak_memory_x10_over_x1", "value": 1.1, "target": "<= 1.2",
             "meets_target": True}]
    (tmp_path / "summary.md").write_text("# scale benchmark\n")
    cli._print_bench(scale, rows, "scale", tmp_path)
    out = capsys.readouterr().out
    assert "1.1" in out and "scale benchmark" in out  # the table (cells wrap) and the summary
