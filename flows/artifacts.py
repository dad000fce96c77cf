"""Prefect artifacts: what a restore run did, visible in the Prefect UI per item.

At the end of ``restore_item`` (:mod:`reel.flows.restore`) :func:`publish_item_artifacts`
creates two artifacts on the item's flow run:

- a **table** (key ``reel-<collection>-<item>-shots``): one row per shot with its frames,
  status, key QC metrics (``psnr_db`` when the item has ground truth, ``colorfulness_mean``,
  ``warp_error_ab``, ``cdc``, ``colorize_confidence``) and flags;
- a **Markdown summary** (key ``reel-<collection>-<item>-summary``): counts per status, mean
  metrics, the catalog run id and where the MLflow run is (tracking URI, experiment id, run id,
  and a link into the MLflow UI: the server's own address when the tracking URI is HTTP, else
  the address ``mlflow ui`` serves by default, with the command that starts it).

Keys only hold lowercase letters, digits and dashes (Prefect's rule); re-using a key makes a new
version of the artifact, so the latest run of an item is what the Artifacts page shows first.
The nightly flow adds one summary of the queue entries it processed (key ``reel-nightly``).

The builders (:func:`shot_rows`, :func:`item_summary_markdown`, :func:`nightly_markdown`) are
plain functions over plain values; only the ``publish_*`` functions talk to Prefect. An artifact
that cannot be created is logged and never fails the restore.

Example
-------
>>> artifact_key("Calais 1906", "Shepard_Calais", "shots")
'reel-calais-1906-shepard-calais-shots'
>>> mlflow_ui_link("http://mlflow:5000", "3", "abc")
'http://mlflow:5000/#/experiments/3/runs/abc'
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from typing import Any, Iterable, Sequence

__all__ = [
    "SHOT_METRICS",
    "artifact_key",
    "mlflow_ui_link",
    "shot_rows",
    "item_summary_markdown",
    "nightly_markdown",
    "publish_item_artifacts",
    "publish_nightly_artifact",
]

log = logging.getLogger(__name__)

#: Metric columns of the shot table, in order (missing ones are left empty).
SHOT_METRICS = ("psnr_db", "colorfulness_mean", "warp_error_ab", "cdc", "colorize_confidence")

#: Address ``mlflow ui`` / ``mlflow server`` listen on by default.
DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"

_KEY_MAX = 100


def artifact_key(*parts: str) -> str:
    """``reel-`` + the parts, lowercased, runs of other characters turned into one dash."""
    text = "-".join(["reel", *parts]).lower()
    key = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if len(key) > _KEY_MAX:  # keep it unique-ish: the end (kind) matters most
        key = key[: _KEY_MAX - len(parts[-1]) - 1].rstrip("-") + "-" + parts[-1].lower()
    return key


def mlflow_ui_link(tracking_uri: str, experiment_id: str | None, run_id: str | None) -> str:
    """Link to a run in the MLflow UI (the tracking server itself when the URI is HTTP)."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) \
        else DEFAULT_MLFLOW_UI
    if not experiment_id:
        return base
    if not run_id:
        return f"{base}/#/experiments/{experiment_id}"
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def _num(v: Any, digits: int = 4) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, digits) if math.isfinite(f) else None


def shot_rows(shots: Sequence[Any], outcomes: Sequence[Any]) -> list[dict[str, Any]]:
    """One table row per shot, in shot order.

    Parameters
    ----------
    shots : objects with ``id``, ``index``, ``start``, ``stop`` (frames, half-open).
    outcomes : objects with ``shot_id``, ``status``, ``flags`` (list of str), ``metrics`` (dict),
        ``error`` (str or None); shots without an outcome are reported ``not run``.

    Example
    -------
    >>> from types import SimpleNamespace as NS
    >>> rows = shot_rows([NS(id=7, index=0, start=0, stop=24)],
    ...                  [NS(shot_id=7, status="flagged", flags=["high_cdc"], error=None,
    ...                      metrics={"cdc": 0.08, "colorfulness_mean": 21.456789})])
    >>> rows[0]["status"], rows[0]["cdc"], rows[0]["colorfulness_mean"], rows[0]["flags"]
    ('flagged', 0.08, 21.4568, 'high_cdc')
    """
    by_shot = {o.shot_id: o for o in outcomes}
    rows = []
    for sh in sorted(shots, key=lambda x: x.index):
        o = by_shot.get(sh.id)
        metrics = dict(getattr(o, "metrics", None) or {})
        row: dict[str, Any] = {"shot": int(sh.index), "shot_id": int(sh.id),
                               "frames": f"{int(sh.start)}-{int(sh.stop)}",
                               "n_frames": int(sh.stop) - int(sh.start),
                               "status": o.status if o is not None else "not run"}
        for name in SHOT_METRICS:
            row[name] = _num(metrics.get(name))
        flags = list(o.flags) if o is not None else []
        if o is not None and o.error and o.error not in flags:
            flags.append(o.error)
        row["flags"] = ", ".join(str(f) for f in flags)
        rows.append(row)
    return rows


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.4g}"


