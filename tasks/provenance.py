"""Provenance of an item: a JSON sidecar and a PREMIS 3 XML file, from plain event records.

Tasks never read the catalog: the flow (``reel.flows.deliver``) gathers the item's events,
reviews and deliverables from it and passes them here as plain dicts. Both files describe the
same record, built by :func:`build_record`:

``item``
    ``{"id", "name", "collection", "source_path", "source_sha256"}`` (more keys are kept).
``objects``
    files the events refer to, each ``{"id", "role", "name", "path", "sha256", "size_bytes",
    "format": {"name", "version"}, "derived_from": [object ids], "kind"}``; ``role`` is
    ``"original"``, ``"intermediate"``, ``"input"`` or ``"deliverable"``; only ``id`` is
    required.
``events``
    ``{"id", "type", "datetime", "outcome", "summary", "detail", "agents", "objects"}``:
    ``type`` a PREMIS event type label (``"ingestion"``, ``"fixity check"``, ``"creation"``,
    ``"validation"``, ``"normalization"``, a stage name …), ``datetime`` ISO 8601 (str or an
    aware :class:`~datetime.datetime`), ``outcome`` ``success``/``failure``/``warning``,
    ``detail`` any JSON-safe dict (parameters, inputs' checksums …), ``agents`` a list of
    ``{"id", "name", "type" (software/person/organization), "version", "notes": [..],
    "role"}`` and ``objects`` a list of ``{"id", "role"}`` (``source`` or ``outcome``).

PREMIS 3 layout written (namespace ``http://www.loc.gov/premis/v3``, version 3.0): one
``object`` (``xsi:type="premis:file"``) per object, then one ``event`` per event, then one
``agent`` per distinct agent; identifiers are of type ``local``; fixity is SHA-256; an
event's full ``detail`` is kept as JSON in a second ``eventDetailInformation/eventDetail``.
:func:`check_premis` verifies the structure (element order of the PREMIS 3 schema for the
elements used, required elements, identifiers that resolve). There is no XSD validation here
(no schema or validating parser is shipped); the element order follows the PREMIS 3.0 schema.

Example
-------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> rec = build_record(
...     {"id": 1, "name": "film", "collection": "c", "source_sha256": "ab" * 32},
...     [{"id": "original", "role": "original", "name": "film.mkv", "sha256": "ab" * 32}],
...     [{"id": "event-1", "type": "ingestion", "datetime": "2024-01-01T00:00:00+00:00",
...       "outcome": "success", "agents": [{"id": "reel-0.1.0", "name": "reel",
...       "type": "software", "version": "0.1.0"}], "objects": [{"id": "original"}]}],
...     reel_version="0.1.0", disclosure="colour is AI-derived by reel 0.1.0")
>>> check_premis(write_premis(d / "film.premis.xml", rec))
[]
>>> write_sidecar(d / "film.provenance.json", rec).name
'film.provenance.json'
"""

from __future__ import annotations

import json
import os
import secrets
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "PREMIS_NS",
    "XSI_NS",
    "PREMIS_SCHEMA_LOCATION",
    "ProvenanceError",
    "build_record",
    "write_sidecar",
    "premis_element",
    "write_premis",
    "check_premis",
    "events_of_type",
]

PREMIS_NS = "http://www.loc.gov/premis/v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
PREMIS_SCHEMA_LOCATION = f"{PREMIS_NS} https://www.loc.gov/standards/premis/premis.xsd"
SIDECAR_FORMAT = "reel provenance"
SIDECAR_VERSION = 1

_OUTCOMES = ("success", "failure", "warning")
_AGENT_TYPES = ("software", "person", "organization", "hardware")

ET.register_namespace("premis", PREMIS_NS)
ET.register_namespace("xsi", XSI_NS)


class ProvenanceError(ValueError):
    """An event or object record is malformed; the message says which and why."""


# --------------------------------------------------------------------------------------------
# the record
# --------------------------------------------------------------------------------------------


