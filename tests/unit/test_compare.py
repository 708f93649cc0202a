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
