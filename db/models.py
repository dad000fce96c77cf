"""The reel catalog: SQLAlchemy 2 typed ORM models.

One collection holds films (``items``); a film is split into ``shots``; each shot gets ranked
``reference_images`` (through ``shot_references``), ``palettes``, ``stage_results`` and
``metrics`` from a ``run``, and archivists' ``reviews``. A film's outputs are ``deliverables``;
everything that happens to a film is logged as PREMIS-like provenance ``events``.
Dashboard ``users`` (salted password hashes) review shots; a review may ask for a re-run, kept
in ``rerun_requests`` until a restore run makes a new version of the shot's outputs
(``shots.output_version``, ``stage_results.output_version``).

Conventions
-----------
- Table names are plural snake_case. ``reference_images`` avoids the SQL word ``references``.
- Status-like columns are :class:`enum.StrEnum` members stored as plain ``VARCHAR(32)`` holding
  the member *value* (``native_enum=False``, no CHECK constraint): the allowed values are
  validated in Python (``validate_strings=True``), so adding a value needs no migration.
- Timestamps are timezone-aware UTC (:class:`UTCDateTime`): naive datetimes are rejected on
  write, and values read back always carry ``tzinfo=UTC`` (SQLite stores no offset).
- Child rows that mean nothing without their parent use ``ON DELETE CASCADE`` (the ORM
  relationships use ``passive_deletes=True`` so the database does the work). Links that are
  only informative (a deliverable's or event's ``run_id``) use ``ON DELETE SET NULL``.
- Every constraint and index is named through :data:`NAMING_CONVENTION`; Alembic's batch mode
  (needed for ALTER on SQLite) relies on those names.

Optimistic locking of reviews
-----------------------------
:class:`Shot` carries a ``version`` column registered as SQLAlchemy's ``version_id_col``: every
ORM flush that updates a shot runs ``UPDATE shots ... WHERE id = :id AND version = :seen`` and
raises :class:`sqlalchemy.orm.exc.StaleDataError` when somebody else changed the shot in the
meantime. :func:`reel.db.reviews.record_review` compares the version the reviewer saw with the
stored one before writing, and :attr:`Review.version` records the shot version the decision
produced, so reviews of one shot are totally ordered. (Bulk ``UPDATE`` statements bypass the
counter; update shots through the ORM.)

Example
-------
>>> from reel.db.models import Base, Collection, Item, ItemStatus
>>> sorted(Base.metadata.tables)[:3]
['collections', 'deliverables', 'events']
>>> Item(name="reel-1", source_path="/films/reel-1.mkv").status is None  # default set on flush
True
>>> ItemStatus("restored") is ItemStatus.RESTORED
True
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "NAMING_CONVENTION",
    "ENUM_LENGTH",
    "utcnow",
    "UTCDateTime",
    "Base",
    "ItemStatus",
    "ShotStatus",
    "ShotOrigin",
    "PaletteScope",
    "RunStatus",
    "StageStatus",
    "ReviewDecision",
    "DeliverableKind",
    "EventOutcome",
    "EventType",
    "Collection",
    "Item",
    "Shot",
    "ReferenceImage",
    "ShotReference",
    "Palette",
    "Run",
    "StageResult",
    "Metric",
    "Review",
    "Deliverable",
    "Event",
    "UserRole",
    "RerunStatus",
    "User",
    "RerunRequest",
    "QueueStatus",
    "QueueEntry",
    "RegionEdit",
]

#: Constraint/index names (Alembic batch migrations on SQLite need every constraint named).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Width of the VARCHAR that stores enum values (room for new values without a migration).
ENUM_LENGTH = 32


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime (default of every timestamp)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware datetimes and returns them in UTC.

    PostgreSQL stores ``timestamptz``; SQLite has no time zone support, so the value is stored
    as naive UTC text and the UTC zone is attached again on read.

    Example
    -------
    >>> from datetime import datetime, timezone, timedelta
    >>> t = UTCDateTime()
    >>> cet = timezone(timedelta(hours=1))
    >>> t.process_bind_param(datetime(2024, 1, 1, 12, tzinfo=cet), None).hour
    11
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect | None) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ValueError(
                f"naive datetime {value!r}: catalog timestamps must be timezone-aware "
                "(use reel.db.models.utcnow() or datetime.now(UTC))"
            )
        value = value.astimezone(UTC)
        if dialect is not None and dialect.name == "sqlite":
            value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _str_enum(enum_cls: type[enum.StrEnum]) -> Enum:
    """A non-native Enum column type storing the StrEnum's values in a VARCHAR."""
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        validate_strings=True,
        length=ENUM_LENGTH,
        values_callable=lambda cls: [member.value for member in cls],
    )


