"""flows/palettes.py: GMM palettes for reference-less shots, the pooled film palette in the
catalog, and `reel palette show` (no Prefect flow needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from reel.flows import palettes
from reel.flows.cli import app
from reel.tasks.references import ReferenceSelection

runner = CliRunner()


def _film(lavfi_film, path: Path) -> Path:
    """60 frames, 160x90, two shots (testsrc2, then smptebars), gray-ish source."""
    return lavfi_film(path, ("testsrc2", "smptebars"), gray=True)


def _selection(palette=None, path=None):
    return ReferenceSelection(ranked=[], palette=palette, palette_path=path, swatch_path=None,
                              engine={}, seconds=0.0)


def test_reference_less_shot_gets_a_seeded_gmm_palette(tmp_path, lavfi_film):
    src = _film(lavfi_film, tmp_path / "film.mkv")
    sel = palettes.ensure_shot_palette(_selection(), src, 0, 30, tmp_path / "shot", k=5, seed=123)
    pal = sel.palette
    assert pal is not None and pal.source == "gmm" and pal.seed == 123
    assert pal.model_version == palettes.model_version()
    assert sel.palette_path == tmp_path / "shot" / "palette-gmm.json" and sel.palette_path.is_file()
    assert sel.swatch_path.is_file()
    again = palettes.ensure_shot_palette(_selection(), src, 0, 30, tmp_path / "again", seed=123)
    assert again.palette.colors_lab.tobytes() == pal.colors_lab.tobytes()
    # a selection that has a palette is returned as is
    assert palettes.ensure_shot_palette(sel, src, 0, 30, tmp_path / "x") is sel
    # seeds: stable per (base seed, film, shot start)
    assert palettes.shot_seed(0, "ab" * 32, 30) == palettes.shot_seed(0, "ab" * 32, 30)
    assert palettes.shot_seed(0, "ab" * 32, 30) != palettes.shot_seed(0, "ab" * 32, 0)


@pytest.fixture
def item(reel_home, tmp_path, lavfi_film):
    films, refs = tmp_path / "films", tmp_path / "refs"
    films.mkdir()
    refs.mkdir()
    _film(lavfi_film, films / "reel1.mkv")
    cv2.imwrite(str(refs / "red.png"), np.full((40, 60, 3), (40, 40, 200), np.uint8))
    cv2.imwrite(str(refs / "blue.png"), np.full((40, 60, 3), (170, 50, 30), np.uint8))
    r = runner.invoke(app, ["ingest", str(films), "--collection", "col", "--references", str(refs)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["shots", "detect", "reel1"])
    assert r.exit_code == 0, r.output
    return reel_home


def test_film_palette_pooled_by_shot_length_recorded_and_shown(item, tmp_path):
    from reel.db import models as m
    from reel.db.session import session_scope
    from reel.flows import record

    s = item
    with session_scope(s.database_url) as db:
        shots = db.scalars(select(m.Shot).order_by(m.Shot.index)).all()
        refs = {Path(r.path).name: r.id for r in db.scalars(select(m.ReferenceImage))}
        item_id = shots[0].item_id
        assert len(shots) == 2, [(x.start_frame, x.stop_frame) for x in shots]
        # shot 0 chose red; shot 1 (twice as long) chose blue, pinned over a red rank 0
        shots[1].start_frame, shots[1].stop_frame = shots[0].stop_frame, shots[0].stop_frame + 60
        lengths = [shots[0].stop_frame - shots[0].start_frame, 60]
        db.add(m.ShotReference(shot_id=shots[0].id, reference_id=refs["red.png"], rank=0, score=1.0))
        db.add(m.ShotReference(shot_id=shots[1].id, reference_id=refs["red.png"], rank=0, score=1.0))
        db.add(m.ShotReference(shot_id=shots[1].id, reference_id=refs["blue.png"], rank=1,
                               score=0.5, pinned=True))
        shot_ids = [x.id for x in shots]
    work = tmp_path / "work"
    pal = palettes.record_film_palette(s, item_id, None, work, k=5, seed=0)
    assert pal.source == "pooled"
    share = lengths[0] / sum(lengths)
    np.testing.assert_allclose(sorted(pal.weights[:2]), sorted([share, 1 - share]), atol=2e-3)
    assert (work / "palette-film.json").is_file() and (work / "palette-film.png").is_file()

    # a shot's GMM palette goes through store_references with its source and model version
    src = Path(record.load_item(s, item_id).source_path)
    sel = palettes.ensure_shot_palette(_selection(), src, 0, 30, tmp_path / "shot1", seed=5)
    record.store_references(s, item_id, shot_ids[0], sel)
    with session_scope(s.database_url) as db:
        rows = db.scalars(select(m.Palette).order_by(m.Palette.id)).all()
        got = [(r.scope.value, r.source, r.shot_id, r.seed, r.model_version) for r in rows]
        events = db.scalars(select(m.Event).where(m.Event.event_type == "film palette")).all()
    assert got == [("film", "pooled", None, 0, None),
                   ("shot", "gmm", shot_ids[0], 5, palettes.model_version())]
    assert events and len(events[0].detail["references"]) == 2

    png = tmp_path / "sw.png"
    r = runner.invoke(app, ["palette", "show", "reel1", "--png", str(png)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "pooled" in text and "gmm" in text and pal.to_hex()[0] in text
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] == 2 * 48 + 4  # two bands and a separator
    r = runner.invoke(app, ["palette", "show", "reel1", "--shot", "0"])
    assert r.exit_code == 0 and "pooled" not in r.output and "gmm" in r.output
    r = runner.invoke(app, ["palette", "show", "reel1", "--shot", "7"])
    assert r.exit_code == 1 and "no stored palettes" in r.output


def test_film_palette_without_references_is_none(item, tmp_path):
    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(item.database_url) as db:
        item_id = db.scalar(select(m.Item.id))
    assert palettes.record_film_palette(item, item_id, None, tmp_path / "w") is None


def test_palette_commands_have_help():
    for cmd in (["palette", "show", "--help"], ["palette", "fit-gmm", "--help"]):
        r = runner.invoke(app, cmd)
        assert r.exit_code == 0 and "Usage" in r.output
