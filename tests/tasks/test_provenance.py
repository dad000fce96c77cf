"""Tests of reel.tasks.provenance: the JSON sidecar and the PREMIS 3 XML writer and checker."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from reel.tasks.provenance import (
    PREMIS_NS,
    XSI_NS,
    ProvenanceError,
    build_record,
    check_premis,
    events_of_type,
    premis_element,
    write_premis,
    write_sidecar,
)

NS = {"p": PREMIS_NS}
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
SHA_SRC, SHA_REF, SHA_SHOT, SHA_MASTER = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
REEL = {"id": "reel-0.1.0", "name": "reel", "type": "software", "version": "0.1.0"}


def sample_record() -> dict:
    item = {"id": 7, "name": "film", "collection": "newsreels", "source_path": "/a/film.mkv",
            "source_sha256": SHA_SRC}
    objects = [
        {"id": "original", "role": "original", "name": "film.mkv", "path": "/a/film.mkv",
         "sha256": SHA_SRC, "size_bytes": 1234, "format": {"name": "ffv1 in matroska"}},
        {"id": "reference-bbbb", "role": "input", "name": "ref.png", "path": "/r/ref.png",
         "sha256": SHA_REF, "format": {"name": "png"}},
        {"id": "restored-shot-0000", "role": "intermediate", "path": "/w/restored.mkv",
         "sha256": SHA_SHOT, "derived_from": ["original"],
         "format": {"name": "FFV1 in Matroska", "version": "FFV1 3"},
         "created_by": {"name": "reel", "version": "0.1.0"}},
        {"id": "master", "role": "deliverable", "kind": "master", "name": "film.master.mkv",
         "path": "/d/film.master.mkv", "sha256": SHA_MASTER, "size_bytes": 99,
         "derived_from": ["restored-shot-0000", "original"],
         "format": {"name": "FFV1 in Matroska", "version": "FFV1 3"},
         "created_by": {"name": "reel", "version": "0.1.0"}},
    ]
    engine = {"id": "engine-exemplar-propagate-2-wdeadbeef0000", "name": "exemplar-propagate",
              "type": "software", "version": "2", "notes": ["weights sha256 " + "e" * 64]}
    events = [
        # given out of order on purpose: the record sorts by date-time
        {"id": "event-5", "type": "creation", "datetime": T0 + timedelta(minutes=5),
         "outcome": "success", "summary": "creation of the master",
         "detail": {"kind": "master", "sha256": SHA_MASTER,
                    "inputs": [{"path": "/w/restored.mkv", "sha256": SHA_SHOT}]},
         "agents": [{**REEL, "role": "orchestrating program"},
                    {"id": "ffmpeg-5.1.9", "name": "ffmpeg", "version": "5.1.9"}],
         "objects": [{"id": "master", "role": "outcome"},
                     {"id": "restored-shot-0000", "role": "source"}]},
        {"id": "event-1", "type": "ingestion", "datetime": T0.isoformat(), "outcome": "success",
         "agents": [REEL], "objects": [{"id": "original"}]},
        {"id": "event-2", "type": "message digest calculation", "datetime": T0 + timedelta(1),
         "outcome": "success", "detail": {"sha256": SHA_SRC}, "agents": [REEL],
         "objects": [{"id": "original"}]},
        {"id": "event-3", "type": "colorization", "datetime": T0 + timedelta(minutes=2),
         "outcome": "success", "summary": "colorization of shot 0 by exemplar-propagate 2",
         "detail": {"params": {"anchor_every": 24},
                    "inputs": [{"object": "original", "sha256": SHA_SRC, "frames": [0, 30]},
                               {"object": "reference-bbbb", "sha256": SHA_REF}]},
         "agents": [{**REEL, "role": "orchestrating program"}, engine],
         "objects": [{"id": "original"}, {"id": "reference-bbbb"}]},
        {"id": "review-1", "type": "quality review", "datetime": T0 + timedelta(minutes=3),
         "outcome": "success", "detail": {"decision": "approve", "note": "ok"},
         "agents": [{"id": "person-ana", "name": "ana", "type": "person",
                     "role": "implementer"}]},
        {"id": "event-6", "type": "validation", "datetime": T0 + timedelta(minutes=6),
         "outcome": "success", "detail": {"summary": "pass"},
         "agents": [{"id": "mediaconch-23.03", "name": "MediaConch", "version": "23.03",
                     "role": "validator"}], "objects": [{"id": "master"}]},
    ]
    return build_record(item, objects, events, reel_version="0.1.0",
                        disclosure="colour is AI-derived by reel 0.1.0")


def test_record_orders_events_and_collects_agents():
    rec = sample_record()
    assert [e["id"] for e in rec["events"]] == ["event-1", "event-3", "review-1", "event-5",
                                                "event-6", "event-2"]
    assert {a["id"] for a in rec["agents"]} == {
        "reel-0.1.0", "ffmpeg-5.1.9", "engine-exemplar-propagate-2-wdeadbeef0000",
        "person-ana", "mediaconch-23.03"}
    assert rec["disclosure"] == "colour is AI-derived by reel 0.1.0"
    assert [e["id"] for e in events_of_type(rec, "creation")] == ["event-5"]
    ingest = rec["events"][0]
    assert ingest["summary"] == "ingestion" and ingest["agents"][0]["role"] == \
        "executing program"
    assert rec["events"][1]["datetime"] == (T0 + timedelta(minutes=2)).isoformat()


@pytest.mark.parametrize("mutate, message", [
    (lambda o, e: e.append(dict(e[0])), "used twice"),
    (lambda o, e: e[0].update(outcome="ok"), "outcome"),
    (lambda o, e: e[0].update(datetime=datetime(2024, 1, 1)), "no time zone"),
    (lambda o, e: e[0].update(datetime="yesterday"), "ISO 8601"),
    (lambda o, e: e[0].update(objects=[{"id": "nowhere"}]), "unknown object"),
    (lambda o, e: o[0].update(derived_from=["ghost"]), "unknown object"),
    (lambda o, e: e[0].update(agents=[{"name": "x"}]), "agent without id"),
    (lambda o, e: e[0].update(agents=[{"id": "x", "type": "robot"}]), "robot"),
    (lambda o, e: e[0].update(type=""), "no type"),
])
def test_record_rejects_malformed_input(mutate, message):
    objects = [{"id": "original"}]
    events = [{"id": "e1", "type": "ingestion", "datetime": T0, "outcome": "success",
               "objects": [{"id": "original"}]}]
    mutate(objects, events)
    with pytest.raises(ProvenanceError, match=message):
        build_record({"id": 1}, objects, events, reel_version="0", disclosure="d")


def test_sidecar_is_json_with_everything(tmp_path):
    rec = sample_record()
    path = write_sidecar(tmp_path / "film.provenance.json", rec)
    back = json.loads(path.read_text(encoding="utf-8"))
    assert back == rec
    colorize = next(e for e in back["events"] if e["type"] == "colorization")
    assert colorize["detail"]["params"] == {"anchor_every": 24}
    assert {i["sha256"] for i in colorize["detail"]["inputs"]} == {SHA_SRC, SHA_REF}
    assert [p.name for p in tmp_path.iterdir()] == ["film.provenance.json"]


def test_premis_structure(tmp_path):
    rec = sample_record()
    path = write_premis(tmp_path / "film.premis.xml", rec)
    assert check_premis(path) == []
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<?xml version='1.0' encoding='utf-8'?>")
    root = ET.parse(path).getroot()                      # well-formed
    assert root.tag == f"{{{PREMIS_NS}}}premis" and root.get("version") == "3.0"
    assert root.get(f"{{{XSI_NS}}}schemaLocation").startswith(PREMIS_NS)
    # top level: objects, then events, then agents
    order = [child.tag.split("}")[1] for child in root]
    assert order == ["object"] * 4 + ["event"] * 6 + ["agent"] * 5
    # objects: identifier, SHA-256 fixity, format, storage, derivation
    master = next(o for o in root.findall("p:object", NS)
                  if o.findtext("p:objectIdentifier/p:objectIdentifierValue", namespaces=NS)
                  == "master")
    assert master.get(f"{{{XSI_NS}}}type") == "premis:file"
    fx = master.find("p:objectCharacteristics/p:fixity", NS)
    assert fx.findtext("p:messageDigestAlgorithm", namespaces=NS) == "SHA-256"
    assert fx.findtext("p:messageDigest", namespaces=NS) == SHA_MASTER
    assert master.findtext("p:objectCharacteristics/p:size", namespaces=NS) == "99"
    assert master.findtext("p:objectCharacteristics/p:format/p:formatDesignation/"
                           "p:formatName", namespaces=NS) == "FFV1 in Matroska"
    assert master.findtext("p:storage/p:contentLocation/p:contentLocationValue",
                           namespaces=NS) == "/d/film.master.mkv"
    rels = [r.findtext("p:relatedObjectIdentifier/p:relatedObjectIdentifierValue",
                       namespaces=NS) for r in master.findall("p:relationship", NS)]
    assert rels == ["restored-shot-0000", "original"]
    assert [e.findtext("p:linkingEventIdentifierValue", namespaces=NS)
            for e in master.findall("p:linkingEventIdentifier", NS)] == ["event-5", "event-6"]
    # every event: identifier, type, date-time, outcome, linked agents
    for ev in root.findall("p:event", NS):
        assert ev.findtext("p:eventIdentifier/p:eventIdentifierType", namespaces=NS) == "local"
        assert ev.findtext("p:eventType", namespaces=NS)
        datetime.fromisoformat(ev.findtext("p:eventDateTime", namespaces=NS))
        assert ev.findtext("p:eventOutcomeInformation/p:eventOutcome", namespaces=NS) in \
            ("success", "failure", "warning")
        assert ev.find("p:linkingAgentIdentifier/p:linkingAgentIdentifierValue", NS) is not None
    colorize = next(e for e in root.findall("p:event", NS)
                    if e.findtext("p:eventType", namespaces=NS) == "colorization")
    details = [d.text for d in colorize.findall("p:eventDetailInformation/p:eventDetail", NS)]
    assert details[0] == "colorization of shot 0 by exemplar-propagate 2"
    assert json.loads(details[1][len("json: "):])["params"] == {"anchor_every": 24}
    roles = {la.findtext("p:linkingAgentIdentifierValue", namespaces=NS):
             la.findtext("p:linkingAgentRole", namespaces=NS)
             for la in colorize.findall("p:linkingAgentIdentifier", NS)}
    assert roles == {"reel-0.1.0": "orchestrating program",
                     "engine-exemplar-propagate-2-wdeadbeef0000": "executing program"}
    # agents: name, type, version, weights in a note
    engine = next(a for a in root.findall("p:agent", NS)
                  if a.findtext("p:agentName", namespaces=NS) == "exemplar-propagate")
    assert engine.findtext("p:agentType", namespaces=NS) == "software"
    assert engine.findtext("p:agentVersion", namespaces=NS) == "2"
    assert engine.findtext("p:agentNote", namespaces=NS) == "weights sha256 " + "e" * 64
    person = next(a for a in root.findall("p:agent", NS)
                  if a.findtext("p:agentName", namespaces=NS) == "ana")
    assert person.findtext("p:agentType", namespaces=NS) == "person"


def _premis_of(rec: dict) -> ET.Element:
    return premis_element(rec)


def test_check_premis_finds_problems(tmp_path):
    rec = sample_record()
    # missing eventType
    root = _premis_of(rec)
    ev = root.find("p:event", NS)
    ev.remove(ev.find("p:eventType", NS))
    assert any("lacks required <eventType>" in p for p in check_premis(root))
    # elements out of schema order
    root = _premis_of(rec)
    ev = root.find("p:event", NS)
    dt = ev.find("p:eventDateTime", NS)
    ev.remove(dt)
    ev.insert(0, dt)
    assert any("out of order" in p for p in check_premis(root))
    # an agent link that resolves to nothing
    root = _premis_of(rec)
    root.find(".//p:linkingAgentIdentifierValue", NS).text = "nobody"
    assert any("unknown agents" in p for p in check_premis(root))
    # a date-time without a zone, a foreign element, wrong root, not XML at all
    root = _premis_of(rec)
    root.find(".//p:eventDateTime", NS).text = "2024-05-01T12:00:00"
    assert any("no time zone" in p for p in check_premis(root))
    root = _premis_of(rec)
    ET.SubElement(root.find("p:event", NS), "{urn:other}note").text = "x"
    assert any("not in the PREMIS 3 namespace" in p for p in check_premis(root))
    assert check_premis(ET.Element("premis")) != []
    bad = tmp_path / "bad.xml"
    bad.write_text("<premis:premis xmlns:premis='x'>")
    assert check_premis(bad)[0].startswith("not well-formed")
    # PREMIS 2 namespace is not PREMIS 3
    old = tmp_path / "v2.xml"
    old.write_text("<premis xmlns='info:lc/xmlns/premis-v2' version='2.2'/>")
    assert "expected" in check_premis(old)[0]
