"""What the review dashboard reads from the catalog and the work folders (no Streamlit here).

Every function opens its own short session and returns plain dataclasses, dicts or pandas
DataFrames, so the pages never hold ORM objects across Streamlit reruns.

Where a shot's files are
------------------------
QC writes ``before.png`` and ``after.png`` (and segmentation ``overlay.png`` + ``labels.npz``,
references ``palette.json`` + ``palette.png``, the restored ``restored.mkv``) into the folder of
one *version* of the shot's outputs. The folder is found from the shot's latest ``qc`` stage
result of that version (its ``output_path`` is ``after.png``), or else by convention:
``<home>/work/<collection>/item-<id:05d>/shot-<index:04d>/`` for version 1 and ``.../v<n>/``
for version n.

Example
-------
>>> from pathlib import Path
>>> version_dir(Path("/h/work"), "bikes", 1, 3, 2).as_posix()
'/h/work/bikes/item-00001/shot-0003/v2'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from reel.db import models as m
from reel.db.reviews import AUDIT_EVENT_TYPES, audit_log, delivery_blockers
from reel.db.session import session_scope

__all__ = [
    "STATUS_COLORS",
    "KEY_METRICS",
    "version_dir",
    "CollectionSummary",
    "ShotCard",
    "ShotVersion",
    "ShotDetail",
    "collections_overview",
    "runs_table",
    "failures_table",
    "items_table",
    "item_header",
    "shot_cards",
    "filter_cards",
    "metric_names",
    "shot_detail",
    "per_frame_curves",
    "audit_table",
    "rerun_table",
    "library_references",
    "palette_sources",
    "users_table",
]

#: Badge colour of each shot status (Streamlit badge colours).
STATUS_COLORS: dict[str, str] = {
    "pending": "gray", "running": "blue", "done": "blue", "flagged": "orange",
    "approved": "green", "rejected": "red", "rerun_requested": "violet", "failed": "red",
}
#: Metrics shown on shot cards and version comparisons (if present).
KEY_METRICS = ("colorfulness_mean", "cdc", "warp_error_ab", "luminance_psnr_db_min", "psnr_db",
               "colorize_confidence")


def version_dir(work_dir: Path, collection: str, item_id: int, shot_index: int, version: int) -> Path:
    """The conventional folder of version ``version`` of a shot's outputs."""
    base = Path(work_dir) / collection / f"item-{int(item_id):05d}" / f"shot-{int(shot_index):04d}"
    return base if int(version) <= 1 else base / f"v{int(version)}"


def _fmt_time(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S}" if t else ""


# ------------------------------------------------------------------------------------------
# collections and runs
# ------------------------------------------------------------------------------------------


@dataclass
class CollectionSummary:
    id: int
    name: str
    n_items: int
    n_shots: int
    status_counts: dict[str, int]
    n_items_failed: int
    last_run: str

    @property
    def processed_fraction(self) -> float:
        """Shots that went through the pipeline (not pending/running) / all shots."""
        if not self.n_shots:
            return 0.0
        waiting = self.status_counts.get("pending", 0) + self.status_counts.get("running", 0)
        return (self.n_shots - waiting) / self.n_shots

    @property
    def approved_fraction(self) -> float:
        return self.status_counts.get("approved", 0) / self.n_shots if self.n_shots else 0.0


def collections_overview(url: str) -> list[CollectionSummary]:
    """One summary per collection (shot counts by status, failed items, last run)."""
    with session_scope(url) as db:
        out = []
        for col in db.scalars(select(m.Collection).order_by(m.Collection.name)):
            counts = dict(db.execute(
                select(m.Shot.status, func.count(m.Shot.id)).join(m.Item)
                .where(m.Item.collection_id == col.id).group_by(m.Shot.status)).all())
            counts = {st.value: int(n) for st, n in counts.items()}
            n_items = db.scalar(select(func.count(m.Item.id)).where(m.Item.collection_id == col.id))
            n_failed = db.scalar(select(func.count(m.Item.id)).where(
                m.Item.collection_id == col.id, m.Item.status == m.ItemStatus.FAILED))
            last = db.scalar(select(m.Run).where(m.Run.collection_id == col.id)
                             .order_by(m.Run.id.desc()).limit(1))
            out.append(CollectionSummary(
                col.id, col.name, int(n_items), sum(counts.values()), counts, int(n_failed),
                f"#{last.id} {last.status.value} {_fmt_time(last.started_at)}" if last else "none"))
        return out


