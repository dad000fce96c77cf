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
