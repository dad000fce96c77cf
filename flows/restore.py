"""The restoration flows: collection → item → shots → deliverables.

Reads like the pipeline diagram in docs/architecture.md. Tasks do the work on files and return
small results; this module (the flow process) is the only writer of the catalog and MLflow.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

import reel
from reel.config import get_settings
from reel.flows import cache, deliver, edits, progress, record, review, runners, tracking
from reel.tasks import edit as edit_tasks
from reel.flows import refs as refs_flow
from reel.flows import palettes
from reel.tasks import qc as qc_metrics
from reel.tasks.colorize import colorize_shot_task
from reel.tasks.harmonize import harmonize_shot_task
from reel.tasks.media import probe_and_fixity_task
from reel.tasks.qc import qc_shot_task
from reel.tasks.people import people_available
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
    tracking.prepare(settings)  # MLflow import + tables in the background
    logger = get_run_logger()
    outcome: dict[str, str] = {}
    try:
        todo = record.items_of(settings, collection, items)
        progress.start_items(len(todo))
        # threads (default), a local Dask cluster for the whole run, or an existing one
        with runners.collection_runner(settings) as make_runner:
            for item in todo:
                try:
                    outcome[item.name] = restore_item.with_options(task_runner=make_runner())(
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
    # luminance deflicker (tasks/deflicker.py): the stages read the deflickered film, so its L
    # is the one colorization keeps and QC checks; never across a cut; the original only read
    src = _deflicker(settings, item, run_id, src, shots, workdir)

    # 3. per shot: segmentation → references + palette → colorization → harmonization → QC
    library = record.reference_library(settings, item.collection_id)
    # re-run requests and reviewer decisions (flows/review.py): versioned shot folders
    plans = review.plan_shots(settings, item.id, run_id, workdir)
    # reviewers' regional colour edits (reel edit), re-applied on every run (flows/edits.py)
    region_edits = edits.active_edit_specs(settings, [sh.id for sh in shots])
    progress.start_shots(item.name, len(shots))
    # content-addressed stage keys (flows/cache.py): a finished stage whose outputs still
    # match is reused (Prefect "Cached" state), an unfinished or damaged one runs again
    digests = cache.FileDigests()
    library_ids = sorted(f"{Path(p).name}:{digests(p)}" for p in library)
    people = proc.person_masks if proc.person_masks is not None else people_available()
    # segmentation needs only the shot's frames: submitted first, so the pool segments while
    # this flow ranks the references below (on 2 cores the ranking otherwise left one idle)
    segmented = {}
    for shot in shots:
        plan = plans[shot.id]
        if plan.keep:
            continue
        key = _shot_keyer(settings, item, source, shot, plan)
        e_seg = plan.engine("segment", eng.segment)
        keys = {"segmentation": key("segmentation", "segment", e_seg,
                                    {"analysis_width_px": proc.analysis_width_px, "people": people})}
        stage = functools.partial(_stage_task, settings, keys)
        with stage(segment_shot_task, "segmentation", "segment", e_seg) as t:
            seg = t.submit(src, shot.start, shot.stop, plan.work_dir, engine=e_seg,
                           analysis_width_px=proc.analysis_width_px, people=people)
        segmented[shot.id] = (key, keys, stage, seg)
    # references ranked for the whole item: similar shots share them (flows/refs.py)
    ranking = refs_flow.rank_and_cluster(settings, item.id, run_id, src, shots, library)
    pending = []
    for shot in shots:
        plan = plans[shot.id]
        if plan.keep:  # approved/rejected with outputs: never silently re-made
            pending.append((shot, plan))
            continue
        d = plan.work_dir
        # a re-run request's edit (target colour) and the shot's active region edits, one stage
        shot_edits = ([plan.edit] if plan.edit else []) + region_edits.get(shot.id, [])
        e_fuse = plan.engine("fuse", eng.fuse)
        key, keys, stage, seg = segmented[shot.id]
        pinned = list(dict.fromkeys(plan.pinned_references + shot.pinned_references))
        e_ref = plan.engine("references", eng.references)
        e_col, e_har = plan.engine("colorize", eng.colorize), plan.engine("harmonize", eng.harmonize)
        ranked, ranked_engine = ranking.for_shot(shot.id, e_ref)
        keys["reference_selection"] = key("reference_selection", "references", e_ref, {
            "top_k": proc.references_top_k, "palette_k": proc.palette_k, "seed": proc.seed,
            "library": library_ids, "pinned": [f"{p}:{digests(p)}" for p in pinned],
            "palette_override": plan.palette, "ranked": ranked and ranking.key(shot.id)})
        shot_seed = palettes.shot_seed(proc.seed, item.source_sha256, shot.start)
        # the recorded "references" result: the selection after the GMM-palette fallback
        keys["references"] = key("references", None, "reel-shot-palette", {
            "k": proc.palette_k, "seed": shot_seed, "palette_model": palettes.model_version()},
            [keys["reference_selection"]])
        keys["colorization"] = key("colorization", "colorize", e_col,
                                   {"analysis_width_px": proc.analysis_width_px,
                                    "palette_model": palettes.model_version()},
                                   [keys["references"]])
        if plan.palette:  # reviewer palette: selection and override rewrite palette.json, uncached
            refs = select_references_task.submit(src, shot.start, shot.stop, library, d,
                                                 engine=e_ref, top_k=proc.references_top_k,
                                                 palette_k=proc.palette_k, seed=proc.seed,
                                                 pinned=pinned, ranked=ranked,
                                                 ranked_engine=ranked_engine)
            refs = review.palette_override_task.submit(refs, d, palette=plan.palette, seed=proc.seed)
        else:
            with stage(select_references_task, "reference_selection", "references", e_ref) as t:
                refs = t.submit(src, shot.start, shot.stop, library, d, engine=e_ref,
                                top_k=proc.references_top_k, palette_k=proc.palette_k,
                                seed=proc.seed, pinned=pinned, ranked=ranked,
                                ranked_engine=ranked_engine)
            keys["_futures"] = {"reference_selection": refs}  # its manifest: _collect_shot
        # no usable reference: a seeded palette from reel's colour model (flows/palettes.py)
        with (stage(palettes.shot_palette_task, "references") if not plan.palette
              else contextlib.nullcontext(palettes.shot_palette_task)) as t:
            refs = t.submit(refs, src, shot.start, shot.stop, d, k=proc.palette_k, seed=shot_seed)
        with stage(colorize_shot_task, "colorization", "colorize", e_col) as t:
            col = t.submit(src, shot.start, shot.stop, refs, d / "colorized.mkv", engine=e_col,
                           analysis_width_px=proc.analysis_width_px)
        # harmonization, regional edit and QC wait for the film-level pass (below)
        later = functools.partial(_submit_after_colorization, settings, item, src, shot, d, keys,
                                  key, stage, seg, refs, col, shot_edits, e_har, e_fuse,
                                  digests(item.ground_truth_path))
        pending.append((shot, plan, keys, seg, refs, col, later))

    # across shots (tasks/harmonize.py): one bounded chroma gain/offset per shot, from every
    # colorized shot's first/last frames, reduces colour jumps at same-scene cuts
    shifts = _film_chroma_shifts(settings, item, run_id, pending)
    # every shot's harmonization (and regional edit) goes in before any QC: a task whose
    # inputs are not ready holds a pool thread while it waits, so a QC queued right behind its
    # own shot's harmonization would leave a thread idle
    after = {e[0].id: e[6](shifts.get(e[0].id)) for e in pending if len(e) > 2}
    qcs = {shot_id: submit_qc() for shot_id, (_, _, submit_qc) in after.items()}
    for i, e in enumerate(pending):
        if len(e) > 2:  # (shot, plan, keys, seg, refs, col, har, qc[, edit])
            har, edit, _ = after[e[0].id]
            pending[i] = (*e[:6], har, qcs[e[0].id], *([edit] if edit else []))

    outcomes: list[ShotOutcome] = []
    with tracking.item_run(settings, item_name=item.name, collection=item.collection,
                           catalog_run_id=run_id) as mlflow_run_id:
        record.set_mlflow_run(settings, run_id, mlflow_run_id)
        for shot, plan, *futures in pending:
            keys = futures.pop(0) if futures else {}
            if plan.keep:
                outcomes.append(ShotOutcome(shot.id, shot.index, plan.status, plan.flags, {},
                                            plan.restored_path))
            else:
                prev = outcomes[-1] if outcomes else None  # cut jump needs the shot before
                prev_edges = (prev.edge_hist_path if prev is not None
                              and prev.index == shot.index - 1 else None)
                outcomes.append(_collect_shot(settings, run_id, item, shot, futures,
                                              prev_edges=prev_edges, keys=keys, plan=plan))
                review.finish_shot(settings, run_id, plan, ok=outcomes[-1].status != "failed",
                                   error=outcomes[-1].error)
            progress.shot_done(item.name, shot.index)
        # film-level palette pooled from the shots' chosen references (scope film, source pooled)
        palettes.record_film_palette(settings, item.id, run_id, workdir, k=proc.palette_k,
                                     seed=proc.seed)
        tracking.log_item(
            {"reel_version": reel.__version__, **_engine_params(settings),
             "n_shots": len(shots), "source_sha256": item.source_sha256},
            _aggregate(outcomes),
        )
    # Prefect artifacts of the item: shot table + Markdown summary with MLflow links
    from reel.flows import artifacts
    artifacts.publish_item_artifacts(settings, item, run_id, shots, outcomes, mlflow_run_id)

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


def _collect_shot(settings, run_id: int, item, shot, futures, prev_edges=None, keys=None,
                  plan=None) -> ShotOutcome:
    """Wait for one shot's stage futures and record each stage in the catalog and MLflow.

    With ``keys`` (stage → cache key) each finished stage's output manifest is written
    (flows/cache.py) before it is recorded with its key, cache hit and device.

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
    keys = keys or {}
    futs = dict(zip(names, futures))
    for name, fut in (keys.get("_futures") or {}).items():  # sub-stages not recorded as rows
        if plan is not None and not error and not cache.was_cached(fut):
            cache.write_manifest(settings, keys[name], name, fut.result(), plan.work_dir)
    for name in names:
        if name in results:
            hit = cache.was_cached(futs[name])
            if keys.get(name) and not hit and plan is not None:
                cache.write_manifest(settings, keys[name], name, results[name], plan.work_dir)
            record.record_stage_result(
                settings, run_id, item.id, shot.id, name, results[name],
                cache_key=keys.get(name), cache_hit=hit,
                device=runners.result_device(results[name]),
                output_version=getattr(plan, "output_version", None))
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


