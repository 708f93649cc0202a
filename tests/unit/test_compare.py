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
    assert "| flow-rigid |" in table and table.count("\n") == 3


def test_tracks_picture_has_one_panel_per_method_and_ground_truth(data_dir, tmp_path):
    out = tracks_picture(str(data_dir / "ep1.npz"), methods=("static", "flow"), out=str(tmp_path / "t.png"))
    img = iio.imread(out)
    # 3 panels (ground truth, static, flow) + 1 empty, 2 per row, each 2x the 48x64 frame
    assert img.shape == (2 * 96, 2 * 128, 3)
    gt_panel, empty = img[:96, :128], img[96:, 128:]
    assert gt_panel[24:].std() > 5 and empty.max() == 0


def test_compare_scores_a_checkpoint_with_another_prior_tracker_and_flow(data_dir, tmp_path):
    from traceany_ros.checkpoint_file import save_checkpoint
    from traceany_ros.model import ModelConfig, TraceModel

    ck = str(save_checkpoint(tmp_path / "tiny.pt", TraceModel(ModelConfig.preset("tiny", flow_tracker="rigid"))))
    names = [ck, f"{ck}@plain", f"{ck}@@dis_fine"]
    res = compare(str(data_dir), checkpoints=names)
    assert set(res["results"]) == set(names)
    dyn = [res["results"][n]["epe_dynamic"] for n in names]
    assert len(set(dyn)) == 3  # three different priors, three different scores
