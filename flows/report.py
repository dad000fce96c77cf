"""``reel report COLLECTION --out DIR``: a collection's per-shot QC table and contact sheets.

Reads the catalog only (no media is decoded): for every shot of every item, its status, flags,
frame range and the QC metrics of the latest run that measured it, plus the paths of its
per-frame QC table (``stage_results.output_path`` of the ``qc`` stage, a Parquet file) and of the
before/after key-frame thumbnails beside it. Writes into DIR:

* ``qc_shots.csv`` and ``qc_shots.parquet`` — one row per shot (pandas; metric columns are the
  union of the metric names, NaN where a shot lacks one);
* ``contact_sheets/<item>.png`` — per item, the before (gray source) and after (restored)
  key frames of every shot side by side, labelled with shot index, frame range, status and flags.

Example
-------
>>> from reel.config import get_settings
>>> res = build_report(get_settings(), "bikes", "reports/bikes")   # doctest: +SKIP
>>> res.n_shots, sorted(res.contact_sheets)                        # doctest: +SKIP
(6, ['bikes'])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sqlalchemy import select

from reel.config import Settings
from reel.db import models as m
from reel.db.session import session_scope

#: Leading columns of the table (metric columns follow, sorted by name).
BASE_COLUMNS = ["collection", "item", "shot_index", "start_frame", "stop_frame", "n_frames",
                "status", "flags", "run_id", "qc_frames_path", "before_thumb", "after_thumb"]


@dataclass
class ReportResult:
    """Where :func:`build_report` wrote things."""

    csv_path: Path
    parquet_path: Path
    contact_sheets: dict[str, Path] = field(default_factory=dict)
    n_shots: int = 0


def qc_rows(s: Settings, collection: str) -> list[dict[str, Any]]:
    """One dict per shot of ``collection`` (items by name, shots by index); see the module doc.

    Raises
    ------
    LookupError
        No collection of that name.
    """
    rows: list[dict[str, Any]] = []
    with session_scope(s.database_url) as db:
        col = db.scalar(select(m.Collection).where(m.Collection.name == collection))
        if col is None:
            raise LookupError(f"no collection named {collection!r}")
        items = db.scalars(select(m.Item).where(m.Item.collection_id == col.id)
                           .order_by(m.Item.name)).all()
        for item in items:
            metrics: dict[int, dict[int, dict[str, float]]] = {}
            for met in db.scalars(select(m.Metric).where(m.Metric.item_id == item.id,
                                                         m.Metric.shot_id.is_not(None))):
                metrics.setdefault(met.shot_id, {}).setdefault(met.run_id, {})[met.name] = met.value
            qc_out: dict[int, list[tuple[int, int, str | None]]] = {}
            for st in db.scalars(select(m.StageResult).where(
                    m.StageResult.item_id == item.id, m.StageResult.stage == "qc",
                    m.StageResult.status == m.StageStatus.DONE)):
                qc_out.setdefault(st.shot_id, []).append((st.run_id, st.id, st.output_path))
            for shot in sorted(item.shots, key=lambda sh: sh.index):
                by_run = metrics.get(shot.id, {})
                run_id = max(by_run) if by_run else None
                outs = sorted(qc_out.get(shot.id, []))
                if run_id is not None:  # the QC output of the run whose metrics are shown
                    same = [o for o in outs if o[0] == run_id]
                    outs = same or outs
                qc_path = outs[-1][2] if outs else None
                folder = Path(qc_path).parent if qc_path else None
                before = folder / "before.png" if folder else None
                after = folder / "after.png" if folder else None
                row = {
                    "collection": collection, "item": item.name, "shot_index": shot.index,
                    "start_frame": shot.start_frame, "stop_frame": shot.stop_frame,
                    "n_frames": shot.stop_frame - shot.start_frame,
                    "status": shot.status.value, "flags": ";".join(shot.flags or []),
                    "run_id": run_id,
                    "qc_frames_path": qc_path if qc_path and qc_path.endswith(".parquet") else None,
                    "before_thumb": str(before) if before and before.is_file() else None,
                    "after_thumb": str(after) if after and after.is_file() else None,
                }
                row.update(by_run.get(run_id, {}) if run_id is not None else {})
                rows.append(row)
    return rows


def qc_table(s: Settings, collection: str):
    """The per-shot QC table of ``collection`` as a pandas DataFrame (columns: BASE_COLUMNS,
    then the metric names in sorted order)."""
    import pandas as pd

    rows = qc_rows(s, collection)
    metric_names = sorted({k for r in rows for k in r} - set(BASE_COLUMNS))
    df = pd.DataFrame(rows, columns=BASE_COLUMNS + metric_names)
    for c in ("shot_index", "start_frame", "stop_frame", "n_frames"):
        df[c] = df[c].astype("int64")
    df["run_id"] = df["run_id"].astype("Int64")
    for c in metric_names:
        df[c] = df[c].astype("float64")
    return df


def _label(img: np.ndarray, text: str, height_px: int = 20) -> np.ndarray:
    """``img`` (H, W, 3) with a white strip above it carrying ``text`` (ASCII)."""
    strip = np.full((height_px, img.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text[: max(8, img.shape[1] // 7)], (4, height_px - 6),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, img], axis=0)


def _text(v: Any) -> str | None:
    """A non-empty string, or None (pandas gives NaN for missing strings)."""
    return v if isinstance(v, str) and v else None


def _thumb(path: str | None, width_px: int, height_px: int) -> np.ndarray:
    path = _text(path)
    img = cv2.imread(path, cv2.IMREAD_COLOR) if path else None  # BGR (gray PNGs become 3-ch)
    if img is None:
        out = np.full((height_px, width_px, 3), 128, np.uint8)
        cv2.putText(out, "missing", (6, height_px // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        return out
    return cv2.resize(img, (width_px, height_px), interpolation=cv2.INTER_AREA)


def contact_sheet(rows: list[dict[str, Any]], out_path: str | os.PathLike, *,
                  thumb_width_px: int = 240, pairs_per_row: int = 3) -> Path:
    """Before | after key frames of each shot in ``rows`` (as from :func:`qc_rows`), labelled,
    ``pairs_per_row`` shots per row, written as PNG (atomically). Returns the path.

    Thumbnails keep the aspect of the first available one; missing ones are gray tiles.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    aspect = 0.5
    for r in rows:
        for key in ("after_thumb", "before_thumb"):
            img = cv2.imread(_text(r.get(key)), cv2.IMREAD_UNCHANGED) if _text(r.get(key)) else None
            if img is not None:
                aspect = img.shape[0] / img.shape[1]
                break
        else:
            continue
        break
    tw = int(thumb_width_px)
    th = max(8, int(round(tw * aspect)))
    gap = 6
    cells = []
    for r in rows:
        pair = np.concatenate([_thumb(r.get("before_thumb"), tw, th),
                               np.full((th, 2, 3), 255, np.uint8),
                               _thumb(r.get("after_thumb"), tw, th)], axis=1)
        flags = _text(r.get("flags")) or ""
        text = (f"shot {r['shot_index']} [{r['start_frame']},{r['stop_frame']}) {r['status']}"
                + (f": {flags.replace(';', ', ')}" if flags else ""))
        cells.append(_label(pair, text))
    if not cells:
        cells = [_label(np.full((th, 2 * tw + 2, 3), 255, np.uint8), "no shots")]
    ch, cw = cells[0].shape[:2]
    n_rows = -(-len(cells) // pairs_per_row)
    n_cols = min(pairs_per_row, len(cells))
    header = 22
    sheet = np.full((header + n_rows * (ch + gap) + gap, n_cols * (cw + gap) + gap, 3), 255, np.uint8)
    title = f"{rows[0]['collection']} / {rows[0]['item']}  (left: before, right: after)" if rows else ""
    cv2.putText(sheet, title, (gap, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for i, cell in enumerate(cells):
        y = header + (i // pairs_per_row) * (ch + gap)
        x = gap + (i % pairs_per_row) * (cw + gap)
        sheet[y:y + ch, x:x + cw] = cell
    tmp = out_path.with_name(out_path.stem + ".tmp.png")
    if not cv2.imwrite(str(tmp), sheet):
        raise OSError(f"could not write {out_path}")
    os.replace(tmp, out_path)
    return out_path


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "item"


def build_report(s: Settings, collection: str, out_dir: str | os.PathLike, *,
                 thumb_width_px: int = 240) -> ReportResult:
    """Write ``qc_shots.csv``, ``qc_shots.parquet`` and ``contact_sheets/<item>.png`` under
    ``out_dir`` for ``collection``; see the module docstring."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = qc_table(s, collection)
    csv_path = out / "qc_shots.csv"
    parquet_path = out / "qc_shots.parquet"
    for path, write in ((csv_path, lambda p: df.to_csv(p, index=False)),
                        (parquet_path, lambda p: df.to_parquet(p, engine="pyarrow", index=False))):
        tmp = path.with_name(path.stem + ".tmp" + path.suffix)
        write(tmp)
        os.replace(tmp, path)
    sheets: dict[str, Path] = {}
    rows = df.to_dict("records")
    for item in dict.fromkeys(r["item"] for r in rows):
        sheets[item] = contact_sheet([r for r in rows if r["item"] == item],
                                     out / "contact_sheets" / f"{_safe_name(item)}.png",
                                     thumb_width_px=thumb_width_px)
    return ReportResult(csv_path=csv_path, parquet_path=parquet_path, contact_sheets=sheets,
                        n_shots=len(df))