def runs_table(url: str, collection_id: int | None = None, limit: int = 20) -> pd.DataFrame:
    """Recent runs: id, collection, status, started, finished, minutes, shots done, error."""
    with session_scope(url) as db:
        q = select(m.Run, m.Collection.name).join(m.Collection)
        if collection_id is not None:
            q = q.where(m.Run.collection_id == collection_id)
        rows = []
        for run, cname in db.execute(q.order_by(m.Run.id.desc()).limit(limit)):
            n_stage = db.scalar(select(func.count(func.distinct(m.StageResult.shot_id))).where(
                m.StageResult.run_id == run.id, m.StageResult.stage == "qc",
                m.StageResult.status == m.StageStatus.DONE))
            n_fail = db.scalar(select(func.count(m.StageResult.id)).where(
                m.StageResult.run_id == run.id, m.StageResult.status == m.StageStatus.FAILED))
            end = run.finished_at
            minutes = ((end - run.started_at).total_seconds() / 60.0) if end else None
            rows.append({"run": run.id, "collection": cname, "status": run.status.value,
                         "started": _fmt_time(run.started_at), "finished": _fmt_time(end),
                         "minutes": round(minutes, 2) if minutes is not None else None,
                         "shots done": int(n_stage), "stage failures": int(n_fail),
                         "error": run.error or ""})
        return pd.DataFrame(rows, columns=["run", "collection", "status", "started", "finished",
                                           "minutes", "shots done", "stage failures", "error"])


def failures_table(url: str, collection_id: int | None = None) -> pd.DataFrame:
    """Everything that failed, with its reason: items, shots, stages, re-run requests."""
    with session_scope(url) as db:
        rows: list[dict[str, Any]] = []

        def coll_filter(q):
            return q.where(m.Item.collection_id == collection_id) if collection_id else q

        for item in db.scalars(coll_filter(select(m.Item).where(m.Item.status == m.ItemStatus.FAILED))):
            rows.append({"what": "item", "item": item.name, "shot": None, "when": _fmt_time(item.updated_at),
                         "reason": item.error or "failed (no reason recorded)"})
        for shot, iname in db.execute(coll_filter(select(m.Shot, m.Item.name).join(m.Item)
                                                  .where(m.Shot.status == m.ShotStatus.FAILED))):
            rows.append({"what": "shot", "item": iname, "shot": shot.index,
                         "when": _fmt_time(shot.updated_at),
                         "reason": "; ".join(shot.flags or []) or "failed"})
        q = (select(m.StageResult, m.Item.name, m.Shot.index).join(m.Item, m.StageResult.item_id == m.Item.id)
             .outerjoin(m.Shot, m.StageResult.shot_id == m.Shot.id)
             .where(m.StageResult.status == m.StageStatus.FAILED).order_by(m.StageResult.id.desc()).limit(50))
        for sr, iname, idx in db.execute(coll_filter(q)):
            rows.append({"what": f"stage {sr.stage} (run {sr.run_id})", "item": iname, "shot": idx,
                         "when": _fmt_time(sr.created_at), "reason": sr.error or "failed"})
        q = (select(m.RerunRequest, m.Item.name, m.Shot.index)
             .join(m.Shot, m.RerunRequest.shot_id == m.Shot.id).join(m.Item, m.Shot.item_id == m.Item.id)
             .where(m.RerunRequest.status == m.RerunStatus.FAILED))
        for req, iname, idx in db.execute(coll_filter(q)):
            rows.append({"what": f"re-run request {req.id}", "item": iname, "shot": idx,
                         "when": _fmt_time(req.finished_at), "reason": req.error or "failed"})
        return pd.DataFrame(rows, columns=["what", "item", "shot", "when", "reason"])


