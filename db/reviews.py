"""Archivists' review decisions with optimistic locking.

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

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from .models import Review, ReviewDecision, Shot, ShotStatus, utcnow

__all__ = ["ReviewConflict", "DECISION_STATUS", "record_review"]

#: Shot status that each review decision leads to.
DECISION_STATUS: dict[ReviewDecision, ShotStatus] = {
    ReviewDecision.APPROVE: ShotStatus.APPROVED,
    ReviewDecision.REJECT: ShotStatus.REJECTED,
    ReviewDecision.RERUN: ShotStatus.RERUN_REQUESTED,
}


class ReviewConflict(RuntimeError):
    """The shot changed since the reviewer loaded it; reload and decide again."""


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
