"""Delivering an item: deliverables, conformance, fixity, provenance (``reel deliver ITEM``).

The same code ends every restore run (:func:`reel.flows.restore.restore_item`) and runs on its
own as ``reel deliver ITEM`` (:func:`deliver_item_flow`, which re-makes the deliverables from
the shots restored earlier), so both produce the same set:

1. :func:`prepare_decode_source` (start of a run): the original, or a normalised constant-rate
   / deinterlaced intermediate of it (the original is only read), with one event per unusual
   condition of the source (VFR, interlacing, rotation, odd size, audio layout …).
2. :func:`deliver_and_record`: master (FFV1/MKV + framemd5), mezzanine (ProRes 422 HQ/MOV),
   access copy (H.264/MP4), each verified; MediaConch conformance of the master against
   ``deploy/mediaconch/reel-ffv1-master.xml`` (a ``validation`` event; a failing master fails
   the item); the deliverables and their ``creation`` events; the original's sha256 checked
   again (``fixity check``); then the JSON sidecar and PREMIS 3 XML of the item's whole
   history (:func:`write_provenance`), recorded as deliverables too.

Like every flow module, this is where the catalog is read and written; the tasks it calls take
paths and plain data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow

import reel
from reel.config import Settings, get_settings
from reel.flows import record
from reel.tasks import provenance
from reel.tasks.deliver import (
    DeliverableError,
    DeliveredFile,
    DeliveredItem,
    check_conformance_task,
    deliver_copies_task,
    deliver_master_task,
)
from reel.tasks.media import (
    DecodeSource,
    FixityError,
    prepare_source_task,
    probe_and_fixity_task,
    sha256_file,
    verify_fixity_task,
)

__all__ = [
    "MEDIACONCH_POLICY",
    "mediaconch_policy",
    "disclosure_metadata",
    "item_work_dir",
    "find_item",
    "prepare_decode_source",
    "restored_shot_paths",
    "deliver_and_record",
    "gather_provenance",
    "write_provenance",
    "deliver_item_flow",
]

#: The MediaConch policy every master is checked against (shipped in the repository).
MEDIACONCH_POLICY = Path(__file__).resolve().parents[1] / "deploy" / "mediaconch" / \
    "reel-ffv1-master.xml"

#: Stage events recorded per shot by the restore flow (see flows/restore.py).
STAGE_EVENTS = ("segmentation", "references", "colorization", "harmonization", "qc",
                "regional_edit")
#: Stages whose inputs include the shot's reference stills.
_REFERENCE_STAGES = ("references", "colorization", "harmonization")
#: Events made by people (reviewers' audit log, see reel.db.reviews.AUDIT_EVENT_TYPES).
_PERSON_EVENTS = ("quality review", "reference upload", "delivery gate override")


class DeliveryError(RuntimeError):
    """An item cannot be delivered (unknown item, shots not restored …); says what to do."""


def mediaconch_policy() -> Path | None:
    """The policy file (``REEL_MEDIACONCH_POLICY`` overrides the shipped one), None if absent."""
    path = Path(os.environ.get("REEL_MEDIACONCH_POLICY") or MEDIACONCH_POLICY)
    return path if path.is_file() else None


def disclosure_metadata(item: record.ItemRef) -> dict[str, str]:
    """Container tags of every deliverable: the AI-colour disclosure first of all."""
    return {
        "comment": reel.DISCLOSURE,
        "description": f"{reel.DISCLOSURE}; source sha256 {item.source_sha256}",
        "encoded_by": f"reel {reel.__version__}",
        "title": item.name,
    }


def item_work_dir(s: Settings, item: record.ItemRef) -> Path:
    """``<home>/work/<collection>/item-NNNNN`` (shot folders and the normalised source)."""
    return s.work_dir / item.collection / f"item-{item.id:05d}"


def find_item(s: Settings, name: str, collection: str | None = None) -> record.ItemRef:
    """The item called ``name`` (in ``collection`` when given); :class:`DeliveryError` if
    there is none or the name is ambiguous."""
    from sqlalchemy import select

    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        q = select(m.Item.id, m.Collection.name).join(m.Collection).where(m.Item.name == name)
        if collection:
            q = q.where(m.Collection.name == collection)
        rows = db.execute(q.order_by(m.Collection.name)).all()
    if not rows:
        where = f" in collection {collection!r}" if collection else ""
        raise DeliveryError(f"no item named {name!r}{where}; list items with: reel status "
                            f"COLLECTION")
    if len(rows) > 1:
        raise DeliveryError(f"several collections have an item named {name!r} "
                            f"({', '.join(c for _, c in rows)}); add --collection NAME")
    return record.load_item(s, rows[0][0])


# --------------------------------------------------------------------------------------------
# 1. decode source
# --------------------------------------------------------------------------------------------


def prepare_decode_source(s: Settings, item: record.ItemRef, run_id: int, fixity: Any,
                          workdir: Path | None = None) -> DecodeSource:
    """Pick what the stages decode (original or normalised intermediate); record the notes.

    ``fixity`` is the result of ``probe_and_fixity_task`` on the original (deep probe +
    sha256). Each note of :func:`reel.tasks.media.prepare_source` becomes an event of this
    run (``metadata extraction`` per unusual condition, ``normalization`` when an
    intermediate was made).
    """
    workdir = workdir or item_work_dir(s, item)
    source = prepare_source_task(item.source_path, workdir / "source", info=fixity.info,
                                 sha256=fixity.sha256, deinterlace=s.processing.deinterlace)
    for note in source.notes:
        tool = note["detail"].get("tool")
        record.add_event(s, note["event_type"], note["outcome"], item_id=item.id, run_id=run_id,
                         agent_name=f"{record.agent()} / {tool}" if tool else None,
                         detail=note["detail"])
    return source


def restored_shot_paths(s: Settings, item: record.ItemRef, n_frames: int) -> list[Path]:
    """The current restored output of every shot, in order (for ``reel deliver``).

    Shots must tile ``[0, n_frames)``; each one's ``restored.mkv`` is in the folder of its
    current output version (``shot-NNNN/`` or ``shot-NNNN/v<n>/``). Raises
    :class:`DeliveryError` naming the first shot that is missing.
    """
    from sqlalchemy import select

    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        rows = [(sh.index, sh.start_frame, sh.stop_frame, getattr(sh, "output_version", 1) or 1)
                for sh in db.scalars(select(m.Shot).where(m.Shot.item_id == item.id)
                                     .order_by(m.Shot.index))]
    if not rows:
        raise DeliveryError(f"item {item.name!r} has no shots yet; restore it first: reel run "
                            f"{item.collection} --item {item.name}")
    base = item_work_dir(s, item)
    paths, expect = [], 0
    for index, start, stop, version in rows:
        if start != expect:
            raise DeliveryError(f"shot {index} of {item.name!r} starts at frame {start}, "
                                f"expected {expect}; the shot list has a gap or overlap")
        expect = stop
        folder = base / f"shot-{index:04d}"
        if version > 1:
            folder = folder / f"v{version}"
        path = folder / "restored.mkv"
        if not path.is_file():
            raise DeliveryError(f"shot {index} of {item.name!r} has no restored output "
                                f"({path}); restore it first: reel run {item.collection} "
                                f"--item {item.name}")
        paths.append(path)
    if expect != n_frames:
        raise DeliveryError(f"the shots of {item.name!r} end at frame {expect} but the film "
                            f"has {n_frames} frames; restore it again: reel run "
                            f"{item.collection} --item {item.name}")
    return paths


# --------------------------------------------------------------------------------------------
# 2. deliverables, conformance, fixity, provenance
# --------------------------------------------------------------------------------------------


def deliver_and_record(s: Settings, item: record.ItemRef, run_id: int, source: DecodeSource,
                       shot_paths: list[Path]) -> DeliveredItem:
    """Make, check and record the item's deliverables; see the module docstring.

    Raises
    ------
    DeliverableError
        A deliverable failed verification, or the master fails the MediaConch policy (the
        ``validation`` failure is recorded first).
    FixityError
        The original changed during the run.
    """
    out_dir = s.deliverables_dir / item.collection / item.name
    common = {"info": source.info, "stem": item.name, "metadata": disclosure_metadata(item),
              "audio_info": source.original}
    made = deliver_master_task(shot_paths, item.source_path, out_dir, **common)
    master = next(f for f in made.files if f.kind == "master")
    # MediaConch checks the master while the mezzanine and access copy are encoded from it
    checking = check_conformance_task.submit(master.path, mediaconch_policy())
    delivered = deliver_copies_task(made, item.source_path, out_dir, **common)
    conf = checking.result()
    outcome = "warning" if not conf.checked else ("success" if conf.passed else "failure")
    record.add_event(s, "validation", outcome, item_id=item.id, run_id=run_id,
                     agent_name=f"{record.agent()} / {conf.tool}" if conf.tool else None,
                     detail={"file": str(master.path), "sha256": master.sha256,
                             "kind": "master", **conf.to_detail()})
    if conf.checked and not conf.passed:
        raise DeliverableError(f"the master {master.path.name} fails MediaConch: "
                               f"{conf.summary}")
    record.store_deliverables(s, item.id, run_id, delivered)
    verify_fixity_task(item.source_path, expected_sha256=item.source_sha256)
    record.fixity_verified(s, item.id, run_id, item.source_sha256)
    prov = write_provenance(s, item, run_id, delivered, out_dir, source.sha256)
    record.store_deliverables(s, item.id, run_id, prov)
    return DeliveredItem(files=list(delivered.files) + list(prov.files), inputs=delivered.inputs)


def _agent(agent_id: str, name: str, kind: str = "software", version: str | None = None,
           role: str = "executing program", notes: list[str] | None = None) -> dict[str, Any]:
    return {"id": agent_id, "name": name, "type": kind, "version": version, "role": role,
            "notes": notes or []}


def _reel_agent(role: str = "executing program") -> dict[str, Any]:
    return _agent(f"reel-{reel.__version__}", "reel", version=reel.__version__, role=role)


def _tool_agent(tool: str, role: str = "executing program") -> dict[str, Any]:
    """An agent from "ffmpeg 5.1.9" / "MediaConch 23.03" style strings."""
    name, _, version = " ".join(tool.split()).rpartition(" ")
    if not name:
        name, version = tool.strip(), ""
    return _agent(f"{name.lower().replace(' ', '-')}-{version or 'unknown'}", name,
                  version=version or None, role=role)


def _agents_from_string(agent: str) -> list[dict[str, Any]]:
    """Agents of a catalog event's ``agent`` column ("reel 0.1.0 / engine 2", "ana" …)."""
    parts = [p.strip() for p in (agent or "").split(" / ") if p.strip()]
    out = []
    for i, p in enumerate(parts):
        if p.startswith("reel "):
            ver = p.split(" ", 1)[1]
            out.append(_agent(f"reel-{ver}", "reel", version=ver,
                              role="executing program" if len(parts) == 1
                              else "orchestrating program"))
        elif i == 0:
            out.append(_agent(f"person-{p}", p, kind="person", role="implementer"))
        else:
            out.append(_tool_agent(p))
    return out