class Base(DeclarativeBase):
    """Declarative base of the catalog (named constraints, JSON/UTC type map)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[dict[str, Any]]: JSON(),
        float: Float(),
    }


# --------------------------------------------------------------------------------------------
# Enumerations (stored as their string values)
# --------------------------------------------------------------------------------------------


class ItemStatus(enum.StrEnum):
    """Where a film is in the pipeline."""

    REGISTERED = "registered"
    RUNNING = "running"
    RESTORED = "restored"
    DELIVERED = "delivered"
    FAILED = "failed"


class ShotStatus(enum.StrEnum):
    """Processing and review state of a shot."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FLAGGED = "flagged"
    APPROVED = "approved"
    REJECTED = "rejected"
    RERUN_REQUESTED = "rerun_requested"
    FAILED = "failed"


class ShotOrigin(enum.StrEnum):
    """Whether a shot boundary came from the detector or an archivist."""

    DETECTED = "detected"
    MANUAL = "manual"


class PaletteScope(enum.StrEnum):
    SHOT = "shot"
    FILM = "film"


class RunStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIAL = "partial"


class StageStatus(enum.StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class ReviewDecision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    RERUN = "rerun"


class UserRole(enum.StrEnum):
    """Dashboard role: reviewers decide on shots; admins also see the users page."""

    REVIEWER = "reviewer"
    ADMIN = "admin"


class RerunStatus(enum.StrEnum):
    """Life of a re-run request: pending → running (picked up by a run) → done or failed;
    cancelled when a later decision on the shot supersedes it before a run picked it up."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class QueueStatus(enum.StrEnum):
    """Life of a queued collection: queued → running → done or failed (or cancelled)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DeliverableKind(enum.StrEnum):
    MASTER = "master"
    MEZZANINE = "mezzanine"
    ACCESS = "access"
    FRAMEMD5 = "framemd5"
    SIDECAR = "sidecar"
    PREMIS = "premis"


class EventOutcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    WARNING = "warning"


class EventType(enum.StrEnum):
    """Usual PREMIS event types. ``events.event_type`` is a free string; these are the ones
    reel writes (values follow the Library of Congress event-type vocabulary)."""

    INGESTION = "ingestion"
    FIXITY_CHECK = "fixity check"
    MESSAGE_DIGEST_CALCULATION = "message digest calculation"
    SHOT_DETECTION = "shot detection"
    COLORIZATION = "colorization"
    HARMONIZATION = "harmonization"
    QUALITY_REVIEW = "quality review"
    CREATION = "creation"


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _fk(target: str, *, ondelete: str = "CASCADE") -> ForeignKey:
    return ForeignKey(target, ondelete=ondelete)


class Collection(Base):
    """A group of films restored together, with an optional reference-image folder."""

    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    references_dir: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[Item]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Item.id",
    )
    references: Mapped[list[ReferenceImage]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ReferenceImage.id",
    )
    runs: Mapped[list[Run]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Run.id",
    )

    def __repr__(self) -> str:
        return f"Collection(id={self.id!r}, name={self.name!r})"


