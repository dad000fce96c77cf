"""Review workflow without Prefect: users CLI, delivery gate, re-run planning, regional edits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from reel.db import models as m
from reel.db.api import ensure_schema
from reel.db.reviews import request_rerun, review_shot
from reel.db.session import session_scope
from reel.flows import review
from reel.flows.cli import app

runner = CliRunner()


def _item(url: str, tmp_path: Path, n_shots: int = 3) -> tuple[int, list[int], int]:
    """A collection with one item of ``n_shots`` 10-frame shots and a finished run."""
    ensure_schema(url)
    with session_scope(url) as db:
        col = m.Collection(name="c")
        item = m.Item(collection=col, name="film", source_path=str(tmp_path / "film.mkv"))
        for i in range(n_shots):
            item.shots.append(m.Shot(index=i, start_frame=10 * i, stop_frame=10 * (i + 1),
                                     status=m.ShotStatus.DONE))
        run = m.Run(collection=col, reel_version="0", status=m.RunStatus.COMPLETED)
        db.add_all([item, run])
        db.flush()
        return item.id, [s.id for s in item.shots], run.id


# ------------------------------------------------------------------------------------------
# users
# ------------------------------------------------------------------------------------------


def test_users_add_from_stdin_file_and_prompt(reel_home, tmp_path):
    from reel.db.users import verify_password

    result = runner.invoke(app, ["users", "add", "ana", "--role", "admin"], input="s3cret-pass\n")
    assert result.exit_code == 0, result.output
    assert "s3cret-pass" not in result.output  # never echoed
    pw = tmp_path / "pw.txt"
    pw.write_text("another-pass-9\nignored second line\n")
    result = runner.invoke(app, ["users", "add", "ben", "--password-file", str(pw)])
    assert result.exit_code == 0, result.output
    with session_scope(reel_home.database_url) as db:
        users = {u.name: u for u in db.scalars(select(m.User))}
        assert users["ana"].role is m.UserRole.ADMIN and users["ben"].role is m.UserRole.REVIEWER
        assert verify_password("s3cret-pass", users["ana"].password_hash)
        assert verify_password("another-pass-9", users["ben"].password_hash)
        assert "another-pass-9" not in users["ben"].password_hash
    # taken name, weak password, bad role: refused with a hint
    for args, text in ((["users", "add", "ana"], "already exists"),
                       (["users", "add", "cy"], "at least 8"),
                       (["users", "add", "dee", "--role", "boss"], "unknown role")):
        result = runner.invoke(app, args, input="short\n" if "cy" in args else "long-enough-1\n")
        assert result.exit_code == 1 and text in " ".join(result.output.split()), result.output
    result = runner.invoke(app, ["users", "list"])
    assert result.exit_code == 0 and "ana" in result.output and "ben" in result.output
    # the interactive prompt asks twice and refuses a mismatch
    answers = iter(["pass-one-111", "pass-two-222"])
    with pytest.raises(ValueError, match="differ"):
        review.read_password(stdin=io.StringIO(""), prompt=True, getpass_fn=lambda _: next(answers))


def test_review_command_has_help_and_serves_on_localhost():
    result = runner.invoke(app, ["review", "--help"])
    assert result.exit_code == 0 and "127.0.0.1" in " ".join(result.output.split())
    cmd = review.streamlit_command(port=8600)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == "8600"
    assert Path(cmd[cmd.index("run") + 1]) == review.dashboard_app_path()
    assert review.dashboard_app_path().is_file()


# ------------------------------------------------------------------------------------------
# delivery gate
# ------------------------------------------------------------------------------------------


def test_delivery_gate_refuses_until_every_shot_is_approved(reel_home, tmp_path):
    url = reel_home.database_url
    item_id, shots, _ = _item(url, tmp_path)
    with session_scope(url) as db:
        review_shot(db, shots[0], "ana", "approve", expected_version=None)
        review_shot(db, shots[1], "ana", "reject", expected_version=None, note="sky")
    with pytest.raises(review.DeliveryBlocked) as info:
        review.check_delivery_gate(reel_home, item_id, force=False, actor="ops")
    assert info.value.blockers == [(1, "rejected"), (2, "done")]
    assert "2 of 3 shots" in str(info.value) and "--force" in str(info.value)
    with session_scope(url) as db:
        assert not db.scalars(select(m.Event).where(m.Event.event_type == "delivery gate override")).all()

    review.check_delivery_gate(reel_home, item_id, force=True, actor="ops")  # forced: recorded
    with session_scope(url) as db:
        (ev,) = db.scalars(select(m.Event).where(m.Event.event_type == "delivery gate override"))
        assert ev.agent == "ops" and ev.item_id == item_id and ev.outcome is m.EventOutcome.WARNING
        assert ev.detail["not_approved"] == [[1, "rejected"], [2, "done"]]

    with session_scope(url) as db:
        for sid in shots[1:]:
            review_shot(db, sid, "ana", "approve", expected_version=None)
    review.check_delivery_gate(reel_home, item_id, force=False, actor="ops")  # passes, not logged
    with pytest.raises(LookupError):
        review.check_delivery_gate(reel_home, 999, force=False, actor="ops")


def test_reel_deliver_refuses_unapproved_shots(reel_home, tmp_path):
    item_id, shots, _ = _item(reel_home.database_url, tmp_path)
    with session_scope(reel_home.database_url) as db:
        review_shot(db, shots[0], "ana", "approve", expected_version=None)
    result = runner.invoke(app, ["deliver", "film"])
    text = " ".join(result.output.split())
    assert result.exit_code == 4, result.output
    assert "2 of 3 shots of item 'film' are not approved: shot 1 (done), shot 2 (done)" in text
    assert "--force" in text
    with session_scope(reel_home.database_url) as db:  # nothing delivered, nothing recorded
        assert not db.scalars(select(m.Deliverable)).all() and not db.scalars(select(m.Run).where(
            m.Run.id > 1)).all()
    assert review.cli_actor()


def test_delivery_gate_refuses_an_item_never_restored(reel_home, tmp_path):
    item_id, _, _ = _item(reel_home.database_url, tmp_path, n_shots=0)
    with pytest.raises(review.DeliveryBlocked, match="no shots yet"):
        review.check_delivery_gate(reel_home, item_id, force=False, actor="ops")


# ------------------------------------------------------------------------------------------
# re-run planning
# ------------------------------------------------------------------------------------------


def test_plan_picks_up_requests_keeps_decided_shots_and_versions_outputs(reel_home, tmp_path):
    url = reel_home.database_url
    item_id, shots, run1 = _item(url, tmp_path)
    work = tmp_path / "work" / "item"
    for i in range(3):  # outputs of version 1
        (work / f"shot-{i:04d}").mkdir(parents=True)
        (work / f"shot-{i:04d}" / "restored.mkv").write_bytes(b"x")
    ref = tmp_path / "still.png"
    ref.write_bytes(b"png")
    with session_scope(url) as db:
        review_shot(db, shots[0], "ana", "approve", expected_version=None)
        request_rerun(db, shots[1], "ana", {"reference": str(ref), "engines": {"colorize": "welsh"}},
                      expected_version=None)
        run2 = m.Run(collection_id=db.get(m.Shot, shots[0]).item.collection_id, reel_version="0")
        db.add(run2)
        db.flush()
        run2 = run2.id

    plans = review.plan_shots(reel_home, item_id, run2, work)
    p0, p1, p2 = (plans[s] for s in shots)
    assert p0.keep and p0.status == "approved" and p0.restored_path == work / "shot-0000" / "restored.mkv"
    assert not p1.keep and p1.output_version == 2 and p1.work_dir == work / "shot-0001" / "v2"
    assert p1.engine("colorize", "exemplar-propagate") == "welsh"
    assert p1.engine("harmonize", "palette-stats") == "palette-stats"
    assert p1.pinned_references == [ref] and p1.request_id is not None
    assert not p2.keep and p2.output_version == 1 and p2.request_id is None and p2.params == {}
    with session_scope(url) as db:
        req = db.get(m.RerunRequest, p1.request_id)
        assert req.status is m.RerunStatus.RUNNING and req.picked_up_run_id == run2
        assert req.output_version == 2
        db.add(m.StageResult(run_id=run2, item_id=item_id, shot_id=shots[1], stage="qc",
                             engine="reel-qc", engine_version="0", params_hash="",
                             status=m.StageStatus.DONE))

    review.finish_shot(reel_home, run2, p1, ok=True)
    with session_scope(url) as db:
        shot = db.get(m.Shot, shots[1])
        assert shot.output_version == 2
        assert shot.rerun_requests[0].status is m.RerunStatus.DONE
        sr = db.scalar(select(m.StageResult).where(m.StageResult.run_id == run2))
        assert sr.output_version == 2
        actions = [e.detail["action"] for e in db.scalars(
            select(m.Event).where(m.Event.event_type == "rerun").order_by(m.Event.id))]
        assert actions == ["picked up", "done"]

    # the next run re-makes version 2 with the same parameters; nothing new is picked up
    (work / "shot-0001" / "v2").mkdir(parents=True)
    plans = review.plan_shots(reel_home, item_id, run2 + 1, work)
    again = plans[shots[1]]
    assert again.output_version == 2 and again.request_id is None
    assert again.engine("colorize", "x") == "welsh" and again.work_dir == work / "shot-0001" / "v2"


def test_bad_requests_fail_at_pickup_with_the_reason(reel_home, tmp_path):
    url = reel_home.database_url
    item_id, shots, run1 = _item(url, tmp_path)
    with session_scope(url) as db:
        request_rerun(db, shots[0], "ana", {"engines": {"colorize": "magic"}}, expected_version=None)
        request_rerun(db, shots[1], "ana", {"reference": str(tmp_path / "gone.png")}, expected_version=None)
        request_rerun(db, shots[2], "ana", {"palette": {"from_shot": shots[0]}}, expected_version=None)
    plans = review.plan_shots(reel_home, item_id, run1, tmp_path / "work")
    assert all(p.request_id is None and p.output_version == 1 for p in plans.values())
    with session_scope(url) as db:
        errors = [db.get(m.Shot, s).rerun_requests[0] for s in shots]
        assert [r.status for r in errors] == [m.RerunStatus.FAILED] * 3
        assert "exemplar-propagate" in errors[0].error  # lists the known engines
        assert "does not exist" in errors[1].error and "no palette file" in errors[2].error


def test_failed_rerun_keeps_the_old_version(reel_home, tmp_path):
    url = reel_home.database_url
    item_id, shots, run1 = _item(url, tmp_path)
    ref = tmp_path / "still.png"
    ref.write_bytes(b"png")
    with session_scope(url) as db:
        request_rerun(db, shots[0], "ana", {"reference": str(ref)}, expected_version=None)
    plan = review.plan_shots(reel_home, item_id, run1, tmp_path / "work")[shots[0]]
    review.finish_shot(reel_home, run1, plan, ok=False, error="colorization: boom")
    with session_scope(url) as db:
        shot = db.get(m.Shot, shots[0])
        assert shot.output_version == 1
        assert shot.rerun_requests[0].status is m.RerunStatus.FAILED
        assert shot.rerun_requests[0].error == "colorization: boom"
    # asking again gets a fresh version number (v2 was used by the failed attempt: v3)
    with session_scope(url) as db:
        request_rerun(db, shots[0], "ana", {"reference": str(ref)}, expected_version=None)
    plan = review.plan_shots(reel_home, item_id, run1, tmp_path / "work")[shots[0]]
    assert plan.output_version == 3


# ------------------------------------------------------------------------------------------
# regional edit
# ------------------------------------------------------------------------------------------


def test_region_mask_from_labels_and_box():
    labels = np.zeros((4, 6), np.uint16)
    labels[:2, :3] = 7
    mask = review.region_mask((8, 12), {"labels": [7]}, labels, feather_px=0)
    assert mask.shape == (8, 12) and mask[:4, :6].min() == 1.0 and mask[4:, :].max() == 0.0
    soft = review.region_mask((8, 12), {"box": [0.5, 0.0, 1.0, 1.0]}, feather_px=1.5)
    assert 0.0 < soft[0, 6] < 1.0 and soft[4, 11] > 0.9 and soft[4, 0] < 1e-3


def test_regional_edit_moves_the_region_to_the_target_and_keeps_luminance(tmp_path, two_region_shot):
    from reel.tasks.colorspace import rgb_to_lab
    from reel.tasks.media import count_frames, iter_frames

    T = 6
    # a gray frame with a green left half (region 1), no texture
    src, frames, _ = two_region_shot(T=T, background=(120, 120, 120), texture=0)
    target = "#3050c0"  # blue
    before = tmp_path.joinpath("harmonized.mkv").read_bytes()
    res = review.regional_edit(src, tmp_path / "restored.mkv",
                               {"region": {"labels": [1]}, "target_rgb": target, "strength": 1.0},
                               labels_path=tmp_path / "labels.npz", feather_px=0.0)
    assert res.n_frames == T and count_frames(res.out_path) == T
    assert res.engine["engine"] == "regional-edit" and res.engine["params"]["target_rgb"] == target
    assert src.read_bytes() == before  # the input is never modified
    out = list(iter_frames(res.out_path, pix_fmt="rgb24"))
    lab_in, lab_out = rgb_to_lab(frames[0]), rgb_to_lab(out[0])
    # inside: chroma moved to the target's; L kept; outside untouched
    np.testing.assert_allclose(lab_out[:, :20, 1:].mean((0, 1)), review.target_ab(target), atol=3.0)
    np.testing.assert_allclose(lab_out[..., 0], lab_in[..., 0], atol=1.0)
    assert np.array_equal(out[0][:, 28:], frames[0][:, 28:])
    # deterministic
    again = review.regional_edit(src, tmp_path / "again.mkv",
                                 {"region": {"labels": [1]}, "target_rgb": target, "strength": 1.0},
                                 labels_path=tmp_path / "labels.npz", feather_px=0.0)
    assert again.out_path.read_bytes() == res.out_path.read_bytes()


def test_override_palette_from_a_still(tmp_path):
    import cv2

    from reel.tasks.palette import Palette
    from reel.tasks.references import ReferenceSelection

    still = tmp_path / "red.png"
    img = np.zeros((20, 20, 3), np.uint8)
    img[:, :10] = (0, 0, 200)  # BGR red
    img[:, 10:] = (200, 200, 200)
    cv2.imwrite(str(still), img)
    sel = ReferenceSelection(ranked=[], palette=None, palette_path=None, swatch_path=None,
                             engine={}, seconds=0.0)
    out = review.override_palette(sel, tmp_path / "v2", palette={"from_reference": str(still), "k": 2})
    assert out.palette_path == tmp_path / "v2" / "palette.json" and out.swatch_path.is_file()
    pal = Palette.load(out.palette_path)
    assert pal.k == 2 and max(abs(c[1]) for c in pal.colors_lab) > 40  # a strongly red colour
    assert sel.palette is None  # the original selection is not changed


def test_docstring_examples():
    import doctest

    result = doctest.testmod(review, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
