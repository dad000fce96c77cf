"""A small catalog with real files, as a restore run leaves it, for the dashboard tests.

One collection ``newsreels`` with a restored film ``reel-1`` (3 shots of 12 frames, 64x48) and a
failed film ``reel-2``; per shot: before/after thumbnails, segmentation overlay + labels,
palette JSON/PNG, a lossless ``restored.mkv``, stage results, metrics, two ranked references;
shot 0 also has a per-frame QC Parquet file. Users: ``ana`` (reviewer) and ``root`` (admin).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from reel.db import models as m
from reel.db.api import upgrade
from reel.db.session import session_scope
from reel.db.users import create_user

W, H, N = 64, 48, 12
PASSWORDS = {"ana": "ana-password-1", "root": "root-password-1"}


@dataclass
class Seeded:
    url: str
    home: Path
    item_id: int
    failed_item_id: int
    collection_id: int
    shot_ids: list[int]
    run_id: int
    refs: list[Path]


def _png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def _frames(index: int) -> list[np.ndarray]:
    """Colour frames of a moving square: a different hue per shot."""
    hue = np.array([[200, 60, 40], [40, 160, 60], [50, 80, 200]][index % 3], np.uint8)
    out = []
    for t in range(N):
        f = np.full((H, W, 3), 90, np.uint8)
        f[10:30, 5 + 2 * t:25 + 2 * t] = hue
        out.append(f)
    return out


def seed_catalog(home: Path, url: str | None = None) -> Seeded:
    """Write the files under ``home/work`` and the rows into the catalog at ``url``."""
    from reel.tasks.media import FrameWriter
    from reel.tasks.palette import extract_palette

    home = Path(home)
    url = url or f"sqlite:///{home / 'reel.db'}"
    upgrade(url)
    refs_dir = home / "refs"
    refs = [_png(refs_dir / f"still-{i}.png", _frames(i)[N // 2]) for i in range(2)]
    with session_scope(url) as db:
        create_user(db, "ana", "reviewer", PASSWORDS["ana"])
        create_user(db, "root", "admin", PASSWORDS["root"])
        col = m.Collection(name="newsreels", references_dir=str(refs_dir))
        db.add(col)
        ref_rows = [m.ReferenceImage(collection=col, path=str(p), sha256=f"{i:064x}", width=W, height=H)
                    for i, p in enumerate(refs)]
        item = m.Item(collection=col, name="reel-1", source_path=str(home / "films" / "reel-1.mkv"),
                      source_sha256="ab" * 32, fps="24/1", n_frames=3 * N, width=W, height=H,
                      status=m.ItemStatus.DELIVERED)
        bad = m.Item(collection=col, name="reel-2", source_path=str(home / "films" / "reel-2.mkv"),
                     source_sha256="cd" * 32, fps="24/1", n_frames=N, width=W, height=H,
                     status=m.ItemStatus.FAILED, error="FixityError: sha256 of the original changed")
        run = m.Run(collection=col, reel_version="0.1.0", status=m.RunStatus.PARTIAL,
                    finished_at=m.utcnow(), settings={})
        db.add_all([*ref_rows, item, bad, run])
        db.flush()
        shot_ids = []
        for i in range(3):
            flags = ["low_colorfulness"] if i == 0 else []
            shot = m.Shot(item=item, index=i, start_frame=i * N, stop_frame=(i + 1) * N,
                          status=m.ShotStatus.FLAGGED if flags else m.ShotStatus.DONE, flags=flags)
            db.add(shot)
            db.flush()
            shot_ids.append(shot.id)
            d = home / "work" / "newsreels" / f"item-{item.id:05d}" / f"shot-{i:04d}"
            frames = _frames(i)
            gray = cv2.cvtColor(frames[N // 2], cv2.COLOR_RGB2GRAY)
            _png(d / "before.png", np.dstack([gray] * 3))
            _png(d / "after.png", frames[N // 2])
            labels = np.zeros((N, H // 2, W // 2), np.uint16)
            labels[:, 5:15, 3:13] = 1
            labels[:, 20:, :] = 2
            np.savez_compressed(d / "labels.npz", labels=labels)
            _png(d / "overlay.png", cv2.resize(np.dstack([gray] * 3), (W // 2, H // 2)))
            pal = extract_palette([refs[i % 2]], k=3, seed=0)
            pal.save(d / "palette.json")
            pal.swatch(d / "palette.png")
            with FrameWriter(d / "restored.mkv", W, H, "24/1") as w:
                for f in frames:
                    w.write(f)
            if i == 0:
                pd.DataFrame({"frame": np.arange(N), "colorfulness": np.linspace(20, 10, N),
                              "warp_error_ab": np.linspace(1, 2, N),
                              "cdc_window": np.linspace(0.01, 0.02, N)}).to_parquet(d / "qc_per_frame.parquet")
            for stage, out in (("segmentation", d / "labels.npz"), ("references", d / "palette.json"),
                               ("colorization", d / "colorized.mkv"), ("harmonization", d / "restored.mkv"),
                               ("qc", d / "after.png")):
                db.add(m.StageResult(run=run, item=item, shot=shot, stage=stage, engine=f"e-{stage}",
                                     engine_version="1", params_hash="0" * 16, params={},
                                     output_path=str(out), status=m.StageStatus.DONE, seconds=0.1))
            for name, value in (("colorfulness_mean", 5.0 + 10 * i), ("cdc", 0.01 * (i + 1)),
                                ("warp_error_ab", 1.5), ("luminance_psnr_db_min", 55.0)):
                db.add(m.Metric(run=run, item=item, shot=shot, name=name, value=value))
            db.add(m.ShotReference(shot=shot, reference=ref_rows[i % 2], rank=0, score=0.9))
            db.add(m.ShotReference(shot=shot, reference=ref_rows[(i + 1) % 2], rank=1, score=0.4))
            db.add(m.Palette(item=item, shot=shot, scope=m.PaletteScope.SHOT, k=pal.k, seed=0,
                             path=str(d / "palette.json"),
                             colors=[{"lab": [float(x) for x in c], "weight": float(w)}
                                     for c, w in zip(pal.colors_lab, pal.weights)]))
        db.add(m.StageResult(run=run, item=bad, shot=None, stage="probe", engine="ffprobe",
                             engine_version="5.1", params_hash="", status=m.StageStatus.FAILED,
                             error="sha256 mismatch"))
        ids = (item.id, bad.id, col.id, run.id)
    return Seeded(url, home, ids[0], ids[1], ids[2], shot_ids, ids[3], refs)
