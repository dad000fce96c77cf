"""Catalog side of the reference library: shot clusters, pins, listings (``reel refs ...``).

Tasks rank references (``reel.tasks.references``); this module is the flow-side writer:

* :func:`store_clusters` writes ``shots.reference_cluster`` after the item-level ranking
  (:func:`reel.tasks.references.rank_item_references`) and records a "reference clustering"
  event with the clusters and the engine.
* :func:`pin_reference` / :func:`unpin_reference`: a reviewer's override. A pinned row of
  ``shot_references`` leads the shot's list, is never replaced by a re-run (``record.shots_of``
  passes pins to the flow, ``record.store_references`` keeps them) and is recorded as a
  "reference pinned" / "reference unpinned" event.
* :func:`list_references`: the shot's ranked references with scores, pins first, and the
  other shots of its cluster.

Example
-------
>>> shot_id = resolve_shot(s, "bikes:2")                      # doctest: +SKIP
>>> pin_reference(s, shot_id, "bikes-shot-02.png", who="ana")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from reel.config import Settings
from reel.db import models as m
from reel.db.session import session_scope
from reel.flows import record


class RefsError(ValueError):
    """A request that cannot be applied; the message says why and what to do."""


@dataclass(frozen=True)
class ShotReferenceRow:
    rank: int
    reference_id: int
    path: str
    score: float
    pinned: bool


@dataclass(frozen=True)
class ShotReferences:
    shot_id: int
    item: str
    index: int
    cluster: int | None
    cluster_shots: list[int]  # indices of the item's shots in the same cluster
    rows: list[ShotReferenceRow]


def resolve_shot(s: Settings, shot: str) -> int:
    """A shot by catalog id (digits) or ``ITEM:INDEX`` (ITEM as ``reel shots list`` takes it)."""
    shot = shot.strip()
    if shot.isdigit():
        with session_scope(s.database_url) as db:
            if db.get(m.Shot, int(shot)) is None:
                raise RefsError(f"no shot with id {shot}; list shots with: reel shots list ITEM")
        return int(shot)
    if ":" not in shot:
        raise RefsError(f"{shot!r} is not a shot: give a shot id or ITEM:INDEX (e.g. bikes:2)")
    item, index = shot.rsplit(":", 1)
    if not index.isdigit():
        raise RefsError(f"{shot!r}: the shot index after ':' must be a number")
    from reel.flows.shots import ShotEditError, resolve_item

    try:
        ref = resolve_item(s, item)
    except ShotEditError as exc:
        raise RefsError(str(exc)) from exc
    with session_scope(s.database_url) as db:
        sid = db.scalar(select(m.Shot.id).where(m.Shot.item_id == ref.id, m.Shot.index == int(index)))
    if sid is None:
        raise RefsError(f"item {ref.name} has no shot {index}; list them with: reel shots list {item}")
    return int(sid)


def resolve_reference(s: Settings, collection_id: int, ref: str) -> int:
    """A library still of the collection by id (digits), path, or unique file name."""
    with session_scope(s.database_url) as db:
        rows = list(db.execute(select(m.ReferenceImage.id, m.ReferenceImage.path)
                               .where(m.ReferenceImage.collection_id == collection_id)))
    if not rows:
        raise RefsError("the shot's collection has no reference library; add stills with "
                        "reel ingest COLLECTION --references DIR")
    if ref.isdigit() and any(r.id == int(ref) for r in rows):
        return int(ref)
    want = str(Path(ref).expanduser().resolve()) if ("/" in ref or Path(ref).exists()) else None
    for r in rows:
        if r.path == ref or (want is not None and str(Path(r.path).resolve()) == want):
            return int(r.id)
    named = [r for r in rows if Path(r.path).name == ref]
    if len(named) == 1:
        return int(named[0].id)
    if len(named) > 1:
        raise RefsError(f"{len(named)} library stills are named {ref!r}; give the id or full path "
                        "(reel refs list SHOT shows them)")
    raise RefsError(f"{ref!r} is not in the collection's reference library; give a reference "
                    "id or a path of a registered still (reel refs list SHOT shows them)")


def store_clusters(s: Settings, item_id: int, run_id: int | None, clusters: dict[int, int],
                   engine: dict | None = None) -> None:
    """Write ``shots.reference_cluster`` ({shot id: cluster}) and a clustering event."""
    with session_scope(s.database_url) as db:
        for shot_id, c in clusters.items():
            shot = db.get(m.Shot, shot_id)
            if shot is not None and shot.reference_cluster != int(c):
                shot.reference_cluster = int(c)
    engine = engine or {}
    record.add_event(s, "reference clustering", "success", item_id=item_id, run_id=run_id,
                     agent_name=f"{record.agent()} / {engine.get('engine', '?')} "
                                f"{engine.get('engine_version', '')}".strip(),
                     detail={"clusters": {str(k): int(v) for k, v in sorted(clusters.items())},
                             "params": engine.get("params", {})})


@dataclass
class ItemRanking:
    """Per-shot cluster-pooled rankings of an item, as the restore flow passes them on."""

    engine_name: str
    engine: dict
    ranked: dict[int, list]  # shot id -> list[RankedReference]
    clusters: dict[int, int]  # shot id -> cluster id

    def for_shot(self, shot_id: int, engine_name: str) -> tuple[list | None, dict | None]:
        """``(ranked, engine)`` for a shot using ``engine_name``; ``(None, None)`` when the shot
        uses another ranker (a reviewer's engine choice) and must be ranked on its own."""
        if engine_name != self.engine_name or shot_id not in self.ranked:
            return None, None
        return self.ranked[shot_id], self.engine

    def key(self, shot_id: int) -> list[list]:
        """The shot's pooled ranking as cache-key material: [[file name, score], ...]."""
        return [[Path(r.path).name, float(r.score)] for r in self.ranked.get(shot_id, [])]


def rank_and_cluster(s: Settings, item_id: int, run_id: int | None, src, shots, library) -> ItemRanking:
    """Rank ``library`` for all ``shots`` of an item at once, cluster similar shots, store the
    clusters (:func:`store_clusters`), and return the pooled per-shot rankings."""
    from reel.tasks.references import rank_item_references_task

    eng, proc = s.engines, s.processing
    res = rank_item_references_task(src, [(sh.start, sh.stop) for sh in shots], library,
                                    engine=eng.references, top_k=proc.references_top_k,
                                    analysis_width_px=proc.analysis_width_px,
                                    cluster_distance=proc.reference_cluster_distance)
    clusters = {sh.id: int(c) for sh, c in zip(shots, res.clusters)}
    store_clusters(s, item_id, run_id, clusters, res.engine)
    return ItemRanking(eng.references, res.engine,
                       {sh.id: list(r) for sh, r in zip(shots, res.ranked)}, clusters)


def _shot_item_and_reference(s: Settings, shot_id: int, ref: str) -> tuple[int, int]:
    """``(item id, reference id)`` of a shot and a still of its collection (RefsError if the
    shot or the still does not exist)."""
    with session_scope(s.database_url) as db:
        shot = db.get(m.Shot, shot_id)
        if shot is None:
            raise RefsError(f"no shot with id {shot_id}")
        collection_id, item_id = shot.item.collection_id, shot.item_id
    return item_id, resolve_reference(s, collection_id, ref)


def pin_reference(s: Settings, shot_id: int, ref: str, *, who: str) -> ShotReferenceRow:
    """Pin a library still to a shot: it leads the shot's references on every later run."""
    item_id, ref_id = _shot_item_and_reference(s, shot_id, ref)
    with session_scope(s.database_url) as db:
        shot = db.get(m.Shot, shot_id)
        links = list(shot.references)
        n_pins = sum(1 for r in links if r.pinned and r.reference_id != ref_id)
        row = next((r for r in links if r.reference_id == ref_id), None)
        if row is None:
            row = m.ShotReference(shot_id=shot_id, reference_id=ref_id, rank=n_pins, score=1.0,
                                  pinned=True)
            db.add(row)
        else:
            row.pinned, row.rank, row.score = True, n_pins, 1.0
        # unpinned rows follow the pins in their old order
        for k, r in enumerate(sorted((r for r in links if not r.pinned and r is not row),
                                     key=lambda r: r.rank)):
            r.rank = n_pins + 1 + k
        db.flush()
        path = db.get(m.ReferenceImage, ref_id).path
    record.add_event(s, "reference pinned", "success", item_id=item_id, shot_id=shot_id,
                     agent_name=who, detail={"reference_id": ref_id, "path": path})
    return ShotReferenceRow(n_pins, ref_id, path, 1.0, True)


def unpin_reference(s: Settings, shot_id: int, ref: str, *, who: str) -> None:
    """Remove a pin; the still drops out of the list until the next run ranks it again."""
    item_id, ref_id = _shot_item_and_reference(s, shot_id, ref)
    with session_scope(s.database_url) as db:
        row = db.scalar(select(m.ShotReference).where(m.ShotReference.shot_id == shot_id,
                                                      m.ShotReference.reference_id == ref_id))
        if row is None or not row.pinned:
            raise RefsError(f"reference {ref} is not pinned to shot {shot_id}")
        db.delete(row)
    record.add_event(s, "reference unpinned", "success", item_id=item_id, shot_id=shot_id,
                     agent_name=who, detail={"reference_id": ref_id})


def list_references(s: Settings, shot_id: int) -> ShotReferences:
    """The shot's references (pins first, then by rank) and its cluster."""
    with session_scope(s.database_url) as db:
        shot = db.get(m.Shot, shot_id)
        if shot is None:
            raise RefsError(f"no shot with id {shot_id}")
        rows = [ShotReferenceRow(r.rank, r.reference_id, r.reference.path, float(r.score), r.pinned)
                for r in sorted(shot.references, key=lambda r: (not r.pinned, r.rank))]
        members: list[int] = []
        if shot.reference_cluster is not None:
            members = list(db.scalars(select(m.Shot.index).where(
                m.Shot.item_id == shot.item_id,
                m.Shot.reference_cluster == shot.reference_cluster).order_by(m.Shot.index)))
        return ShotReferences(shot.id, shot.item.name, shot.index, shot.reference_cluster,
                              members, rows)


__all__ = ["ItemRanking", "RefsError", "rank_and_cluster", "ShotReferenceRow", "ShotReferences", "list_references", "pin_reference",
           "resolve_reference", "resolve_shot", "store_clusters", "unpin_reference"]
