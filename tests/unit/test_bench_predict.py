"""`traceany bench predict`: a held-out simulator episode by default, a given episode (its own frames and size), or
the synthetic card."""
import argparse

import pytest


def _args(**kw):
    from traceany_ros.benchmarks import predict

    p = argparse.ArgumentParser()
    predict.add_arguments(p)
    argv = []
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] if v is True else [f"--{k.replace('_', '-')}", str(v)]
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
    # the synthetic card on request, at the size asked for
    res = predict.run(_args(frames=3, size="64x48", queries=16, methods="static", repeat=1, synthetic=True))
    assert res["episode"] == "synthetic" and res["frames"] == 3 and res["queries"] == 16
