"""Catalog reads and writes done by the flows (the only writer; tasks never touch the catalog).

Every function opens a short transaction of its own: no session is held across task work.
Functions return plain dataclasses, never ORM objects, so nothing leaks out of a session.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import func, select

import reel
from reel.config import Settings
from reel.db import models as m
from reel.db.session import session_scope


# --------------------------------------------------------------------------- plain views
@dataclass(frozen=True)
class ItemRef:
    id: int
    name: str
    collection: str
    collection_id: int
    source_path: Path
    source_sha256: str
    ground_truth_path: Path | None


@dataclass(frozen=True)
class ShotRef:
    id: int
    index: int
    start: int
    stop: int
    pinned_references: list[Path] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def agent() -> str:
    return f"reel {reel.__version__}"


def engine_registries() -> dict[str, Any]:
    """Stage name (as in settings.engines) → engine registry."""
    from reel.tasks.colorizers import COLORIZERS
    from reel.tasks.fusers import FUSERS
    from reel.tasks.harmonize import HARMONIZERS
    from reel.tasks.references import REFERENCE_RANKERS
    from reel.tasks.segment import SEGMENTERS
    from reel.tasks.shots import SHOT_DETECTORS

    return {"shots": SHOT_DETECTORS, "segment": SEGMENTERS, "references": REFERENCE_RANKERS,
            "colorize": COLORIZERS, "harmonize": HARMONIZERS, "fuse": FUSERS}


def check_engines(s: Settings) -> None:
    """Raise UnknownEngineError when a configured engine name does not exist."""
    for stage, reg in engine_registries().items():
        reg.get(getattr(s.engines, stage))


# --------------------------------------------------------------------------- collections
def get_or_create_collection(s: Settings, name: str, references_dir: Path | None = None) -> int:
    with session_scope(s.database_url) as db:
        col = db.scalar(select(m.Collection).where(m.Collection.name == name))
        if col is None:
            col = m.Collection(name=name, references_dir=str(references_dir) if references_dir else None)
            db.add(col)
            db.flush()
        elif references_dir is not None:
            col.references_dir = str(references_dir)
        return col.id


def collection_exists(s: Settings, name: str) -> bool:
    with session_scope(s.database_url) as db:
        return db.scalar(select(m.Collection.id).where(m.Collection.name == name)) is not None


def reference_library(s: Settings, collection_id: int) -> list[Path]:
    with session_scope(s.database_url) as db:
        rows = db.scalars(select(m.ReferenceImage.path)
                          .where(m.ReferenceImage.collection_id == collection_id)
                          .order_by(m.ReferenceImage.path))
        return [Path(p) for p in rows]


def add_reference(s: Settings, collection_id: int, path: Path, sha256: str, width: int,
                  height: int) -> bool:
    """Register one reference still; returns False when it was already registered."""
    with session_scope(s.database_url) as db:
        exists = db.scalar(select(m.ReferenceImage.id).where(
            m.ReferenceImage.collection_id == collection_id, m.ReferenceImage.sha256 == sha256))
        if exists is not None:
            return False
        db.add(m.ReferenceImage(collection_id=collection_id, path=str(path), sha256=sha256,
                                width=width, height=height))
        return True


# --------------------------------------------------------------------------- items
def find_item(s: Settings, collection_id: int, name: str) -> tuple[int, str] | None:
    with session_scope(s.database_url) as db:
        row = db.execute(select(m.Item.id, m.Item.source_sha256).where(
            m.Item.collection_id == collection_id, m.Item.name == name)).first()
        return (row[0], row[1]) if row else None


def add_item(s: Settings, collection_id: int, *, name: str, source_path: Path, sha256: str,
             framemd5_path: Path, info: dict[str, Any], ground_truth_path: Path | None) -> int:
    with session_scope(s.database_url) as db:
        item = m.Item(collection_id=collection_id, name=name, source_path=str(source_path),
                      source_sha256=sha256, source_framemd5_path=str(framemd5_path), probe=info,
                      fps=info["fps"], n_frames=info["n_frames"], width=info["width"],
                      height=info["height"], has_audio=bool(info["audio_streams"]),
                      ground_truth_path=str(ground_truth_path) if ground_truth_path else None,
                      status=m.ItemStatus.REGISTERED)
        db.add(item)
        db.flush()
        db.add(m.Event(item_id=item.id, event_type="ingestion", outcome=m.EventOutcome.SUCCESS, agent=agent(),
                       detail={"source_path": str(source_path), "probe": info}))
        db.add(m.Event(item_id=item.id, event_type="message digest calculation",
                       outcome=m.EventOutcome.SUCCESS, agent=agent(),
                       detail={"sha256": sha256, "framemd5": str(framemd5_path)}))
        return item.id


def items_of(s: Settings, collection: str, names: Iterable[str] | None = None) -> list[ItemRef]:
    with session_scope(s.database_url) as db:
        q = (select(m.Item, m.Collection.name).join(m.Collection)
             .where(m.Collection.name == collection).order_by(m.Item.name))
        if names:
            q = q.where(m.Item.name.in_(list(names)))
        return [_item_ref(i, cname) for i, cname in db.execute(q)]


def load_item(s: Settings, item_id: int) -> ItemRef:
    with session_scope(s.database_url) as db:
        item = db.get(m.Item, item_id)
        if item is None:
            raise LookupError(f"no item with id {item_id}")
        return _item_ref(item, item.collection.name)


def _item_ref(item: Any, collection_name: str) -> ItemRef:
    return ItemRef(id=item.id, name=item.name, collection=collection_name,
                   collection_id=item.collection_id, source_path=Path(item.source_path),
                   source_sha256=item.source_sha256,
                   ground_truth_path=Path(item.ground_truth_path) if item.ground_truth_path else None)


def set_item_status(s: Settings, item_id: int, status: str, error: str | None = None) -> None:
    with session_scope(s.database_url) as db:
        item = db.get(m.Item, item_id)
        item.status = m.ItemStatus(status)
        item.error = error


def fail_item(s: Settings, item_id: int, run_id: int, reason: str) -> None:
    set_item_status(s, item_id, "failed", reason)
    add_event(s, "restoration", "failure", item_id=item_id, run_id=run_id,
              detail={"reason": reason})


def store_probe(s: Settings, item_id: int, run_id: int, fixity: Any) -> None:
    """Record the probe of this run and the passed fixity check of the original."""
    with session_scope(s.database_url) as db:
        item = db.get(m.Item, item_id)
        item.probe = fixity.info.to_dict()
        item.n_frames = fixity.info.n_frames
        item.fps = fixity.info.fps
    add_event(s, "fixity check", "success", item_id=item_id, run_id=run_id,
              detail={"sha256": fixity.sha256, "when": "before run", "seconds": fixity.seconds})


def fixity_verified(s: Settings, item_id: int, run_id: int, sha256: str) -> None:
    add_event(s, "fixity check", "success", item_id=item_id, run_id=run_id,
              detail={"sha256": sha256, "when": "after run"})


def add_event(s: Settings, event_type: str, outcome: str, *, item_id: int | None = None,
              shot_id: int | None = None, run_id: int | None = None, agent_name: str | None = None,
              detail: dict[str, Any] | None = None) -> None:
    with session_scope(s.database_url) as db:
        db.add(m.Event(item_id=item_id, shot_id=shot_id, run_id=run_id, event_type=event_type,
                       outcome=m.EventOutcome(outcome), agent=agent_name or agent(), detail=_jsonable(detail or {})))


# --------------------------------------------------------------------------- shots
def shots_of(s: Settings, item_id: int) -> list[ShotRef]:
    with session_scope(s.database_url) as db:
        shots = db.scalars(select(m.Shot).where(m.Shot.item_id == item_id).order_by(m.Shot.index))
        out = []
        for sh in shots:
            pinned = [Path(r.reference.path) for r in sh.references if r.pinned]
            out.append(ShotRef(sh.id, sh.index, sh.start_frame, sh.stop_frame, pinned))
        return out


def save_detected_shots(s: Settings, item_id: int, run_id: int, shots: list[Any],
                        engine: str) -> list[ShotRef]:
    """Store a first shot list. An item that already has shots (possibly corrected by a
    reviewer) is never overwritten: re-detection goes through reel.flows.shots.redetect_shots,
    which keeps manual shots."""
    with session_scope(s.database_url) as db:
        if db.scalar(select(func.count(m.Shot.id)).where(m.Shot.item_id == item_id)):
            raise RuntimeError(f"item {item_id} already has a shot list; use `reel shots detect` "
                               "to detect again (manual corrections are kept)")
        for i, sh in enumerate(shots):
            db.add(m.Shot(item_id=item_id, index=i, start_frame=sh.start, stop_frame=sh.stop,
                          transition=sh.transition, confidence=float(sh.confidence),
                          origin=m.ShotOrigin.DETECTED, status=m.ShotStatus.PENDING, flags=[]))
        db.add(m.Event(item_id=item_id, run_id=run_id, event_type="shot detection",
                       outcome=m.EventOutcome.SUCCESS, agent=f"{agent()} / {engine}",
                       detail={"shots": [[sh.start, sh.stop, sh.transition] for sh in shots]}))
    return shots_of(s, item_id)


def set_shot_status(s: Settings, shot_id: int, status: str, flags: list[str]) -> None:
    with session_scope(s.database_url) as db:
        shot = db.get(m.Shot, shot_id)
        shot.status = m.ShotStatus(status)
        shot.flags = list(flags)


def store_references(s: Settings, item_id: int, shot_id: int, selection: Any) -> None:
    """Replace the shot's ranked references (pins kept) and store its palette."""
    with session_scope(s.database_url) as db:
        shot = db.get(m.Shot, shot_id)
        by_path = {r.path: r.id for r in db.scalars(select(m.ReferenceImage).where(
            m.ReferenceImage.collection_id == shot.item.collection_id))}
        pinned = {r.reference_id for r in shot.references if r.pinned}
        for r in list(shot.references):
            if not r.pinned:
                db.delete(r)
        db.flush()
        for rank, ref in enumerate(selection.ranked):
            ref_id = by_path.get(str(ref.path))
            if ref_id is None or ref_id in pinned:
                continue
            db.add(m.ShotReference(shot_id=shot_id, reference_id=ref_id, rank=rank,
                                   score=float(ref.score), pinned=False))
        if selection.palette is not None:
            pal = selection.palette
            db.add(m.Palette(item_id=item_id, shot_id=shot_id, scope=m.PaletteScope.SHOT, k=int(pal.k),
                             seed=int(pal.seed), path=str(selection.palette_path),
                             source=getattr(pal, "source", "reference"),
                             model_version=getattr(pal, "model_version", None),
                             colors=[{"lab": [float(x) for x in c], "weight": float(w)}
                                     for c, w in zip(pal.colors_lab, pal.weights)]))


