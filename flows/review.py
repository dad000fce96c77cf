"""Review workflow glue: users, the dashboard launcher, re-run requests in the restore flow,
regional colour edits, and the delivery gate.

What lives here
---------------
- ``reel users add``: :func:`read_password` (a file, or a hidden prompt / stdin) and
  :func:`add_user` (salted scrypt hash in the catalog, :mod:`reel.db.users`).
- ``reel review``: :func:`streamlit_command` builds the ``streamlit run`` command line that
  serves ``dashboards/app.py`` on 127.0.0.1 over the configured catalog.
- Re-runs inside ``restore_item``: :func:`plan_shots` decides, per shot, which version of its
  outputs this run writes and with which inputs; :func:`finish_shot` closes the request.
  Rules (see docs/review.md):

  * a shot with a pending re-run request gets a new output version ``n + 1`` in
    ``shot-NNNN/v<n+1>/`` (version 1 is ``shot-NNNN/`` itself), made with the request's
    reference / palette / engines / regional edit; the old version stays on disk and in the
    catalog; when it succeeds it becomes the shot's current version;
  * a shot a reviewer approved or rejected, whose current output exists, is *kept*: the run
    does not process it again (a decision is never silently overwritten) and reassembly uses
    the kept output;
  * every other shot is processed again at its current version, with the parameters of the
    request that made that version (if any).

- :func:`override_palette` and :func:`regional_edit` (+ their Prefect tasks, created on first
  use: ``palette_override_task``, ``regional_edit_task``): the two re-run changes that the
  stage tasks do not take as parameters.
- :func:`check_delivery_gate`: ``reel deliver`` refuses an item whose shots are not all
  approved, unless forced; a forced delivery is recorded as a ``delivery gate override`` event.

Example
-------
>>> shot_output_dir(Path("/w/bikes/item-00001"), 3, 1).as_posix()
'/w/bikes/item-00001/shot-0003'
>>> shot_output_dir(Path("/w/bikes/item-00001"), 3, 2).as_posix()
'/w/bikes/item-00001/shot-0003/v2'
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from reel.config import Settings
from reel.db import models as m
from reel.db.reviews import add_audit_event, delivery_blockers, validate_rerun_params, RerunParamsError
from reel.db.session import session_scope

__all__ = [
    "DeliveryBlocked",
    "ShotPlan",
    "EditResult",
    "read_password",
    "add_user",
    "dashboard_app_path",
    "streamlit_command",
    "shot_output_dir",
    "plan_shots",
    "finish_shot",
    "override_palette",
    "target_ab",
    "region_mask",
    "shift_region_ab",
    "regional_edit",
    "check_delivery_gate",
    "cli_actor",
    "plan_summary",
]

#: Shot statuses that are a reviewer's final word: such shots are not processed again.
DECIDED = (m.ShotStatus.APPROVED, m.ShotStatus.REJECTED)


# ------------------------------------------------------------------------------------------
# users
# ------------------------------------------------------------------------------------------


def read_password(password_file: Path | None = None, *, stdin=None, prompt: bool | None = None,
                  getpass_fn: Callable[[str], str] = getpass.getpass) -> str:
    """The new user's password: from ``password_file`` (its first line), a hidden prompt asked
    twice (when stdin is a terminal), or the first line of stdin (scripts). Never echoed.

    Example
    -------
    >>> import io
    >>> read_password(stdin=io.StringIO("s3cret-pass\\n"), prompt=False)
    's3cret-pass'
    """
    if password_file is not None:
        text = Path(password_file).read_text(encoding="utf-8")
        return text.splitlines()[0] if text else ""
    stdin = stdin if stdin is not None else sys.stdin
    if prompt is None:
        prompt = bool(getattr(stdin, "isatty", lambda: False)())
    if prompt:
        first = getpass_fn("password: ")
        if getpass_fn("password again: ") != first:
            raise ValueError("the two passwords differ")
        return first
    line = stdin.readline()
    return line.rstrip("\r\n")


def add_user(s: Settings, name: str, role: str, password: str) -> int:
    """Create a dashboard user in the catalog (migrated first if needed); returns its id."""
    from reel.db.api import ensure_schema
    from reel.db.users import create_user

    ensure_schema(s.database_url)
    with session_scope(s.database_url) as db:
        return create_user(db, name, role, password).id


# ------------------------------------------------------------------------------------------
# the dashboard launcher
# ------------------------------------------------------------------------------------------


def dashboard_app_path() -> Path:
    """``app.py`` of the installed ``reel.dashboards`` package."""
    import reel.dashboards

    return Path(reel.dashboards.__file__).resolve().parent / "app.py"


def streamlit_command(host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """``streamlit run`` on ``host:port``, headless, no usage statistics, XSRF protection on.

    The app reads the catalog URL and home from reel's settings (``REEL_DATABASE_URL``,
    ``REEL_HOME``), which the caller passes through the environment.
    """
    return [sys.executable, "-m", "streamlit", "run", str(dashboard_app_path()),
            "--server.address", host, "--server.port", str(int(port)),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.enableXsrfProtection", "true", "--server.fileWatcherType", "none",
            "--client.toolbarMode", "minimal", "--theme.base", "light"]


# ------------------------------------------------------------------------------------------
# re-runs in the restore flow
# ------------------------------------------------------------------------------------------


def shot_output_dir(item_work_dir: Path, shot_index: int, output_version: int) -> Path:
    """Folder of one version of a shot's outputs: ``shot-NNNN/`` (v1) or ``shot-NNNN/v<n>/``."""
    base = Path(item_work_dir) / f"shot-{int(shot_index):04d}"
    return base if int(output_version) <= 1 else base / f"v{int(output_version)}"


