"""Contract metrics and the reference baselines on synthetic episodes with hand-computed answers."""
import numpy as np
import pytest

from traceany_ros.baselines import oracle_prediction, static_prediction
from traceany_ros.metrics import METRICS, aggregate, evaluate_predictions, format_table

from test_episode import make_episode  # tests/unit is on sys.path (pytest prepend mode)


def test_oracle_is_zero_and_static_is_exact_on_static_points():
    ep = make_episode(Q=8)
    o = evaluate_predictions(ep, *oracle_prediction(ep))
    assert o["epe"] == 0 and o["delta_1cm"] == 1.0
    s = evaluate_predictions(ep, *static_prediction(ep))
    assert s["epe_static"] < 1e-6 and s["static_jitter"] < 1e-6
    # dynamic queries rise 2 cm per frame from their query frame: mean |t - f_q| * 2 cm
    dyn = ep.dynamic
    expect = np.mean(np.abs(np.arange(ep.num_frames)[None] - ep.query_pixels[dyn, :1]) * 0.02)
    assert s["epe_dynamic"] == pytest.approx(expect, rel=1e-5)


def test_hand_computed_metrics():
    ep = make_episode(T=4, Q=4)
    pred = ep.tracks_world.astype(np.float64).copy()
    pred[0, :, 0] += 0.015            # query 0 (static): 1.5 cm off at every frame, no jitter
    pred[1, 1, 1] += 0.03             # query 1 (dynamic): 3 cm off at one frame
    r = evaluate_predictions(ep, pred)
    n = 16
    assert r["epe"] == pytest.approx((4 * 0.015 + 0.03) / n, rel=1e-5)
    assert r["epe_static"] == pytest.approx(4 * 0.015 / 8, rel=1e-5)
    assert r["epe_dynamic"] == pytest.approx(0.03 / 8, rel=1e-5)
    assert r["delta_1cm"] == pytest.approx(11 / 16)
    assert r["delta_2cm"] == pytest.approx(15 / 16)
    assert r["delta_5cm"] == 1.0
    vis = ep.visible
    err = np.linalg.norm(pred - ep.tracks_world, axis=-1)
    assert r["epe_visible"] == pytest.approx(err[vis].mean(), rel=1e-5)
    assert r["epe_occluded"] == pytest.approx(err[~vis].mean(), rel=1e-5)
    assert r["n_pairs"] == 16 and r["n_static"] == 8 and r["n_occluded"] == int((~vis).sum())


def test_static_jitter_measures_spread_about_the_mean():
    ep = make_episode(T=4, Q=2)
    pred = ep.tracks_world.astype(np.float64).copy()
    pred[0, ::2, 2] += 0.01           # static query 0 alternates +1 cm / 0: 5 mm from its mean at every frame
    r = evaluate_predictions(ep, pred)
    assert r["static_jitter"] == pytest.approx(0.005, rel=1e-5)


def test_aggregate_pools_pairs_and_skips_empty_splits():
    a = {"epe": 1.0, "n_pairs": 10, "epe_occluded": None, "n_occluded": 0, "n_queries": 1}
    b = {"epe": 4.0, "n_pairs": 30, "epe_occluded": 2.0, "n_occluded": 5, "n_queries": 3}
    g = aggregate([a, b])
    assert g["epe"] == pytest.approx((10 + 120) / 40)
    assert g["epe_occluded"] == 2.0 and g["epe_static"] is None
    assert g["episodes"] == 2 and g["n_queries"] == 4
    assert set(METRICS) <= set(g)


def test_bad_prediction_shapes_are_explained():
    ep = make_episode()
    with pytest.raises(ValueError, match=r"shape .* but the episode needs"):
        evaluate_predictions(ep, ep.tracks_world[:, :-1])
    bad = ep.tracks_world.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate_predictions(ep, bad)


def test_table_shows_cm_and_percent():
    ep = make_episode()
    text = format_table({"static": aggregate([evaluate_predictions(ep, *static_prediction(ep))])})
    assert "static" in text and "[cm]" in text and "[%]" in text
