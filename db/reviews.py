"""Archivists' review decisions with optimistic locking, re-run requests and the audit trail.

:func:`record_review` is the locked write; :func:`review_shot` (approve/reject) and
:func:`request_rerun` build on it for the dashboard: they cancel superseded re-run requests and
log a ``quality review`` event (who and when) that :func:`audit_log` lists.

Two archivists may look at the same shot at once. The dashboard shows a shot together with its
:attr:`~reel.db.models.Shot.version`; when a decision comes back, :func:`record_review` only
applies it if the shot is still at that version, otherwise it raises :class:`ReviewConflict`
and the dashboard reloads the shot. The check is enforced twice: explicitly (the version the
reviewer saw) and by SQLAlchemy's ``version_id_col`` on ``shots`` (an ``UPDATE ... WHERE
version = :seen`` that matches no row when another transaction got there first).

Example
-------
>>> import tempfile, os
>>> from reel.db.api import upgrade
>>> from reel.db.models import Collection, Item, Shot
>>> from reel.db.session import session_scope
>>> url = "sqlite:///" + os.path.join(tempfile.mkdtemp(), "catalog.db")
>>> upgrade(url)
>>> with session_scope(url) as s:
...     item = Item(name="reel-1", source_path="/films/reel-1.mkv",
...                 collection=Collection(name="doc"))
...     shot = Shot(item=item, index=0, start_frame=0, stop_frame=24)
...     s.add(shot)
...     s.flush()
...     shot_id, seen = shot.id, shot.version
>>> with session_scope(url) as s:
...     r = record_review(s, shot_id, "ana", "approve", expected_version=seen)
...     (r.version, s.get(Shot, shot_id).status.value)
(2, 'approved')
>>> with session_scope(url) as s:
...     record_review(s, shot_id, "ben", "reject", expected_version=seen)
Traceback (most recent call last):
...
reel.db.reviews.ReviewConflict: shot 1 is at version 2, the reviewer saw version 1
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from .models import (
    Event,
    EventOutcome,
    RerunRequest,
    RerunStatus,
    Review,
    ReviewDecision,
    Shot,
    ShotStatus,
    utcnow,
)

__all__ = [
    "ReviewConflict",
    "DECISION_STATUS",
    "AUDIT_EVENT_TYPES",
    "RERUN_STAGES",
    "RerunParamsError",
    "record_review",
    "validate_rerun_params",
    "review_shot",
    "request_rerun",
    "delivery_blockers",
    "audit_log",
    "add_audit_event",
]

#: Event types that make up the reviewers' audit log (``events.event_type``).
AUDIT_EVENT_TYPES = ("quality review", "reference upload", "delivery gate override", "rerun")
#: Stages whose engine a re-run request may change.
RERUN_STAGES = ("segment", "references", "colorize", "harmonize")

#: Shot status that each review decision leads to.
DECISION_STATUS: dict[ReviewDecision, ShotStatus] = {
    ReviewDecision.APPROVE: ShotStatus.APPROVED,
    ReviewDecision.REJECT: ShotStatus.REJECTED,
    ReviewDecision.RERUN: ShotStatus.RERUN_REQUESTED,
}


class ReviewConflict(RuntimeError):
    """The shot changed since the reviewer loaded it; reload and decide again."""


class RerunParamsError(ValueError):
    """The parameters of a re-run request are incomplete or malformed."""


def record_review(
    session: Session,
    shot_id: int,
    reviewer: str,
    decision: ReviewDecision | str,
    *,
    expected_version: int | None,
    note: str | None = None,
) -> Review:
    """Record a review decision and update the shot's status, if nobody changed it meanwhile.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        Open session; the caller commits (e.g. :func:`reel.db.session.session_scope`).
    shot_id : int
        The reviewed shot.
    reviewer : str
        Who decided.
    decision : ReviewDecision or str
        ``"approve"``, ``"reject"`` or ``"rerun"``.
    expected_version : int or None
        The shot version the reviewer saw. ``None`` skips the explicit check (the
        ``version_id_col`` guard against concurrent transactions still applies).
    note : str, optional
        Free-text comment.

    Returns
    -------
    Review
        The new review (flushed: it has an id); ``review.version`` is the shot's new version.

    Raises
    ------
    LookupError
        No shot with that id.
    ReviewConflict
        The shot is no longer at ``expected_version``, or another transaction updated it
        concurrently.
    """
    decision = ReviewDecision(decision)
    shot = session.get(Shot, shot_id, populate_existing=True)
    if shot is None:
        raise LookupError(f"no shot with id {shot_id}")
    if expected_version is not None and shot.version != expected_version:
        raise ReviewConflict(
            f"shot {shot_id} is at version {shot.version}, "
            f"the reviewer saw version {expected_version}"
        )
    shot.status = DECISION_STATUS[decision]
    shot.updated_at = utcnow()  # always emit the UPDATE, so the version always advances
    try:
        session.flush()
    except StaleDataError as exc:
        raise ReviewConflict(f"shot {shot_id} was changed by another transaction") from exc
    review = Review(shot=shot, reviewer=reviewer, decision=decision, note=note,
                    version=shot.version)
    session.add(review)
    session.flush()
    return review


# ------------------------------------------------------------------------------------------
# Decisions with an audit trail (what the dashboard calls)
# ------------------------------------------------------------------------------------------

_HEX_RGB = re.compile(r"^#[0-9a-fA-F]{6}$")


def validate_rerun_params(params: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise what a re-run request asks for.

    Keys (at least one):

    ``reference`` : str
        Absolute path of a colour still (from the shot's ranked list or uploaded into the
        collection's library); it is pinned first for the shot.
    ``palette`` : dict
        ``{"from_shot": <shot id>}`` (reuse another shot's palette) or
        ``{"from_reference": <path>, "k": <2..12>}`` (extract one from a still).
    ``engines`` : dict
        Stage (one of :data:`RERUN_STAGES`) → engine name. Names are checked against the engine
        registries by the run that picks the request up.
    ``edit`` : dict
        A regional colour edit: ``{"region": {"labels": [ids]} | {"box": [x0, y0, x1, y1]},
        "target_rgb": "#rrggbb", "strength": 0..1}``; ``labels`` are segmentation region ids
        (overlay.png), ``box`` corners are fractions of the frame width/height.

    Example
    -------
    >>> validate_rerun_params({"engines": {"colorize": "welsh"}})
    {'engines': {'colorize': 'welsh'}}
    >>> validate_rerun_params({"edit": {"region": {"box": [0, 0, 0.5, 1]}, "target_rgb": "#3366CC"}})
    {'edit': {'region': {'box': [0.0, 0.0, 0.5, 1.0]}, 'target_rgb': '#3366cc', 'strength': 1.0}}
    """
    if not isinstance(params, dict) or not params:
        raise RerunParamsError("a re-run needs at least one change: reference, palette, engines or edit")
    unknown = set(params) - {"reference", "palette", "engines", "edit"}
    if unknown:
        raise RerunParamsError(f"unknown re-run parameter(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if "reference" in params:
        ref = str(params["reference"] or "")
        if not ref or not Path(ref).is_absolute():
            raise RerunParamsError(f"reference must be an absolute path, got {ref!r}")
        out["reference"] = ref
    if "palette" in params:
        pal = params["palette"]
        if not isinstance(pal, dict):
            raise RerunParamsError("palette must be {'from_shot': id} or {'from_reference': path, 'k': n}")
        if "from_shot" in pal:
            out["palette"] = {"from_shot": int(pal["from_shot"])}
        elif "from_reference" in pal:
            path = str(pal["from_reference"] or "")
            k = int(pal.get("k", 5))
            if not Path(path).is_absolute():
                raise RerunParamsError(f"palette reference must be an absolute path, got {path!r}")
            if not 2 <= k <= 12:
                raise RerunParamsError(f"palette size k must be 2..12, got {k}")
            out["palette"] = {"from_reference": path, "k": k}
        else:
            raise RerunParamsError("palette must be {'from_shot': id} or {'from_reference': path, 'k': n}")
    if "engines" in params:
        eng = params["engines"]
        if not isinstance(eng, dict) or not eng:
            raise RerunParamsError("engines must map a stage to an engine name")
        bad = set(eng) - set(RERUN_STAGES)
        if bad:
            raise RerunParamsError(f"engines: unknown stage(s) {', '.join(sorted(bad))}; "
                                   f"choose from {', '.join(RERUN_STAGES)}")
        out["engines"] = {str(k): str(v) for k, v in sorted(eng.items()) if str(v)}
        if not out["engines"]:
            raise RerunParamsError("engines: no engine name given")
    if "edit" in params:
        out["edit"] = _validate_edit(params["edit"])
    return out


def _validate_edit(edit: Any) -> dict[str, Any]:
    if not isinstance(edit, dict):
        raise RerunParamsError("edit must be a dict with region, target_rgb and strength")
    region = edit.get("region")
    if not isinstance(region, dict) or not ({"labels", "box"} & set(region)):
        raise RerunParamsError("edit.region must be {'labels': [ids]} or {'box': [x0, y0, x1, y1]}")
    if "labels" in region:
        labels = sorted({int(v) for v in region["labels"]})
        if not labels or labels[0] < 0:
            raise RerunParamsError("edit.region.labels must be non-negative region ids")
        reg: dict[str, Any] = {"labels": labels}
    else:
        box = [float(v) for v in region["box"]]
        if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            raise RerunParamsError("edit.region.box must be [x0, y0, x1, y1] fractions with x0 < x1, y0 < y1")
        reg = {"box": box}
    target = str(edit.get("target_rgb", ""))
    if not _HEX_RGB.match(target):
        raise RerunParamsError(f"edit.target_rgb must be '#rrggbb', got {target!r}")
    strength = float(edit.get("strength", 1.0))
    if not 0.0 < strength <= 1.0:
        raise RerunParamsError(f"edit.strength must be in (0, 1], got {strength}")
    return {"region": reg, "target_rgb": target.lower(), "strength": strength}


def add_audit_event(session: Session, event_type: str, actor: str, *, item_id: int | None = None,
                    shot_id: int | None = None, detail: dict[str, Any] | None = None,
                    outcome: EventOutcome | str = EventOutcome.SUCCESS) -> Event:
    """Record something a person did (who = ``actor``, when = now) as a provenance event."""
    event = Event(item_id=item_id, shot_id=shot_id, event_type=event_type,
                  outcome=EventOutcome(outcome), agent=actor, detail=dict(detail or {}))
    session.add(event)
    session.flush()
    return event


def _cancel_pending(session: Session, shot_id: int) -> list[int]:
    pending = session.scalars(select(RerunRequest).where(
        RerunRequest.shot_id == shot_id, RerunRequest.status == RerunStatus.PENDING)).all()
    for req in pending:
        req.status = RerunStatus.CANCELLED
        req.finished_at = utcnow()
    return [r.id for r in pending]


def review_shot(session: Session, shot_id: int, reviewer: str, decision: ReviewDecision | str, *,
                expected_version: int | None, note: str | None = None) -> Review:
    """Approve or reject a shot, cancel its pending re-run requests, and log it for the audit.

    A rejection needs a ``note`` saying why. For re-runs use :func:`request_rerun`.

    Raises
    ------
    ValueError
        Reject without a note, or decision ``rerun``.
    ReviewConflict, LookupError
        As :func:`record_review`.
    """
    decision = ReviewDecision(decision)
    note = (note or "").strip() or None
    if decision is ReviewDecision.RERUN:
        raise ValueError("use request_rerun() for re-run decisions (it needs parameters)")
    if decision is ReviewDecision.REJECT and not note:
        raise ValueError("a rejection needs a note saying what is wrong")
    review = record_review(session, shot_id, reviewer, decision,
                           expected_version=expected_version, note=note)
    cancelled = _cancel_pending(session, shot_id)
    shot = review.shot
    add_audit_event(session, "quality review", reviewer, item_id=shot.item_id, shot_id=shot_id,
                    detail={"decision": decision.value, "note": note, "review_id": review.id,
                            "shot_version": review.version, "output_version": shot.output_version,
                            "cancelled_requests": cancelled})
    return review


def request_rerun(session: Session, shot_id: int, reviewer: str, params: dict[str, Any], *,
                  expected_version: int | None, note: str | None = None) -> RerunRequest:
    """Ask for the shot to be processed again with ``params`` (see :func:`validate_rerun_params`).

    Records a ``rerun`` review (shot status ``rerun_requested``), cancels earlier pending
    requests of the shot, stores a pending :class:`RerunRequest` for the next run, and logs a
    ``quality review`` event.
    """
    params = validate_rerun_params(params)
    note = (note or "").strip() or None
    review = record_review(session, shot_id, reviewer, ReviewDecision.RERUN,
                           expected_version=expected_version, note=note)
    cancelled = _cancel_pending(session, shot_id)
    request = RerunRequest(shot_id=shot_id, review_id=review.id, requested_by=reviewer,
                           params=params, status=RerunStatus.PENDING)
    session.add(request)
    session.flush()
    shot = review.shot
    add_audit_event(session, "quality review", reviewer, item_id=shot.item_id, shot_id=shot_id,
                    detail={"decision": "rerun", "note": note, "review_id": review.id,
                            "request_id": request.id, "params": params,
                            "shot_version": review.version, "output_version": shot.output_version,
                            "cancelled_requests": cancelled})
    return request


def delivery_blockers(session: Session, item_id: int) -> list[tuple[int, str]]:
    """``(shot index, status)`` of every shot of the item that is not approved (in order)."""
    rows = session.execute(select(Shot.index, Shot.status).where(Shot.item_id == item_id)
                           .order_by(Shot.index)).all()
    return [(int(i), st.value) for i, st in rows if st is not ShotStatus.APPROVED]


def audit_log(session: Session, *, item_id: int | None = None, shot_id: int | None = None,
              actor: str | None = None, limit: int = 500) -> list[Event]:
    """Newest first: what people did (decisions, uploads, forced deliveries) and re-run progress."""
    q = select(Event).where(Event.event_type.in_(AUDIT_EVENT_TYPES))
    if item_id is not None:
        q = q.where(Event.item_id == item_id)
    if shot_id is not None:
        q = q.where(Event.shot_id == shot_id)
    if actor:
        q = q.where(Event.agent == actor)
    return list(session.scalars(q.order_by(Event.id.desc()).limit(limit)))
