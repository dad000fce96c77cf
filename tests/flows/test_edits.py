"""Regional edits in the catalog and the CLI (`reel edit`, `reel regions`), and the output
versions they cause in re-run planning; the slow test runs the real restore flow twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from reel.db import models as m
from reel.db.api import ensure_schema
from reel.db.session import session_scope
from reel.flows import edits, review
from reel.flows.cli import app

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


def _restored_shot(s, tmp_path: Path, status=m.ShotStatus.DONE) -> tuple[int, int, int]:
    """A catalog shot that was restored once: labels.npz (regions 0 and 1) + restored.mkv in its
    work folder and a segmentation stage result pointing at them. Returns (item, shot, run)."""
    from reel.tasks.media import FrameWriter

    work = tmp_path / "work" / "shot-0000"
    work.mkdir(parents=True)
    T, H, W = 6, 24, 32
    labels = np.zeros((T, H // 2, W // 2), np.uint16)
    labels[:, :, W // 4:] = 1
    np.savez_compressed(work / "labels.npz", labels=labels)
    with FrameWriter(work / "restored.mkv", W, H, "25/1") as w:
        for _ in range(T):
            f = np.zeros((H, W, 3), np.uint8)
            f[:, : W // 2] = (200, 60, 50)
            f[:, W // 2:] = (50, 80, 190)
            w.write(f)
    ensure_schema(s.database_url)
    with session_scope(s.database_url) as db:
        col = m.Collection(name="c")
        item = m.Item(collection=col, name="film", source_path=str(tmp_path / "film.mkv"))
        shot = m.Shot(index=0, start_frame=0, stop_frame=T, status=status)
        item.shots.append(shot)
        run = m.Run(collection=col, reel_version="0", status=m.RunStatus.COMPLETED)
        db.add_all([item, run])
        db.flush()
        db.add(m.StageResult(run_id=run.id, item_id=item.id, shot_id=shot.id, stage="segmentation",
                             engine="slic-flow", engine_version="1", params_hash="", params={},
                             output_path=str(work / "labels.npz"), status=m.StageStatus.DONE,
                             seconds=0.1))
        return item.id, shot.id, run.id


def test_edit_cli_roundtrip_in_the_catalog(reel_home, tmp_path):
    item_id, shot_id, _ = _restored_shot(reel_home, tmp_path)
    sid = str(shot_id)

    result = runner.invoke(app, ["regions", sid])
    assert result.exit_code == 0, result.output
    assert "#" in result.output and "50.0" in _text(result)  # two regions, half the frame each

    result = runner.invoke(app, ["edit", sid, "--region", "1", "--hue", "25", "--saturation", "1.3",
                                 "--by", "ana"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["edit", sid, "--region", "0", "--warmth", "0.5", "--brightness", "-5",
                                 "--by", "ben"])
    assert result.exit_code == 0, result.output
    # a newer edit of the same region replaces the older one
    result = runner.invoke(app, ["edit", sid, "--region", "1", "--hue", "-40", "--by", "ana"])
    assert result.exit_code == 0, result.output
    with session_scope(reel_home.database_url) as db:
        rows = db.scalars(select(m.RegionEdit).order_by(m.RegionEdit.id)).all()
        assert [(r.region_id, r.active, r.created_by) for r in rows] == [
            (1, False, "ana"), (0, True, "ben"), (1, True, "ana")]
        assert rows[2].params == {"hue_deg": -40.0, "saturation": 1.0, "warmth": 0.0, "brightness": 0.0}
        events = db.scalars(select(m.Event).where(m.Event.event_type == edits.EVENT)).all()
        assert len(events) == 3 and events[2].agent == "ana"
        assert events[2].detail["action"] == "add" and events[2].detail["replaced"] == [rows[0].id]
    specs = edits.active_edit_specs(reel_home, [shot_id])[shot_id]
    assert [s["region"] for s in specs] == [{"labels": [0]}, {"labels": [1]}]
    assert specs[1]["params"]["hue_deg"] == -40.0 and specs[1]["id"] == rows[2].id

    result = runner.invoke(app, ["edit", sid, "--list"])
    assert result.exit_code == 0 and "-40" in result.output and "ben" in result.output
    result = runner.invoke(app, ["edit", sid, "--list", "--all"])
    assert _text(result).count(" no ") >= 1

    # errors that say what to do
    for args, text in ((["edit", sid, "--hue", "10"], "--region"),
                       (["edit", sid, "--region", "7", "--hue", "10"], "no region 7"),
                       (["edit", sid, "--region", "1"], "changes nothing"),
                       (["edit", sid, "--region", "1", "--saturation", "9"], "saturation must be"),
                       (["edit", "999", "--list"], "no shot with id 999"),
                       (["regions", "999"], "no shot with id 999")):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and text in _text(result), (args, result.output)

    result = runner.invoke(app, ["edit", sid, "--clear", "--region", "0", "--by", "ana"])
    assert result.exit_code == 0 and "cleared 1" in result.output
    assert [s["region"] for s in edits.active_edit_specs(reel_home, [shot_id])[shot_id]] == [{"labels": [1]}]
    result = runner.invoke(app, ["edit", sid, "--clear"])
    assert result.exit_code == 0 and "cleared 1" in result.output
    assert edits.active_edit_specs(reel_home, [shot_id]) == {}


def test_edits_make_a_new_output_version_and_reopen_decided_shots(reel_home, tmp_path):
    from reel.tasks.edit import EditParams

    item_id, shot_id, run1 = _restored_shot(reel_home, tmp_path, status=m.ShotStatus.APPROVED)
    plan = review.plan_shots(reel_home, item_id, run1, tmp_path / "work")[shot_id]
    assert plan.keep and plan.output_version == 1
    view = edits.add_edit(reel_home, shot_id, 1, EditParams(hue_deg=30), who="ana")
    with session_scope(reel_home.database_url) as db:
        shot = db.get(m.Shot, shot_id)
        assert shot.status is m.ShotStatus.RERUN_REQUESTED  # re-opened for review
        run2 = m.Run(collection_id=shot.item.collection_id, reel_version="0",
                     status=m.RunStatus.RUNNING)
        db.add(run2)
        db.flush()
        run2 = run2.id
    plan = review.plan_shots(reel_home, item_id, run2, tmp_path / "work")[shot_id]
    assert not plan.keep and plan.output_version == 2 and plan.work_dir.name == "v2"
    # the run applied the edit (what the restore flow records), then finished the shot
    with session_scope(reel_home.database_url) as db:
        db.add(m.StageResult(run_id=run2, item_id=item_id, shot_id=shot_id, stage="regional_edit",
                             engine="regional-edit", engine_version="2", params_hash="",
                             params={"region_edit_ids": [view.id]}, status=m.StageStatus.DONE,
                             seconds=0.1))
    review.finish_shot(reel_home, run2, plan, ok=True)
    with session_scope(reel_home.database_url) as db:
        assert db.get(m.Shot, shot_id).output_version == 2
        assert db.scalar(select(m.Event).where(m.Event.event_type == edits.EVENT,
                                               m.Event.run_id == run2)).detail["output_version"] == 2
    # nothing changed since: the next run re-makes version 2 (edits re-applied there)
    assert review.plan_shots(reel_home, item_id, run2, tmp_path / "work")[shot_id].output_version == 2
    # clearing the edit: a new version without it
    edits.clear_edits(reel_home, shot_id, who="ana")
    assert review.plan_shots(reel_home, item_id, run2, tmp_path / "work")[shot_id].output_version == 3


@pytest.mark.slow
def test_restore_flow_applies_region_edits_on_every_rerun(reel_home, prefect_harness, tmp_path):
    from reel.flows.ingest import ingest_path
    from reel.flows.restore import restore_collection
    from reel.tasks.colorspace import rgb_to_lab
    from reel.tasks.edit import EditParams
    from reel.tasks.media import count_frames, iter_frames, sha256_file

    from test_restore_flow import N1, make_film

    film, truth_dir, refs = make_film(tmp_path / "src")
    ingest_path(reel_home, film, "ed", references_dir=refs, ground_truth_dir=truth_dir)
    assert restore_collection("ed") == {"twoshots": "delivered"}
    with session_scope(reel_home.database_url) as db:
        item = db.scalar(select(m.Item))
        s0 = min(item.shots, key=lambda s: s.index)
        s0_id, item_id = s0.id, item.id
    v1 = reel_home.work_dir / "ed" / f"item-{item_id:05d}" / "shot-0000"
    v1_restored = sha256_file(v1 / "restored.mkv")
    region = edits.shot_regions(reel_home, s0_id)[0]  # the largest region
    view = edits.add_edit(reel_home, s0_id, region.region_id,
                          EditParams(hue_deg=120, saturation=1.5), who="ana")

    assert restore_collection("ed") == {"twoshots": "delivered"}
    v2 = v1 / "v2"
    with session_scope(reel_home.database_url) as db:
        shot = db.get(m.Shot, s0_id)
        assert shot.output_version == 2
        sr = db.scalar(select(m.StageResult).where(
            m.StageResult.shot_id == s0_id, m.StageResult.stage == "regional_edit")
            .order_by(m.StageResult.id.desc()))
        assert sr.output_path == str(v2 / "restored.mkv") and sr.output_version == 2
        assert sr.params["region_edit_ids"] == [view.id] and sr.params["fuser"]["engine"] == "guided"
    assert count_frames(v2 / "restored.mkv") == N1 and (v2 / "harmonized.mkv").is_file()
    assert sha256_file(v1 / "restored.mkv") == v1_restored  # the old version stays
    # the region's colour moved; pixels outside the region and band are the harmonized ones
    with np.load(v2 / "labels.npz") as npz:
        lab0 = npz["labels"][0]
    har = next(iter(iter_frames(v2 / "harmonized.mkv", pix_fmt="rgb24")))
    out = next(iter(iter_frames(v2 / "restored.mkv", pix_fmt="rgb24")))
    import cv2

    inside = cv2.resize((lab0 == region.region_id).astype(np.uint8), out.shape[1::-1],
                        interpolation=cv2.INTER_NEAREST).astype(bool)
    far = cv2.erode(inside.astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool)
    outside = ~cv2.dilate(inside.astype(np.uint8), np.ones((21, 21), np.uint8)).astype(bool)
    assert np.array_equal(out[outside], har[outside])
    d_ab = np.abs(rgb_to_lab(out)[far][:, 1:] - rgb_to_lab(har)[far][:, 1:]).mean()
    assert d_ab > 2.0
    # a later plain run re-makes version 2 with the same edits (planning and the edit list are
    # what this run used; checked without a third restore in test_edits_make_a_new_output_...)
    assert review.plan_shots(reel_home, item_id, 0, v1.parent)[s0_id].output_version == 2
    assert edits.active_edit_specs(reel_home, [s0_id])[s0_id][0]["id"] == view.id
