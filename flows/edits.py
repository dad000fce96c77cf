"""Regional colour edits in the catalog (``reel edit``, ``reel regions``) and in the restore flow.

A reviewer's edit of one region of one shot is a ``region_edits`` row (shot, segmentation region
id, ``{hue_deg, saturation, warmth, brightness}``, who, active). Only the newest active edit of
a (shot, region) pair applies: adding one deactivates the older ones. Every add and clear is an
``regional edit`` event (who, what) in the audit log.

Re-runs (flows/review.py :func:`~reel.flows.review.plan_shots`): the restore flow applies every
active edit of a shot on every run, after harmonization and before QC (``tasks/edit.py``,
fused by ``engines.fuse``). When the set of active edits differs from the one that made the
shot's current output version (the ``region_edit_ids`` recorded with its ``regional_edit``
stage), the run writes a *new* output version (``shot-NNNN/v<n+1>/``), like a re-run request;
the old version stays. An edit of an approved or rejected shot re-opens it for review
(a ``rerun`` review, status ``rerun_requested``), so the next run re-makes it.

Example
-------
>>> from reel.tasks.edit import EditParams
>>> add_edit(settings, 12, 3, EditParams(hue_deg=20), who="ana")  # doctest: +SKIP
RegionEditView(id=1, shot_id=12, region_id=3, ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import func, select

from reel.config import Settings
from reel.db import models as m
from reel.db.session import session_scope
from reel.tasks.edit import EditParams, RegionStat

EVENT = "regional edit"


class EditCommandError(ValueError):
    """An edit command that cannot be carried out; the message says what to do."""


@dataclass(frozen=True)
class RegionEditView:
    id: int
    shot_id: int
    region_id: int
    params: dict[str, float]
    created_by: str
    active: bool
    created_at: datetime


def _view(row: m.RegionEdit) -> RegionEditView:
    return RegionEditView(row.id, row.shot_id, row.region_id, dict(row.params or {}),
                          row.created_by, bool(row.active), row.created_at)


def _shot(db, shot_id: int) -> m.Shot:
    shot = db.get(m.Shot, int(shot_id))
    if shot is None:
        raise EditCommandError(f"no shot with id {shot_id} (ids: reel shots list ITEM)")
    return shot


def _latest_stage(db, shot: m.Shot, stage: str) -> m.StageResult | None:
    return db.scalar(select(m.StageResult).where(
        m.StageResult.shot_id == shot.id, m.StageResult.stage == stage,
        m.StageResult.status == m.StageStatus.DONE,
        m.StageResult.output_version == shot.output_version)
        .order_by(m.StageResult.id.desc()).limit(1))


def shot_files(s: Settings, shot_id: int) -> tuple[Path, Path]:
    """``(labels.npz, restored.mkv)`` of the shot's current output version.

    Raises :class:`EditCommandError` when the shot was never restored."""
    with session_scope(s.database_url) as db:
        shot = _shot(db, shot_id)
        seg = _latest_stage(db, shot, "segmentation")
        if seg is None or not seg.output_path or not Path(seg.output_path).is_file():
            raise EditCommandError(
                f"shot {shot_id} has no segmentation yet; restore it first (reel run COLLECTION)")
        labels = Path(seg.output_path)
        restored = labels.parent / "restored.mkv"
        if not restored.is_file():
            raise EditCommandError(f"shot {shot_id} has no restored video at {restored}; "
                                   "restore it first (reel run COLLECTION)")
        return labels, restored


def shot_regions(s: Settings, shot_id: int, *, max_frames: int = 48) -> list[RegionStat]:
    """Region ids of a shot with their area share and mean colour (what ``reel regions`` shows)."""
    from reel.tasks.edit import region_stats

    labels, restored = shot_files(s, shot_id)
    return region_stats(restored, labels, max_frames=max_frames)


def _label_ids(labels_path: Path) -> set[int]:
    import numpy as np

    with np.load(labels_path) as npz:
        return {int(v) for v in np.unique(npz["labels"])}


def add_edit(s: Settings, shot_id: int, region_id: int, params: EditParams, *, who: str,
             check_region: bool = True) -> RegionEditView:
    """Store an edit of region ``region_id`` of a shot (older edits of that region deactivated),
    log a ``regional edit`` event, and re-open the shot for review if it was decided.

    ``check_region``: refuse a region id that the shot's current segmentation does not have
    (needs the shot to have been restored)."""
    if params.is_identity:
        raise EditCommandError("the edit changes nothing; give --hue, --saturation, --warmth "
                               "or --brightness (or --clear to remove edits)")
    if check_region:
        labels, _ = shot_files(s, shot_id)
        ids = _label_ids(labels)
        if int(region_id) not in ids:
            raise EditCommandError(f"shot {shot_id} has no region {region_id}; its regions are "
                                   f"{', '.join(map(str, sorted(ids)))} (see: reel regions {shot_id})")
    from reel.db.reviews import add_audit_event, record_review

    with session_scope(s.database_url) as db:
        shot = _shot(db, shot_id)
        replaced = []
        for old in db.scalars(select(m.RegionEdit).where(
                m.RegionEdit.shot_id == shot.id, m.RegionEdit.region_id == int(region_id),
                m.RegionEdit.active.is_(True))):
            old.active = False
            replaced.append(old.id)
        row = m.RegionEdit(shot_id=shot.id, region_id=int(region_id), params=params.to_dict(),
                           created_by=who, active=True)
        db.add(row)
        db.flush()
        reopened = shot.status in (m.ShotStatus.APPROVED, m.ShotStatus.REJECTED)
        if reopened:
            record_review(db, shot.id, who, "rerun", expected_version=None,
                          note=f"regional edit of region {region_id}")
        add_audit_event(db, EVENT, who, item_id=shot.item_id, shot_id=shot.id,
                        detail={"action": "add", "edit_id": row.id, "region_id": int(region_id),
                                "params": params.to_dict(), "replaced": replaced,
                                "reopened_for_review": reopened})
        return _view(row)


def list_edits(s: Settings, shot_id: int, *, include_inactive: bool = False) -> list[RegionEditView]:
    """The shot's edits, oldest first (active ones only unless ``include_inactive``)."""
    with session_scope(s.database_url) as db:
        _shot(db, shot_id)
        q = select(m.RegionEdit).where(m.RegionEdit.shot_id == int(shot_id))
        if not include_inactive:
            q = q.where(m.RegionEdit.active.is_(True))
        return [_view(r) for r in db.scalars(q.order_by(m.RegionEdit.id))]