# --------------------------------------------------------------------------- runs / results
def start_run(s: Settings, collection: str) -> int:
    from prefect.runtime import flow_run

    with session_scope(s.database_url) as db:
        col = db.scalar(select(m.Collection).where(m.Collection.name == collection))
        if col is None:
            raise LookupError(f"no collection named {collection!r}; register films with reel ingest")
        run = m.Run(collection_id=col.id, status=m.RunStatus.RUNNING, reel_version=reel.__version__,
                    settings=json.loads(s.model_dump_json()),
                    prefect_flow_run_id=str(flow_run.id) if flow_run.id else None)
        db.add(run)
        db.flush()
        return run.id


def set_mlflow_run(s: Settings, run_id: int, mlflow_run_id: str) -> None:
    with session_scope(s.database_url) as db:
        run = db.get(m.Run, run_id)
        ids = [x for x in (run.mlflow_run_id or "").split(",") if x]
        run.mlflow_run_id = ",".join(ids + [mlflow_run_id])


def finish_run(s: Settings, run_id: int, status: str, error: str | None = None) -> None:
    with session_scope(s.database_url) as db:
        run = db.get(m.Run, run_id)
        run.status = m.RunStatus(status)
        run.finished_at = _now()
        run.error = error


def record_stage(s: Settings, run_id: int, item_id: int, shot_id: int | None, stage: str,
                 engine: dict[str, Any] | None, output_path: Path | None, status: str,
                 seconds: float, error: str | None = None, *, cache_key: str | None = None,
                 cache_hit: bool | None = None, device: str | None = None,
                 output_version: int | None = None) -> None:
    """One stage_results row + its event. ``cache_key`` (flows/cache.py) and ``device`` go in
    their columns; whether the result was a cache hit is kept in the event's detail JSON
    (``detail.cache_hit``), next to the key."""
    engine = engine or {}
    with session_scope(s.database_url) as db:
        db.add(m.StageResult(
            run_id=run_id, item_id=item_id, shot_id=shot_id, stage=stage,
            engine=engine.get("engine", "?"), engine_version=str(engine.get("engine_version", "?")),
            params_hash=engine.get("params_hash", ""), params=_jsonable(engine.get("params", {})),
            weights_sha256=engine.get("weights_sha256"),
            output_path=str(output_path) if output_path else None, status=m.StageStatus(status),
            seconds=float(seconds), error=error, cache_key=cache_key, device=device,
            **({"output_version": int(output_version)} if output_version else {})))
        db.add(m.Event(item_id=item_id, shot_id=shot_id, run_id=run_id, event_type=stage,
                       outcome=m.EventOutcome.SUCCESS if status == "done" else m.EventOutcome.FAILURE,
                       agent=f"{agent()} / {engine.get('engine', '?')} {engine.get('engine_version', '')}".strip(),
                       detail=_jsonable({"params": engine.get("params", {}),
                                         "weights_sha256": engine.get("weights_sha256"),
                                         "output": str(output_path) if output_path else None,
                                         "error": error,
                                         **({"cache_key": cache_key, "cache_hit": bool(cache_hit),
                                             "device": device} if cache_key else {})})))