class Item(Base):
    """A film (one source file). Probe-derived columns are filled at ingestion."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("collection_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The unique (collection_id, name) index also serves lookups by collection_id.
    collection_id: Mapped[int] = mapped_column(_fk("collections.id"))
    name: Mapped[str] = mapped_column(String(255))
    source_path: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    source_framemd5_path: Mapped[str | None] = mapped_column(Text)
    probe: Mapped[dict[str, Any] | None]
    #: Frame rate as the rational string from ffprobe's r_frame_rate, e.g. "24000/1001".
    fps: Mapped[str | None] = mapped_column(String(32))
    n_frames: Mapped[int | None]
    width: Mapped[int | None]
    height: Mapped[int | None]
    has_audio: Mapped[bool] = mapped_column(default=False)
    #: Colour original of a desaturated test film (benchmarks only; enables full-reference QC).
    ground_truth_path: Mapped[str | None] = mapped_column(Text)
    status: Mapped[ItemStatus] = mapped_column(
        _str_enum(ItemStatus), default=ItemStatus.REGISTERED, index=True
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    collection: Mapped[Collection] = relationship(back_populates="items")
    shots: Mapped[list[Shot]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Shot.index",
    )
    palettes: Mapped[list[Palette]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Palette.id",
    )
    stage_results: Mapped[list[StageResult]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True,
        order_by="StageResult.id",
    )
    metrics: Mapped[list[Metric]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Metric.id",
    )
    deliverables: Mapped[list[Deliverable]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Deliverable.id",
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Event.id",
    )

    def __repr__(self) -> str:
        return f"Item(id={self.id!r}, name={self.name!r}, status={self.status!r})"


class Shot(Base):
    """A shot: the half-open source frame range ``[start_frame, stop_frame)`` of an item."""

    __tablename__ = "shots"
    __table_args__ = (
        UniqueConstraint("item_id", "index"),
        CheckConstraint("start_frame >= 0", name="start_frame_nonnegative"),
        CheckConstraint("stop_frame > start_frame", name="frame_range_nonempty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(_fk("items.id"))
    index: Mapped[int]
    start_frame: Mapped[int]
    stop_frame: Mapped[int]
    transition: Mapped[str] = mapped_column(String(32), default="cut")
    confidence: Mapped[float] = mapped_column(default=1.0)
    origin: Mapped[ShotOrigin] = mapped_column(_str_enum(ShotOrigin), default=ShotOrigin.DETECTED)
    status: Mapped[ShotStatus] = mapped_column(
        _str_enum(ShotStatus), default=ShotStatus.PENDING, index=True
    )
    flags: Mapped[list[str]] = mapped_column(default=list)
    #: Optimistic-lock counter (SQLAlchemy version_id_col), bumped by every ORM update.
    version: Mapped[int] = mapped_column(default=1)
    #: Current version of the shot's outputs (1: ``shot-NNNN/``, n > 1: ``shot-NNNN/v<n>/``);
    #: a re-run request makes version n + 1, which becomes current when it succeeds.
    output_version: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    #: Shots of an item with the same cluster id look alike and share references.
    reference_cluster: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __mapper_args__ = {"version_id_col": version}

    item: Mapped[Item] = relationship(back_populates="shots")
    references: Mapped[list[ShotReference]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ShotReference.rank",
    )
    palettes: Mapped[list[Palette]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Palette.id",
    )
    stage_results: Mapped[list[StageResult]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", passive_deletes=True,
        order_by="StageResult.id",
    )
    metrics: Mapped[list[Metric]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Metric.id",
    )
    reviews: Mapped[list[Review]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Review.id",
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Event.id",
    )
    rerun_requests: Mapped[list[RerunRequest]] = relationship(
        back_populates="shot", cascade="all, delete-orphan", passive_deletes=True,
        order_by="RerunRequest.id",
    )

    @property
    def n_frames(self) -> int:
        """Number of frames in the shot."""
        return self.stop_frame - self.start_frame

    def __repr__(self) -> str:
        return (f"Shot(id={self.id!r}, item_id={self.item_id!r}, index={self.index!r}, "
                f"[{self.start_frame!r}, {self.stop_frame!r}), status={self.status!r})")


class ReferenceImage(Base):
    """A colour reference still of a collection, identified by its content hash."""

    __tablename__ = "reference_images"
    __table_args__ = (UniqueConstraint("collection_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(_fk("collections.id"))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int]
    height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    collection: Mapped[Collection] = relationship(back_populates="references")
    shot_links: Mapped[list[ShotReference]] = relationship(
        back_populates="reference", cascade="all, delete-orphan", passive_deletes=True,
        order_by="ShotReference.id",
    )

    def __repr__(self) -> str:
        return f"ReferenceImage(id={self.id!r}, path={self.path!r})"


class ShotReference(Base):
    """A reference chosen for a shot (``rank`` 0 is the best; ``pinned`` = chosen by hand)."""

    __tablename__ = "shot_references"
    __table_args__ = (UniqueConstraint("shot_id", "reference_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shot_id: Mapped[int] = mapped_column(_fk("shots.id"))
    reference_id: Mapped[int] = mapped_column(_fk("reference_images.id"), index=True)
    rank: Mapped[int]
    score: Mapped[float]
    pinned: Mapped[bool] = mapped_column(default=False)

    shot: Mapped[Shot] = relationship(back_populates="references")
    reference: Mapped[ReferenceImage] = relationship(back_populates="shot_links")

    def __repr__(self) -> str:
        return (f"ShotReference(shot_id={self.shot_id!r}, reference_id={self.reference_id!r}, "
                f"rank={self.rank!r}, score={self.score!r})")


class Palette(Base):
    """A Lab palette: ``colors`` is a list of ``{"lab": [L, a, b], "weight": w}``."""

    __tablename__ = "palettes"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(_fk("items.id"), index=True)
    #: None for a film-level palette.
    shot_id: Mapped[int | None] = mapped_column(_fk("shots.id"), index=True)
    scope: Mapped[PaletteScope] = mapped_column(_str_enum(PaletteScope))
    k: Mapped[int]
    seed: Mapped[int]
    colors: Mapped[list[dict[str, Any]]]
    path: Mapped[str | None] = mapped_column(Text)
    #: Where the colours came from: ``reference`` (k-means on references), ``pooled`` (film
    #: palette pooled from the shots' references), ``gmm`` (sampled from reel's colour model).
    source: Mapped[str] = mapped_column(String(32), default="reference",
                                        server_default=text("'reference'"))
    #: Version of the model a ``gmm`` palette was sampled from.
    model_version: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="palettes")
    shot: Mapped[Shot | None] = relationship(back_populates="palettes")


class Run(Base):
    """One execution of the restoration flow over a collection."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(_fk("collections.id"), index=True)
    status: Mapped[RunStatus] = mapped_column(_str_enum(RunStatus), default=RunStatus.RUNNING)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    reel_version: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)

    collection: Mapped[Collection] = relationship(back_populates="runs")
    stage_results: Mapped[list[StageResult]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True,
        order_by="StageResult.id",
    )
    metrics: Mapped[list[Metric]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True,
        order_by="Metric.id",
    )
    deliverables: Mapped[list[Deliverable]] = relationship(
        back_populates="run", passive_deletes=True, order_by="Deliverable.id",
    )
    events: Mapped[list[Event]] = relationship(
        back_populates="run", passive_deletes=True, order_by="Event.id",
    )