def clear_edits(s: Settings, shot_id: int, *, who: str, region_id: int | None = None) -> list[int]:
    """Deactivate the shot's active edits (of one region, or all); returns their ids. The next
    run writes a new version without them."""
    from reel.db.reviews import add_audit_event, record_review

    with session_scope(s.database_url) as db:
        shot = _shot(db, shot_id)
        q = select(m.RegionEdit).where(m.RegionEdit.shot_id == shot.id,
                                       m.RegionEdit.active.is_(True))
        if region_id is not None:
            q = q.where(m.RegionEdit.region_id == int(region_id))
        rows = list(db.scalars(q.order_by(m.RegionEdit.id)))
        for r in rows:
            r.active = False
        if rows:
            reopened = shot.status in (m.ShotStatus.APPROVED, m.ShotStatus.REJECTED)
            if reopened:
                record_review(db, shot.id, who, "rerun", expected_version=None,
                              note="regional edits cleared")
            add_audit_event(db, EVENT, who, item_id=shot.item_id, shot_id=shot.id,
                            detail={"action": "clear", "edit_ids": [r.id for r in rows],
                                    "region_id": region_id, "reopened_for_review": reopened})
        return [r.id for r in rows]


def edit_spec(row: m.RegionEdit | RegionEditView) -> dict[str, Any]:
    """The edit dict :func:`reel.tasks.edit.edit_shot` takes, for one catalog row."""
    return {"region": {"labels": [int(row.region_id)]}, "params": dict(row.params or {}),
            "id": int(row.id)}


def active_edit_specs(s: Settings, shot_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Shot id → its active edits as :func:`edit_shot` dicts, oldest first (what the flow
    applies); shots without edits are absent."""
    ids = [int(i) for i in shot_ids]
    if not ids:
        return {}
    out: dict[int, list[dict[str, Any]]] = {}
    with session_scope(s.database_url) as db:
        for r in db.scalars(select(m.RegionEdit).where(
                m.RegionEdit.shot_id.in_(ids), m.RegionEdit.active.is_(True))
                .order_by(m.RegionEdit.id)):
            out.setdefault(r.shot_id, []).append(edit_spec(r))
    return out


def applied_edit_ids(db, shot_id: int, version: int) -> list[int]:
    """Region-edit ids the ``regional_edit`` stage applied when it made output ``version``."""
    sr = db.scalar(select(m.StageResult).where(
        m.StageResult.shot_id == shot_id, m.StageResult.stage == "regional_edit",
        m.StageResult.status == m.StageStatus.DONE, m.StageResult.output_version == version)
        .order_by(m.StageResult.id.desc()).limit(1))
    if sr is None:
        return []
    return sorted(int(i) for i in (sr.params or {}).get("region_edit_ids", []))


def version_for_edits(db, shot: m.Shot, version: int, run_id: int | None = None) -> int:
    """The output version this run writes for a shot without a re-run request: ``version``,
    or a new one when its active edits differ from those that made ``version`` (logged)."""
    active = sorted(db.scalars(select(m.RegionEdit.id).where(
        m.RegionEdit.shot_id == shot.id, m.RegionEdit.active.is_(True))))
    applied = applied_edit_ids(db, shot.id, version)
    if active == applied:
        return version
    highest = db.scalar(select(func.max(m.RerunRequest.output_version)).where(
        m.RerunRequest.shot_id == shot.id)) or 0
    new = max(int(version), int(highest)) + 1
    import reel

    db.add(m.Event(item_id=shot.item_id, shot_id=shot.id, run_id=run_id, event_type=EVENT,
                   outcome=m.EventOutcome.SUCCESS, agent=f"reel {reel.__version__}",
                   detail={"action": "new version", "output_version": new,
                           "edit_ids": active, "previous_edit_ids": applied}))
    return new


__all__ = ["EVENT", "EditCommandError", "RegionEditView", "active_edit_specs", "add_edit",
           "applied_edit_ids", "clear_edits", "edit_spec", "list_edits", "shot_files",
           "shot_regions", "version_for_edits"]