def _engine_agent(stage: str, name: str) -> dict[str, Any]:
    """Agent of a registered engine (version from its registry when it is still there)."""
    try:
        version = str(record.engine_registries()[stage].get(name).version)
    except Exception:  # noqa: BLE001 - an engine removed since: keep the name only
        version = None
    return _agent(f"engine-{name}-{version or 'unknown'}", name, version=version)


def _format_of(kind: str) -> dict[str, str | None]:
    return {"master": {"name": "FFV1 in Matroska", "version": "FFV1 3"},
            "framemd5": {"name": "FFmpeg framemd5", "version": "2"},
            "mezzanine": {"name": "Apple ProRes 422 HQ in QuickTime", "version": None},
            "access": {"name": "H.264 (AVC) in MP4", "version": None},
            "restored": {"name": "FFV1 in Matroska", "version": "FFV1 3"},
            }.get(kind, {"name": "unknown", "version": None})


def gather_provenance(s: Settings, item: record.ItemRef, delivered: DeliveredItem,
                      decode_sha256: str | None = None) -> dict[str, Any]:
    """Read the item's history from the catalog and build its provenance record.

    Objects: the original, normalised intermediates, reference stills, the restored shots the
    master was made from and the deliverables of ``delivered``. Events: every catalog event
    of the item (ingestion, fixity checks, source notes, shot detection, each stage of each
    shot with its engine, version, weights sha256, parameters and inputs' checksums, reviews,
    re-runs, creations, validations) plus reviewer decisions of the ``reviews`` table not
    already logged as events. ``decode_sha256`` is the sha256 of what this run's stages
    decoded (a normalised intermediate; None or the original's: the original). Returns
    :func:`reel.tasks.provenance.build_record`'s record.
    """
    from sqlalchemy import select

    from reel.db import models as m
    from reel.db.session import session_scope

    with session_scope(s.database_url) as db:
        it = db.get(m.Item, item.id)
        probe = dict(it.probe or {})
        shots = {sh.id: (sh.index, sh.start_frame, sh.stop_frame) for sh in it.shots}
        refs_of_shot: dict[int, list[tuple[str, str, int, bool]]] = {}
        for sh in it.shots:
            refs_of_shot[sh.id] = [(r.reference.path, r.reference.sha256, r.rank, r.pinned)
                                   for r in sh.references]
        events = [(e.id, e.event_type, e.created_at, e.outcome.value, e.agent, dict(e.detail or {}),
                   e.shot_id, e.run_id)
                  for e in db.scalars(select(m.Event).where(m.Event.item_id == item.id)
                                      .order_by(m.Event.id))]
        stages = {}
        for r in db.scalars(select(m.StageResult).where(m.StageResult.item_id == item.id)):
            stages[(r.run_id, r.shot_id, r.stage, r.output_path)] = (
                r.engine, r.engine_version, r.weights_sha256, r.params_hash)
        reviews = [(r.id, r.shot_id, r.reviewer, r.decision.value, r.note, r.created_at,
                    r.version)
                   for r in db.scalars(select(m.Review).join(m.Shot)
                                       .where(m.Shot.item_id == item.id).order_by(m.Review.id))]

    # ---- objects
    objects: dict[str, dict[str, Any]] = {}
    src = Path(item.source_path)
    objects["original"] = {
        "id": "original", "role": "original", "name": src.name, "path": str(src),
        "sha256": item.source_sha256,
        "size_bytes": src.stat().st_size if src.exists() else None,
        "format": {"name": f"{probe.get('video_codec', 'video')} in {probe.get('container', '?')}",
                   "version": None}}
    decode_of_run: dict[int | None, str] = {}
    for _id, etype, _t, _o, _a, detail, _s, run_id in events:
        out = detail.get("output") if etype == "normalization" else None
        if isinstance(out, dict) and out.get("sha256"):
            oid = f"normalised-{out['sha256'][:12]}"
            objects.setdefault(oid, {
                "id": oid, "role": "intermediate", "name": Path(out["path"]).name,
                "path": out["path"], "sha256": out["sha256"],
                "size_bytes": Path(out["path"]).stat().st_size
                if Path(out["path"]).exists() else None,
                "format": {"name": "FFV1 in Matroska", "version": "FFV1 3"},
                "derived_from": ["original"], "created_by": {"name": "reel",
                                                             "version": reel.__version__}})
            decode_of_run[run_id] = oid
    for refs in refs_of_shot.values():
        for path, sha, _rank, _pinned in refs:
            oid = f"reference-{sha[:12]}"
            objects.setdefault(oid, {"id": oid, "role": "input", "name": Path(path).name,
                                     "path": path, "sha256": sha,
                                     "format": {"name": Path(path).suffix.lstrip(".") or "image",
                                                "version": None}})
    decode_id = "original"
    if decode_sha256 and decode_sha256 != item.source_sha256 \
            and f"normalised-{decode_sha256[:12]}" in objects:
        decode_id = f"normalised-{decode_sha256[:12]}"
    deliverable_ids: dict[str, str] = {}
    restored_ids = []
    for k, inp in enumerate(delivered.inputs):
        oid = f"restored-shot-{k:04d}"
        restored_ids.append(oid)
        objects[oid] = {"id": oid, "role": "intermediate", "name": Path(inp["path"]).name,
                        "path": inp["path"], "sha256": inp["sha256"],
                        "size_bytes": Path(inp["path"]).stat().st_size
                        if Path(inp["path"]).exists() else None,
                        "format": _format_of("restored"),
                        "derived_from": [decode_id],
                        "created_by": {"name": "reel", "version": reel.__version__}}
    for f in delivered.files:
        oid = f.kind
        deliverable_ids[f.sha256] = oid
        parents = {"master": restored_ids + (["original"] if (f.detail or {}).get("audio")
                                             else []),
                   "framemd5": ["master"]}.get(f.kind, ["master"] + (
                       ["original"] if (f.detail or {}).get("audio_codecs") else []))
        objects[oid] = {"id": oid, "role": "deliverable", "kind": f.kind, "name": f.path.name,
                        "path": str(f.path), "sha256": f.sha256,
                        "size_bytes": f.path.stat().st_size if f.path.exists() else None,
                        "format": _format_of(f.kind), "derived_from": parents,
                        "created_by": {"name": "reel", "version": reel.__version__}}

    # ---- events
    out_events: list[dict[str, Any]] = []
    latest_run_of_shot: dict[int, int] = {}
    for _id, etype, _t, _o, _a, _d, shot_id, run_id in events:
        if etype in STAGE_EVENTS and shot_id is not None and run_id is not None:
            latest_run_of_shot[shot_id] = max(latest_run_of_shot.get(shot_id, 0), run_id)
    logged_reviews = set()
    for eid, etype, when, outcome, agent, detail, shot_id, run_id in events:
        detail = dict(detail)
        links: list[dict[str, str]] = []
        agents = _agents_from_string(agent)
        summary = etype
        if shot_id is not None and shot_id in shots:
            index, start, stop = shots[shot_id]
            detail.setdefault("shot", {"index": index, "frames": [start, stop]})
            summary = f"{etype} of shot {index} (frames [{start}, {stop}))"
        if etype in STAGE_EVENTS or etype == "shot detection":
            decode = decode_of_run.get(run_id, "original")
            inputs = [{"object": decode, "sha256": objects[decode]["sha256"],
                       "role": "decode source",
                       **({"frames": detail["shot"]["frames"]} if "shot" in detail else {})}]
            links.append({"id": decode, "role": "source"})
            if etype in _REFERENCE_STAGES and shot_id is not None \
                    and latest_run_of_shot.get(shot_id) == run_id:
                for path, sha, rank, pinned in refs_of_shot.get(shot_id, []):
                    rid = f"reference-{sha[:12]}"
                    inputs.append({"object": rid, "sha256": sha, "role": "reference",
                                   "rank": rank, "pinned": pinned})
                    links.append({"id": rid, "role": "source"})
            detail["inputs"] = inputs
            if etype == "shot detection" and len(agents) > 1:
                agents[1] = _engine_agent("shots", agents[1]["name"])
            eng = stages.get((run_id, shot_id, etype, detail.get("output")))
            if eng is not None:
                name, version, weights, _h = eng
                notes = [f"weights sha256 {weights}"] if weights else []
                agents = [_reel_agent("orchestrating program"),
                          _agent(f"engine-{name}-{version}" + (f"-w{weights[:12]}" if weights
                                                               else ""),
                                 name, version=str(version), notes=notes)]
                summary += f" by {name} {version}"
        elif etype == "creation":
            oid = deliverable_ids.get(detail.get("sha256", ""))
            if oid is not None:
                links.append({"id": oid, "role": "outcome"})
                for parent in objects[oid].get("derived_from", []):
                    links.append({"id": parent, "role": "source"})
            tool = (detail.get("made") or {}).get("tool")
            if tool:
                agents = [_reel_agent("orchestrating program"), _tool_agent(tool)]
            summary = (f"creation of the {detail.get('kind', 'file')} "
                       f"{Path(detail.get('path', '')).name}")
        elif etype == "validation":
            oid = deliverable_ids.get(detail.get("sha256", ""))
            if oid is not None:
                links.append({"id": oid, "role": "source"})
            if detail.get("tool"):
                agents = [_reel_agent("orchestrating program"),
                          _tool_agent(detail["tool"], role="validator")]
            summary = f"validation: {detail.get('summary', '')}"
        elif etype == "normalization":
            links.append({"id": "original", "role": "source"})
            out = detail.get("output") or {}
            if out.get("sha256"):
                links.append({"id": f"normalised-{out['sha256'][:12]}", "role": "outcome"})
            summary = f"normalization: {detail.get('reason', '')}"
        elif etype in ("ingestion", "message digest calculation", "fixity check",
                       "metadata extraction", "restoration"):
            links.append({"id": "original", "role": "source"})
            if etype == "metadata extraction":
                summary = f"source check: {detail.get('condition', '')}"
            elif etype == "fixity check":
                summary = f"fixity check of the original ({detail.get('when', '')})"
        if etype in _PERSON_EVENTS:
            agents = [_agent(f"person-{agent}", agent, kind="person", role="implementer")]
            if detail.get("review_id") is not None:
                logged_reviews.add(int(detail["review_id"]))
            if detail.get("decision"):
                summary = f"{etype}: {detail['decision']}" + (
                    f" of shot {detail['shot']['index']}" if "shot" in detail else "")
        out_events.append({"id": f"event-{eid}", "type": etype, "datetime": when,
                           "outcome": outcome, "summary": summary, "detail": detail,
                           "agents": agents, "objects": links})
    for rid, shot_id, reviewer, decision, note, when, version in reviews:
        if rid in logged_reviews:
            continue
        index, start, stop = shots.get(shot_id, (None, None, None))
        out_events.append({
            "id": f"review-{rid}", "type": "quality review", "datetime": when,
            "outcome": "success", "summary": f"quality review: {decision} of shot {index}",
            "detail": {"decision": decision, "note": note, "review_id": rid,
                       "shot": {"index": index, "frames": [start, stop]},
                       "shot_version": version},
            "agents": [_agent(f"person-{reviewer}", reviewer, kind="person", role="implementer")],
            "objects": []})
    item_dict = {"id": item.id, "name": item.name, "collection": item.collection,
                 "source_path": str(item.source_path), "source_sha256": item.source_sha256,
                 "probe": probe}
    return provenance.build_record(item_dict, list(objects.values()), out_events,
                                   reel_version=reel.__version__, disclosure=reel.DISCLOSURE)


