"""`traceany bench predict`: the synthetic clip by default, or a given episode (its own frames and size)."""
import argparse

import pytest


def _args(**kw):
    from traceany_ros.benchmarks import predict

    p = argparse.ArgumentParser()
    predict.add_arguments(p)
    argv = []
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return p.parse_args(argv)


def test_bench_predict_times_a_given_episode(tmp_path):
    from traceany_ros.benchmarks import predict
    from traceany_ros.episode import save_episode
    from traceany_ros.sim.synthetic import make_synthetic_episode

    ep = make_synthetic_episode(num_frames=6, height=48, width=64, num_queries=32, seed=3)
    path = tmp_path / "ep.npz"
    save_episode(path, ep)
    res = predict.run(_args(episode=path, frames=4, methods="static,flow", repeat=1))
    assert res["episode"] == str(path) and res["frames"] == 6 and res["window"] == 4
    assert res["size_wxh"] == "64x48" and res["queries"] == 32
    assert res["static_s_median"] > 0 and res["flow_s_median"] > 0 and "model_s_median" not in res
    # the synthetic clip otherwise, at the size asked for
    res = predict.run(_args(frames=3, size="64x48", queries=16, methods="static", repeat=1))
    assert res["episode"] == "synthetic" and res["frames"] == 3 and res["queries"] == 16


def test_bench_predict_refuses_an_unknown_prior_tracker(tmp_path):
    from traceany_ros.benchmarks import predict

    with pytest.raises(ValueError, match="unknown prior tracker"):
        predict.run(_args(frames=3, size="64x48", queries=16, methods="model", repeat=1, prior_tracker="nope"))