@dataclass(frozen=True)
class ShotPlan:
    """What a run does with one shot (see the module docstring for the rules)."""

    shot_id: int
    index: int
    output_version: int
    work_dir: Path
    #: True: a decided shot whose outputs exist; not processed, its output is reassembled.
    keep: bool
    status: str
    flags: list[str] = field(default_factory=list)
    #: The re-run request this run carries out (None: none).
    request_id: int | None = None
    #: Effective re-run parameters (of this run's request, or of the one that made the version).
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def restored_path(self) -> Path:
        return self.work_dir / "restored.mkv"

    def engine(self, stage: str, default: str) -> str:
        """Engine of ``stage`` ("segment", "references", "colorize", "harmonize")."""
        return self.params.get("engines", {}).get(stage, default)

    @property
    def pinned_references(self) -> list[Path]:
        ref = self.params.get("reference")
        return [Path(ref)] if ref else []

    @property
    def palette(self) -> dict[str, Any] | None:
        return self.params.get("palette")

    @property
    def edit(self) -> dict[str, Any] | None:
        return self.params.get("edit")


def _check_request(db, shot: m.Shot, params: dict[str, Any]) -> dict[str, Any]:
    """Validate a request at pickup; resolve ``palette.from_shot`` to a palette file."""
    from reel.flows.record import engine_registries

    params = validate_rerun_params(params)
    regs = engine_registries()
    for stage, name in params.get("engines", {}).items():
        regs[stage].get(name)  # UnknownEngineError lists the choices
    ref = params.get("reference")
    if ref and not Path(ref).is_file():
        raise RerunParamsError(f"reference {ref} does not exist")
    pal = params.get("palette")
    if pal and "from_shot" in pal:
        from sqlalchemy import select

        row = db.scalar(select(m.Palette).where(m.Palette.shot_id == pal["from_shot"],
                                                m.Palette.path.is_not(None))
                        .order_by(m.Palette.id.desc()).limit(1))
        if row is None or not Path(row.path).is_file():
            raise RerunParamsError(f"shot {pal['from_shot']} has no palette file to reuse")
        params["palette"] = {**pal, "path": row.path}
    elif pal and not Path(pal["from_reference"]).is_file():
        raise RerunParamsError(f"palette reference {pal['from_reference']} does not exist")
    return params


