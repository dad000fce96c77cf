"""`reel shots list|split|merge|detect|export`: corrections in the catalog, recorded as events,
kept on re-detection, work folders kept with their shots; CSV/EDL exports (no Prefect needed)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from reel.flows.cli import app
from reel.flows.shots import keep_manual, relocate_work_dirs
from reel.tasks.shots import Shot

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.fixture
def item(reel_home, tmp_path, lavfi_film):
    films = tmp_path / "films"
    films.mkdir()
    # 90 frames at 25 fps: testsrc2, smptebars, testsrc (cuts at 30 and 60)
    lavfi_film(films / "reel1.mkv", ("testsrc2", "smptebars", "testsrc"))
    r = runner.invoke(app, ["ingest", str(films), "--collection", "col"])
    assert r.exit_code == 0, r.output
    return reel_home


def _shots(s):
    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        return [(sh.id, sh.index, sh.start_frame, sh.stop_frame, sh.origin.value, sh.status.value)
                for sh in db.scalars(select(m.Shot).order_by(m.Shot.index))]


def _events(s, kind):
    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        return [(e.shot_id, e.agent, e.detail) for e in
                db.scalars(select(m.Event).where(m.Event.event_type == kind).order_by(m.Event.id))]


def _work(s):
    return s.work_dir / "col" / "item-00001"


def test_split_merge_detect_export(item, tmp_path, monkeypatch):
    s = item
    # first detection through the CLI (the item has no shots yet)
    r = runner.invoke(app, ["shots", "detect", "reel1", "--reviewer", "ana"])
    assert r.exit_code == 0, r.output
    shots = _shots(s)
    assert [(a, b) for _, _, a, b, _, _ in shots] == [(0, 30), (30, 60), (60, 90)]
    assert all(o == "detected" for *_, o, _ in shots)
    assert _events(s, "shot detection")[-1][1] == "ana / archival"

    # work folders of the three shots, with a marker each
    work = _work(s)
    for i in range(3):
        (work / f"shot-{i:04d}" / "v2").mkdir(parents=True)
        (work / f"shot-{i:04d}" / "marker").write_text(str(shots[i][0]))

    # split the middle shot at 45
    r = runner.invoke(app, ["shots", "split", "col/reel1", "45", "--reviewer", "ana"])
    assert r.exit_code == 0, r.output
    after = _shots(s)
    assert [(a, b, o) for _, _, a, b, o, _ in after] == [
        (0, 30, "detected"), (30, 45, "manual"), (45, 60, "manual"), (60, 90, "detected")]
    assert after[1][0] == shots[1][0] and after[3][0] == shots[2][0]  # rows kept
    ev = _events(s, "shot split")[-1]
    assert ev[1] == "ana" and ev[2]["frame"] == 45 and ev[2]["new_shot_id"] == after[2][0]
    assert len(ev[2]["before"]) == 3 and len(ev[2]["after"]) == 4
    # folders follow their shots: shot 2 (old index 2) is now index 3; the split shot's is gone
    assert (work / "shot-0003" / "marker").read_text() == str(shots[2][0])
    assert (work / "shot-0003" / "v2").is_dir()
    assert (work / "shot-0000" / "marker").read_text() == str(shots[0][0])
    assert not (work / "shot-0001").exists() and not (work / "shot-0002").exists()

    # errors say what is wrong
    r = runner.invoke(app, ["shots", "split", "reel1", "45"])
    assert r.exit_code == 1 and "already starts" in _text(r)
    r = runner.invoke(app, ["shots", "split", "reel1", "500"])
    assert r.exit_code == 1 and "outside" in _text(r)
    r = runner.invoke(app, ["shots", "merge", "reel1", str(after[0][0])])
    assert r.exit_code == 1 and "no previous shot" in _text(r)
    r = runner.invoke(app, ["shots", "merge", "reel1", "9999"])
    assert r.exit_code == 1 and "no shot with id" in _text(r)
    r = runner.invoke(app, ["shots", "list", "nope"])
    assert r.exit_code == 1 and "no item" in _text(r)

    # re-detection keeps the manual shots exactly (45 is not a detected boundary)
    r = runner.invoke(app, ["shots", "detect", "1"])
    assert r.exit_code == 0, r.output
    again = _shots(s)
    assert [(a, b, o) for _, _, a, b, o, _ in again] == [
        (0, 30, "detected"), (30, 45, "manual"), (45, 60, "manual"), (60, 90, "detected")]
    assert [x[0] for x in again] == [x[0] for x in after]  # unchanged rows kept
    assert _events(s, "shot detection")[-1][2]["manual_kept"] == 2

    # merge the last shot into the previous one, then the first with the next
    r = runner.invoke(app, ["shots", "merge", "reel1", str(after[3][0]), "--reviewer", "ben"])
    assert r.exit_code == 0, r.output
    merged = _shots(s)
    assert [(a, b, o) for _, _, a, b, o, _ in merged] == [
        (0, 30, "detected"), (30, 45, "manual"), (45, 90, "manual")]
    mev = _events(s, "shot merge")[-1]
    assert mev[1] == "ben" and mev[2]["removed_shot"]["id"] == after[3][0]
    assert mev[2]["removed_shot"]["start"] == 60
    assert not (work / "shot-0003").exists()  # the merged shots' outputs are stale
    r = runner.invoke(app, ["shots", "merge", "reel1", str(merged[0][0]), "--with-next"])
    assert r.exit_code == 0, r.output
    assert [(a, b) for _, _, a, b, _, _ in _shots(s)] == [(0, 45), (45, 90)]

    # re-detection still keeps them: the detected cuts at 30 and 60 fall inside manual shots
    r = runner.invoke(app, ["shots", "detect", "reel1", "--engine", "histogram"])
    assert r.exit_code == 0, r.output
    assert [(a, b, o) for _, _, a, b, o, _ in _shots(s)] == [(0, 45, "manual"), (45, 90, "manual")]

    # the list command shows ids and origins
    # rich reads the terminal width when the console is created: widen it so no cell is cut
    from reel.flows import cli

    monkeypatch.setattr(cli.console, "width", 200)
    r = runner.invoke(app, ["shots", "list", "reel1"])
    assert r.exit_code == 0 and "manual" in r.output
    assert "00:00:01:20" in r.output  # frame 45 at 25 fps

    # exports
    from reel.tasks.edl import parse_csv, parse_edl

    r = runner.invoke(app, ["shots", "export", "reel1", "--format", "edl", "--out", str(tmp_path / "x.edl")])
    assert r.exit_code == 0, r.output
    edl = parse_edl((tmp_path / "x.edl").read_text(), fps="25/1")
    assert [(e.src_in, e.src_out) for e in edl.events] == [(0, 45), (45, 90)]
    assert "FROM CLIP NAME: reel1.mkv" in edl.events[0].comments
    r = runner.invoke(app, ["shots", "export", "reel1", "--format", "csv"])
    assert r.exit_code == 0, r.output
    default = s.deliverables_dir / "col" / "reel1" / "reel1.shots.csv"
    rows = parse_csv(default.read_text())
    assert [(x.start, x.stop, x.origin) for x in rows] == [(0, 45, "manual"), (45, 90, "manual")]
    r = runner.invoke(app, ["shots", "export", "reel1", "--format", "xml"])
    assert r.exit_code == 1 and "csv or edl" in _text(r)


def test_first_detection_is_never_stored_twice(item):
    from reel.flows import record

    s = item
    shots = [Shot(0, 30, "start", 1.0), Shot(30, 90, "cut", 0.5)]
    record.save_detected_shots(s, 1, None, shots, "archival")
    with pytest.raises(RuntimeError, match="already has a shot list"):
        record.save_detected_shots(s, 1, None, shots, "archival")


def test_keep_manual_fills_the_gaps():
    det = [Shot(0, 10, "start", 1.0), Shot(10, 30, "cut", 0.9), Shot(30, 50, "fade", 0.8),
           Shot(50, 80, "dissolve", 0.7)]
    out = keep_manual(det, [(25, 40)], 80, min_shot_frames=3)
    assert [(a, b, m) for a, b, _, _, m in out] == [(0, 10, False), (10, 25, False), (25, 40, True),
                                                    (40, 50, False), (50, 80, False)]
    assert out[4][2] == "dissolve" and out[0][2] == "start"
    # a detected cut too close to a manual edge is dropped rather than making a sliver
    out = keep_manual(det, [(12, 40)], 80, min_shot_frames=5)
    assert [(a, b) for a, b, *_ in out] == [(0, 12), (12, 40), (40, 50), (50, 80)]
    assert [(a, b) for a, b, *_ in keep_manual(det, [], 80)] == [(0, 10), (10, 30), (30, 50), (50, 80)]
    with pytest.raises(ValueError):
        keep_manual(det, [(0, 20), (10, 30)], 80)


def test_relocate_work_dirs_handles_any_permutation(tmp_path):
    for i in range(4):
        (tmp_path / f"shot-{i:04d}").mkdir()
        (tmp_path / f"shot-{i:04d}" / "id").write_text(str(i))
    done = relocate_work_dirs(tmp_path, {0: 1, 1: 0, 3: 2}, stale=[2])
    assert (tmp_path / "shot-0001" / "id").read_text() == "0"
    assert (tmp_path / "shot-0000" / "id").read_text() == "1"
    assert (tmp_path / "shot-0002" / "id").read_text() == "3"
    assert not (tmp_path / "shot-0003").exists()
    assert done["shot-0002"] == "removed" or done["shot-0003"] == "shot-0002"
    assert relocate_work_dirs(tmp_path / "missing", {0: 1}, []) == {}


@pytest.mark.parametrize("command", [["shots"], ["shots", "split"], ["shots", "merge"], ["shots", "export"],
                                     ["shots", "detect"], ["shots", "list"], ["benchmark", "shots"]])
def test_shots_commands_have_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
