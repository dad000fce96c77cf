"""Register reel's Prefect deployments (``reel deploy``) through Prefect's Python API.

Two deployments go to a work pool of type ``process`` (created when missing):

- ``nightly/reel-nightly``: the :func:`reel.flows.nightly.nightly` flow on a cron schedule
  (default 02:00 every day, UTC; any IANA time zone), at most one run at a time;
- ``restore-collection/reel-restore``: the restore flow without a schedule, to start one
  collection from the Prefect UI or ``prefect deployment run restore-collection/reel-restore
  --param collection=NAME``.

Entrypoints are *module paths* (``reel.flows.nightly.nightly``), not file paths: a worker only
needs reel installed (the worker image, or the checkout's venv), no source checkout and no pull
step. A process worker runs each flow run in a subprocess that inherits the worker's environment,
so start the worker with the same ``REEL_*`` settings (catalog URL, home, MLflow URI) as the CLI:
``prefect worker start --pool reel-process``. ``deploy/prefect.yaml`` describes the same
deployments for ``prefect deploy``; tests/flows/test_deploy_files.py keeps the two in step.

Example
-------
>>> from reel.flows.deploy import register       # doctest: +SKIP
>>> register(cron="30 1 * * *", timezone="Europe/Paris", pool="reel-process")   # doctest: +SKIP
DeployResult(nightly='nightly/reel-nightly', ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_CRON",
    "DEFAULT_TIMEZONE",
    "DEFAULT_POOL",
    "NIGHTLY_DEPLOYMENT",
    "RESTORE_DEPLOYMENT",
    "DeployError",
    "DeployResult",
    "ensure_work_pool",
    "register",
]

#: 02:00 every day.
DEFAULT_CRON = "0 2 * * *"
DEFAULT_TIMEZONE = "UTC"
#: Work pool (type ``process``) the deployments run on.
DEFAULT_POOL = "reel-process"
NIGHTLY_DEPLOYMENT = "reel-nightly"
RESTORE_DEPLOYMENT = "reel-restore"


class DeployError(RuntimeError):
    """The deployment could not be registered (bad cron/time zone, pool of another type...)."""


@dataclass(frozen=True)
class DeployResult:
    nightly: str
    nightly_id: str
    restore: str | None
    restore_id: str | None
    pool: str
    pool_created: bool
    cron: str
    timezone: str
    api_url: str | None


def _check_schedule(cron: str, timezone: str):
    from prefect.client.schemas.schedules import CronSchedule

    try:
        return CronSchedule(cron=cron, timezone=timezone)
    except Exception as exc:  # pydantic ValidationError: invalid cron string or time zone
        raise DeployError(f"invalid schedule cron={cron!r} timezone={timezone!r}: "
                          f"{str(exc).splitlines()[-1] if str(exc) else exc}") from exc


def ensure_work_pool(name: str = DEFAULT_POOL, pool_type: str = "process") -> bool:
    """Create work pool ``name`` of ``pool_type`` unless it exists; True when created.

    Raises
    ------
    DeployError
        The pool exists with another type.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
    from prefect.workers.utilities import get_default_base_job_template_for_infrastructure_type

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            template = None
            if pool_type == "process":
                from prefect.workers.process import ProcessWorker

                template = ProcessWorker.get_default_base_job_template()
            else:  # pragma: no cover - other types need their worker package installed
                template = get_default_base_job_template_for_infrastructure_type(pool_type)
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type=pool_type,
                                                       base_job_template=template or {}))
            except ObjectAlreadyExists:  # created meanwhile by someone else
                return False
            return True
        if pool.type != pool_type:
            raise DeployError(f"work pool {name!r} exists with type {pool.type!r}, not "
                              f"{pool_type!r}; choose another name with --pool")
        return False


def register(*, cron: str = DEFAULT_CRON, timezone: str = DEFAULT_TIMEZONE,
             pool: str = DEFAULT_POOL, name: str = NIGHTLY_DEPLOYMENT,
             paused: bool = False, with_restore: bool = True,
             parameters: dict[str, Any] | None = None) -> DeployResult:
    """Register (or update) the nightly deployment, and the on-demand restore one.

    Parameters
    ----------
    cron : cron expression of the nightly run (5 fields).
    timezone : IANA time zone the cron is read in (e.g. ``Europe/Berlin``; DST aware).
    pool : work pool name (type ``process``; created when missing).
    name : nightly deployment name.
    paused : register with the schedule paused.
    with_restore : also register ``restore-collection/reel-restore`` (no schedule).
    parameters : default parameters of the nightly flow (e.g. ``{"max_entries": 5}``).

    Uses the Prefect API the current settings point at (``PREFECT_API_URL``, else the local
    ephemeral server under ``PREFECT_HOME``).
    """
    from prefect.deployments.runner import EntrypointType, RunnerDeployment
    from prefect.settings import PREFECT_API_URL

    from reel.flows.nightly import nightly
    from reel.flows.restore import restore_collection

    schedule = _check_schedule(cron, timezone)
    created = ensure_work_pool(pool)
    dep = RunnerDeployment.from_flow(
        nightly, name=name, schedules=[schedule], paused=paused, concurrency_limit=1,
        parameters=parameters or {}, tags=["reel", "nightly"], work_pool_name=pool,
        description="reel nightly: restore queued collections (priority order) and shots "
                    "sent back by reviewers. Queue with `reel queue add`.",
        entrypoint_type=EntrypointType.MODULE_PATH)
    nightly_id = dep.apply(work_pool_name=pool)
    restore_name = restore_id = None
    if with_restore:
        rdep = RunnerDeployment.from_flow(
            restore_collection, name=RESTORE_DEPLOYMENT, tags=["reel"], work_pool_name=pool,
            description="Restore one collection on demand (parameter: collection).",
            entrypoint_type=EntrypointType.MODULE_PATH)
        restore_id = str(rdep.apply(work_pool_name=pool))
        restore_name = f"{restore_collection.name}/{RESTORE_DEPLOYMENT}"
    return DeployResult(nightly=f"{nightly.name}/{name}", nightly_id=str(nightly_id),
                        restore=restore_name, restore_id=restore_id, pool=pool,
                        pool_created=created, cron=cron, timezone=timezone,
                        api_url=PREFECT_API_URL.value())