def _deflicker(settings, item, run_id: int, src, shots, workdir: Path):
    """Deflicker the film (engines.deflicker); returns the file the stages read. Recorded as a
    ``deflicker`` event with the before/after flicker and cut luminance jumps."""
    from reel.tasks.deflicker import DEFLICKERERS, deflicker_film_task

    name = settings.engines.deflicker
    if not DEFLICKERERS.get(name).changes_frames:
        return src
    res = deflicker_film_task(src, [(sh.start, sh.stop) for sh in shots],
                              Path(workdir) / f"deflicker-{name}.mkv", engine=name,
                              cache_key=f"{item.source_sha256}:{Path(src).name}")
    record.add_event(settings, "deflicker", "success", item_id=item.id, run_id=run_id,
                     agent_name=f"{record.agent()} / {name} {res.engine.get('engine_version', '')}",
                     detail=res.summary())
    return res.out_path


def _submit_after_colorization(settings, item, src, shot, d: Path, keys: dict, key, stage, seg,
                               refs, col, shot_edits, e_har: str, e_fuse: str, gt_digest,
                               film_shift=None) -> tuple:
    """Submit harmonization (with the shot's across-shots shift) and regional edit; returns
    ``(har, edit or None, submit_qc)`` where ``submit_qc()`` submits the shot's QC and returns
    its future. Their cache keys include the shift."""
    proc = settings.processing
    film = None if film_shift is None else [round(film_shift.gain, 6),
                                            [round(v, 4) for v in film_shift.offset_ab]]
    keys["harmonization"] = key("harmonization", "harmonize", e_har,
                                {"out": "harmonized.mkv" if shot_edits else "restored.mkv",
                                 **({"film": film} if film else {})},
                                [keys["colorization"], keys["segmentation"], keys["references"]])
    if shot_edits:
        keys["regional_edit"] = key("regional_edit", "fuse", e_fuse, {"edits": shot_edits},
                                    [keys["harmonization"], keys["segmentation"]])
    keys["qc"] = key("qc", None, "reel-qc", {
        "thresholds": proc.qc_thresholds or None, "ground_truth": gt_digest},
        [keys.get("regional_edit", keys["harmonization"]), keys["references"]])
    with stage(harmonize_shot_task, "harmonization", "harmonize", e_har) as t:
        har = t.submit(col, d / ("harmonized.mkv" if shot_edits else "restored.mkv"),
                       segmentation=seg, selection=refs, engine=e_har, film_shift=film_shift)
    edit = None
    if shot_edits:  # after harmonization, before QC (tasks/edit.py)
        with stage(edit_tasks.edit_shot_task, "regional_edit", "fuse", e_fuse) as t:
            edit = t.submit(har, d / "restored.mkv", edits=shot_edits, segmentation=seg,
                            fuser=e_fuse)

    def submit_qc():
        with stage(qc_shot_task, "qc") as t:
            return t.submit(src, shot.start, shot.stop, edit or har, d,
                            selection=refs, ground_truth_path=item.ground_truth_path,
                            thresholds=proc.qc_thresholds or None)

    return har, edit, submit_qc


