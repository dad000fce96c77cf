"""The restore flow with palettes: a film whose collection has no reference stills gets seeded
GMM palettes per shot (recorded with seed and model version) and coloured, not gray, output."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest
from skimage import data

from reel.tasks.colorspace import rgb_to_gray

W, H, N = 96, 64, 16


def _film(path):
    frames = []
    for img in (data.astronaut(), data.coffee()):
        big = cv2.resize(img, (W + 2 * N, H + 4), interpolation=cv2.INTER_AREA)
        frames += [rgb_to_gray(big[2:2 + H, 2 * i:2 * i + W].copy()) for i in range(N)]
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "gray",
                    "-s", f"{W}x{H}", "-framerate", "24", "-i", "pipe:", "-c:v", "ffv1", "-g", "1",
                    str(path)], input=b"".join(f.tobytes() for f in frames), check=True)
    return path


@pytest.mark.slow
def test_reference_less_film_gets_gmm_palettes(reel_home, prefect_harness, tmp_path):
    from sqlalchemy import select

    from reel.db import models as m
    from reel.db.session import session_scope
    from reel.flows import palettes
    from reel.flows.ingest import ingest_path
    from reel.flows.restore import restore_collection
    from reel.tasks import media, qc

    film = _film(tmp_path / "films" / "norefs.mkv")
    ingest_path(reel_home, film, "bare")
    assert restore_collection("bare") == {"norefs": "delivered"}
    with session_scope(reel_home.database_url) as db:
        shots = db.scalars(select(m.Shot).order_by(m.Shot.index)).all()
        rows = db.scalars(select(m.Palette).order_by(m.Palette.id)).all()
        got = {(r.shot_id, r.scope.value, r.source, r.model_version) for r in rows}
        seeds = {r.shot_id: r.seed for r in rows}
        flags = [list(sh.flags or []) for sh in shots]
        items = {sh.id: sh for sh in shots}
        starts = {sh.id: sh.start_frame for sh in shots}
        sha = shots[0].item.source_sha256
        paths = [r.path for r in rows]
    assert len(shots) >= 1 and len(rows) == len(shots)
    assert got == {(sid, "shot", "gmm", palettes.model_version()) for sid in items}
    for sid, seed in seeds.items():  # seeds derived from (processing seed, film, shot start)
        assert seed == palettes.shot_seed(reel_home.processing.seed, sha, starts[sid])
    assert all(p.endswith("palette-gmm.json") for p in paths)
    assert all("no_reference" in f for f in flags)
    # the restored shots are coloured by their palettes, not gray
    restored = sorted(reel_home.work_dir.rglob("restored.mkv"))
    assert restored
    for path in restored:
        frames = list(media.iter_frames(path, pix_fmt="rgb24"))
        assert np.mean([qc.colorfulness(f) for f in frames]) > 3.0
