"""Task runners, GPU slots and the device of each stage task.

Runners (``settings.runner`` / ``reel run --runner``):

* ``threads`` (default): Prefect's ``ThreadPoolTaskRunner(max_workers)`` in the flow process.
* ``dask``: a local Dask cluster started for the whole collection run (``max_workers`` worker
  *processes*, 1 thread each; the nanny sets ``OMP_NUM_THREADS=1``), used through prefect-dask's
  ``DaskTaskRunner(address=...)`` by every item.
* ``dask`` with ``dask_address`` (``--dask-address tcp://HOST:PORT``): an existing cluster.
  Workers need the same reel install, the same paths (shared storage for media, work files and
  ``<home>/cache``) and network reach to the Prefect API.

GPU stages: an engine class declares ``uses_gpu = True`` (:class:`reel.registry.Engine`,
default False for the classical engines). Such a stage task runs through
:func:`gpu_stage_task`: on the worker it picks the device (CUDA when torch sees one, else CPU),
and on CUDA it holds one slot of the strict global concurrency limit ``gpu`` for as long as it
runs. ``reel init`` creates that limit with the number of CUDA GPUs found; with **no GPU, no limit
is created and GPU-capable engines run on the CPU without taking a slot** (a limit of 0 would
block them forever, and a limit of 1 would serialise CPU work for nothing). On Dask, when GPUs
exist, submissions of GPU stages are annotated ``resources={"GPU": 1}`` so they land on workers
started with ``--resources GPU=N``. The chosen device is attached to the result
(:func:`result_device`) and recorded in ``stage_results.device``.

Example
-------
>>> from reel.config import Settings
>>> runner_kind(Settings(home="/tmp/reel-doc"))
'threads'
>>> runner_kind(Settings(home="/tmp/reel-doc", dask_address="tcp://127.0.0.1:8786"))
'dask'
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from reel.config import Settings

#: Name of the Prefect global concurrency limit that GPU stage tasks take a slot of.
GPU_LIMIT = "gpu"
#: Attribute set on a stage result to carry the device it was computed on back to the flow.
_DEVICE_ATTR = "_reel_device"

RUNNERS = ("threads", "dask")


def runner_kind(s: Settings) -> str:
    """``threads`` or ``dask`` (a Dask address implies ``dask``)."""
    kind = "dask" if getattr(s, "dask_address", None) else getattr(s, "runner", "threads")
    if kind not in RUNNERS:
        raise ValueError(f"unknown runner {kind!r}; use one of: {', '.join(RUNNERS)}")
    return kind


def cuda_device_count() -> int:
    """Number of CUDA GPUs torch sees (0 without torch or without CUDA)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken driver means no usable GPU
        return 0


def choose_device(uses_gpu: bool) -> str:
    """``cuda`` for a GPU-capable stage on a machine with CUDA, else ``cpu``."""
    return "cuda" if uses_gpu and cuda_device_count() > 0 else "cpu"


@contextlib.contextmanager
def collection_runner(s: Settings) -> Iterator[Callable[[], Any]]:
    """Context for one collection run; yields a factory of task runners for its items.

    ``threads``: a fresh ``ThreadPoolTaskRunner`` per item. ``dask`` without address: one
    ``LocalCluster`` for the whole run (started here, closed on exit). ``dask`` with address:
    ``DaskTaskRunner(address=...)``.
    """
    kind = runner_kind(s)
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        yield lambda: ThreadPoolTaskRunner(max_workers=s.max_workers)
        return
    from prefect_dask import DaskTaskRunner

    if s.dask_address:
        yield lambda: DaskTaskRunner(address=s.dask_address)
        return
    from distributed import Client, LocalCluster

    n_gpu = cuda_device_count()
    kwargs: dict[str, Any] = {"n_workers": max(1, s.max_workers), "threads_per_worker": 1,
                              "processes": True, "dashboard_address": None}
    if n_gpu:
        kwargs["resources"] = {"GPU": 1}
    with LocalCluster(**kwargs) as cluster:
        address = cluster.scheduler_address
        with Client(address) as client:
            client.register_plugin(LibraryThreads(kwargs["threads_per_worker"]))
        yield lambda: DaskTaskRunner(address=address)


try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    _WorkerPlugin = object


