"""MLflow recording (flows/tracking.py): nested shot runs with batched per-frame series."""

from __future__ import annotations

import math


def test_shot_run_holds_per_frame_series_in_step_order(reel_home):
    from mlflow.tracking import MlflowClient

    from reel.config import get_settings
    from reel.flows import tracking

    s = get_settings()
    per_frame = {"warp_error": [0.1, 0.2, math.nan, 0.4], "cdc": [1.0, 2.0, 3.0, 4.0]}
    with tracking.item_run(s, item_name="film", collection="c", catalog_run_id=1):
        run_id = tracking.log_shot(shot_index=3, params={"engine": "x"}, metrics={"psnr": 30.0},
                                   per_frame=per_frame, images={})
    client = MlflowClient(s.mlflow_tracking_uri)
    warp = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "frame.warp_error"))
    cdc = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "frame.cdc"))
    assert warp == [(0, 0.1), (1, 0.2), (3, 0.4)]  # the non-finite value is skipped
    assert cdc == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]
    run = client.get_run(run_id)
    assert run.data.metrics["psnr"] == 30.0 and run.info.run_name == "shot-0003"


def test_long_series_are_split_into_batches(reel_home):
    from mlflow.tracking import MlflowClient

    from reel.config import get_settings
    from reel.flows import tracking

    s = get_settings()
    with tracking.item_run(s, item_name="film", collection="c", catalog_run_id=1):
        run_id = tracking.log_shot(shot_index=0, params={}, metrics={},
                                   per_frame={"a": [float(i) for i in range(1500)]}, images={})
    hist = MlflowClient(s.mlflow_tracking_uri).get_metric_history(run_id, "frame.a")
    assert sorted(m.step for m in hist) == list(range(1500))
    assert all(m.value == float(m.step) for m in hist)


def test_prepare_warms_up_in_the_background_and_setup_waits(reel_home):
    import mlflow

    from reel.config import get_settings
    from reel.flows import tracking

    s = get_settings()
    tracking.prepare(s)
    tracking.prepare(s)  # a second call while one runs starts nothing new
    exp_id = tracking.setup(s)
    assert mlflow.get_experiment(exp_id).name == s.mlflow_experiment
    assert tracking.setup(s) == exp_id  # idempotent, no warm-up pending any more
