"""The collection queue (``queue_entries``): what the nightly flow restores, in which order.

``reel queue add`` puts a collection in the queue with a priority; the ``nightly`` flow
(:mod:`reel.flows.nightly`) claims entries one at a time, highest priority first (ties: the
earliest enqueued first), and marks each ``running`` → ``done`` or ``failed`` with the catalog
run id and the error. A queued entry can be cancelled until the nightly flow claims it.

Collections with shots sent back by reviewers (pending ``rerun_requests``) are processed by the
nightly flow even when nobody queued them: :func:`enqueue_reruns` adds an entry for them (only
the items with pending requests, ``requested_by = "reviewers (re-run requests)"``) so they show
in ``reel queue list`` like any other.

Every function opens one short transaction and returns plain :class:`QueueView` rows, never
ORM objects (flows → db; tasks never call this module).

Example
-------
>>> from reel.config import Settings
>>> s = Settings(home="/tmp/reel-queue-doc")                       # doctest: +SKIP
>>> e = add(s, "newsreels", priority=5, requested_by="ana")        # doctest: +SKIP
>>> [(v.collection, v.status) for v in list_entries(s)]            # doctest: +SKIP
[('newsreels', 'queued')]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import select, update

from reel.config import Settings
from reel.db import models as m
from reel.db.session import session_scope

__all__ = [
    "QueueError",
    "QueueView",
    "RERUN_REQUESTER",
    "add",
    "list_entries",
    "cancel",
    "claim_next",
    "finish",
    "requeue_stale",
    "enqueue_reruns",
    "collections_with_pending_reruns",
]

#: ``requested_by`` of the entries the nightly flow adds for reviewers' re-run requests.
RERUN_REQUESTER = "reviewers (re-run requests)"

#: Statuses shown by ``reel queue list`` unless ``--all``.
OPEN = (m.QueueStatus.QUEUED, m.QueueStatus.RUNNING)


class QueueError(ValueError):
    """A queue operation that cannot be done (unknown collection or entry, wrong status)."""


@dataclass(frozen=True)
class QueueView:
    """One queue entry, detached from the database session."""

    id: int
    collection: str
    status: str
    priority: int
    requested_by: str
    params: dict[str, Any]
    enqueued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_id: int | None
    error: str | None

    @property
    def items(self) -> list[str] | None:
        """Only these items of the collection (None: all of them)."""
        items = self.params.get("items")
        return list(items) if items else None


def _view(e: m.QueueEntry) -> QueueView:
    return QueueView(id=e.id, collection=e.collection.name, status=e.status.value,
                     priority=e.priority, requested_by=e.requested_by, params=dict(e.params or {}),
                     enqueued_at=e.enqueued_at, started_at=e.started_at,
                     finished_at=e.finished_at, run_id=e.run_id, error=e.error)


def _order():
    # higher priority first; ties: first come, first served (id breaks equal timestamps)
    return (m.QueueEntry.priority.desc(), m.QueueEntry.enqueued_at, m.QueueEntry.id)


def add(s: Settings, collection: str, *, priority: int = 0, requested_by: str,
        items: Iterable[str] | None = None, params: dict[str, Any] | None = None) -> QueueView:
    """Queue ``collection`` for the nightly flow.

    Parameters
    ----------
    collection : name of a registered collection.
    priority : higher runs first (any integer; default 0).
    requested_by : who asks (shown in ``reel queue list``).
    items : only these items of the collection (default: all).
    params : extra JSON stored with the entry.

    Raises
    ------
    QueueError
        No such collection, an unknown item, or the collection is already queued (the existing
        entry id is in the message; cancel it first to change its priority).
    """
    with session_scope(s.database_url) as db:
        col = db.scalar(select(m.Collection).where(m.Collection.name == collection))
        if col is None:
            raise QueueError(f"no collection named {collection!r}")
        names = sorted(set(items or ()))
        if names:
            known = set(db.scalars(select(m.Item.name).where(m.Item.collection_id == col.id)))
            unknown = [n for n in names if n not in known]
            if unknown:
                raise QueueError(f"collection {collection!r} has no item(s) {', '.join(unknown)}")
        dup = db.scalar(select(m.QueueEntry).where(m.QueueEntry.collection_id == col.id,
                                                   m.QueueEntry.status == m.QueueStatus.QUEUED))
        if dup is not None:
            raise QueueError(f"collection {collection!r} is already queued (entry {dup.id}, "
                             f"priority {dup.priority})")
        entry = m.QueueEntry(collection_id=col.id, priority=int(priority),
                             requested_by=requested_by,
                             params={**(params or {}), **({"items": names} if names else {})})
        db.add(entry)
        db.flush()
        return _view(entry)


def list_entries(s: Settings, statuses: Iterable[str] | None = OPEN,
                 limit: int = 200) -> list[QueueView]:
    """Entries with one of ``statuses`` (None: all), open ones in run order, then the newest."""
    q = select(m.QueueEntry)
    if statuses is not None:
        q = q.where(m.QueueEntry.status.in_([m.QueueStatus(x) for x in statuses]))
    with session_scope(s.database_url) as db:
        rows = db.scalars(q.order_by(m.QueueEntry.id.desc()).limit(limit)).all()
        views = [_view(e) for e in rows]
    rank = {m.QueueStatus.RUNNING.value: 0, m.QueueStatus.QUEUED.value: 1}
    return sorted(views, key=lambda v: (rank.get(v.status, 2),
                                        -v.priority if v.status in rank else 0,
                                        v.enqueued_at if v.status in rank else datetime.max,
                                        v.id if v.status in rank else -v.id))


def cancel(s: Settings, entry_id: int, *, by: str | None = None) -> QueueView:
    """Cancel a queued entry; refuses entries already claimed or finished."""
    with session_scope(s.database_url) as db:
        entry = db.get(m.QueueEntry, entry_id)
        if entry is None:
            raise QueueError(f"no queue entry with id {entry_id}")
        if entry.status != m.QueueStatus.QUEUED:
            raise QueueError(f"queue entry {entry_id} is {entry.status.value}; only queued entries "
                             "can be cancelled (cancel a running one's flow run in Prefect)")
        entry.status = m.QueueStatus.CANCELLED
        entry.finished_at = m.utcnow()
        if by:
            entry.params = {**(entry.params or {}), "cancelled_by": by}
        db.flush()
        return _view(entry)


def claim_next(s: Settings, *, flow_run_id: str | None = None) -> QueueView | None:
    """Atomically take the next queued entry (highest priority, oldest) and mark it running.

    The update only succeeds while the entry is still ``queued``, so two claimers (or a
    cancel at the same moment) never both win; the loser looks at the next entry.
    """
    while True:
        with session_scope(s.database_url) as db:
            entry_id = db.scalar(select(m.QueueEntry.id)
                                 .where(m.QueueEntry.status == m.QueueStatus.QUEUED)
                                 .order_by(*_order()).limit(1))
            if entry_id is None:
                return None
            won = db.execute(
                update(m.QueueEntry)
                .where(m.QueueEntry.id == entry_id, m.QueueEntry.status == m.QueueStatus.QUEUED)
                .values(status=m.QueueStatus.RUNNING, started_at=m.utcnow(),
                        finished_at=None, error=None)
                .execution_options(synchronize_session=False)).rowcount
            if not won:
                continue
            entry = db.get(m.QueueEntry, entry_id)
            if flow_run_id:
                entry.params = {**(entry.params or {}), "nightly_flow_run_id": flow_run_id}
            db.flush()
            return _view(entry)


def finish(s: Settings, entry_id: int, status: str, *, run_id: int | None = None,
           error: str | None = None) -> QueueView:
    """Mark a claimed entry ``done`` or ``failed`` with the catalog run id and the error."""
    st = m.QueueStatus(status)
    if st not in (m.QueueStatus.DONE, m.QueueStatus.FAILED):
        raise QueueError(f"an entry finishes done or failed, not {status}")
    with session_scope(s.database_url) as db:
        entry = db.get(m.QueueEntry, entry_id)
        if entry is None:
            raise QueueError(f"no queue entry with id {entry_id}")
        entry.status = st
        entry.finished_at = m.utcnow()
        entry.run_id = run_id
        entry.error = error
        db.flush()
        return _view(entry)


def requeue_stale(s: Settings, *, older_than: timedelta) -> list[int]:
    """Put ``running`` entries claimed more than ``older_than`` ago back in the queue.

    A nightly run that died (machine lost, worker killed) leaves its entry ``running``; the next
    nightly run calls this first. Returns the ids put back.
    """
    cutoff = m.utcnow() - older_than
    with session_scope(s.database_url) as db:
        rows = db.scalars(select(m.QueueEntry).where(
            m.QueueEntry.status == m.QueueStatus.RUNNING,
            m.QueueEntry.started_at < cutoff)).all()
        for e in rows:
            e.status = m.QueueStatus.QUEUED
            e.error = f"requeued: left running since {e.started_at:%Y-%m-%d %H:%M} UTC"
        return [e.id for e in rows]


def collections_with_pending_reruns(s: Settings) -> dict[str, list[str]]:
    """Collection name → sorted item names that have shots with pending re-run requests."""
    q = (select(m.Collection.name, m.Item.name)
         .join(m.Item, m.Item.collection_id == m.Collection.id)
         .join(m.Shot, m.Shot.item_id == m.Item.id)
         .join(m.RerunRequest, m.RerunRequest.shot_id == m.Shot.id)
         .where(m.RerunRequest.status == m.RerunStatus.PENDING)
         .distinct())
    out: dict[str, set[str]] = {}
    with session_scope(s.database_url) as db:
        for col, item in db.execute(q):
            out.setdefault(col, set()).add(item)
    return {c: sorted(v) for c, v in sorted(out.items())}


def enqueue_reruns(s: Settings, *, priority: int = 0) -> list[QueueView]:
    """Queue every collection with pending re-run requests that is not queued already.

    The entry restores only the items with pending requests (``params.items``) and carries
    ``params.reason = "rerun"``. A collection already queued is left alone: its run picks the
    requests up anyway (the restore flow handles them, :mod:`reel.flows.review`).
    """
    added = []
    for collection, items in collections_with_pending_reruns(s).items():
        try:
            added.append(add(s, collection, priority=priority, requested_by=RERUN_REQUESTER,
                             items=items, params={"reason": "rerun"}))
        except QueueError:  # already queued: that run picks the requests up
            continue
    return added