def plan_shots(s: Settings, item_id: int, run_id: int, item_work_dir: Path) -> dict[int, ShotPlan]:
    """Decide what this run does with each shot of the item; picks up pending re-run requests.

    A request that cannot be honoured (unknown engine, missing file) is marked ``failed`` with
    the reason (shown in the dashboard) and the shot is processed at its current version.
    Requests left ``running`` by a run that died are picked up again.

    Returns
    -------
    dict
        shot id → :class:`ShotPlan`.
    """
    from sqlalchemy import func, select

    from reel.registry import UnknownEngineError

    plans: dict[int, ShotPlan] = {}
    with session_scope(s.database_url) as db:
        shots = db.scalars(select(m.Shot).where(m.Shot.item_id == item_id).order_by(m.Shot.index))
        for shot in shots:
            request = db.scalar(
                select(m.RerunRequest).where(
                    m.RerunRequest.shot_id == shot.id,
                    m.RerunRequest.status.in_([m.RerunStatus.PENDING, m.RerunStatus.RUNNING]))
                .order_by(m.RerunRequest.id.desc()).limit(1))
            if request is not None:
                try:
                    params = _check_request(db, shot, request.params)
                except (RerunParamsError, UnknownEngineError, KeyError) as exc:
                    request.status = m.RerunStatus.FAILED
                    request.error = f"not carried out: {exc}"
                    request.finished_at = m.utcnow()
                    request.picked_up_run_id = run_id
                    add_audit_event(db, "rerun", _agent(), item_id=item_id, shot_id=shot.id,
                                    outcome="failure",
                                    detail={"request_id": request.id, "action": "rejected at pickup",
                                            "run_id": run_id, "error": request.error})
                    request = None
            if request is not None:
                highest = db.scalar(select(func.max(m.RerunRequest.output_version)).where(
                    m.RerunRequest.shot_id == shot.id)) or 0
                version = max(shot.output_version, int(highest)) + 1
                request.status = m.RerunStatus.RUNNING
                request.picked_up_run_id = run_id
                request.output_version = version
                add_audit_event(db, "rerun", _agent(), item_id=item_id, shot_id=shot.id,
                                detail={"request_id": request.id, "action": "picked up",
                                        "run_id": run_id, "output_version": version,
                                        "params": params})
                plans[shot.id] = ShotPlan(
                    shot.id, shot.index, version, shot_output_dir(item_work_dir, shot.index, version),
                    keep=False, status=shot.status.value, flags=list(shot.flags or []),
                    request_id=request.id, params=params)
                continue
            version = shot.output_version
            made_by = db.scalar(select(m.RerunRequest).where(
                m.RerunRequest.shot_id == shot.id, m.RerunRequest.status == m.RerunStatus.DONE,
                m.RerunRequest.output_version <= version)  # a version made by `reel edit`
                .order_by(m.RerunRequest.output_version.desc(), m.RerunRequest.id.desc()).limit(1))
            params: dict[str, Any] = {}
            if made_by is not None:
                try:
                    params = _check_request(db, shot, made_by.params)
                except (RerunParamsError, UnknownEngineError, KeyError):
                    params = {}
            if shot.status not in DECIDED:  # region edits added/cleared since: a new version
                from reel.flows.edits import version_for_edits

                version = version_for_edits(db, shot, version, run_id)
            work = shot_output_dir(item_work_dir, shot.index, version)
            keep = shot.status in DECIDED and (work / "restored.mkv").is_file()
            plans[shot.id] = ShotPlan(shot.id, shot.index, version, work, keep=keep,
                                      status=shot.status.value, flags=list(shot.flags or []),
                                      params=params)
    return plans


def finish_shot(s: Settings, run_id: int, plan: ShotPlan, *, ok: bool,
                error: str | None = None) -> None:
    """Close this run's re-run request of a shot (if any) and record stage-result versions.

    On success the new version becomes the shot's current version; on failure the request is
    ``failed`` with the reason and the shot keeps its previous version.
    """
    from sqlalchemy import update

    with session_scope(s.database_url) as db:
        if plan.output_version != 1:
            db.execute(update(m.StageResult)
                       .where(m.StageResult.run_id == run_id, m.StageResult.shot_id == plan.shot_id)
                       .values(output_version=plan.output_version))
        if plan.request_id is None:
            shot = db.get(m.Shot, plan.shot_id) if ok else None
            if shot is not None and plan.output_version > shot.output_version:  # `reel edit`
                shot.output_version = plan.output_version
            return
        req = db.get(m.RerunRequest, plan.request_id)
        req.finished_at = m.utcnow()
        if ok:
            req.status = m.RerunStatus.DONE
            shot = db.get(m.Shot, plan.shot_id)
            shot.output_version = plan.output_version
        else:
            req.status = m.RerunStatus.FAILED
            req.error = error or "failed"
        add_audit_event(db, "rerun", _agent(), item_id=req.shot.item_id, shot_id=plan.shot_id,
                        outcome="success" if ok else "failure",
                        detail={"request_id": req.id, "action": "done" if ok else "failed",
                                "run_id": run_id, "output_version": plan.output_version,
                                "error": None if ok else req.error})


def _agent() -> str:
    import reel

    return f"reel {reel.__version__}"


# ------------------------------------------------------------------------------------------
# palette override (a re-run with another palette)
# ------------------------------------------------------------------------------------------


