"""An item's shot list in the catalog: reviewer corrections, re-detection, editor exports.

Behind ``reel shots list|split|merge|detect|export``. Every change is one transaction and one
provenance event (``shot split``, ``shot merge``, ``shot detection``) whose detail holds the
shot list before and after.

Rules
-----
- A shot whose extent a reviewer set is ``origin = manual``: both halves of a split, the shot
  left by a merge. Re-detection (:func:`redetect_shots`, ``reel shots detect``) keeps every
  manual shot exactly and only replaces the detected shots between them; restore runs reuse
  an item's shot list as it is (detection runs only for an item without shots).
- Shots are numbered ``0..n-1`` in frame order; a split or merge renumbers the shots after it.
  Their work folders (``<work>/<collection>/item-NNNNN/shot-NNNN/``, with any ``v<n>/``
  versions inside) are renamed along, so every folder keeps belonging to the shot it was made
  for; the folders of shots whose frame range changed are removed (their outputs are stale),
  those shots go back to ``pending`` at output version 1.
- A merge keeps the earlier shot's row (its reviews, re-run requests and results stay); the
  later shot's row is deleted: its events stay as item events, its pinned references move to
  the kept shot, and the merge event records its id, range, status and review decisions.

Example
-------
>>> item = resolve_item(settings, "bikes")                          # doctest: +SKIP
>>> split_shot(settings, item.id, 52, who="ana")[2]                 # doctest: +SKIP
ShotInfo(id=9, index=2, start=52, stop=76, transition='cut', confidence=1.0, origin='manual', ...)
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import select, update

from reel.config import Settings
from reel.db import models as m
from reel.db.session import session_scope
from reel.flows import record


class ShotEditError(ValueError):
    """A correction that cannot be applied; the message says why and what to do."""


@dataclass(frozen=True)
class ShotInfo:
    """A catalog shot as shown by ``reel shots list`` (frames ``[start, stop)``)."""

    id: int
    index: int
    start: int
    stop: int
    transition: str
    confidence: float
    origin: str
    status: str
    output_version: int = 1

    @property
    def n_frames(self) -> int:
        return self.stop - self.start


# --------------------------------------------------------------------------- lookups
def resolve_item(s: Settings, item: str, collection: str | None = None) -> record.ItemRef:
    """An item by catalog id (digits), ``COLLECTION/NAME``, or ``NAME`` (unique, or in
    ``collection``)."""
    with session_scope(s.database_url) as db:
        if item.isdigit() and collection is None:
            row = db.get(m.Item, int(item))
            if row is not None:
                return record.load_item(s, row.id)
        name = item
        if "/" in item and collection is None:
            collection, name = item.split("/", 1)
        q = select(m.Item.id, m.Collection.name).join(m.Collection).where(m.Item.name == name)
        if collection:
            q = q.where(m.Collection.name == collection)
        rows = db.execute(q.order_by(m.Collection.name)).all()
    if not rows:
        where = f" in collection {collection!r}" if collection else ""
        raise ShotEditError(f"no item {item!r}{where}; list items with: reel status COLLECTION")
    if len(rows) > 1:
        raise ShotEditError(f"several collections have an item named {name!r} "
                            f"({', '.join(c for _, c in rows)}); use COLLECTION/{name} or --collection")
    return record.load_item(s, rows[0][0])


def _info(sh: m.Shot) -> ShotInfo:
    return ShotInfo(sh.id, sh.index, sh.start_frame, sh.stop_frame, sh.transition,
                    float(sh.confidence), sh.origin.value, sh.status.value,
                    int(getattr(sh, "output_version", 1) or 1))


def list_shots(s: Settings, item_id: int) -> list[ShotInfo]:
    """The item's shots in order."""
    with session_scope(s.database_url) as db:
        return [_info(sh) for sh in db.scalars(
            select(m.Shot).where(m.Shot.item_id == item_id).order_by(m.Shot.index))]


