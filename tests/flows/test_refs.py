"""`reel refs list|pin|unpin`, shot clusters in the catalog, pins kept by store_references, and the
restore flow's item-level ranking (clusters share pooled references)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data
from sqlalchemy import select
from typer.testing import CliRunner

from reel.flows.cli import app
from reel.tasks.colorspace import rgb_to_gray
from reel.tasks.shots import Shot

runner = CliRunner()
W, H = 160, 96


def _text(result) -> str:
    return " ".join(result.output.split())


def _pan(img, n, step_px=2):
    img = cv2.resize(img, (W + step_px * n, H + 8), interpolation=cv2.INTER_AREA)
    return [img[4:4 + H, i * step_px:i * step_px + W].copy() for i in range(n)]


def make_collection(folder: Path, n=16):
    """Gray film: astronaut, coffee, astronaut again (shot 2 returns to shot 0's set-up)."""
    colour = _pan(data.astronaut(), n) + _pan(data.coffee(), n) + _pan(data.astronaut(), n, 3)
    refs = folder / "refs"
    refs.mkdir(parents=True)
    cv2.imwrite(str(refs / "astronaut.png"), cv2.cvtColor(colour[n // 2], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(refs / "coffee.png"), cv2.cvtColor(colour[n + n // 2], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(refs / "chelsea.png"), cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR))
    film = folder / "films" / "threeshots.mkv"
    film.parent.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
                    "-s", f"{W}x{H}", "-framerate", "25", "-i", "pipe:", "-c:v", "ffv1", "-g", "1",
                    str(film)], input=b"".join(rgb_to_gray(f).tobytes() for f in colour), check=True)
    return film, refs


@dataclass
class _Sel:  # what record.store_references reads from a ReferenceSelection
    ranked: list
    palette: None = None
    palette_path: None = None


def _events(s, kind):
    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        return [(e.shot_id, e.agent, e.detail) for e in
                db.scalars(select(m.Event).where(m.Event.event_type == kind).order_by(m.Event.id))]


def test_pin_list_unpin_and_clusters(reel_home, tmp_path):
    from reel.flows import record, refs
    from reel.flows.ingest import ingest_path
    from reel.tasks.references import RankedReference

    film, ref_dir = make_collection(tmp_path / "src", n=8)
    ingest_path(reel_home, film, "col", references_dir=ref_dir)
    item = record.items_of(reel_home, "col")[0]
    shots = record.save_detected_shots(reel_home, item.id, None,
                                       [Shot(0, 8, "cut", 1.0), Shot(8, 16, "cut", 1.0),
                                        Shot(16, 24, "cut", 1.0)], "test")
    library = record.reference_library(reel_home, item.collection_id)
    by_name = {p.name: p for p in library}
    refs.store_clusters(reel_home, item.id, None, {shots[0].id: 0, shots[1].id: 1, shots[2].id: 0},
                        {"engine": "fused", "engine_version": "1", "params": {"cluster_distance": 0.3}})
    assert _events(reel_home, "reference clustering")[0][2]["clusters"] == {
        str(shots[0].id): 0, str(shots[1].id): 1, str(shots[2].id): 0}
    # a run stored a ranking for shot 0
    record.store_references(reel_home, item.id, shots[0].id, _Sel([
        RankedReference(by_name["astronaut.png"], 2.1), RankedReference(by_name["chelsea.png"], -0.3)]))

    r = runner.invoke(app, ["refs", "list", "threeshots:0"])
    assert r.exit_code == 0, r.output
    out = _text(r)
    assert "reference cluster 0 (shots 0, 2)" in out
    assert out.index("astronaut.png") < out.index("chelsea.png") and "2.1000" in out

    # pin by file name: leads the list, event recorded with the reviewer
    r = runner.invoke(app, ["refs", "pin", str(shots[0].id), "coffee.png", "--reviewer", "ana"])
    assert r.exit_code == 0, r.output
    info = refs.list_references(reel_home, shots[0].id)
    assert [(Path(x.path).name, x.pinned) for x in info.rows] == [
        ("coffee.png", True), ("astronaut.png", False), ("chelsea.png", False)]
    assert [x.rank for x in info.rows] == [0, 1, 2]
    ev = _events(reel_home, "reference pinned")
    assert ev[0][0] == shots[0].id and ev[0][1] == "ana" and ev[0][2]["path"].endswith("coffee.png")

    # a re-run replaces the ranked rows but keeps the pin, and shots_of hands it to the flow
    assert record.shots_of(reel_home, item.id)[0].pinned_references == [by_name["coffee.png"]]
    record.store_references(reel_home, item.id, shots[0].id, _Sel([
        RankedReference(by_name["coffee.png"], 1.0), RankedReference(by_name["astronaut.png"], 1.5)]))
    info = refs.list_references(reel_home, shots[0].id)
    assert [(Path(x.path).name, x.pinned) for x in info.rows] == [("coffee.png", True),
                                                                   ("astronaut.png", False)]

    # pin by id and by path on another shot; errors say what to do
    ref_id = refs.resolve_reference(reel_home, item.collection_id, "chelsea.png")
    assert refs.resolve_reference(reel_home, item.collection_id, str(ref_id)) == ref_id
    assert refs.resolve_reference(reel_home, item.collection_id, str(by_name["chelsea.png"])) == ref_id
    r = runner.invoke(app, ["refs", "pin", "threeshots:1", str(ref_id)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["refs", "pin", "threeshots:1", "nosuch.png"])
    assert r.exit_code == 1 and "not in the collection's reference library" in _text(r)
    r = runner.invoke(app, ["refs", "list", "threeshots:9"])
    assert r.exit_code == 1 and "has no shot 9" in _text(r)
    r = runner.invoke(app, ["refs", "list", "nonsense"])
    assert r.exit_code == 1 and "ITEM:INDEX" in _text(r)

    r = runner.invoke(app, ["refs", "unpin", str(shots[0].id), "coffee.png"])
    assert r.exit_code == 0, r.output
    assert [Path(x.path).name for x in refs.list_references(reel_home, shots[0].id).rows] == [
        "astronaut.png"]
    assert len(_events(reel_home, "reference unpinned")) == 1
    r = runner.invoke(app, ["refs", "unpin", str(shots[0].id), "coffee.png"])
    assert r.exit_code == 1 and "not pinned" in _text(r)


@pytest.mark.slow
def test_restore_clusters_shots_and_keeps_pins(reel_home, prefect_harness, tmp_path, monkeypatch):
    from reel.config import reset_settings
    from reel.db import models as m
    from reel.db.session import session_scope
    from reel.flows import record, refs
    from reel.flows.ingest import ingest_path
    from reel.flows.restore import restore_collection

    monkeypatch.setenv("REEL_PROCESSING__PERSON_MASKS", "false")  # keep the test fast
    reset_settings()
    film, ref_dir = make_collection(tmp_path / "src")
    ingest_path(reel_home, film, "col", references_dir=ref_dir)
    assert restore_collection("col") == {"threeshots": "delivered"}
    with session_scope(reel_home.database_url) as db:
        shots = sorted(db.scalars(select(m.Shot)), key=lambda sh: sh.index)
        assert [(sh.start_frame, sh.stop_frame) for sh in shots] == [(0, 16), (16, 32), (32, 48)]
        assert [sh.reference_cluster for sh in shots] == [0, 1, 0]
        ranked = [[(Path(r.reference.path).name, round(r.score, 6)) for r in
                   sorted(sh.references, key=lambda r: r.rank)] for sh in shots]
        ids = [sh.id for sh in shots]
        sel = db.scalars(select(m.StageResult).where(
            m.StageResult.stage.in_(["references", "reference_selection"]))).all()
        assert sel and all(st.engine == "fused" for st in sel)
    assert ranked[0] == ranked[2] and ranked[0][0][0] == "astronaut.png"
    assert ranked[1][0][0] == "coffee.png"
    assert _events(reel_home, "reference clustering")

    refs.pin_reference(reel_home, ids[1], "chelsea.png", who="ana")
    item = record.items_of(reel_home, "col")[0]
    record.set_item_status(reel_home, item.id, "registered")
    restore_collection("col")
    info = refs.list_references(reel_home, ids[1])
    assert Path(info.rows[0].path).name == "chelsea.png" and info.rows[0].pinned
    assert Path(info.rows[1].path).name == "coffee.png"