def write_provenance(s: Settings, item: record.ItemRef, run_id: int, delivered: DeliveredItem,
                     out_dir: Path, decode_sha256: str | None = None) -> DeliveredItem:
    """Write ``<name>.provenance.json`` and ``<name>.premis.xml``; check the PREMIS file.

    Raises :class:`DeliverableError` when the PREMIS document fails
    :func:`reel.tasks.provenance.check_premis` (it is then removed).
    """
    rec = gather_provenance(s, item, delivered, decode_sha256)
    side = provenance.write_sidecar(out_dir / f"{item.name}.provenance.json", rec)
    premis = provenance.write_premis(out_dir / f"{item.name}.premis.xml", rec)
    problems = provenance.check_premis(premis)
    if problems:
        premis.unlink(missing_ok=True)
        raise DeliverableError(f"the PREMIS file of {item.name} is not valid: "
                               f"{'; '.join(problems[:5])}")
    n = {"events": len(rec["events"]), "objects": len(rec["objects"]),
         "agents": len(rec["agents"])}
    return DeliveredItem(files=[
        DeliveredFile("sidecar", side, sha256_file(side), None, None, None,
                      {"format": "reel provenance JSON", **n}),
        DeliveredFile("premis", premis, sha256_file(premis), None, None, None,
                      {"format": "PREMIS 3.0 XML", **n}),
    ])