def item_fps(s: Settings, item_id: int) -> str | None:
    """The item's exact frame rate as recorded at ingest (e.g. ``"24000/1001"``)."""
    with session_scope(s.database_url) as db:
        row = db.get(m.Item, item_id)
        return row.fps if row is not None else None


def item_work_dir(s: Settings, item: record.ItemRef) -> Path:
    """``<home>/work/<collection>/item-NNNNN``, the parent of the ``shot-NNNN`` folders."""
    return s.work_dir / item.collection / f"item-{item.id:05d}"


def _snapshot(shots: Sequence[ShotInfo]) -> list[list[Any]]:
    return [[sh.id, sh.start, sh.stop, sh.transition, sh.origin] for sh in shots]


# --------------------------------------------------------------------------- work folders
def relocate_work_dirs(work: Path, moves: dict[int, int], stale: Sequence[int]) -> dict[str, str]:
    """Keep ``shot-NNNN`` folders with their shots after a renumbering.

    ``moves`` maps old index → new index of shots whose frames did not change; the folders
    of the ``stale`` old indices (shots whose frames changed, or that are gone) are removed.
    Renames go through temporary names, so any permutation works. Returns what was done
    (old folder name → new folder name, or ``"removed"``).
    """
    done: dict[str, str] = {}
    if not work.is_dir():
        return done
    for i in stale:
        d = work / f"shot-{i:04d}"
        if d.exists():
            shutil.rmtree(d)
            done[d.name] = "removed"
    tmp: list[tuple[Path, Path]] = []
    for old, new in sorted(moves.items()):
        if old == new:
            continue
        src = work / f"shot-{old:04d}"
        if src.exists():
            t = work / f".shot-{old:04d}.moving-{os.getpid()}"
            src.rename(t)
            tmp.append((t, work / f"shot-{new:04d}"))
            done[src.name] = f"shot-{new:04d}"
    for t, dst in tmp:
        if dst.exists():  # a stale folder nobody owns any more
            shutil.rmtree(dst)
        t.rename(dst)
    return done


def _renumber(db, shots: list[m.Shot]) -> dict[int, int]:
    """Give ``shots`` (in frame order) indices 0..n-1; returns shot id → old index of the
    shots whose index changed. Two passes through negative indices keep (item, index) unique."""
    changed = {sh.id: sh.index for i, sh in enumerate(shots) if sh.index != i}
    if not changed:
        return changed
    for i, sh in enumerate(shots):
        if sh.id in changed:
            sh.index = -(1_000_000 + i)  # new rows wait at small negative indices
    db.flush()
    for i, sh in enumerate(shots):
        if sh.id in changed:
            sh.index = i
    db.flush()
    return changed


def _reset_outputs(sh: m.Shot) -> None:
    sh.status = m.ShotStatus.PENDING
    sh.flags = []
    if hasattr(sh, "output_version"):
        sh.output_version = 1