def _film_chroma_shifts(settings, item, run_id: int, pending: list) -> dict:
    """Wait for every shot's colorization and plan the across-shots chroma shifts
    (``processing.harmonize_across_shots``); ``{shot id: FilmChromaShift}`` for shots that
    change. Kept (approved) shots are fixed anchors; failed shots are left out. A failure of
    this pass is logged and recorded, never fatal (the shots are then left unshifted).

    Each colorized shot's edge statistics come with its colorize result (gathered while the
    frames were written); the plan reads only the shots whose statistics are missing (kept
    shots, and results an older reel left in the stage cache)."""
    from reel.tasks.harmonize import harmonize_film_plan_task

    if not settings.processing.harmonize_across_shots or len(pending) < 2:
        return {}
    paths, fixed, known = [], [], []
    for entry in pending:
        plan = entry[1]
        if len(entry) == 2:
            paths.append(plan.restored_path if Path(plan.restored_path).is_file() else None)
            fixed.append(True)
            known.append(None)
            continue
        try:
            col = entry[5].result()
        except Exception:  # noqa: BLE001 - the shot fails on its own in _collect_shot
            col = None
        paths.append(col.out_path if col is not None else None)
        fixed.append(False)
        known.append(getattr(col, "edge_stats", None))
    try:
        fp = harmonize_film_plan_task(paths, fixed=fixed, edges=known)
    except Exception as exc:  # noqa: BLE001 - an optional refinement must not fail the item
        get_run_logger().warning("harmonization across shots skipped: %s", exc)
        record.add_event(settings, "harmonization across shots", "failure", item_id=item.id,
                         run_id=run_id, detail={"error": f"{type(exc).__name__}: {exc}"})
        return {}
    record.add_event(settings, "harmonization across shots", "success", item_id=item.id,
                     run_id=run_id, detail=fp.summary())
    return {entry[0].id: s for entry, s in zip(pending, fp.shifts)
            if len(entry) > 2 and not s.is_identity}


