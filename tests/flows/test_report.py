"""`reel report`: per-shot QC table (CSV + Parquet) and before/after contact sheets from the catalog."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from reel.flows.cli import app


def _png(path: Path, value: int, color: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((40, 80, 3) if color else (40, 80), value, np.uint8)
    if color:
        img[..., 2] = 200  # red in BGR
    cv2.imwrite(str(path), img)
    return path


def _catalog(s, tmp_path: Path) -> dict:
    """A collection with one item of three shots, two runs of metrics and QC outputs."""
    import reel
    from reel.db import models as m
    from reel.db.api import ensure_schema
    from reel.db.session import session_scope
    from reel.flows import record
    from reel.tasks.qc import write_parquet

    ensure_schema(s.database_url)
    col_id = record.get_or_create_collection(s, "newsreels")
    item_id = record.add_item(s, col_id, name="film one", source_path=tmp_path / "film.mkv",
                              sha256="0" * 64, framemd5_path=tmp_path / "film.framemd5",
                              info={"fps": "25/1", "n_frames": 60, "width": 80, "height": 40,
                                    "audio_streams": []}, ground_truth_path=None)
    with session_scope(s.database_url) as db:
        runs = [m.Run(collection_id=col_id, reel_version=reel.__version__) for _ in range(2)]
        db.add_all(runs)
        db.flush()
        run_ids = [r.id for r in runs]
        shots = [m.Shot(item_id=item_id, index=i, start_frame=a, stop_frame=b,
                        status=st, flags=fl)
                 for i, (a, b, st, fl) in enumerate([
                     (0, 20, m.ShotStatus.DONE, []),
                     (20, 45, m.ShotStatus.FLAGGED, ["fading", "cut_jump"]),
                     (45, 60, m.ShotStatus.FAILED, ["qc: boom"])])]
        db.add_all(shots)
        db.flush()
        shot_ids = [sh.id for sh in shots]
        for i, sid in enumerate(shot_ids[:2]):
            d = tmp_path / "work" / f"shot-{i:04d}"
            _png(d / "before.png", 60 + 40 * i, color=False)
            _png(d / "after.png", 90, color=True)
            pq = write_parquet({"frame": np.arange(3), "colorfulness": np.ones(3)},
                               d / "qc_frames.parquet")
            for run_id, cf in zip(run_ids, (5.0 + i, 30.0 + i)):  # run 2 is the latest
                db.add(m.Metric(run_id=run_id, item_id=item_id, shot_id=sid,
                                name="colorfulness_mean", value=cf))
                db.add(m.StageResult(run_id=run_id, item_id=item_id, shot_id=sid, stage="qc",
                                     engine="reel-qc", engine_version="1", params_hash="",
                                     output_path=str(pq), status=m.StageStatus.DONE,
                                     seconds=1.0))
            db.add(m.Metric(run_id=run_ids[1], item_id=item_id, shot_id=sid,
                            name="cdc", value=0.01 * (i + 1)))
    return {"item_id": item_id, "run_ids": run_ids}


def test_build_report_table_and_contact_sheet(reel_home, tmp_path):
    from reel.flows.report import BASE_COLUMNS, build_report

    ids = _catalog(reel_home, tmp_path)
    res = build_report(reel_home, "newsreels", tmp_path / "report")
    assert res.n_shots == 3
    csv = pd.read_csv(res.csv_path)
    pq = pd.read_parquet(res.parquet_path)
    assert list(pq.columns) == BASE_COLUMNS + ["cdc", "colorfulness_mean"]
    assert list(csv.columns) == list(pq.columns)
    assert pq["shot_index"].tolist() == [0, 1, 2]
    assert pq["status"].tolist() == ["done", "flagged", "failed"]
    assert pq["flags"].tolist()[1] == "fading;cut_jump"
    # the latest run's metrics, NaN where a shot has none
    assert pq["colorfulness_mean"].tolist()[:2] == [30.0, 31.0]
    assert np.isnan(pq["colorfulness_mean"].iloc[2]) and pd.isna(pq["run_id"].iloc[2])
    assert pq["run_id"].tolist()[:2] == [ids["run_ids"][1]] * 2
    assert pq["cdc"].tolist()[:2] == pytest.approx([0.01, 0.02])
    assert pq["qc_frames_path"].iloc[0].endswith("shot-0000/qc_frames.parquet")
    assert pd.read_parquet(pq["qc_frames_path"].iloc[0])["frame"].tolist() == [0, 1, 2]
    assert pq["after_thumb"].iloc[1].endswith("shot-0001/after.png")
    assert pd.isna(pq["before_thumb"].iloc[2])
    assert csv["n_frames"].tolist() == [20, 25, 15]

    sheet_path = res.contact_sheets["film one"]
    assert sheet_path.name == "film_one.png"
    sheet = cv2.imread(str(sheet_path), cv2.IMREAD_COLOR)
    assert sheet is not None
    # 3 shots in one row of pairs: width = 3 x (2 x 240 + 2) + gaps; thumbnails keep the 1:2 aspect
    assert sheet.shape[1] == 3 * (2 * 240 + 2 + 6) + 6
    assert sheet.shape[0] == 22 + (20 + 120) + 6 + 6
    # the "after" tile of shot 0 is red, its "before" tile gray (BGR)
    y = 22 + 20 + 60
    after = sheet[y, 6 + 240 + 2 + 120]
    before = sheet[y, 6 + 120]
    assert after[2] > 150 and after[0] < 120 and abs(int(before[0]) - int(before[2])) < 3


def test_report_cli(reel_home, tmp_path):
    _catalog(reel_home, tmp_path)
    runner = CliRunner()
    out = tmp_path / "cli-report"
    result = runner.invoke(app, ["report", "newsreels", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "qc_shots.csv").is_file() and (out / "qc_shots.parquet").is_file()
    assert (out / "contact_sheets" / "film_one.png").is_file()
    bad = runner.invoke(app, ["report", "nope", "--out", str(out)])
    assert bad.exit_code != 0 and "no collection" in " ".join(bad.output.split())
    assert runner.invoke(app, ["report", "--help"]).exit_code == 0


def test_record_metrics_skips_unmeasured_values(reel_home, tmp_path):
    """NaN means "not measured" (e.g. no reference matched): never a NULL in the catalog."""
    from sqlalchemy import select

    from reel.db import models as m
    from reel.db.session import session_scope
    from reel.flows import record

    ids = _catalog(reel_home, tmp_path)
    record.record_metrics(reel_home, ids["run_ids"][1], ids["item_id"], None,
                          {"psnr_db": 31.5, "reference_match_de2000": float("nan")})
    with session_scope(reel_home.database_url) as db:
        names = set(db.scalars(select(m.Metric.name).where(m.Metric.shot_id.is_(None))))
    assert names == {"psnr_db"}
