"""Re-run requests through the real restore flow: the next run makes a new version of the shot
beside the old one, with the requested reference, palette, engine and regional edit, and leaves
approved shots alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from test_restore_flow import N1, N2, make_film


@pytest.mark.slow
def test_rerun_request_makes_a_new_version_next_run(reel_home, prefect_harness, tmp_path):
    from reel.db import models as m
    from reel.db.reviews import request_rerun, review_shot
    from reel.db.session import session_scope
    from reel.flows.ingest import ingest_path
    from reel.flows.restore import restore_collection
    from reel.tasks.media import count_frames, sha256_file

    film, truth_dir, refs = make_film(tmp_path / "src")
    ingest_path(reel_home, film, "rr", references_dir=refs, ground_truth_dir=truth_dir)
    assert restore_collection("rr") == {"twoshots": "delivered"}

    with session_scope(reel_home.database_url) as db:
        item = db.scalar(select(m.Item))
        s0, s1 = sorted(item.shots, key=lambda s: s.index)
        work = reel_home.work_dir / "rr" / f"item-{item.id:05d}"
        v1 = work / "shot-0000"
        v1_restored = sha256_file(v1 / "restored.mkv")
        s1_restored = sha256_file(work / "shot-0001" / "restored.mkv")
        # shot 1 approved; shot 0 sent back: other still, shot 1's palette, another engine, an edit
        review_shot(db, s1.id, "ana", "approve", expected_version=s1.version)
        request_rerun(db, s0.id, "ana", {
            "reference": str((refs / "coffee.png").resolve()),
            "palette": {"from_shot": s1.id},
            "engines": {"colorize": "reinhard-global"},
            "edit": {"region": {"box": [0.0, 0.0, 0.5, 0.5]}, "target_rgb": "#2050d0", "strength": 0.8},
        }, expected_version=s0.version, note="wrong still")
        s0_id, s1_id = s0.id, s1.id

    assert restore_collection("rr") == {"twoshots": "delivered"}

    v2 = v1 / "v2"
    with session_scope(reel_home.database_url) as db:
        run2 = db.scalar(select(func.max(m.Run.id)))
        s0, s1 = db.get(m.Shot, s0_id), db.get(m.Shot, s1_id)
        # the new version is current; the old one is still on disk, beside it
        assert s0.output_version == 2 and s0.status in (m.ShotStatus.DONE, m.ShotStatus.FLAGGED)
        for name in ("restored.mkv", "harmonized.mkv", "before.png", "after.png", "palette.json",
                     "overlay.png"):
            assert (v2 / name).is_file(), name
        assert sha256_file(v1 / "restored.mkv") == v1_restored
        assert count_frames(v2 / "restored.mkv") == N1
        (req,) = s0.rerun_requests
        assert req.status is m.RerunStatus.DONE and req.picked_up_run_id == run2 and req.output_version == 2
        stages = {sr.stage: sr for sr in db.scalars(select(m.StageResult).where(
            m.StageResult.run_id == run2, m.StageResult.shot_id == s0_id))}
        assert set(stages) == {"segmentation", "references", "colorization", "harmonization", "qc",
                               "regional_edit"}
        assert {sr.output_version for sr in stages.values()} == {2}
        assert stages["colorization"].engine == "reinhard-global"
        assert stages["regional_edit"].output_path == str(v2 / "restored.mkv")
        assert Path(stages["qc"].output_path).parent == v2
        top = min(s0.references, key=lambda r: r.rank)
        assert Path(top.reference.path).name == "coffee.png"
        # the approved shot was not processed again and kept its decision
        assert s1.status is m.ShotStatus.APPROVED and s1.output_version == 1
        assert not db.scalars(select(m.StageResult).where(
            m.StageResult.run_id == run2, m.StageResult.shot_id == s1_id)).all()
        assert sha256_file(work / "shot-0001" / "restored.mkv") == s1_restored
        master = db.scalar(select(m.Deliverable).where(m.Deliverable.run_id == run2,
                                                       m.Deliverable.kind == m.DeliverableKind.MASTER))
        assert count_frames(master.path) == N1 + N2
        v2_restored = sha256_file(v2 / "restored.mkv")
        assert v2_restored != v1_restored

    # a plain run later re-makes version 2 with the request's parameters (same bytes)
    assert restore_collection("rr") == {"twoshots": "delivered"}
    with session_scope(reel_home.database_url) as db:
        assert db.get(m.Shot, s0_id).output_version == 2
    assert sha256_file(v2 / "restored.mkv") == v2_restored