# --------------------------------------------------------------------------------------------
# 3. `reel deliver ITEM`
# --------------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    item: str
    collection: str
    run_id: int
    files: list[DeliveredFile]
    conformance: str


@flow(name="deliver-item", log_prints=True)
def deliver_item_flow(item_id: int) -> DeliveryReport:
    """Re-make the deliverables of an item from the shots restored earlier, in a new run.

    Checks the original's fixity first (deep probe), prepares the decode source as a restore
    run does, finds each shot's current restored output and calls :func:`deliver_and_record`.
    A fixity failure marks the item failed; other failures fail the run and leave the item's
    status as it was.
    """
    s = get_settings()
    item = record.load_item(s, item_id)
    run_id = record.start_run(s, item.collection)
    try:
        fixity = probe_and_fixity_task(item.source_path, expected_sha256=item.source_sha256)
        record.store_probe(s, item.id, run_id, fixity)
        source = prepare_decode_source(s, item, run_id, fixity)
        shot_paths = restored_shot_paths(s, item, source.info.n_frames)
        delivered = deliver_and_record(s, item, run_id, source, shot_paths)
        record.set_item_status(s, item.id, "delivered")
    except FixityError as exc:
        record.fail_item(s, item.id, run_id, f"{type(exc).__name__}: {exc}")
        record.finish_run(s, run_id, "failed", error=str(exc))
        raise
    except Exception as exc:
        record.add_event(s, "creation", "failure", item_id=item.id, run_id=run_id,
                         detail={"what": "deliverables", "reason": f"{type(exc).__name__}: "
                                                                   f"{exc}"})
        record.finish_run(s, run_id, "failed", error=str(exc))
        raise
    record.finish_run(s, run_id, "completed")
    return DeliveryReport(item=item.name, collection=item.collection, run_id=run_id,
                          files=delivered.files,
                          conformance=record.latest_conformance(s, item.id) or "not checked")
