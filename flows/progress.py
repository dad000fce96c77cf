"""Progress reporting hook between the flows and whoever launched them (the CLI).

The flows call these functions at item and shot boundaries; by default they do nothing. The CLI
installs a :class:`rich.progress.Progress`-backed reporter with :func:`use`. A context variable
(not a module global) holds the reporter, so concurrent flows in one process stay separate.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator, Protocol


class Reporter(Protocol):
    def start_items(self, total: int) -> None: ...
    def item_done(self, name: str, status: str) -> None: ...
    def start_shots(self, item: str, total: int) -> None: ...
    def shot_done(self, item: str, index: int) -> None: ...


_current: ContextVar[Reporter | None] = ContextVar("reel_progress", default=None)


@contextmanager
def use(reporter: Reporter) -> Iterator[Reporter]:
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)


def start_items(total: int) -> None:
    if (r := _current.get()) is not None:
        r.start_items(total)


def item_done(name: str, status: str) -> None:
    if (r := _current.get()) is not None:
        r.item_done(name, status)


def start_shots(item: str, total: int) -> None:
    if (r := _current.get()) is not None:
        r.start_shots(item, total)


def shot_done(item: str, index: int) -> None:
    if (r := _current.get()) is not None:
        r.shot_done(item, index)


# Queue level (the nightly flow, flows/nightly.py). Optional on a reporter: one without these
# methods still gets the item and shot calls.
def start_collections(total: int) -> None:
    if (r := _current.get()) is not None and hasattr(r, "start_collections"):
        r.start_collections(total)


def start_collection(name: str) -> None:
    if (r := _current.get()) is not None and hasattr(r, "start_collection"):
        r.start_collection(name)


def collection_done(name: str, status: str) -> None:
    if (r := _current.get()) is not None and hasattr(r, "collection_done"):
        r.collection_done(name, status)


class RichReporter:
    """Bars: collections of the queue (``reel queue run``), items of the collection, shots of
    the current item."""

    def __init__(self, progress) -> None:
        self.p = progress
        self.items = None
        self.shots = None
        self.collections = None  # the queue bar (nightly flow)
        self.collection: str | None = None

    def start_collections(self, total: int) -> None:
        self.collections = self.p.add_task("queue: collections", total=total)

    def start_collection(self, name: str) -> None:
        self.collection = name

    def collection_done(self, name: str, status: str) -> None:
        self.p.console.print(f"{name}: {status}")
        if self.collections is not None:
            self.p.advance(self.collections)

    def start_items(self, total: int) -> None:
        label = f"{self.collection}: items" if self.collection else "items"
        self.items = self.p.add_task(label, total=total)

    def item_done(self, name: str, status: str) -> None:
        self.p.console.print(f"  {name}: {status}")
        if self.items is not None:
            self.p.advance(self.items)

    def start_shots(self, item: str, total: int) -> None:
        if self.shots is not None:
            self.p.remove_task(self.shots)
        self.shots = self.p.add_task(f"{item}: shots", total=total)

    def shot_done(self, item: str, index: int) -> None:
        if self.shots is not None:
            self.p.advance(self.shots)
