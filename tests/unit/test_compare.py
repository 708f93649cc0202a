"""The model-card comparison: scores several methods on the same episodes, and draws their tracks."""
import imageio.v3 as iio
import pytest

from traceany_ros.episode import save_episode
from traceany_ros.sim.synthetic import make_synthetic_episode
from traceany_ros.train.compare import compare, format_markdown, tracks_picture


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    for seed in (1, 2):
        save_episode(root / f"ep{seed}.npz", make_synthetic_episode(num_frames=8, height=48, width=64, seed=seed,
                                                                    num_queries=64))
    return root


def test_compare_scores_methods_on_the_same_episodes(data_dir):
    res = compare(str(data_dir), methods=("static", "flow-rigid"))
    assert res["episodes"] == 2
    static, rigid = res["results"]["static"], res["results"]["flow-rigid"]
    assert static["epe_static"] < 1e-6
    assert rigid["epe_dynamic"] < static["epe_dynamic"]
    table = format_markdown(res)
    assert table.startswith("All 2 episodes") and table.count("| flow-rigid |") == 2  # all, and the camera split


def test_tracks_picture_has_one_panel_per_method_and_ground_truth(data_dir, tmp_path):
    out = tracks_picture(str(data_dir / "ep1.npz"), methods=("static", "flow"), out=str(tmp_path / "t.png"))
    img = iio.imread(out)
    # 3 panels (ground truth, static, flow) + 1 empty, 2 per row, each 2x the 48x64 frame
    assert img.shape == (2 * 96, 2 * 128, 3)
    gt_panel, empty = img[:96, :128], img[96:, 128:]
    assert gt_panel[24:].std() > 5 and empty.max() == 0


def test_compare_scores_a_checkpoint_beside_the_baselines_split_by_camera(data_dir, tmp_path):
    from traceany_ros.model import ModelConfig, TraceModel, save_model

    ck = str(save_model(tmp_path / "tiny.pt", TraceModel(ModelConfig.preset("tiny"))))
    res = compare(str(data_dir), methods=("static",), checkpoints=[ck])
    assert set(res["results"]) == {"static", ck}
    # an untrained network is the static hypothesis: its curves stay at each point's own unprojection
    assert abs(res["results"][ck]["epe_static"] - res["results"]["static"]["epe_static"]) < 0.01
    n = sum(next(iter(rows.values()))["episodes"] for rows in res["by_camera"].values() if rows)
    assert n == res["episodes"]
    assert "camera" in format_markdown(res)


def test_goal_and_forecast_modes_score_the_static_hypothesis_and_a_tracker():
    """Goal pairs: the goal frame is where the card's points moved 10-40 cm; forecasts: frames past the
    window. The static backend scores exactly the static hypothesis; flow-rigid follows the card's straight,
    steady slide, so its forecast beats staying."""
    from traceany_ros.backends import make_backend
    from traceany_ros.train.modes import forecast_cases, goal_cases, score_episode, summarise

    ep = make_synthetic_episode(num_frames=16, height=48, width=64, seed=1, num_queries=64)
    cases = goal_cases(ep)
    assert cases
    for frames, g, idx in cases:
        f = frames[-1]
        assert g >= f + 4 and all(ep.query_pixels[idx, 0] == f)
    fc = forecast_cases(ep)
    assert fc and all(fr[-1] < fut[0] and ep.timestamps[fut[-1]] - ep.timestamps[fr[-1]] <= 0.3 + 1e-6
                      for fr, fut, _ in fc)
    assert len({tuple(fr) for fr, _, _ in fc}) == len(fc)  # each window predicted once
    static = make_backend("static")
    for mode in ("goal", "forecast"):
        r = summarise([score_episode(ep, static, mode)])
        assert r["epe_static"] < 1e-3 and abs(r["dynamic_vs_static"] - 1.0) < 1e-4  # cm; float32 curves
        if mode == "goal":
            assert 10.0 <= r["static_hypothesis_dynamic"] <= 40.0
    rigid = summarise([score_episode(ep, make_backend("flow-rigid"), "forecast")])
    assert rigid["dynamic_vs_static"] < 0.7 and rigid["epe_dynamic_end"] < rigid["static_hypothesis_dynamic_end"]