def items_table(url: str, collection_id: int | None = None) -> pd.DataFrame:
    """Items with shot counts by review state (for choosing an item)."""
    with session_scope(url) as db:
        q = select(m.Item, m.Collection.name).join(m.Collection).order_by(m.Collection.name, m.Item.name)
        if collection_id is not None:
            q = q.where(m.Item.collection_id == collection_id)
        rows = []
        for item, cname in db.execute(q):
            counts: dict[str, int] = {}
            for st in item.shots:
                counts[st.status.value] = counts.get(st.status.value, 0) + 1
            rows.append({"id": item.id, "collection": cname, "item": item.name,
                         "status": item.status.value, "shots": len(item.shots),
                         "approved": counts.get("approved", 0), "flagged": counts.get("flagged", 0),
                         "rejected": counts.get("rejected", 0),
                         "re-run requested": counts.get("rerun_requested", 0),
                         "failed": counts.get("failed", 0), "error": item.error or ""})
        return pd.DataFrame(rows, columns=["id", "collection", "item", "status", "shots", "approved",
                                           "flagged", "rejected", "re-run requested", "failed", "error"])


def item_header(url: str, item_id: int) -> dict[str, Any] | None:
    """Name, collection, status, frames/fps and the delivery-gate state of an item."""
    with session_scope(url) as db:
        item = db.get(m.Item, item_id)
        if item is None:
            return None
        blockers = delivery_blockers(db, item_id)
        return {"id": item.id, "name": item.name, "collection": item.collection.name,
                "collection_id": item.collection_id, "status": item.status.value,
                "n_frames": item.n_frames, "fps": item.fps, "n_shots": len(item.shots),
                "not_approved": blockers, "error": item.error}


# ------------------------------------------------------------------------------------------
# shots
# ------------------------------------------------------------------------------------------


@dataclass
class ShotCard:
    """One tile of an item's shot grid."""

    id: int
    index: int
    start: int
    stop: int
    status: str
    flags: list[str]
    version: int
    output_version: int
    dir: Path
    before: Path | None
    after: Path | None
    metrics: dict[str, float] = field(default_factory=dict)


def _qc_dirs(db, shot_ids: list[int]) -> dict[tuple[int, int], Path]:
    """(shot id, output version) → folder of the newest successful QC result."""
    out: dict[tuple[int, int], Path] = {}
    if not shot_ids:
        return out
    rows = db.execute(select(m.StageResult.shot_id, m.StageResult.output_version, m.StageResult.output_path)
                      .where(m.StageResult.shot_id.in_(shot_ids), m.StageResult.stage == "qc",
                             m.StageResult.status == m.StageStatus.DONE,
                             m.StageResult.output_path.is_not(None))
                      .order_by(m.StageResult.id))
    for sid, ver, path in rows:
        out[(sid, ver)] = Path(path).parent
    return out


def _latest_metrics(db, shot_ids: list[int], version_of: dict[int, int]) -> dict[int, dict[str, float]]:
    """Metrics of each shot from the newest run that made its current version (else any run)."""
    out: dict[int, dict[str, float]] = {sid: {} for sid in shot_ids}
    if not shot_ids:
        return out
    newest: dict[int, dict[int, int]] = {}
    for sid, ver, rid in db.execute(
            select(m.StageResult.shot_id, m.StageResult.output_version, func.max(m.StageResult.run_id))
            .where(m.StageResult.shot_id.in_(shot_ids), m.StageResult.stage == "qc",
                   m.StageResult.status == m.StageStatus.DONE)
            .group_by(m.StageResult.shot_id, m.StageResult.output_version)):
        newest.setdefault(sid, {})[int(ver)] = int(rid)
    run_of = {}
    for sid, by_ver in newest.items():
        run_of[sid] = by_ver.get(version_of[sid], max(by_ver.values()))
    if not run_of:
        return out
    for sid, rid, name, value in db.execute(
            select(m.Metric.shot_id, m.Metric.run_id, m.Metric.name, m.Metric.value)
            .where(m.Metric.shot_id.in_(list(run_of)), m.Metric.run_id.in_(set(run_of.values())))):
        if run_of.get(sid) == rid:
            out[sid][name] = float(value)
    return out


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def shot_cards(url: str, work_dir: Path, item_id: int) -> list[ShotCard]:
    """Every shot of an item with thumbnails of its current version, status, flags, metrics."""
    with session_scope(url) as db:
        item = db.get(m.Item, item_id)
        if item is None:
            return []
        shots = list(item.shots)
        ids = [s.id for s in shots]
        dirs = _qc_dirs(db, ids)
        metrics = _latest_metrics(db, ids, {s.id: s.output_version for s in shots})
        cards = []
        for s in shots:
            d = dirs.get((s.id, s.output_version)) or version_dir(
                work_dir, item.collection.name, item.id, s.index, s.output_version)
            cards.append(ShotCard(s.id, s.index, s.start_frame, s.stop_frame, s.status.value,
                                  list(s.flags or []), s.version, s.output_version, d,
                                  _existing(d / "before.png"), _existing(d / "after.png"),
                                  metrics.get(s.id, {})))
        return cards