def _iso(value: Any, where: str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            raise ProvenanceError(f"{where}: datetime {value!r} has no time zone")
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ProvenanceError(f"{where}: {value!r} is not an ISO 8601 date-time") from exc
        if parsed.tzinfo is None:
            raise ProvenanceError(f"{where}: {value!r} has no time zone")
        return value
    raise ProvenanceError(f"{where}: missing datetime")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def build_record(item: Mapping[str, Any], objects: Sequence[Mapping[str, Any]],
                 events: Sequence[Mapping[str, Any]], *, reel_version: str,
                 disclosure: str) -> dict[str, Any]:
    """Check and normalise the provenance record of one item (see the module docstring).

    Events are ordered by date-time (then id); agents are collected from the events and
    de-duplicated by id (the first description of an id wins). Raises
    :class:`ProvenanceError` on duplicate or missing ids, unknown outcomes, naive date-times
    and links to objects that are not in ``objects``.

    Returns
    -------
    dict
        ``{"format", "format_version", "reel_version", "disclosure", "item", "objects",
        "events", "agents"}`` (JSON-safe).
    """
    objs: list[dict[str, Any]] = []
    seen_obj: set[str] = set()
    for i, o in enumerate(objects):
        oid = str(o.get("id") or "")
        if not oid:
            raise ProvenanceError(f"object {i} has no id")
        if oid in seen_obj:
            raise ProvenanceError(f"object id {oid!r} is used twice")
        seen_obj.add(oid)
        objs.append(_jsonable({**o, "id": oid}))
    for o in objs:
        for parent in o.get("derived_from") or []:
            if parent not in seen_obj:
                raise ProvenanceError(f"object {o['id']!r} is derived from unknown object "
                                      f"{parent!r}")

    evs: list[dict[str, Any]] = []
    agents: dict[str, dict[str, Any]] = {}
    seen_ev: set[str] = set()
    for i, e in enumerate(events):
        eid = str(e.get("id") or "")
        if not eid:
            raise ProvenanceError(f"event {i} has no id")
        if eid in seen_ev:
            raise ProvenanceError(f"event id {eid!r} is used twice")
        seen_ev.add(eid)
        etype = str(e.get("type") or "").strip()
        if not etype:
            raise ProvenanceError(f"event {eid!r} has no type")
        outcome = str(e.get("outcome") or "")
        if outcome not in _OUTCOMES:
            raise ProvenanceError(f"event {eid!r}: outcome {outcome!r} is not one of "
                                  f"{_OUTCOMES}")
        ev_agents = []
        for a in e.get("agents") or []:
            aid = str(a.get("id") or "")
            if not aid:
                raise ProvenanceError(f"event {eid!r} has an agent without id")
            atype = str(a.get("type") or "software")
            if atype not in _AGENT_TYPES:
                raise ProvenanceError(f"agent {aid!r}: type {atype!r} is not one of "
                                      f"{_AGENT_TYPES}")
            agents.setdefault(aid, _jsonable({
                "id": aid, "name": a.get("name") or aid, "type": atype,
                "version": a.get("version"), "notes": list(a.get("notes") or [])}))
            ev_agents.append({"id": aid, "role": a.get("role") or "executing program"})
        ev_objects = []
        for o in e.get("objects") or []:
            oid = str(o.get("id") or "")
            if oid not in seen_obj:
                raise ProvenanceError(f"event {eid!r} links to unknown object {oid!r}")
            ev_objects.append({"id": oid, "role": o.get("role") or "source"})
        evs.append(_jsonable({
            "id": eid, "type": etype, "datetime": _iso(e.get("datetime"), f"event {eid!r}"),
            "outcome": outcome, "summary": e.get("summary") or etype,
            "detail": e.get("detail") or {}, "agents": ev_agents, "objects": ev_objects}))
    evs.sort(key=lambda ev: (datetime.fromisoformat(ev["datetime"].replace("Z", "+00:00")),
                             ev["id"]))
    return {"format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION,
            "reel_version": reel_version, "disclosure": disclosure, "item": _jsonable(item),
            "objects": objs, "events": evs, "agents": list(agents.values())}


def _atomic_write(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_sidecar(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write the record as a JSON sidecar (UTF-8, indented, atomically); returns ``path``."""
    text = json.dumps(record, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    return _atomic_write(Path(path), text.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# PREMIS 3
# --------------------------------------------------------------------------------------------


def _q(tag: str) -> str:
    return f"{{{PREMIS_NS}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: Any = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, _q(tag), attrib)
    if text is not None:
        el.text = str(text)
    return el


def _identifier(parent: ET.Element, prefix: str, value: str, id_type: str = "local") -> None:
    ident = _sub(parent, prefix)
    # "objectIdentifier" -> "objectIdentifierType"/"objectIdentifierValue", etc.
    _sub(ident, f"{prefix}Type", id_type)
    _sub(ident, f"{prefix}Value", value)


def premis_element(record: Mapping[str, Any]) -> ET.Element:
    """The ``premis:premis`` element (PREMIS 3.0) of a record from :func:`build_record`."""
    root = ET.Element(_q("premis"), {"version": "3.0",
                                     f"{{{XSI_NS}}}schemaLocation": PREMIS_SCHEMA_LOCATION})
    links: dict[str, list[str]] = {}
    for ev in record["events"]:
        for o in ev["objects"]:
            links.setdefault(o["id"], []).append(ev["id"])

    for o in record["objects"]:
        obj = _sub(root, "object", **{f"{{{XSI_NS}}}type": "premis:file"})
        _identifier(obj, "objectIdentifier", o["id"])
        chars = _sub(obj, "objectCharacteristics")
        _sub(chars, "compositionLevel", 0)
        if o.get("sha256"):
            fx = _sub(chars, "fixity")
            _sub(fx, "messageDigestAlgorithm", "SHA-256")
            _sub(fx, "messageDigest", o["sha256"])
            _sub(fx, "messageDigestOriginator", "reel")
        if o.get("size_bytes") is not None:
            _sub(chars, "size", int(o["size_bytes"]))
        fmt = _sub(chars, "format")
        des = _sub(fmt, "formatDesignation")
        f = o.get("format") or {}
        _sub(des, "formatName", f.get("name") or "unknown")
        if f.get("version"):
            _sub(des, "formatVersion", f["version"])
        if o.get("role") in ("deliverable", "intermediate") and o.get("created_by"):
            app = _sub(chars, "creatingApplication")
            _sub(app, "creatingApplicationName", o["created_by"].get("name", "reel"))
            if o["created_by"].get("version"):
                _sub(app, "creatingApplicationVersion", o["created_by"]["version"])
        if o.get("name"):
            _sub(obj, "originalName", o["name"])
        if o.get("path"):
            st = _sub(obj, "storage")
            loc = _sub(st, "contentLocation")
            _sub(loc, "contentLocationType", "filepath")
            _sub(loc, "contentLocationValue", o["path"])
        for parent in o.get("derived_from") or []:
            rel = _sub(obj, "relationship")
            _sub(rel, "relationshipType", "derivation")
            _sub(rel, "relationshipSubType", "has source")
            _identifier(rel, "relatedObjectIdentifier", parent)
        for eid in links.get(o["id"], []):
            _identifier(obj, "linkingEventIdentifier", eid)

    for ev in record["events"]:
        e = _sub(root, "event")
        _identifier(e, "eventIdentifier", ev["id"])
        _sub(e, "eventType", ev["type"])
        _sub(e, "eventDateTime", ev["datetime"])
        info = _sub(e, "eventDetailInformation")
        _sub(info, "eventDetail", ev["summary"])
        if ev["detail"]:
            info = _sub(e, "eventDetailInformation")
            _sub(info, "eventDetail", "json: " + json.dumps(ev["detail"], sort_keys=True,
                                                            ensure_ascii=False))
        out = _sub(e, "eventOutcomeInformation")
        _sub(out, "eventOutcome", ev["outcome"])
        for a in ev["agents"]:
            la = _sub(e, "linkingAgentIdentifier")
            _sub(la, "linkingAgentIdentifierType", "local")
            _sub(la, "linkingAgentIdentifierValue", a["id"])
            _sub(la, "linkingAgentRole", a["role"])
        for o in ev["objects"]:
            lo = _sub(e, "linkingObjectIdentifier")
            _sub(lo, "linkingObjectIdentifierType", "local")
            _sub(lo, "linkingObjectIdentifierValue", o["id"])
            _sub(lo, "linkingObjectRole", o["role"])

    agent_events: dict[str, list[str]] = {}
    for ev in record["events"]:
        for a in ev["agents"]:
            agent_events.setdefault(a["id"], []).append(ev["id"])
    for a in record["agents"]:
        ag = _sub(root, "agent")
        _identifier(ag, "agentIdentifier", a["id"])
        _sub(ag, "agentName", a["name"])
        _sub(ag, "agentType", a["type"])
        if a.get("version"):
            _sub(ag, "agentVersion", a["version"])
        for note in a.get("notes") or []:
            _sub(ag, "agentNote", note)
        for eid in agent_events.get(a["id"], []):
            _identifier(ag, "linkingEventIdentifier", eid)
    return root


def write_premis(path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write the record as PREMIS 3 XML (UTF-8, indented, atomically); returns ``path``."""
    root = premis_element(record)
    ET.indent(root, space="  ")
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
    return _atomic_write(Path(path), data)


# --------------------------------------------------------------------------------------------
# structural check
# --------------------------------------------------------------------------------------------

#: Children (in schema order) allowed in each PREMIS 3 element reel writes; "+" = required
#: (at least one), "?" = optional single, "*" = optional repeatable, "1" = exactly one.
_CONTENT: dict[str, list[tuple[str, str]]] = {
    "premis": [("object", "+"), ("event", "*"), ("agent", "*"), ("rightsStatement", "*")],
    "object": [("objectIdentifier", "+"), ("preservationLevel", "*"),
               ("significantProperties", "*"), ("objectCharacteristics", "+"),
               ("originalName", "?"), ("storage", "*"), ("signatureInformation", "*"),
               ("environmentFunction", "*"), ("relationship", "*"),
               ("linkingEventIdentifier", "*"), ("linkingRightsStatementIdentifier", "*")],
    "objectIdentifier": [("objectIdentifierType", "1"), ("objectIdentifierValue", "1")],
    "objectCharacteristics": [("compositionLevel", "?"), ("fixity", "*"), ("size", "?"),
                              ("format", "+"), ("creatingApplication", "*"),
                              ("inhibitors", "*"), ("objectCharacteristicsExtension", "*")],
    "fixity": [("messageDigestAlgorithm", "1"), ("messageDigest", "1"),
               ("messageDigestOriginator", "?")],
    "format": [("formatDesignation", "?"), ("formatRegistry", "?"), ("formatNote", "*")],
    "formatDesignation": [("formatName", "1"), ("formatVersion", "?")],
    "creatingApplication": [("creatingApplicationName", "?"),
                            ("creatingApplicationVersion", "?"),
                            ("dateCreatedByApplication", "?"),
                            ("creatingApplicationExtension", "*")],
    "storage": [("contentLocation", "?"), ("storageMedium", "?")],
    "contentLocation": [("contentLocationType", "1"), ("contentLocationValue", "1")],
    "relationship": [("relationshipType", "1"), ("relationshipSubType", "1"),
                     ("relatedObjectIdentifier", "+"), ("relatedEventIdentifier", "*")],
    "relatedObjectIdentifier": [("relatedObjectIdentifierType", "1"),
                                ("relatedObjectIdentifierValue", "1"),
                                ("relatedObjectSequence", "?")],
    "linkingEventIdentifier": [("linkingEventIdentifierType", "1"),
                               ("linkingEventIdentifierValue", "1")],
    "event": [("eventIdentifier", "1"), ("eventType", "1"), ("eventDateTime", "1"),
              ("eventDetailInformation", "*"), ("eventOutcomeInformation", "*"),
              ("linkingAgentIdentifier", "*"), ("linkingObjectIdentifier", "*")],
    "eventIdentifier": [("eventIdentifierType", "1"), ("eventIdentifierValue", "1")],
    "eventDetailInformation": [("eventDetail", "?"), ("eventDetailExtension", "*")],
    "eventOutcomeInformation": [("eventOutcome", "?"), ("eventOutcomeDetail", "*")],
    "linkingAgentIdentifier": [("linkingAgentIdentifierType", "1"),
                               ("linkingAgentIdentifierValue", "1"), ("linkingAgentRole", "*")],
    "linkingObjectIdentifier": [("linkingObjectIdentifierType", "1"),
                                ("linkingObjectIdentifierValue", "1"),
                                ("linkingObjectRole", "*")],
    "agent": [("agentIdentifier", "+"), ("agentName", "*"), ("agentType", "?"),
              ("agentVersion", "?"), ("agentNote", "*"), ("agentExtension", "*"),
              ("linkingEventIdentifier", "*"), ("linkingRightsStatementIdentifier", "*")],
    "agentIdentifier": [("agentIdentifierType", "1"), ("agentIdentifierValue", "1")],
}


def _check_children(el: ET.Element, where: str, problems: list[str]) -> None:
    local = el.tag.split("}", 1)[1] if el.tag.startswith("{") else el.tag
    spec = _CONTENT.get(local)
    if spec is None:
        if len(el) and local not in ("eventDetailExtension", "eventOutcomeDetail",
                                     "objectCharacteristicsExtension", "agentExtension"):
            problems.append(f"{where}: unexpected children in <{local}>")
        elif not len(el) and not (el.text or "").strip():
            problems.append(f"{where}: <{local}> is empty")
        return
    names = []
    for child in el:
        if not child.tag.startswith(f"{{{PREMIS_NS}}}"):
            problems.append(f"{where}: <{child.tag}> is not in the PREMIS 3 namespace")
            return
        names.append(child.tag.split("}", 1)[1])
    pos = 0
    allowed = [n for n, _ in spec]
    for name in names:
        if name not in allowed:
            problems.append(f"{where}: <{name}> is not allowed in <{local}>")
            return
        idx = allowed.index(name)
        if idx < pos:
            problems.append(f"{where}: <{name}> is out of order in <{local}> "
                            f"(expected order: {', '.join(allowed)})")
            return
        pos = idx
    for name, card in spec:
        n = names.count(name)
        if card in ("+", "1") and n == 0:
            problems.append(f"{where}: <{local}> lacks required <{name}>")
        if card in ("1", "?") and n > 1:
            problems.append(f"{where}: <{local}> has {n} <{name}> (at most one allowed)")
    for i, child in enumerate(el):
        _check_children(child, f"{where}/{names[i]}[{i}]", problems)


def _values(root: ET.Element, path: str) -> list[str]:
    return [(e.text or "").strip() for e in root.findall(path, {"p": PREMIS_NS})]


def check_premis(source: str | os.PathLike | ET.Element) -> list[str]:
    """Problems found in a PREMIS 3 document (an empty list means it passed).

    Checks: well-formed XML; root ``premis:premis`` in the PREMIS 3 namespace with
    ``version="3.0"``; every element reel writes has its required children in schema order;
    objects carry ``xsi:type`` (file/representation/bitstream/intellectualEntity); event
    date-times are ISO 8601 with a time zone; identifiers are unique; every
    ``linkingAgentIdentifier``, ``linkingObjectIdentifier``, ``relatedObjectIdentifier`` and
    ``linkingEventIdentifier`` resolves to an element of the document.
    """
    problems: list[str] = []
    if isinstance(source, ET.Element):
        root = source
    else:
        try:
            root = ET.parse(str(source)).getroot()
        except ET.ParseError as exc:
            return [f"not well-formed XML: {exc}"]
    if root.tag != _q("premis"):
        return [f"root element is {root.tag}, expected {{{PREMIS_NS}}}premis"]
    if root.get("version") != "3.0":
        problems.append(f"premis/@version is {root.get('version')!r}, expected '3.0'")
    _check_children(root, "premis", problems)
    ns = {"p": PREMIS_NS}
    for i, obj in enumerate(root.findall("p:object", ns)):
        t = obj.get(f"{{{XSI_NS}}}type", "")
        if t not in ("premis:file", "premis:representation", "premis:bitstream",
                     "premis:intellectualEntity"):
            problems.append(f"object {i}: xsi:type {t!r} is not a PREMIS object category")
    for i, dt in enumerate(_values(root, "p:event/p:eventDateTime")):
        try:
            parsed = datetime.fromisoformat(dt.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                problems.append(f"event {i}: eventDateTime {dt!r} has no time zone")
        except ValueError:
            problems.append(f"event {i}: eventDateTime {dt!r} is not ISO 8601")
    for kind, path in (("object", "p:object/p:objectIdentifier/p:objectIdentifierValue"),
                       ("event", "p:event/p:eventIdentifier/p:eventIdentifierValue"),
                       ("agent", "p:agent/p:agentIdentifier/p:agentIdentifierValue")):
        vals = _values(root, path)
        dupes = sorted({v for v in vals if vals.count(v) > 1})
        if dupes:
            problems.append(f"duplicate {kind} identifiers: {dupes}")
    objects = set(_values(root, "p:object/p:objectIdentifier/p:objectIdentifierValue"))
    events = set(_values(root, "p:event/p:eventIdentifier/p:eventIdentifierValue"))
    agents = set(_values(root, "p:agent/p:agentIdentifier/p:agentIdentifierValue"))
    for ref, known, label in (
            (".//p:linkingAgentIdentifier/p:linkingAgentIdentifierValue", agents, "agent"),
            (".//p:linkingObjectIdentifier/p:linkingObjectIdentifierValue", objects, "object"),
            (".//p:relatedObjectIdentifier/p:relatedObjectIdentifierValue", objects, "object"),
            (".//p:linkingEventIdentifier/p:linkingEventIdentifierValue", events, "event")):
        missing = sorted(set(_values(root, ref)) - known)
        if missing:
            problems.append(f"links to unknown {label}s: {missing[:5]}")
    return problems


def events_of_type(record: Mapping[str, Any], event_type: str) -> list[dict[str, Any]]:
    """The record's events of one type (convenience for callers and tests)."""
    return [e for e in record["events"] if e["type"] == event_type]