def override_palette(selection, out_dir: str | os.PathLike, *, palette: dict[str, Any],
                     seed: int = 0):
    """Replace a reference selection's palette: another shot's palette file
    (``{"path": ...}``) or one extracted from a still (``{"from_reference": path, "k": n}``).

    Writes ``out_dir/palette.json`` and ``palette.png`` and returns a copy of ``selection``
    pointing at them (the references stay as ranked).
    """
    from reel.tasks.palette import Palette, extract_palette

    out_dir = Path(out_dir)
    if palette.get("path"):
        pal = Palette.load(palette["path"])
    else:
        pal = extract_palette([palette["from_reference"]], k=int(palette.get("k", 5)), seed=seed)
    path = pal.save(out_dir / "palette.json")
    swatch = pal.swatch(out_dir / "palette.png")
    return dataclasses.replace(selection, palette=pal, palette_path=path, swatch_path=swatch)


# ------------------------------------------------------------------------------------------
# regional colour edit: moved to reel.tasks.edit (kept importable from here)
# ------------------------------------------------------------------------------------------

from reel.tasks.edit import (  # noqa: E402,F401
    EditResult,
    region_mask,
    regional_edit,
    shift_region_ab,
    target_ab,
)


def _palette_for_flow(selection, out_dir, *, palette: dict[str, Any], seed: int = 0):
    return override_palette(selection, out_dir, palette=palette, seed=seed)


_TASKS: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """Prefect tasks, created on first use (so ``reel users``/``reel review`` skip Prefect)."""
    if name == "regional_edit_task":  # the edit task lives in reel.tasks.edit
        from reel.tasks import edit

        return edit.edit_shot_task
    if name == "palette_override_task":
        if name not in _TASKS:
            from prefect import task
            from prefect.cache_policies import NO_CACHE

            _TASKS[name] = task(name="palette-override", cache_policy=NO_CACHE)(_palette_for_flow)
        return _TASKS[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------------
# delivery gate
# ------------------------------------------------------------------------------------------


def cli_actor() -> str:
    """Who runs a command, for the audit log: ``REEL_USER``, else the operating-system user."""
    name = os.environ.get("REEL_USER", "").strip()
    if name:
        return name
    try:
        return f"{getpass.getuser()} (os user)"
    except (KeyError, OSError):  # pragma: no cover - no passwd entry
        return "unknown (os user)"


class DeliveryBlocked(RuntimeError):
    """An item cannot be delivered: some shots are not approved (and ``force`` was not given)."""

    def __init__(self, message: str, blockers: list[tuple[int, str]]) -> None:
        super().__init__(message)
        self.blockers = blockers


def check_delivery_gate(s: Settings, item_id: int, force: bool, actor: str) -> None:
    """Refuse delivery of an item unless every shot is approved, or record a forced delivery.

    Parameters
    ----------
    s : settings (catalog URL).
    item_id : the item to deliver.
    force : deliver anyway; then a ``delivery gate override`` event records who forced it,
        when, and which shots were not approved.
    actor : who asks (user name, e.g. ``$USER`` for the CLI).

    Raises
    ------
    LookupError
        No such item.
    DeliveryBlocked
        Shots are missing or not approved and ``force`` is False. The message lists them and
        says how to proceed.
    """
    from reel.db.api import ensure_schema

    ensure_schema(s.database_url)
    with session_scope(s.database_url) as db:
        item = db.get(m.Item, item_id)
        if item is None:
            raise LookupError(f"no item with id {item_id}")
        blockers = delivery_blockers(db, item_id)
        n_shots = len(item.shots)
        if n_shots and not blockers:
            return
        if not n_shots:
            reason = f"item {item.name!r} has no shots yet (it was never restored)"
        else:
            listed = ", ".join(f"shot {i} ({st})" for i, st in blockers[:20])
            more = f" and {len(blockers) - 20} more" if len(blockers) > 20 else ""
            reason = (f"{len(blockers)} of {n_shots} shots of item {item.name!r} are not "
                      f"approved: {listed}{more}")
        if not force:
            raise DeliveryBlocked(
                f"{reason}. Review them in the dashboard (reel review), or deliver anyway with "
                "--force (recorded in the audit log).", blockers)
        add_audit_event(db, "delivery gate override", actor, item_id=item_id,
                        outcome="warning",
                        detail={"reason": reason, "not_approved": [[i, st] for i, st in blockers],
                                "n_shots": n_shots})


def plan_summary(plans: Iterable[ShotPlan]) -> dict[str, int]:
    """Counts of kept, re-run and plain shots (for logs)."""
    plans = list(plans)
    return {"kept": sum(p.keep for p in plans),
            "rerun": sum(p.request_id is not None for p in plans),
            "processed": sum(not p.keep for p in plans)}