def metric_names(cards: list[ShotCard]) -> list[str]:
    """Sorted metric names present on any card."""
    return sorted({k for c in cards for k in c.metrics})


def filter_cards(cards: list[ShotCard], *, statuses: list[str] | None = None,
                 flagged_only: bool = False, metric: str | None = None,
                 minimum: float | None = None, maximum: float | None = None) -> list[ShotCard]:
    """Cards matching the grid's filters.

    A metric threshold keeps shots whose value lies in ``[minimum, maximum]`` (either bound may
    be None); shots without that metric (or with NaN) are dropped when a bound is set.

    Example
    -------
    >>> a = ShotCard(1, 0, 0, 9, "flagged", ["flicker"], 1, 1, Path("."), None, None, {"cdc": 0.2})
    >>> b = ShotCard(2, 1, 9, 20, "done", [], 1, 1, Path("."), None, None, {"cdc": 0.01})
    >>> [c.index for c in filter_cards([a, b], metric="cdc", minimum=0.1)]
    [0]
    >>> [c.index for c in filter_cards([a, b], statuses=["done"])]
    [1]
    """
    out = []
    for c in cards:
        if statuses and c.status not in statuses:
            continue
        if flagged_only and not c.flags:
            continue
        if metric and (minimum is not None or maximum is not None):
            v = c.metrics.get(metric)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if minimum is not None and v < minimum:
                continue
            if maximum is not None and v > maximum:
                continue
        out.append(c)
    return out


@dataclass
class ShotVersion:
    """One version of a shot's outputs (folder, files, the request that made it, metrics)."""

    version: int
    dir: Path
    current: bool
    request: dict[str, Any] | None
    metrics: dict[str, float]
    run_id: int | None

    def file(self, name: str) -> Path | None:
        return _existing(self.dir / name)


@dataclass
class ShotDetail:
    id: int
    item_id: int
    item_name: str
    collection: str
    collection_id: int
    index: int
    start: int
    stop: int
    fps: str | None
    status: str
    flags: list[str]
    version: int
    output_version: int
    versions: list[ShotVersion]
    references: list[dict[str, Any]]
    palettes: list[dict[str, Any]]
    reviews: list[dict[str, Any]]
    pending_request: dict[str, Any] | None

    @property
    def current(self) -> ShotVersion:
        return next(v for v in self.versions if v.current)


def _request_dict(r: m.RerunRequest) -> dict[str, Any]:
    return {"id": r.id, "status": r.status.value, "requested_by": r.requested_by, "params": r.params,
            "created": _fmt_time(r.created_at), "run": r.picked_up_run_id,
            "output_version": r.output_version, "finished": _fmt_time(r.finished_at),
            "error": r.error}


