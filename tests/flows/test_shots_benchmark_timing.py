"""`reel benchmark shots` timing: engines take turns in a rotating order, the fastest run counts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reel.flows.benchmarks import shots as bench


def test_timed_runs_rotate_and_keep_the_fastest_run():
    calls: list[tuple[str, int]] = []
    # one fast run per engine, in a different turn each
    delays = {"a": [0.2, 0.01, 0.2], "b": [0.01, 0.2, 0.2], "c": [0.2, 0.2, 0.01]}

    def detect(video, *, engine, min_shot_frames):
        i = sum(1 for e, _ in calls if e == engine)
        calls.append((engine, i))
        time.sleep(delays[engine][i])
        return [f"{engine}-run{i}"]  # stands for the shot list

    seen = []
    runs = bench._timed_runs(Path("v.mkv"), ["a", "b", "c"], 8, 3, detect,
                             lambda e, v: seen.append((e, v)))
    # round r starts with engine r: a b c, b c a, c a b
    assert [e for e, _ in calls] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert seen[0] == ("a", "v (turn 1/3)")
    for e in "abc":
        shots, seconds, cpu = runs[e]
        assert shots == [f"{e}-run0"]  # detections of the first run
        assert 0.01 <= seconds < 0.15  # the fast run, not the slow ones
        assert 0.0 <= cpu < seconds + 0.5


def test_single_turn_runs_each_engine_once():
    calls = []

    def detect(video, *, engine, min_shot_frames):
        calls.append(engine)
        return []

    runs = bench._timed_runs(Path("v.mkv"), ["x", "y"], 8, 1, detect, None)
    assert calls == ["x", "y"] and set(runs) == {"x", "y"}


def test_development_sets_are_disjoint_from_the_reported_one():
    assert not set(bench.TUNING_SEEDS) & set(bench.CHECK_SEEDS)
    assert not (set(bench.TUNING_SEEDS) | set(bench.CHECK_SEEDS)) & set(bench.REPORT_SEEDS)
    with pytest.raises(ValueError, match="tune"):
        bench.development_dataset("report")