def _shot_keyer(settings, item, source, shot, plan):
    """``key(stage, registry stage, engine name, params, upstream keys)`` for one shot."""
    from reel.flows.record import engine_registries

    regs = engine_registries()
    try:
        output = str(Path(plan.work_dir).resolve().relative_to(settings.home))
    except ValueError:
        output = str(plan.work_dir)
    from reel.tasks.deflicker import DEFLICKERERS

    dfl = settings.engines.deflicker
    decode = {"decode_source": Path(source.path).name,
              "deinterlace": settings.processing.deinterlace,
              "deflicker": f"{dfl}=={DEFLICKERERS.get(dfl).version}"}

    def key(stage: str, registry: str | None, engine: str, params: dict,
            upstream: list[str] | tuple[str, ...] = ()) -> str:
        cls = regs[registry].get(engine) if registry else None
        return cache.stage_key(
            stage, source_sha256=item.source_sha256, start=shot.start, stop=shot.stop,
            engine=engine, engine_version=cls.version if cls else reel.__version__,
            weights_sha256=_weights_sha256(cls), params={**params, **decode},
            upstream=upstream, output=output, output_version=plan.output_version)

    return key


@functools.lru_cache(maxsize=64)
def _weights_sha256(cls) -> str | None:
    """sha256 of an engine's default weights (learned engines set it when constructed, so a
    retrained checkpoint under the same engine version still changes the cache key)."""
    if cls is None:
        return None
    sha = getattr(cls, "weights_sha256", None)
    if sha is None and getattr(cls, "uses_gpu", False):
        try:
            sha = cls().weights_sha256
        except Exception:  # noqa: BLE001 - a missing checkpoint fails in the stage itself
            sha = None
    return sha


@contextlib.contextmanager
def _stage_task(settings, keys: dict[str, str], base_task, stage: str,
                registry: str | None = None, engine: str | None = None):
    """The task to submit for ``stage``: device/GPU-slot wrapper for GPU-capable engines,
    cached under ``keys[stage]``; the ``with`` body (the submit) runs under Dask's
    ``GPU`` resource annotation when that applies."""
    from reel.flows.record import engine_registries

    cls = engine_registries()[registry].get(engine) if registry else None
    t = runners.gpu_stage_task(base_task, cls) if cls is not None else base_task
    t = t.with_options(**cache.task_options(settings, keys[stage]))
    with runners.gpu_submission(settings, bool(getattr(cls, "uses_gpu", False))):
        yield t


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