def record_stage_result(s: Settings, run_id: int, item_id: int, shot_id: int, stage: str,
                        result: Any, *, cache_key: str | None = None,
                        cache_hit: bool | None = None, device: str | None = None,
                        output_version: int | None = None) -> None:
    """Record a finished stage from its task result (each result carries ``engine`` and paths)."""
    # stages without an engine registry (QC) are reel's own code: agent = reel and its version
    engine = getattr(result, "engine", None) or {
        "engine": f"reel-{stage}", "engine_version": reel.__version__, "params": {},
        "params_hash": "", "weights_sha256": None}
    # QC: its per-frame metric table (Parquet; thumbnails and edge histograms sit beside it)
    out = (getattr(result, "out_path", None) or getattr(result, "labels_path", None)
           or getattr(result, "palette_path", None) or getattr(result, "per_frame_path", None)
           or getattr(result, "after_thumb", None))
    record_stage(s, run_id, item_id, shot_id, stage, engine, out, "done",
                 float(getattr(result, "seconds", 0.0) or 0.0), cache_key=cache_key,
                 cache_hit=cache_hit, device=device, output_version=output_version)


def record_metrics(s: Settings, run_id: int, item_id: int, shot_id: int | None,
                   metrics: dict[str, float]) -> None:
    with session_scope(s.database_url) as db:
        for name, value in sorted(metrics.items()):
            if not math.isfinite(float(value)):  # NaN = not measured (e.g. no matched reference)
                continue
            db.add(m.Metric(run_id=run_id, item_id=item_id, shot_id=shot_id, name=name,
                            value=float(value)))


