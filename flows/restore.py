"""The restoration flows: collection → item → shots → deliverables.

Reads like the pipeline diagram in docs/architecture.md. Tasks do the work on files and return
small results; this module (the flow process) is the only writer of the catalog and MLflow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

import reel
from reel.config import get_settings
from reel.flows import deliver, progress, record, review, tracking
from reel.tasks import qc as qc_metrics
from reel.tasks.colorize import colorize_shot_task
from reel.tasks.harmonize import harmonize_shot_task
from reel.tasks.media import probe_and_fixity_task
from reel.tasks.qc import qc_shot_task
from reel.tasks.references import select_references_task
from reel.tasks.segment import segment_shot_task
from reel.tasks.shots import detect_shots_task


@dataclass
class ShotOutcome:
    shot_id: int
    index: int
    status: str
    flags: list[str]
    metrics: dict[str, float]
    restored_path: Path | None
    error: str | None = None
    edge_hist_path: Path | None = None  # QC edge histograms (cut jump into the next shot)


@flow(name="restore-collection", log_prints=True)
def restore_collection(collection: str, items: list[str] | None = None) -> dict[str, str]:
    """Restore every registered item of ``collection`` (or only ``items``).

    One failing item never stops the others: it is marked failed with its reason and the run
    ends ``partial``. Returns ``{item name: final status}``.
    """
    settings = get_settings()
    run_id = record.start_run(settings, collection)
    logger = get_run_logger()
    outcome: dict[str, str] = {}
    try:
        todo = record.items_of(settings, collection, items)
        progress.start_items(len(todo))
        for item in todo:
            try:
                runner = ThreadPoolTaskRunner(max_workers=settings.max_workers)
                outcome[item.name] = restore_item.with_options(task_runner=runner)(
                    item_id=item.id, run_id=run_id)
            except Exception as exc:  # noqa: BLE001 - one bad film must not stop the batch
                logger.error("item %s failed: %s", item.name, exc)
                record.fail_item(settings, item.id, run_id, f"{type(exc).__name__}: {exc}")
                outcome[item.name] = "failed"
            progress.item_done(item.name, outcome[item.name])
    except BaseException as exc:
        record.finish_run(settings, run_id, "failed", error=str(exc))
        raise
    failed = sum(1 for s in outcome.values() if s == "failed")
    status = "completed" if not failed else ("failed" if failed == len(outcome) else "partial")
    record.finish_run(settings, run_id, status)
    return outcome


@flow(name="restore-item", log_prints=True)
def restore_item(item_id: int, run_id: int) -> str:
    """Probe + fixity → shots → per-shot stages → QC → reassembly → deliverables → fixity."""
    settings = get_settings()
    eng, proc = settings.engines, settings.processing
    item = record.load_item(settings, item_id)
    record.set_item_status(settings, item.id, "running")
    workdir = settings.work_dir / item.collection / f"item-{item.id:05d}"

    # 1. probe + fixity of the original (sha256 must match the one recorded at ingest)
    fixity = probe_and_fixity_task(item.source_path, expected_sha256=item.source_sha256)
    record.store_probe(settings, item.id, run_id, fixity)
    # odd sources (VFR; interlaced when processing.deinterlace) are decoded from a normalised
    # intermediate; every unusual condition is recorded as an event (flows/deliver.py)
    source = deliver.prepare_decode_source(settings, item, run_id, fixity, workdir)
    src = source.path

    # 2. shot list: reviewer-corrected or earlier shots are kept; otherwise detect
    shots = record.shots_of(settings, item.id)
    if not shots:
        detected = detect_shots_task(src, engine=eng.shots,
                                     min_shot_frames=proc.min_shot_frames)
        if not detected or detected[-1].stop != source.info.n_frames:
            raise RuntimeError(
                f"shot detection covered {detected[-1].stop if detected else 0} frames but the "
                f"film has {source.info.n_frames}; the file may be damaged (check with reel probe)")
        shots = record.save_detected_shots(settings, item.id, run_id, detected, eng.shots)

    # 3. per shot: segmentation → references + palette → colorization → harmonization → QC
    library = record.reference_library(settings, item.collection_id)
    # re-run requests and reviewer decisions (flows/review.py): versioned shot folders
    plans = review.plan_shots(settings, item.id, run_id, workdir)
    progress.start_shots(item.name, len(shots))
    pending = []
    for shot in shots:
        plan = plans[shot.id]
        if plan.keep:  # approved/rejected with outputs: never silently re-made
            pending.append((shot, plan))
            continue
        d = plan.work_dir
        seg = segment_shot_task.submit(src, shot.start, shot.stop, d,
                                       engine=plan.engine("segment", eng.segment),
                                       analysis_width_px=proc.analysis_width_px)
        refs = select_references_task.submit(src, shot.start, shot.stop, library, d,
                                             engine=plan.engine("references", eng.references),
                                             top_k=proc.references_top_k,
                                             palette_k=proc.palette_k, seed=proc.seed,
                                             pinned=list(dict.fromkeys(plan.pinned_references
                                                                       + shot.pinned_references)))
        if plan.palette:
            refs = review.palette_override_task.submit(refs, d, palette=plan.palette, seed=proc.seed)
        col = colorize_shot_task.submit(src, shot.start, shot.stop, refs,
                                        d / "colorized.mkv", engine=plan.engine("colorize", eng.colorize),
                                        analysis_width_px=proc.analysis_width_px)
        har = harmonize_shot_task.submit(col, d / ("harmonized.mkv" if plan.edit else "restored.mkv"),
                                         segmentation=seg, selection=refs,
                                         engine=plan.engine("harmonize", eng.harmonize))
        edit = (review.regional_edit_task.submit(har, d / "restored.mkv", edit=plan.edit,
                                                 segmentation=seg) if plan.edit else None)
        qc = qc_shot_task.submit(src, shot.start, shot.stop, edit or har, d,
                                 selection=refs, ground_truth_path=item.ground_truth_path,
                                 thresholds=proc.qc_thresholds or None)
        pending.append((shot, plan, seg, refs, col, har, qc, *([edit] if edit else [])))

    outcomes: list[ShotOutcome] = []
    with tracking.item_run(settings, item_name=item.name, collection=item.collection,
                           catalog_run_id=run_id) as mlflow_run_id:
        record.set_mlflow_run(settings, run_id, mlflow_run_id)
        for shot, plan, *futures in pending:
            if plan.keep:
                outcomes.append(ShotOutcome(shot.id, shot.index, plan.status, plan.flags, {},
                                            plan.restored_path))
            else:
                prev = outcomes[-1] if outcomes else None  # cut jump needs the shot before
                prev_edges = (prev.edge_hist_path if prev is not None
                              and prev.index == shot.index - 1 else None)
                outcomes.append(_collect_shot(settings, run_id, item, shot, futures,
                                              prev_edges=prev_edges))
                review.finish_shot(settings, run_id, plan, ok=outcomes[-1].status != "failed",
                                   error=outcomes[-1].error)
            progress.shot_done(item.name, shot.index)
        tracking.log_item(
            {"reel_version": reel.__version__, **_engine_params(settings),
             "n_shots": len(shots), "source_sha256": item.source_sha256},
            _aggregate(outcomes),
        )

    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(outcomes)} shots failed "
                           f"(first: shot {failed[0].index}: {failed[0].error})")

    # 4. deliverables (the same set as `reel deliver`), MediaConch, fixity of the original
    #    again, JSON + PREMIS provenance: flows/deliver.py
    deliver.deliver_and_record(settings, item, run_id, source,
                               [o.restored_path for o in outcomes])
    record.set_item_status(settings, item.id, "delivered")
    return "delivered"


def _collect_shot(settings, run_id: int, item, shot, futures, prev_edges=None) -> ShotOutcome:
    """Wait for one shot's stage futures and record each stage in the catalog and MLflow.

    With ``prev_edges`` (the previous shot's QC edge histograms) the cut-jump metrics of the
    cut into this shot are added (``cut_jump_in``, ``cut_luma_jump_in``; flag ``cut_jump``)."""
    names = ("segmentation", "references", "colorization", "harmonization", "qc", "regional_edit")
    results: dict[str, Any] = {}
    error = None
    for name, fut in zip(names, futures):
        t0 = time.perf_counter()
        try:
            results[name] = fut.result()
        except Exception as exc:  # noqa: BLE001 - recorded, the item fails after all shots ran
            error = error or f"{name}: {type(exc).__name__}: {exc}"
            record.record_stage(settings, run_id, item.id, shot.id, name, None, None,
                                "failed", time.perf_counter() - t0, error=str(exc))
    for name in names:
        if name in results:
            record.record_stage_result(settings, run_id, item.id, shot.id, name, results[name])
    if error:
        record.set_shot_status(settings, shot.id, "failed", [error])
        return ShotOutcome(shot.id, shot.index, "failed", [error], {}, None, error)

    sel, col, qc = results["references"], results["colorization"], results["qc"]
    record.store_references(settings, item.id, shot.id, sel)
    metrics = dict(qc.metrics)
    metrics["colorize_confidence"] = col.mean_confidence
    metrics["label_stability"] = results["segmentation"].label_stability
    flags = list(qc.flags)
    if prev_edges is not None and qc.edge_hist_path is not None:
        metrics.update(qc_metrics.cut_jump_from_edges(prev_edges, qc.edge_hist_path))
        thresholds = settings.processing.qc_thresholds or None
        if "cut_jump" in qc_metrics.flags_from_metrics(metrics, thresholds):
            flags.append("cut_jump")
    if not sel.ranked:
        flags.append("no_reference")
    record.record_metrics(settings, run_id, item.id, shot.id, metrics)
    status = "flagged" if flags else "done"
    record.set_shot_status(settings, shot.id, status, flags)
    tracking.log_shot(
        shot_index=shot.index,
        params={"start_frame": shot.start, "stop_frame": shot.stop,
                "references": ",".join(Path(r.path).name for r in sel.ranked) or "none",
                "status": status, "flags": ",".join(flags) or "none"},
        metrics=metrics, per_frame=qc.per_frame,
        images={"before": qc.before_thumb, "after": qc.after_thumb,
                "segmentation": results["segmentation"].overlay_path},
    )
    restored = results.get("regional_edit", results["harmonization"]).out_path
    return ShotOutcome(shot.id, shot.index, status, flags, metrics, restored,
                       edge_hist_path=qc.edge_hist_path)


def _aggregate(outcomes: list[ShotOutcome]) -> dict[str, float]:
    agg: dict[str, list[float]] = {}
    for o in outcomes:
        for k, v in o.metrics.items():
            agg.setdefault(k, []).append(float(v))
    out = {f"mean.{k}": sum(v) / len(v) for k, v in agg.items() if v}
    out["shots"] = float(len(outcomes))
    out["shots_flagged"] = float(sum(o.status == "flagged" for o in outcomes))
    out["shots_failed"] = float(sum(o.status == "failed" for o in outcomes))
    return out


def _engine_params(settings) -> dict[str, str]:
    from reel.tasks.colorizers import COLORIZERS
    from reel.tasks.harmonize import HARMONIZERS
    from reel.tasks.references import REFERENCE_RANKERS
    from reel.tasks.segment import SEGMENTERS
    from reel.tasks.shots import SHOT_DETECTORS

    eng = settings.engines
    out = {}
    for stage, reg, name in (("shots", SHOT_DETECTORS, eng.shots),
                             ("segment", SEGMENTERS, eng.segment),
                             ("references", REFERENCE_RANKERS, eng.references),
                             ("colorize", COLORIZERS, eng.colorize),
                             ("harmonize", HARMONIZERS, eng.harmonize)):
        out[f"engine.{stage}"] = f"{name}=={reg.get(name).version}"
    return out