def shot_detail(url: str, work_dir: Path, shot_id: int) -> ShotDetail | None:
    """Everything the shot page shows, for every version of the shot's outputs."""
    with session_scope(url) as db:
        s = db.get(m.Shot, shot_id)
        if s is None:
            return None
        item = s.item
        dirs = _qc_dirs(db, [s.id])
        made_by = {r.output_version: r for r in s.rerun_requests
                   if r.status == m.RerunStatus.DONE and r.output_version}
        versions_seen = {1, s.output_version} | {v for (_, v) in dirs} | set(made_by)
        versions = []
        for ver in sorted(versions_seen):
            d = dirs.get((s.id, ver)) or version_dir(work_dir, item.collection.name, item.id, s.index, ver)
            run_id = db.scalar(select(func.max(m.StageResult.run_id)).where(
                m.StageResult.shot_id == s.id, m.StageResult.stage == "qc",
                m.StageResult.status == m.StageStatus.DONE, m.StageResult.output_version == ver))
            metrics = {}
            if run_id is not None:
                metrics = {n: float(v) for n, v in db.execute(select(m.Metric.name, m.Metric.value).where(
                    m.Metric.shot_id == s.id, m.Metric.run_id == run_id))}
            if ver != s.output_version and run_id is None and not (d / "after.png").is_file():
                continue  # a version that never produced anything (failed re-run)
            req = made_by.get(ver)
            versions.append(ShotVersion(ver, d, ver == s.output_version,
                                        _request_dict(req) if req else None, metrics, run_id))
        refs = [{"rank": r.rank, "score": float(r.score), "pinned": r.pinned, "path": r.reference.path,
                 "reference_id": r.reference_id, "exists": Path(r.reference.path).is_file()}
                for r in s.references]
        pals = [{"id": p.id, "k": p.k, "path": p.path, "colors": p.colors,
                 "created": _fmt_time(p.created_at)} for p in s.palettes]
        reviews = [{"when": _fmt_time(r.created_at), "reviewer": r.reviewer,
                    "decision": r.decision.value, "note": r.note or "", "shot version": r.version}
                   for r in s.reviews]
        pending = next((r for r in reversed(s.rerun_requests)
                        if r.status in (m.RerunStatus.PENDING, m.RerunStatus.RUNNING)), None)
        return ShotDetail(s.id, item.id, item.name, item.collection.name, item.collection_id, s.index,
                          s.start_frame, s.stop_frame, item.fps, s.status.value, list(s.flags or []),
                          s.version, s.output_version, versions, refs, pals, reviews,
                          _request_dict(pending) if pending else None)


#: Column-name fragments of the per-frame curves the shot page plots first.
CURVE_KEYS = ("colorfulness", "warp_error", "cdc")


def per_frame_curves(version_dir_path: Path) -> tuple[pd.DataFrame | None, str]:
    """Per-frame QC curves of one version of a shot, and a sentence saying what they are.

    Reads the per-frame Parquet file QC writes beside the shot's outputs (any ``*.parquet`` in
    the folder; the first column named ``frame``/``frame_index``/``t`` becomes the index) and
    keeps the numeric columns, colorfulness / warp error / CDC first. Returns ``(None, reason)``
    when there is no such file.
    """
    files = sorted(Path(version_dir_path).glob("*.parquet"))
    if not files:
        return None, "no per-frame file"
    df = pd.read_parquet(files[0])
    for key in ("frame", "frame_index", "t"):
        if key in df.columns:
            df = df.set_index(key)
            break
    num = df.select_dtypes("number")
    first = [c for c in num.columns if any(k in c for k in CURVE_KEYS)]
    num = num[first + [c for c in num.columns if c not in first]]
    return num, f"per-frame values from {files[0].name}"


def metric_history(url: str, shot_id: int, names: tuple[str, ...] = KEY_METRICS) -> pd.DataFrame:
    """Fallback for curves: the shot's summary metrics from the catalog, one row per run."""
    with session_scope(url) as db:
        rows = db.execute(select(m.Metric.run_id, m.Metric.name, m.Metric.value)
                          .where(m.Metric.shot_id == shot_id, m.Metric.name.in_(names))
                          .order_by(m.Metric.run_id)).all()
    if not rows:
        return pd.DataFrame()
    df = pd.DataFrame(rows, columns=["run", "metric", "value"])
    return df.pivot_table(index="run", columns="metric", values="value", aggfunc="last")


# ------------------------------------------------------------------------------------------
# audit
# ------------------------------------------------------------------------------------------