def store_deliverables(s: Settings, item_id: int, run_id: int, delivered: Any) -> None:
    with session_scope(s.database_url) as db:
        for d in delivered.files:
            db.add(m.Deliverable(item_id=item_id, run_id=run_id, kind=m.DeliverableKind(d.kind), path=str(d.path),
                                 sha256=d.sha256, n_frames=d.n_frames, fps=d.fps, codec=d.codec))
            made = dict(getattr(d, "detail", None) or {})
            inputs = getattr(delivered, "inputs", None) if d.kind == "master" else None
            db.add(m.Event(item_id=item_id, run_id=run_id, event_type="creation",
                           outcome=m.EventOutcome.SUCCESS, agent=agent(),
                           detail=_jsonable({"kind": d.kind, "path": str(d.path),
                                             "sha256": d.sha256,
                                             **({"made": made} if made else {}),
                                             **({"inputs": inputs} if inputs else {})})))


def latest_conformance(s: Settings, item_id: int) -> str | None:
    """Summary of the item's latest conformance check (``validation`` event), or None."""
    with session_scope(s.database_url) as db:
        ev = db.scalar(select(m.Event).where(m.Event.item_id == item_id,
                                             m.Event.event_type == "validation")
                       .order_by(m.Event.id.desc()).limit(1))
        return (ev.detail or {}).get("summary") if ev is not None else None