class StageResult(Base):
    """The outcome of one stage (engine + params) on one shot, or on a whole item."""

    __tablename__ = "stage_results"
    __table_args__ = (
        Index("ix_stage_results_shot_id_stage", "shot_id", "stage"),
        Index("ix_stage_results_item_id_stage", "item_id", "stage"),
        # Resume lookups: has this stage already run with these exact parameters?
        Index("ix_stage_results_stage_engine_params_hash", "stage", "engine", "params_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(_fk("runs.id"), index=True)
    item_id: Mapped[int] = mapped_column(_fk("items.id"))
    #: None for item-level stages (probe, reassembly).
    shot_id: Mapped[int | None] = mapped_column(_fk("shots.id"))
    stage: Mapped[str] = mapped_column(String(64))
    engine: Mapped[str] = mapped_column(String(64))
    engine_version: Mapped[str] = mapped_column(String(64))
    params_hash: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    output_path: Mapped[str | None] = mapped_column(Text)
    #: Which version of the shot's outputs this result belongs to (see Shot.output_version).
    output_version: Mapped[int] = mapped_column(default=1, server_default=text("1"))
    status: Mapped[StageStatus] = mapped_column(_str_enum(StageStatus))
    seconds: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    #: Content-addressed key of the result (source sha256, shot range, stage, engine + version,
    #: parameters hash): a later run with the same key reuses the persisted result.
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True)
    #: Where the stage ran: ``cpu``, ``cuda:0``, ...
    device: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[Run] = relationship(back_populates="stage_results")
    item: Mapped[Item] = relationship(back_populates="stage_results")
    shot: Mapped[Shot | None] = relationship(back_populates="stage_results")


class Metric(Base):
    """A named QC number for a shot (or an item when ``shot_id`` is None) in a run."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_shot_id_name", "shot_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(_fk("runs.id"), index=True)
    item_id: Mapped[int] = mapped_column(_fk("items.id"), index=True)
    shot_id: Mapped[int | None] = mapped_column(_fk("shots.id"))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[Run] = relationship(back_populates="metrics")
    item: Mapped[Item] = relationship(back_populates="metrics")
    shot: Mapped[Shot | None] = relationship(back_populates="metrics")


class Review(Base):
    """An archivist's decision on a shot.

    ``version`` is the :attr:`Shot.version` that this decision produced (see the module
    docstring on optimistic locking); write reviews with :func:`reel.db.reviews.record_review`.
    """

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    shot_id: Mapped[int] = mapped_column(_fk("shots.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(255))
    decision: Mapped[ReviewDecision] = mapped_column(_str_enum(ReviewDecision))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int]

    shot: Mapped[Shot] = relationship(back_populates="reviews")


class Deliverable(Base):
    """A file delivered for an item (master, access copy, checksums, metadata)."""

    __tablename__ = "deliverables"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(_fk("items.id"), index=True)
    #: The run that made it; kept (set to NULL) if the run record is deleted.
    run_id: Mapped[int | None] = mapped_column(_fk("runs.id", ondelete="SET NULL"), index=True)
    kind: Mapped[DeliverableKind] = mapped_column(_str_enum(DeliverableKind))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    n_frames: Mapped[int | None]
    fps: Mapped[str | None] = mapped_column(String(32))
    codec: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="deliverables")
    run: Mapped[Run | None] = relationship(back_populates="deliverables")


class Event(Base):
    """A PREMIS-like provenance event about an item and/or shot."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int | None] = mapped_column(_fk("items.id"), index=True)
    shot_id: Mapped[int | None] = mapped_column(_fk("shots.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(_fk("runs.id", ondelete="SET NULL"), index=True)
    #: Free text; usual values are in :class:`EventType`.
    event_type: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[EventOutcome] = mapped_column(_str_enum(EventOutcome))
    #: Who/what did it, e.g. "reel 0.1.0 / exemplar-propagate 1".
    agent: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item | None] = relationship(back_populates="events")
    shot: Mapped[Shot | None] = relationship(back_populates="events")
    run: Mapped[Run | None] = relationship(back_populates="events")


class User(Base):
    """A dashboard user. ``password_hash`` is a salted scrypt hash (:mod:`reel.db.users`)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[UserRole] = mapped_column(_str_enum(UserRole), default=UserRole.REVIEWER)
    #: ``scrypt$<n>$<r>$<p>$<salt, base64>$<key, base64>``; never the password itself.
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, name={self.name!r}, role={self.role!r})"


class RerunRequest(Base):
    """A reviewer's request to process a shot again with other inputs.

    ``params`` holds what to change (see :func:`reel.db.reviews.validate_rerun_params`):
    ``reference`` (path of a library still, pinned first), ``palette`` (``{"from_shot": id}`` or
    ``{"from_reference": path, "k": n}``), ``engines`` (stage → engine name) and ``edit`` (a
    regional colour edit). The next restore run picks pending requests up
    (``picked_up_run_id``) and writes version ``output_version`` of the shot's outputs.
    """

    __tablename__ = "rerun_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    shot_id: Mapped[int] = mapped_column(_fk("shots.id"), index=True)
    #: The review (decision ``rerun``) that made the request.
    review_id: Mapped[int | None] = mapped_column(_fk("reviews.id", ondelete="SET NULL"))
    requested_by: Mapped[str] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[RerunStatus] = mapped_column(
        _str_enum(RerunStatus), default=RerunStatus.PENDING, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    picked_up_run_id: Mapped[int | None] = mapped_column(
        _fk("runs.id", ondelete="SET NULL"), index=True
    )
    #: The output version this request produces (set when a run picks it up).
    output_version: Mapped[int | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)

    shot: Mapped[Shot] = relationship(back_populates="rerun_requests")
    review: Mapped[Review | None] = relationship()
    picked_up_run: Mapped[Run | None] = relationship()

    def __repr__(self) -> str:
        return (f"RerunRequest(id={self.id!r}, shot_id={self.shot_id!r}, "
                f"status={self.status!r}, params={self.params!r})")


class QueueEntry(Base):
    """A collection waiting for the nightly flow (``reel queue add``)."""

    __tablename__ = "queue_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(_fk("collections.id"), index=True)
    status: Mapped[QueueStatus] = mapped_column(
        _str_enum(QueueStatus), default=QueueStatus.QUEUED, index=True
    )
    #: Higher runs first; ties by enqueue time.
    priority: Mapped[int] = mapped_column(default=0)
    requested_by: Mapped[str] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    run_id: Mapped[int | None] = mapped_column(_fk("runs.id", ondelete="SET NULL"), index=True)
    error: Mapped[str | None] = mapped_column(Text)

    collection: Mapped[Collection] = relationship()
    run: Mapped[Run | None] = relationship()

    def __repr__(self) -> str:
        return (f"QueueEntry(id={self.id!r}, collection_id={self.collection_id!r}, "
                f"status={self.status!r})")


class RegionEdit(Base):
    """A reviewer's colour edit of one region of a shot (``reel edit``), re-applied on re-runs.

    ``params`` holds ``hue_deg``, ``saturation``, ``warmth`` and ``brightness``; only the newest
    active edit of a (shot, region) pair applies.
    """

    __tablename__ = "region_edits"
    __table_args__ = (Index("ix_region_edits_shot_id_region_id", "shot_id", "region_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shot_id: Mapped[int] = mapped_column(_fk("shots.id"))
    region_id: Mapped[int]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    shot: Mapped[Shot] = relationship()

    def __repr__(self) -> str:
        return (f"RegionEdit(id={self.id!r}, shot_id={self.shot_id!r}, "
                f"region_id={self.region_id!r}, params={self.params!r})")