def audit_table(url: str, *, item_id: int | None = None, shot_id: int | None = None,
                actor: str | None = None, limit: int = 500) -> pd.DataFrame:
    """Audit log, newest first: when, who, what, on which shot, details."""
    with session_scope(url) as db:
        events = audit_log(db, item_id=item_id, shot_id=shot_id, actor=actor, limit=limit)
        shot_idx = {}
        ids = {e.shot_id for e in events if e.shot_id}
        if ids:
            shot_idx = dict(db.execute(select(m.Shot.id, m.Shot.index).where(m.Shot.id.in_(ids))).all())
        item_names = {}
        iids = {e.item_id for e in events if e.item_id}
        if iids:
            item_names = dict(db.execute(select(m.Item.id, m.Item.name).where(m.Item.id.in_(iids))).all())
        rows = []
        for e in events:
            d = dict(e.detail or {})
            what = d.get("decision") or d.get("action") or e.event_type
            rows.append({"when": _fmt_time(e.created_at), "who": e.agent, "event": e.event_type,
                         "what": what, "item": item_names.get(e.item_id, ""),
                         "shot": shot_idx.get(e.shot_id), "note": d.get("note") or d.get("reason") or "",
                         "detail": _short_detail(d), "outcome": e.outcome.value})
        return pd.DataFrame(rows, columns=["when", "who", "event", "what", "item", "shot", "note",
                                           "detail", "outcome"])


def _short_detail(d: dict[str, Any]) -> str:
    keep = {k: v for k, v in d.items() if k not in ("note", "decision", "action", "reason")
            and v not in (None, [], {})}
    return ", ".join(f"{k}={v}" for k, v in keep.items())


def rerun_table(url: str, shot_id: int) -> pd.DataFrame:
    """The shot's re-run requests (newest first)."""
    with session_scope(url) as db:
        reqs = db.scalars(select(m.RerunRequest).where(m.RerunRequest.shot_id == shot_id)
                          .order_by(m.RerunRequest.id.desc())).all()
        rows = [{**_request_dict(r), "params": _short_detail(r.params)} for r in reqs]
    return pd.DataFrame(rows, columns=["id", "status", "requested_by", "params", "created", "run",
                                       "output_version", "finished", "error"])


def library_references(url: str, collection_id: int) -> list[dict[str, Any]]:
    """The collection's reference stills (id, path, size)."""
    with session_scope(url) as db:
        return [{"id": r.id, "path": r.path, "width": r.width, "height": r.height}
                for r in db.scalars(select(m.ReferenceImage).where(
                    m.ReferenceImage.collection_id == collection_id).order_by(m.ReferenceImage.path))]


def palette_sources(url: str, item_id: int, exclude_shot_id: int | None = None) -> list[dict[str, Any]]:
    """Shots of the item that have a palette file (candidates for "re-run with this palette")."""
    with session_scope(url) as db:
        rows = db.execute(select(m.Palette.shot_id, m.Shot.index, func.max(m.Palette.id))
                          .join(m.Shot, m.Palette.shot_id == m.Shot.id)
                          .where(m.Palette.item_id == item_id, m.Palette.path.is_not(None))
                          .group_by(m.Palette.shot_id, m.Shot.index).order_by(m.Shot.index)).all()
        out = []
        for sid, idx, pid in rows:
            if sid == exclude_shot_id:
                continue
            pal = db.get(m.Palette, pid)
            out.append({"shot_id": sid, "index": idx, "path": pal.path, "colors": pal.colors})
        return out


def users_table(url: str) -> pd.DataFrame:
    """Dashboard users: name, role, created, last login (never the hashes)."""
    with session_scope(url) as db:
        rows = [{"name": u.name, "role": u.role.value, "created": _fmt_time(u.created_at),
                 "last login": _fmt_time(u.last_login_at)}
                for u in db.scalars(select(m.User).order_by(m.User.name))]
    return pd.DataFrame(rows, columns=["name", "role", "created", "last login"])


def audit_event_types() -> tuple[str, ...]:
    return AUDIT_EVENT_TYPES
