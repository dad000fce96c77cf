"""Stage cache keys and output manifests (flows/cache.py), without a Prefect server."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from reel.config import Settings

BASE = dict(source_sha256="ab" * 32, start=0, stop=48, engine="slic-flow", engine_version="2",
            params={"analysis_width_px": 320}, upstream=["u1"], output="work/c/shot-0000",
            output_version=1)


def test_stage_key_changes_with_every_input():
    from reel.flows.cache import stage_key

    k = stage_key("segmentation", **BASE)
    assert len(k) == 64 and k == stage_key("segmentation", **BASE)
    variants = [("stage", "colorization"), ("source_sha256", "cd" * 32), ("start", 1),
                ("stop", 47), ("engine", "other"), ("engine_version", "3"),
                ("params", {"analysis_width_px": 160}), ("upstream", ["u2"]),
                ("output", "work/c/shot-0001"), ("output_version", 2),
                ("weights_sha256", "ef" * 32)]
    keys = {k}
    for name, value in variants:
        args = dict(BASE)
        stage = "segmentation"
        if name == "stage":
            stage = value
        else:
            args[name] = value
        keys.add(stage_key(stage, **args))
    assert len(keys) == len(variants) + 1  # every change gives a new key
    # parameter order does not matter
    a = stage_key("qc", **{**BASE, "params": {"a": 1, "b": 2}})
    assert a == stage_key("qc", **{**BASE, "params": {"b": 2, "a": 1}})


@dataclasses.dataclass
class FakeResult:
    out_path: Path
    thumbs: list
    reference: Path
    seconds: float = 1.0


def test_manifest_trusts_only_unchanged_outputs(tmp_path):
    from reel.flows import cache

    s = Settings(home=tmp_path / "home")
    shot = tmp_path / "home" / "work" / "shot-0000"
    shot.mkdir(parents=True)
    out, thumb = shot / "restored.mkv", shot / "after.png"
    out.write_bytes(b"frames")
    thumb.write_bytes(b"png")
    ref = tmp_path / "library" / "ref.png"  # an input outside the shot folder: not an output
    ref.parent.mkdir()
    ref.write_bytes(b"ref")
    res = FakeResult(out, [thumb, shot / "missing.png"], ref)
    assert cache.output_files(res, shot) == sorted([out.resolve(), thumb.resolve()])

    key = "0" * 64
    assert not cache.manifest_valid(s, key)  # no manifest yet
    assert cache.task_options(s, key)["refresh_cache"] is True
    path = cache.write_manifest(s, key, "harmonization", res, shot)
    assert json.loads(path.read_text())["stage"] == "harmonization"
    assert cache.manifest_valid(s, key)
    opts = cache.task_options(s, key)
    assert opts["refresh_cache"] is False and opts["persist_result"] is True
    assert opts["cache_policy"].compute_key(None, {}, {}) == key
    assert Path(opts["result_storage"]) == cache.results_dir(s)

    out.write_bytes(b"frameX")  # same size, other content
    assert not cache.manifest_valid(s, key)
    out.write_bytes(b"frames")
    assert cache.manifest_valid(s, key)
    thumb.unlink()  # a deleted output
    assert not cache.manifest_valid(s, key)
    assert cache.task_options(Settings(home=tmp_path / "home", cache=False), key) == {}


def test_no_temporary_manifest_left_behind(tmp_path):
    from reel.flows import cache

    s = Settings(home=tmp_path)
    shot = tmp_path / "shot"
    shot.mkdir()
    (shot / "a.bin").write_bytes(b"a")
    cache.write_manifest(s, "1" * 64, "qc", FakeResult(shot / "a.bin", [], shot), shot)
    left = [p.name for p in cache.manifest_path(s, "1" * 64).parent.iterdir()]
    assert left == ["1" * 64 + ".json"]


def test_prune_removes_only_entries_that_cannot_be_reused(reel_home):
    import os
    import time

    from typer.testing import CliRunner

    from reel.flows import cache
    from reel.flows.cli import app

    s = reel_home
    shot = s.home / "work" / "shot-0000"
    shot.mkdir(parents=True)
    results = cache.results_dir(s)
    results.mkdir(parents=True)
    day = 86400.0

    def entry(key: str, name: str, age_days: float = 0.0) -> None:
        out = shot / name
        out.write_bytes(name.encode())
        man = cache.write_manifest(s, key, "qc", FakeResult(out, [], out), shot)
        (results / key).write_bytes(b"result")
        t = time.time() - age_days * day
        for p in (man, results / key):
            os.utime(p, (t, t))

    entry("a" * 64, "a.bin")                       # valid and recent: kept
    entry("b" * 64, "b.bin")
    (shot / "b.bin").unlink()                      # its output is gone: never reusable
    entry("c" * 64, "c.bin", age_days=40)          # valid but old
    for key, age in (("d" * 64, 2 * day), ("e" * 64, 10.0)):  # results never collected
        (results / key).write_bytes(b"orphan")
        os.utime(results / key, (time.time() - age, time.time() - age))

    dry = cache.prune(s, dry_run=True)
    assert dry.removed == 2 and dry.kept == 2 and (results / ("b" * 64)).exists()
    res = CliRunner().invoke(app, ["cache", "prune", "--older-than-days", "30"])
    assert res.exit_code == 0, res.output
    assert "removed 3 entries" in res.output and "kept 1" in res.output
    assert sorted(p.name for p in results.iterdir()) == ["a" * 64, "e" * 64]  # e: too young
    assert cache.manifest_valid(s, "a" * 64) and not cache.manifest_path(s, "c" * 64).exists()
    assert (shot / "c.bin").exists()  # stage outputs are never touched
    bad = CliRunner().invoke(app, ["cache", "prune", "--older-than-days", "-1"])
    assert bad.exit_code == 1