class LibraryThreads(_WorkerPlugin):
    """Worker plugin: native-library threads of a Dask worker = its Dask threads.

    Dask's nanny sets ``OMP_NUM_THREADS=1`` (torch and BLAS follow it) so that parallelism comes
    from workers, not from libraries inside each worker; OpenCV ignores that variable and starts
    one thread per core. Without this plugin a single worker already keeps every core busy in
    OpenCV (DIS flow, resizes, filters), two workers on the same cores oversubscribe them, and a
    cluster's throughput no longer follows its worker count. Registered on the local cluster
    that ``reel run --runner dask`` starts; on an existing cluster give the workers
    ``OPENCV_FOR_THREADS_NUM`` equal to their ``--nthreads`` (docs/scaling.md).

    Example
    -------
    >>> LibraryThreads(1).threads
    1
    """

    name = "reel-library-threads"

    def __init__(self, threads: int = 1) -> None:
        self.threads = max(1, int(threads))

    def setup(self, worker: Any = None) -> None:
        import cv2

        cv2.setNumThreads(self.threads)


def gpu_resources_wanted(s: Settings) -> bool:
    """Whether GPU stage submissions should ask Dask for a ``GPU`` resource (Dask + GPUs)."""
    return runner_kind(s) == "dask" and cuda_device_count() > 0


@contextlib.contextmanager
def gpu_submission(s: Settings, uses_gpu: bool) -> Iterator[None]:
    """Around ``task.submit``: annotate GPU stages with ``resources={"GPU": 1}`` on Dask."""
    if uses_gpu and gpu_resources_wanted(s):
        import dask

        with dask.annotate(resources={"GPU": 1}):
            yield
    else:
        yield


@contextlib.contextmanager
def gpu_slot(device: str) -> Iterator[None]:
    """Hold one slot of the strict global concurrency limit ``gpu`` while on CUDA.

    Strict: a missing limit raises (run ``reel init`` on a machine with GPUs) instead of
    silently running unlimited. On the CPU nothing is taken.
    """
    if not str(device).startswith("cuda"):
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(GPU_LIMIT, occupy=1, strict=True):
        yield


def accepts_param(engine_cls: type, name: str) -> bool:
    """Whether ``engine_cls.__init__`` names a keyword parameter ``name`` explicitly."""
    try:
        return name in inspect.signature(engine_cls.__init__).parameters
    except (TypeError, ValueError):
        return False


def set_result_device(result: Any, device: str) -> Any:
    """Attach ``device`` to a stage result (survives pickling into the result store)."""
    try:
        object.__setattr__(result, _DEVICE_ATTR, device)
    except (AttributeError, TypeError):  # slots / immutable: the flow falls back to "cpu"
        pass
    return result


def result_device(result: Any, default: str = "cpu") -> str:
    return getattr(result, _DEVICE_ATTR, None) or default


def _run_on_device(fn: Callable[..., Any], uses_gpu: bool, pass_device: bool,
                   *args: Any, **kwargs: Any) -> Any:
    device = choose_device(uses_gpu)
    if pass_device:
        kwargs.setdefault("device", device)
    with gpu_slot(device):
        result = fn(*args, **kwargs)
    return set_result_device(result, device)


def gpu_stage_task(base_task: Any, engine_cls: type) -> Any:
    """The stage task to submit for ``engine_cls``.

    Classical engines (``uses_gpu`` False): ``base_task`` itself (device ``cpu``). GPU-capable
    engines: a task with the same name whose body picks the device on the worker, passes
    ``device=`` to the engine when its constructor takes one, and holds a ``gpu`` slot on CUDA.
    """
    if not getattr(engine_cls, "uses_gpu", False):
        return base_task
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    base_fn = base_task.fn
    pass_device = accepts_param(engine_cls, "device")

    @functools.wraps(base_fn)
    def on_device(*args: Any, **kwargs: Any) -> Any:
        return _run_on_device(base_fn, True, pass_device, *args, **kwargs)

    return task(name=base_task.name, cache_policy=NO_CACHE)(on_device)


def create_gpu_limit(n_gpus: int | None = None) -> int:
    """Create (or update) the strict global concurrency limit ``gpu`` with ``n_gpus`` slots.

    ``n_gpus`` defaults to the CUDA GPUs found. With 0 no limit is created (an existing one is
    left as it is) and GPU-capable stages run on the CPU. Returns the number of slots.
    """
    n = cuda_device_count() if n_gpus is None else int(n_gpus)
    if n <= 0:
        return 0
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (GlobalConcurrencyLimitCreate,
                                                GlobalConcurrencyLimitUpdate)
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
            client.update_global_concurrency_limit(
                GPU_LIMIT, GlobalConcurrencyLimitUpdate(limit=n, active=True))
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=n, active=True))
    return n


__all__ = ["GPU_LIMIT", "RUNNERS", "choose_device", "collection_runner", "create_gpu_limit",
           "cuda_device_count", "gpu_resources_wanted", "gpu_slot", "gpu_stage_task",
           "gpu_submission", "result_device", "runner_kind", "set_result_device"]
