"""The ``nightly`` flow: restore queued collections, then the shots reviewers sent back.

What one run does
-----------------
1. Entries left ``running`` for longer than ``stale_after_hours`` (a run that died) go back to
   the queue (:func:`reel.flows.queue.requeue_stale`).
2. Collections with pending re-run requests (shots sent back from the review dashboard) are
   queued if they are not queued already, restricted to the items concerned
   (:func:`reel.flows.queue.enqueue_reruns`), so they run even when nobody queued them.
3. Entries are claimed one at a time, highest priority first (ties: oldest first), and each is
   restored by the ``restore-collection`` flow as a subflow. The entry ends ``done`` (every item
   delivered) or ``failed`` (with the error: the exception, or which items failed and why), with
   the catalog run id in both cases. One failing collection never stops the others.
4. A Markdown artifact ``reel-nightly`` lists the entries processed.

The run ends ``Completed`` when every entry succeeded and ``Failed`` (after processing all of
them) when at least one failed, so Prefect's notifications fire on a bad night.

Registered as a deployment with a cron schedule by ``reel deploy`` (:mod:`reel.flows.deploy`);
``reel queue run`` runs it in the foreground with progress bars.

Example
-------
>>> from reel.flows.nightly import nightly      # doctest: +SKIP
>>> nightly()                                   # doctest: +SKIP
{'processed': 2, 'done': 2, 'failed': 0, 'entries': [...]}
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed, Failed
from sqlalchemy import select

from reel.config import get_settings
from reel.db import models as m
from reel.db.session import session_scope
from reel.flows import artifacts, cache, progress
from reel.flows import queue as q
from reel.flows.restore import restore_collection

__all__ = ["nightly", "process_entry"]


def _catalog_run_id(s, prefect_flow_run_id: Any) -> int | None:
    """The catalog run made by a restore-collection flow run (None if it never started)."""
    if not prefect_flow_run_id:
        return None
    with session_scope(s.database_url) as db:
        return db.scalar(select(m.Run.id).where(m.Run.prefect_flow_run_id == str(prefect_flow_run_id))
                         .order_by(m.Run.id.desc()).limit(1))


def _failed_items_error(s, collection: str, outcome: dict[str, str]) -> str | None:
    failed = sorted(name for name, st in outcome.items() if st == "failed")
    if not failed:
        return None
    reasons = {}
    with session_scope(s.database_url) as db:
        rows = db.execute(select(m.Item.name, m.Item.error).join(m.Collection)
                          .where(m.Collection.name == collection, m.Item.name.in_(failed)))
        reasons = {n: e for n, e in rows}
    first = failed[0]
    why = f" (first: {first}: {reasons.get(first)})" if reasons.get(first) else ""
    return f"{len(failed)} of {len(outcome)} items failed: {', '.join(failed)}{why}"


def process_entry(entry: q.QueueView) -> q.QueueView:
    """Restore one claimed queue entry and mark it done/failed; never raises for a bad run."""
    s = get_settings()
    logger = get_run_logger()
    progress.start_collection(entry.collection)
    try:
        state = restore_collection(entry.collection, items=entry.items, return_state=True)
    except Exception as exc:  # noqa: BLE001 - e.g. the subflow could not even start
        logger.error("queue entry %s (%s) failed: %s", entry.id, entry.collection, exc)
        done = q.finish(s, entry.id, "failed", error=f"{type(exc).__name__}: {exc}")
        progress.collection_done(entry.collection, done.status)
        return done
    run_id = _catalog_run_id(s, state.state_details.flow_run_id)
    if state.is_completed():
        outcome = state.result()
        error = _failed_items_error(s, entry.collection, outcome)
    else:
        exc = state.result(raise_on_failure=False)
        error = (f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException)
                 else f"restore-collection ended {state.type.value}: {state.message}")
    if error:
        logger.error("queue entry %s (%s) failed: %s", entry.id, entry.collection, error)
    done = q.finish(s, entry.id, "failed" if error else "done", run_id=run_id, error=error)
    progress.collection_done(entry.collection, done.status)
    return done


@flow(name="nightly", log_prints=True)
def nightly(include_reruns: bool = True, max_entries: int | None = None,
            stale_after_hours: float = 12.0, prune_cache: bool = True,
            prune_older_than_days: float | None = None):
    """Restore queued collections in priority order, and collections with re-run requests.

    Parameters
    ----------
    include_reruns : also queue collections whose shots reviewers sent back (pending
        re-run requests), restricted to the items concerned.
    max_entries : stop after this many entries (None: until the queue is empty).
    stale_after_hours : entries ``running`` for longer than this are queued again first.
    prune_cache : afterwards, remove stage-cache entries that can never be reused
        (``reel cache prune``: outputs changed or gone, results a killed run never collected,
        leftover temporary files; stage outputs are never touched).
    prune_older_than_days : with ``prune_cache``, also remove entries older than this.

    Returns
    -------
    dict (in a Completed state; a Failed state carrying the same summary when an entry failed)
        ``{"processed", "done", "failed", "requeued", "entries": [queue entry dicts],
        "cache_pruned": {"kept", "removed", "removed_bytes", "reasons"} or None}``.
    """
    from prefect.runtime import flow_run

    from reel.db.api import ensure_schema

    s = get_settings()
    ensure_schema(s.database_url)
    logger = get_run_logger()
    requeued = q.requeue_stale(s, older_than=timedelta(hours=float(stale_after_hours)))
    if requeued:
        logger.warning("queued again (left running by a run that died): %s", requeued)
    if include_reruns:
        for e in q.enqueue_reruns(s):
            logger.info("queued %s for re-run requests on %s", e.collection, ", ".join(e.items or []))
    waiting = len(q.list_entries(s, statuses=[m.QueueStatus.QUEUED.value], limit=100_000))
    total = waiting if max_entries is None else min(waiting, int(max_entries))
    progress.start_collections(total)
    fr_id = str(flow_run.id) if flow_run.id else None
    processed: list[q.QueueView] = []
    while max_entries is None or len(processed) < int(max_entries):
        entry = q.claim_next(s, flow_run_id=fr_id)
        if entry is None:
            break
        logger.info("queue entry %s: restoring %s (priority %s, by %s)", entry.id,
                    entry.collection, entry.priority, entry.requested_by)
        processed.append(process_entry(entry))
    artifacts.publish_nightly_artifact(processed)
    pruned = cache.prune(s, older_than_days=prune_older_than_days) if prune_cache else None
    if pruned is not None and pruned.removed:
        logger.info("stage cache: removed %d entries (%.1f MB): %s", pruned.removed,
                    pruned.removed_bytes / 2**20, pruned.reasons)
    failed = [e for e in processed if e.status == m.QueueStatus.FAILED.value]
    summary = {"processed": len(processed), "done": len(processed) - len(failed),
               "failed": len(failed), "requeued": requeued,
               "entries": [{**asdict(e), "enqueued_at": str(e.enqueued_at),
                            "started_at": str(e.started_at), "finished_at": str(e.finished_at)}
                           for e in processed],
               "cache_pruned": asdict(pruned) if pruned is not None else None}
    if failed:
        names = ", ".join(f"{e.collection} (entry {e.id})" for e in failed)
        return Failed(message=f"{len(failed)} of {len(processed)} queue entries failed: {names}",
                      data=summary)
    return Completed(message=f"{len(processed)} queue entries done", data=summary)