# --------------------------------------------------------------------------- split / merge
def split_shot(s: Settings, item_id: int, frame: int, *, who: str) -> list[ShotInfo]:
    """Split the shot containing ``frame`` so that a new shot starts at ``frame``.

    The earlier part keeps the shot's row; the later part is a new row (transition ``cut``,
    confidence 1). Both are ``manual``, ``pending`` and at output version 1. Returns the new
    shot list.
    """
    item = record.load_item(s, item_id)
    with session_scope(s.database_url) as db:
        shots = list(db.scalars(select(m.Shot).where(m.Shot.item_id == item_id).order_by(m.Shot.index)))
        if not shots:
            raise ShotEditError(f"item {item.name!r} has no shots yet; run `reel run "
                                f"{item.collection}` or `reel shots detect {item.name}` first")
        before = [_info(sh) for sh in shots]
        target = next((sh for sh in shots if sh.start_frame <= frame < sh.stop_frame), None)
        if target is None:
            raise ShotEditError(f"frame {frame} is outside the film (frames 0-{shots[-1].stop_frame - 1})")
        if frame == target.start_frame:
            raise ShotEditError(f"frame {frame} already starts shot {target.index} (id {target.id})")
        old_index = target.index
        new = m.Shot(item_id=item_id, index=-len(shots) - 1, start_frame=frame,
                     stop_frame=target.stop_frame, transition="cut", confidence=1.0,
                     origin=m.ShotOrigin.MANUAL, status=m.ShotStatus.PENDING, flags=[])
        target.stop_frame = frame
        target.origin = m.ShotOrigin.MANUAL
        _reset_outputs(target)
        db.add(new)
        db.flush()
        for ref in target.references:
            if ref.pinned:
                db.add(m.ShotReference(shot_id=new.id, reference_id=ref.reference_id,
                                       rank=ref.rank, score=ref.score, pinned=True))
        ordered = shots[: old_index + 1] + [new] + shots[old_index + 1:]
        changed = _renumber(db, ordered)
        after = [_info(sh) for sh in ordered]
        moves = {old: next(sh.index for sh in ordered if sh.id == sid) for sid, old in changed.items()
                 if sid != new.id}
        dirs = relocate_work_dirs(item_work_dir(s, item), moves, [old_index])
        db.add(m.Event(item_id=item_id, shot_id=target.id, event_type="shot split",
                       outcome=m.EventOutcome.SUCCESS, agent=who,
                       detail={"frame": int(frame), "shot_id": target.id, "new_shot_id": new.id,
                               "before": _snapshot(before), "after": _snapshot(after),
                               "work_dirs": dirs}))
    return list_shots(s, item_id)


def merge_shot(s: Settings, item_id: int, shot_id: int, *, who: str,
               with_next: bool = False) -> list[ShotInfo]:
    """Merge shot ``shot_id`` with the previous shot (remove the boundary that starts it), or
    with the next one (``with_next``). Returns the new shot list."""
    item = record.load_item(s, item_id)
    with session_scope(s.database_url) as db:
        shots = list(db.scalars(select(m.Shot).where(m.Shot.item_id == item_id).order_by(m.Shot.index)))
        pos = next((i for i, sh in enumerate(shots) if sh.id == shot_id), None)
        if pos is None:
            raise ShotEditError(f"item {item.name!r} has no shot with id {shot_id}; list them "
                                f"with: reel shots list {item.name}")
        first, second = (pos, pos + 1) if with_next else (pos - 1, pos)
        if first < 0 or second >= len(shots):
            side = "next" if with_next else "previous"
            raise ShotEditError(f"shot {shots[pos].index} (id {shot_id}) has no {side} shot to merge with")
        before = [_info(sh) for sh in shots]
        keep, gone = shots[first], shots[second]
        gone_info = {"id": gone.id, "index": gone.index, "start": gone.start_frame,
                     "stop": gone.stop_frame, "transition": gone.transition,
                     "confidence": float(gone.confidence), "status": gone.status.value,
                     "reviews": [[r.reviewer, r.decision.value, r.note] for r in gone.reviews]}
        pinned = {r.reference_id for r in keep.references if r.pinned}
        for ref in gone.references:
            if ref.pinned and ref.reference_id not in pinned:
                db.add(m.ShotReference(shot_id=keep.id, reference_id=ref.reference_id,
                                       rank=ref.rank, score=ref.score, pinned=True))
        # the absorbed shot's provenance stays with the item
        db.execute(update(m.Event).where(m.Event.shot_id == gone.id).values(shot_id=None))
        db.expire(gone, ["events"])
        stale = [keep.index, gone.index]
        keep.stop_frame = gone.stop_frame
        keep.origin = m.ShotOrigin.MANUAL
        _reset_outputs(keep)
        db.delete(gone)
        db.flush()
        ordered = [sh for sh in shots if sh.id != gone.id]
        changed = _renumber(db, ordered)
        after = [_info(sh) for sh in ordered]
        moves = {old: next(sh.index for sh in ordered if sh.id == sid) for sid, old in changed.items()}
        dirs = relocate_work_dirs(item_work_dir(s, item), moves, stale)
        db.add(m.Event(item_id=item_id, shot_id=keep.id, event_type="shot merge",
                       outcome=m.EventOutcome.SUCCESS, agent=who,
                       detail={"kept_shot_id": keep.id, "removed_shot": gone_info,
                               "before": _snapshot(before), "after": _snapshot(after),
                               "work_dirs": dirs}))
    return list_shots(s, item_id)