def item_summary_markdown(*, collection: str, item: str, catalog_run_id: int,
                          rows: Sequence[dict[str, Any]], tracking_uri: str,
                          experiment_id: str | None, mlflow_run_id: str | None,
                          shots_table_key: str | None = None) -> str:
    """Markdown summary of one item's restore: statuses, mean metrics, flags, MLflow links.

    Example
    -------
    >>> md = item_summary_markdown(collection="bikes", item="bikes", catalog_run_id=4,
    ...     rows=[{"status": "done", "psnr_db": 30.0, "flags": ""}],
    ...     tracking_uri="sqlite:////srv/reel/mlflow.db", experiment_id="1", mlflow_run_id="ab12")
    >>> "http://127.0.0.1:5000/#/experiments/1/runs/ab12" in md and "1 shot" in md
    True
    """
    counts = Counter(r["status"] for r in rows)
    flag_counts: Counter[str] = Counter()
    for r in rows:
        flag_counts.update(f.strip() for f in str(r.get("flags") or "").split(",") if f.strip())
    lines = [f"# {item} ({collection}), catalog run {catalog_run_id}", ""]
    lines.append(f"**{len(rows)} shot{'s' if len(rows) != 1 else ''}**: "
                 + (", ".join(f"{n} {st}" for st, n in sorted(counts.items())) or "none"))
    lines += ["", "| metric | mean | worst shot |", "|---|---|---|"]
    for name in SHOT_METRICS:
        vals = [(r[name], r.get("shot")) for r in rows if r.get(name) is not None]
        if not vals:
            continue
        mean = sum(v for v, _ in vals) / len(vals)
        # "worst": lowest for quality-up metrics, highest for error metrics
        worst = (max if name in ("warp_error_ab", "cdc") else min)(vals, key=lambda t: t[0])
        lines.append(f"| {name} | {_fmt(mean)} | {_fmt(worst[0])} (shot {worst[1]}) |")
    if flag_counts:
        lines += ["", "**Flags**: " + ", ".join(f"{f} ×{n}" for f, n in flag_counts.most_common())]
    link = mlflow_ui_link(tracking_uri, experiment_id, mlflow_run_id)
    lines += ["", "## MLflow", "",
              f"- tracking URI: `{tracking_uri}`",
              f"- experiment id: `{experiment_id or '?'}`, run id: `{mlflow_run_id or '?'}`",
              f"- run in the MLflow UI: [{link}]({link})"]
    if not tracking_uri.startswith(("http://", "https://")):
        lines.append(f"  (start the UI with `mlflow ui --backend-store-uri {tracking_uri}`)")
    if shots_table_key:
        lines += ["", f"Per-shot table: artifact `{shots_table_key}`."]
    return "\n".join(lines) + "\n"


def nightly_markdown(entries: Iterable[Any]) -> str:
    """Markdown table of the queue entries a nightly run processed.

    ``entries``: objects with ``id``, ``collection``, ``status``, ``priority``,
    ``requested_by``, ``run_id``, ``error`` (:class:`reel.flows.queue.QueueView`).
    """
    entries = list(entries)
    lines = ["# reel nightly", "",
             f"{len(entries)} queue entr{'y' if len(entries) == 1 else 'ies'} processed", "",
             "| entry | collection | priority | requested by | status | catalog run | error |",
             "|---|---|---|---|---|---|---|"]
    for e in entries:
        err = (e.error or "").replace("|", "/").replace("\n", " ")
        err = err if len(err) <= 160 else err[:157] + "..."
        lines.append(f"| {e.id} | {e.collection} | {e.priority} | {e.requested_by} | {e.status} "
                     f"| {e.run_id if e.run_id is not None else '–'} | {err} |")
    return "\n".join(lines) + "\n"


def _experiment_id(tracking_uri: str, mlflow_run_id: str | None) -> str | None:
    if not mlflow_run_id:
        return None
    try:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=tracking_uri).get_run(mlflow_run_id).info.experiment_id
    except Exception as exc:  # noqa: BLE001 - a link without the experiment is still useful
        log.warning("could not read MLflow run %s: %s", mlflow_run_id, exc)
        return None


def publish_item_artifacts(settings: Any, item: Any, run_id: int, shots: Sequence[Any],
                           outcomes: Sequence[Any], mlflow_run_id: str | None) -> dict[str, str]:
    """Create the shot table and the Markdown summary of one item on the current flow run.

    Parameters
    ----------
    settings : reel settings (``mlflow_tracking_uri``).
    item : the item (``name``, ``collection``).
    run_id : the catalog run id.
    shots, outcomes : see :func:`shot_rows`.
    mlflow_run_id : the item's MLflow run (None: not logged).

    Returns
    -------
    dict
        ``{"table": key, "summary": key}`` of the artifacts created (empty when Prefect refused;
        the failure is logged, never raised).
    """
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    rows = shot_rows(shots, outcomes)
    table_key = artifact_key(item.collection, item.name, "shots")
    summary_key = artifact_key(item.collection, item.name, "summary")
    uri = str(settings.mlflow_tracking_uri)
    md = item_summary_markdown(collection=item.collection, item=item.name, catalog_run_id=run_id,
                               rows=rows, tracking_uri=uri,
                               experiment_id=_experiment_id(uri, mlflow_run_id),
                               mlflow_run_id=mlflow_run_id, shots_table_key=table_key)
    try:
        create_table_artifact(table=rows, key=table_key,
                              description=f"Shots of {item.name} ({item.collection}), "
                                          f"catalog run {run_id}: status, QC metrics, flags")
        create_markdown_artifact(markdown=md, key=summary_key,
                                 description=f"Restore summary of {item.name}, catalog run {run_id}")
    except Exception as exc:  # noqa: BLE001 - visibility must never fail a restore
        log.warning("Prefect artifacts of %s not created: %s", item.name, exc)
        return {}
    return {"table": table_key, "summary": summary_key}


def publish_nightly_artifact(entries: Iterable[Any]) -> str | None:
    """Markdown artifact ``reel-nightly`` listing the processed queue entries."""
    from prefect.artifacts import create_markdown_artifact

    try:
        create_markdown_artifact(markdown=nightly_markdown(entries), key="reel-nightly",
                                 description="Queue entries processed by this nightly run")
    except Exception as exc:  # noqa: BLE001
        log.warning("nightly artifact not created: %s", exc)
        return None
    return "reel-nightly"