# --------------------------------------------------------------------------- status views
def collections_summary(s: Settings) -> list[tuple]:
    with session_scope(s.database_url) as db:
        rows = []
        for col in db.scalars(select(m.Collection).order_by(m.Collection.name)):
            n_items = db.scalar(select(func.count(m.Item.id)).where(m.Item.collection_id == col.id))
            shot_q = select(func.count(m.Shot.id)).join(m.Item).where(m.Item.collection_id == col.id)
            n_shots = db.scalar(shot_q)
            n_flag = db.scalar(shot_q.where(m.Shot.status == m.ShotStatus.FLAGGED))
            n_deliv = db.scalar(select(func.count(m.Item.id)).where(
                m.Item.collection_id == col.id, m.Item.status == m.ItemStatus.DELIVERED))
            last = db.scalar(select(m.Run).where(m.Run.collection_id == col.id)
                             .order_by(m.Run.id.desc()).limit(1))
            rows.append((col.name, n_items, n_shots, n_flag, n_deliv,
                         f"{last.status.value} {last.started_at:%Y-%m-%d %H:%M}" if last else "-"))
        return rows


def collection_detail(s: Settings, collection: str) -> dict[str, list[tuple]]:
    with session_scope(s.database_url) as db:
        col = db.scalar(select(m.Collection).where(m.Collection.name == collection))
        items = []
        deliverables = []
        conformance = []
        for it in db.scalars(select(m.Item).where(m.Item.collection_id == col.id).order_by(m.Item.name)):
            counts = {st: 0 for st in ("done", "flagged", "failed")}
            for sh in it.shots:
                if sh.status.value in counts:
                    counts[sh.status.value] += 1
            flags = sorted({f for sh in it.shots for f in (sh.flags or [])})
            note = it.error or (", ".join(flags) if flags else "")
            items.append((it.name, it.status.value, it.n_frames, it.fps, len(it.shots),
                          counts["done"], counts["flagged"], counts["failed"], note[:80]))
            latest_run = db.scalar(select(func.max(m.Deliverable.run_id)).where(
                m.Deliverable.item_id == it.id))
            for d in db.scalars(select(m.Deliverable).where(
                    m.Deliverable.item_id == it.id, m.Deliverable.run_id == latest_run)
                    .order_by(m.Deliverable.kind)):
                deliverables.append((it.name, d.kind, d.n_frames, d.fps, d.path))
            check = db.scalar(select(m.Event).where(m.Event.item_id == it.id,
                                                    m.Event.event_type == "validation")
                              .order_by(m.Event.id.desc()).limit(1))
            if check is not None:
                conformance.append((it.name, check.outcome.value,
                                    (check.detail or {}).get("policy_name") or "-",
                                    (check.detail or {}).get("summary") or "",
                                    f"{check.created_at:%Y-%m-%d %H:%M}"))
        runs = [(r.id, r.status.value, f"{r.started_at:%Y-%m-%d %H:%M:%S}",
                 f"{r.finished_at:%H:%M:%S}" if r.finished_at else "-", (r.error or "")[:60])
                for r in db.scalars(select(m.Run).where(m.Run.collection_id == col.id)
                                    .order_by(m.Run.id.desc()).limit(5))]
        return {"items": items, "runs": runs, "deliverables": deliverables,
                "conformance": conformance}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