# --------------------------------------------------------------------------- re-detection
def keep_manual(detected: Sequence[Any], manual: Sequence[tuple[int, int]], n_frames: int,
                min_shot_frames: int = 1) -> list[tuple[int, int, str, float, bool]]:
    """Combine a fresh detection with the manual shots, which are kept exactly.

    ``detected`` are Shot-like objects tiling ``[0, n_frames)``; ``manual`` the ``(start,
    stop)`` of manual shots. Between manual shots (and before/after them) the detected
    boundaries that fall strictly inside the gap are used, dropping any that would leave a
    piece shorter than ``min_shot_frames``. Returns ``(start, stop, transition, confidence,
    is_manual)`` tuples tiling ``[0, n_frames)``.

    >>> from reel.tasks.shots import Shot
    >>> det = [Shot(0, 10, "start", 1.0), Shot(10, 30, "cut", 0.9), Shot(30, 50, "fade", 0.8)]
    >>> [x[:2] for x in keep_manual(det, [(5, 12)], 50, 3)]
    [(0, 5), (5, 12), (12, 30), (30, 50)]
    """
    manual = sorted((int(a), int(b)) for a, b in manual)
    for (a0, b0), (a1, b1) in zip(manual, manual[1:]):
        if a1 < b0:
            raise ValueError("manual shots overlap")
    cuts = {int(sh.start): (sh.transition, float(sh.confidence)) for sh in detected[1:]}
    out: list[tuple[int, int, str, float, bool]] = []
    pos = 0

    def fill(lo: int, hi: int) -> None:
        inner = [c for c in sorted(cuts) if lo < c < hi]
        edges = [lo]
        for c in inner:
            if c - edges[-1] >= min_shot_frames and hi - c >= min_shot_frames:
                edges.append(c)
        edges.append(hi)
        for a, b in zip(edges, edges[1:]):
            t, conf = cuts.get(a, ("cut", 1.0))
            out.append((a, b, "start" if a == 0 else t, 1.0 if a == 0 else conf, False))

    for a, b in manual:
        if a > pos:
            fill(pos, a)
        out.append((a, b, "start" if a == 0 else cuts.get(a, ("cut", 1.0))[0],
                    1.0 if a == 0 else cuts.get(a, ("cut", 1.0))[1], True))
        pos = b
    if pos < n_frames:
        fill(pos, n_frames)
    return out


