"""Content-addressed stage cache: one key function, a Prefect cache policy, output manifests.

Resume after a crash works like this (all of it decided in the flow process):

1. :func:`stage_key` hashes what a per-shot stage result depends on: the source's sha256, the
   shot range, the stage, the engine name + version (+ weights sha256), a parameters hash, the
   keys of the upstream stages it consumes, reel's version and the shot's output version
   (``shot-NNNN/vN/``). Same inputs → same 64-hex key; it is stored in
   ``stage_results.cache_key``.
2. The flow submits the stage task with :func:`task_options`: Prefect's
   :class:`StageKeyPolicy` returns that key, and the task's return value (a small dataclass of
   paths and numbers) is persisted under ``<home>/cache/stages/results/<key>``. A later run with
   the same key gets Prefect's ``Cached`` state instead of running the task.
3. A persisted result is only trusted when its **manifest** (``<home>/cache/stages/manifests/
   <key>.json``, written by the flow after the stage finished and before it is recorded) lists
   output files that still exist with the same sha256. Otherwise the task is submitted with
   ``refresh_cache=True``: it runs again and overwrites the stale record. A stage that finished
   inside a task but was never collected by the flow (the run was killed) has no manifest and
   runs again.

Stage outputs are written atomically by the stages themselves (temporary name, then
``os.replace``: ``media.FrameWriter``, ``segment.save_labels``, ``Palette.save``, QC's
Parquet/PNG/NPZ writers), so a killed task never leaves a file that looks complete.

Example
-------
>>> k = stage_key("segment", source_sha256="ab" * 32, start=0, stop=48, engine="slic-flow",
...               engine_version="2", params={"analysis_width_px": 320}, output="w/shot-0000/v1")
>>> len(k), k == stage_key("segment", source_sha256="ab" * 32, start=0, stop=48,
...                        engine="slic-flow", engine_version="2",
...                        params={"analysis_width_px": 320}, output="w/shot-0000/v1")
(64, True)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect.cache_policies import CachePolicy

import reel
from reel.config import Settings
from reel.tasks.media import file_identity

#: Bumped when the key recipe or the manifest format changes (old entries are then ignored).
CACHE_FORMAT = "1"


def stage_key(stage: str, *, source_sha256: str, start: int, stop: int, engine: str,
              engine_version: str, params: Mapping[str, Any] | None = None,
              upstream: Sequence[str] = (), output: str = "", output_version: int = 1,
              weights_sha256: str | None = None) -> str:
    """Content-addressed key of one stage result on one shot (sha256, 64 hex digits).

    Parameters
    ----------
    stage : stage name ("segmentation", "colorization", ...).
    source_sha256 : sha256 of the original film (fixity-checked at the start of every run).
    start, stop : shot range in source frames, half-open.
    engine, engine_version, weights_sha256 : what computes the stage.
    params : every parameter that changes the output (JSON-able; file inputs as their sha256).
    upstream : keys of the stage results this one consumes (order matters).
    output, output_version : where the outputs go (relative to the reel home) and the shot's
        output version; a new version (a reviewer's re-run) never reuses an old one.
    """
    blob = json.dumps({
        "format": CACHE_FORMAT, "reel": reel.__version__, "stage": stage,
        "source_sha256": source_sha256, "range": [int(start), int(stop)],
        "engine": engine, "engine_version": str(engine_version),
        "weights_sha256": weights_sha256, "params_hash": params_digest(params or {}),
        "upstream": list(upstream), "output": str(output), "output_version": int(output_version),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def params_digest(params: Mapping[str, Any]) -> str:
    """sha256 of a parameter dict as sorted JSON (paths and other objects as ``str``)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class StageKeyPolicy(CachePolicy):
    """Prefect cache policy returning a key computed by the flow (:func:`stage_key`).

    The key is computed where all content hashes are known (the flow); the policy only hands
    it to Prefect, so the same key is used on a thread pool and on Dask workers.
    """

    key: str = ""

    def compute_key(self, task_ctx, inputs, flow_parameters, **kwargs) -> str | None:
        return self.key or None


# -- where things live -----------------------------------------------------------------------

def cache_root(s: Settings) -> Path:
    """``<home>/cache/stages``: persisted results and manifests (shared storage on a cluster)."""
    return s.home / "cache" / "stages"


def results_dir(s: Settings) -> Path:
    return cache_root(s) / "results"


def manifest_path(s: Settings, key: str) -> Path:
    return cache_root(s) / "manifests" / key[:2] / f"{key}.json"


# -- output files and their hashes -----------------------------------------------------------

_hash_memo: dict[tuple, str] = {}
_memo_lock = threading.Lock()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, memoised per file version (:func:`reel.tasks.media.file_identity`:
    path, inode, size, mtime, ctime) within the process."""
    memo_key = file_identity(path)
    with _memo_lock:
        if memo_key in _hash_memo:
            return _hash_memo[memo_key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _memo_lock:
        _hash_memo[memo_key] = digest
    return digest


def output_files(result: Any, root: str | os.PathLike) -> list[Path]:
    """Files named by ``result`` (any ``Path`` in its fields, lists or dicts) that lie under
    ``root`` (the shot's work folder) and exist; inputs such as reference stills are skipped.

    Example
    -------
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class R:
    ...     out_path: Path
    >>> output_files(R(Path("/nonexistent/x.mkv")), "/nonexistent")
    []
    """
    root = Path(root).resolve()
    found: dict[str, Path] = {}

    def visit(obj: Any, depth: int) -> None:
        if depth > 6 or obj is None:
            return
        if isinstance(obj, Path):
            p = obj.resolve()
            if p.is_relative_to(root) and p.is_file():
                found[str(p)] = p
        elif isinstance(obj, Mapping):
            for v in obj.values():
                visit(v, depth + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for v in obj:
                visit(v, depth + 1)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                visit(getattr(obj, f.name, None), depth + 1)

    visit(result, 0)
    return [found[k] for k in sorted(found)]


def write_manifest(s: Settings, key: str, stage: str, result: Any,
                   root: str | os.PathLike) -> Path:
    """Record the output files (sha256, size) of a finished stage; atomic (temp + rename)."""
    files = {str(p): {"sha256": file_sha256(p), "size": p.stat().st_size}
             for p in output_files(result, root)}
    path = manifest_path(s, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({"format": CACHE_FORMAT, "key": key, "stage": stage,
                               "files": files}, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def manifest_valid(s: Settings, key: str) -> bool:
    """True when ``key`` has a manifest whose files all exist with their recorded sha256."""
    path = manifest_path(s, key)
    try:
        man = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if man.get("format") != CACHE_FORMAT or man.get("key") != key:
        return False
    for name, meta in man.get("files", {}).items():
        try:
            if os.stat(name).st_size != meta["size"] or file_sha256(name) != meta["sha256"]:
                return False
        except OSError:
            return False
    return True


def task_options(s: Settings, key: str) -> dict[str, Any]:
    """``Task.with_options`` keywords for a cached stage: key policy, persisted result in
    ``<home>/cache/stages/results``, and ``refresh_cache`` when the outputs cannot be trusted.

    With ``settings.cache`` off, nothing is cached (the tasks' own ``NO_CACHE``)."""
    if not getattr(s, "cache", True):
        return {}
    return {"cache_policy": StageKeyPolicy(key=key), "persist_result": True,
            "result_storage": results_dir(s), "refresh_cache": not manifest_valid(s, key)}


def was_cached(future: Any) -> bool:
    """Whether a finished Prefect future's state is a cache hit (state name ``Cached``)."""
    state = getattr(future, "state", None)
    return bool(state is not None and state.name == "Cached")


class FileDigests:
    """sha256 of input files (reference stills, ground truth) computed once per flow run."""

    def __init__(self) -> None:
        self._d: dict[str, str] = {}

    def __call__(self, path: str | os.PathLike | None) -> str | None:
        if path is None:
            return None
        key = str(path)
        if key not in self._d:
            self._d[key] = file_sha256(path) if Path(path).is_file() else f"missing:{key}"
        return self._d[key]

    def many(self, paths: Iterable[str | os.PathLike]) -> list[str]:
        return [self(p) or "" for p in paths]



# -- pruning ------------------------------------------------------------------------------------

@dataclass
class PruneReport:
    """What :func:`prune` removed (or would remove, ``dry_run``): entries and bytes."""

    kept: int = 0
    removed: int = 0
    removed_bytes: int = 0
    reasons: dict[str, int] = dataclasses.field(default_factory=dict)

    def count(self, reason: str, n_bytes: int) -> None:
        self.removed += 1
        self.removed_bytes += n_bytes
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


def prune(s: Settings, *, older_than_days: float | None = None, dry_run: bool = False,
          grace_s: float = 3600.0, now: float | None = None) -> PruneReport:
    """Remove stage-cache entries that can never be reused, and optionally old ones.

    An entry is a manifest (``manifests/<k>/<key>.json``) and the persisted result
    (``results/<key>``). Removed: entries whose manifest is no longer valid (an output file was
    deleted or changed, an older cache format: :func:`manifest_valid` would refuse them),
    entries whose manifest is older than ``older_than_days`` (when given), results without a
    manifest (a stage that finished inside a killed run, never collected: never trusted) and
    leftover temporary files. Files younger than ``grace_s`` without a manifest are kept: a
    running flow writes a result before its manifest. Stage outputs in the work folders are
    never touched; removing an entry only means that stage runs again next time.

    Example
    -------
    >>> report = prune(get_settings(), older_than_days=30, dry_run=True)   # doctest: +SKIP
    >>> report.removed, report.reasons                                      # doctest: +SKIP
    (12, {'outputs changed or gone': 9, 'older than 30 days': 3})
    """
    import time as _time

    now = _time.time() if now is None else now
    report = PruneReport()
    root = cache_root(s)
    manifests = {p.stem: p for p in (root / "manifests").glob("*/*.json")}
    results = {p.name: p for p in results_dir(s).glob("*") if p.is_file()}

    def remove(paths: list[Path], reason: str) -> None:
        size = sum(p.stat().st_size for p in paths if p.exists())
        if not dry_run:
            for p in paths:
                p.unlink(missing_ok=True)
        report.count(reason, size)

    for key, man in sorted(manifests.items()):
        entry = [man] + ([results[key]] if key in results else [])
        if not manifest_valid(s, key):
            remove(entry, "outputs changed or gone")
        elif older_than_days is not None and now - man.stat().st_mtime > older_than_days * 86400:
            remove(entry, f"older than {older_than_days:g} days")
        else:
            report.kept += 1
    for key, res in sorted(results.items()):
        if key not in manifests and now - res.stat().st_mtime > grace_s:
            remove([res], "result without a manifest (never collected)")
    for tmp in root.glob("manifests/*/*.tmp"):
        if now - tmp.stat().st_mtime > grace_s:
            remove([tmp], "temporary file")
    return report


__all__ = ["CACHE_FORMAT", "FileDigests", "PruneReport", "StageKeyPolicy", "cache_root",
           "file_sha256", "manifest_path", "manifest_valid", "output_files", "params_digest",
           "prune", "results_dir",
           "stage_key", "task_options", "was_cached", "write_manifest"]