def redetect_shots(s: Settings, item_id: int, *, who: str, engine: str | None = None,
                   min_shot_frames: int | None = None, run_id: int | None = None,
                   detected: Sequence[Any] | None = None) -> list[ShotInfo]:
    """Detect the item's shots again, keeping every manual shot (:func:`keep_manual`).

    Detected shots whose frames do not change keep their rows (and work folders, renamed if
    their number changes); the others are replaced. ``detected`` may be given (a shot list
    already computed); otherwise the item's source is decoded with ``engine`` (default: the
    configured one).
    """
    from reel.tasks.shots import detect_shots

    item = record.load_item(s, item_id)
    eng = engine or s.engines.shots
    mins = int(min_shot_frames or s.processing.min_shot_frames)
    if detected is None:
        detected = detect_shots(item.source_path, engine=eng, min_shot_frames=mins)
    n = detected[-1].stop if detected else 0
    with session_scope(s.database_url) as db:
        shots = list(db.scalars(select(m.Shot).where(m.Shot.item_id == item_id).order_by(m.Shot.index)))
        if shots and shots[-1].stop_frame != n:
            raise ShotEditError(f"detection covered {n} frames but the shot list covers "
                                f"{shots[-1].stop_frame}; check the source with reel probe")
        before = [_info(sh) for sh in shots]
        manual = {(sh.start_frame, sh.stop_frame): sh for sh in shots if sh.origin == m.ShotOrigin.MANUAL}
        plan = keep_manual(detected, list(manual), n, mins)
        by_range = {(sh.start_frame, sh.stop_frame): sh for sh in shots}
        ordered: list[m.Shot] = []
        used: set[int] = set()
        for a, b, kind, conf, is_manual in plan:
            sh = by_range.get((a, b))
            if sh is not None and (is_manual or sh.origin != m.ShotOrigin.MANUAL):
                if not is_manual:
                    sh.transition, sh.confidence = kind, conf
                ordered.append(sh)
                used.add(sh.id)
                continue
            new = m.Shot(item_id=item_id, index=-(len(shots) + len(ordered) + 1), start_frame=a,
                         stop_frame=b, transition=kind, confidence=conf,
                         origin=m.ShotOrigin.DETECTED, status=m.ShotStatus.PENDING, flags=[])
            db.add(new)
            ordered.append(new)
        gone = [sh for sh in shots if sh.id not in used]
        stale = [sh.index for sh in gone]
        for sh in gone:
            db.execute(update(m.Event).where(m.Event.shot_id == sh.id).values(shot_id=None))
            db.expire(sh, ["events"])
            db.delete(sh)
        db.flush()
        old_index = {sh.id: sh.index for sh in ordered if sh.id in used}
        _renumber(db, ordered)
        moves = {old_index[sh.id]: sh.index for sh in ordered if sh.id in old_index}
        dirs = relocate_work_dirs(item_work_dir(s, item), moves, stale)
        after = [_info(sh) for sh in ordered]
        db.add(m.Event(item_id=item_id, run_id=run_id, event_type="shot detection",
                       outcome=m.EventOutcome.SUCCESS, agent=f"{who} / {eng}",
                       detail={"engine": eng, "min_shot_frames": mins, "manual_kept": len(manual),
                               "before": _snapshot(before), "after": _snapshot(after),
                               "work_dirs": dirs}))
    return list_shots(s, item_id)


# --------------------------------------------------------------------------- export
def export_shots(s: Settings, item_id: int, fmt: str, out_path: Path | None = None) -> Path:
    """Write the item's shot list as ``csv`` or CMX3600 ``edl`` (:mod:`reel.tasks.edl`).

    Default path: ``<deliverables>/<collection>/<item>/<item>.shots.<csv|edl>``. Timecodes use
    the film's exact frame rate and its start timecode when it has one (non-drop-frame unless
    that timecode is drop-frame).
    """
    from reel.tasks import edl

    fmt = fmt.lower()
    if fmt not in ("csv", "edl"):
        raise ShotEditError(f"unknown export format {fmt!r}; choose csv or edl")
    item = record.load_item(s, item_id)
    shots = list_shots(s, item_id)
    if not shots:
        raise ShotEditError(f"item {item.name!r} has no shots yet; run `reel shots detect {item.name}`")
    with session_scope(s.database_url) as db:
        row = db.get(m.Item, item_id)
        fps = row.fps or "25/1"
        tc = (row.probe or {}).get("timecode")
    rows = [edl.ShotRow(sh.index, sh.start, sh.stop, sh.transition, sh.confidence, sh.origin, sh.id)
            for sh in shots]
    out = Path(out_path) if out_path else (s.deliverables_dir / item.collection / item.name /
                                           f"{item.name}.shots.{fmt}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        return edl.write_csv(out, rows, fps=fps, start_timecode=tc)
    return edl.write_edl(out, rows, fps=fps, title=f"{item.collection} / {item.name}",
                         clip_name=item.source_path.name, start_timecode=tc)


__all__ = ["ShotEditError", "ShotInfo", "export_shots", "item_fps", "item_work_dir", "keep_manual",
           "list_shots", "merge_shot", "redetect_shots", "relocate_work_dirs", "resolve_item",
           "split_shot"]
