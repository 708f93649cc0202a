"""Episode generation end to end: CLI determinism, resume, validation, baselines, dense extras, preview."""
import json
import subprocess
import sys

import numpy as np
import pytest

from traceany_ros.baselines import oracle_prediction, static_prediction
from traceany_ros.episode import load_episode, save_episode, validate_episode
from traceany_ros.metrics import evaluate_predictions
from traceany_ros.sim.generate import GenerateConfig, make_episode
from traceany_ros.sim.groundtruth import dense_tracks, pixel_tracks
from traceany_ros.sim.scene import FAMILIES, SceneConfig

TINY = ["--frames", "8", "--size", "128x96", "--queries", "96"]


def traceany(*args):
    return subprocess.run([sys.executable, "-m", "traceany_ros.cli", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    r1 = traceany("generate", "--out", str(root / "a"), "--n", "2", "--seed", "7", "--json", *TINY)
    r2 = traceany("generate", "--out", str(root / "b"), "--n", "2", "--seed", "7", "--json", "--workers", "2", *TINY)
    assert r1.returncode == 0, r1.stderr
    assert r2.returncode == 0, r2.stderr
    return root, json.loads(r1.stdout.strip().splitlines()[-1])


def test_same_seed_gives_identical_bytes(generated):
    """One process and two worker processes write byte-identical files."""
    root, summary = generated
    names = sorted(p.name for p in (root / "a").glob("*.npz"))
    assert names == ["ep_000007.npz", "ep_000008.npz"] and summary["generated"] == 2
    for n in names:
        assert (root / "a" / n).read_bytes() == (root / "b" / n).read_bytes()
    assert (root / "a" / names[0]).read_bytes() != (root / "a" / names[1]).read_bytes()
    assert summary["frames"] == 16 and 0 < summary["dynamic_share"] <= 1 and summary["disk_mb"] > 0
    assert summary["cpu_ms_per_frame"] > 0


def test_generate_resumes_and_validate_passes(generated):
    root, _ = generated
    r = traceany("generate", "--out", str(root / "a"), "--n", "2", "--seed", "7", "--json", *TINY)
    assert json.loads(r.stdout.strip().splitlines()[-1])["skipped"] == 2
    v = traceany("validate", str(root / "a"))
    assert v.returncode == 0, v.stdout
    assert "2/2 episodes valid" in v.stdout


def test_validate_fails_on_a_broken_file(generated, tmp_path):
    root, _ = generated
    ep = load_episode(root / "a" / "ep_000007.npz")
    ep.timestamps = ep.timestamps[::-1].copy()
    save_episode(tmp_path / "broken.npz", ep)
    v = traceany("validate", str(tmp_path))
    assert v.returncode == 1 and "timestamps: not strictly increasing" in v.stdout


def test_baselines_on_generated_episodes(generated):
    root, _ = generated
    r = traceany("eval", "--data", str(root / "a"), "--method", "oracle", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["epe"] == 0.0
    r = traceany("eval", "--data", str(root / "a"), "--method", "static", "--json")
    s = json.loads(r.stdout)
    assert s["epe_static"] < 1e-4 and s["epe_dynamic"] > 0.01 and s["static_jitter"] < 1e-4


def test_eval_reads_prediction_files(generated, tmp_path):
    root, _ = generated
    from traceany_ros.episode import save_prediction

    for p in sorted((root / "a").glob("*.npz")):
        save_prediction(tmp_path / p.name, static_prediction(load_episode(p))[0])
    r = traceany("eval", "--data", str(root / "a"), "--pred", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["epe_static"] < 1e-4


def test_gt_extras_reproduce_the_query_tracks(generated):
    root, _ = generated
    ep = load_episode(root / "a" / "ep_000008.npz")
    tr, _ = pixel_tracks(ep.query_pixels, ep.extras["gt_labels"], ep.depth, ep.intrinsics, ep.cam_to_world,
                         ep.extras["gt_link_poses"])
    np.testing.assert_allclose(tr, ep.tracks_world, atol=2e-4)
    dense, valid, vis = dense_tracks(ep.extras["gt_labels"], ep.depth, ep.intrinsics, ep.cam_to_world,
                                     ep.extras["gt_link_poses"], stride=16)
    assert dense.shape == (8, 6, 8, 8, 3) and valid.mean() > 0.9
    assert vis[valid].reshape(-1, 8).mean() > 0.5


def test_preview_writes_png_and_gif(generated, tmp_path):
    root, _ = generated
    r = traceany("preview", str(root / "a" / "ep_000007.npz"), "--out", str(tmp_path), "--panels", "4")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ep_000007.png").stat().st_size > 1000 and (tmp_path / "ep_000007.gif").stat().st_size > 1000


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_gives_a_valid_episode_with_motion(family):
    cfg = GenerateConfig(scene=SceneConfig(width=96, height=72, frames=6), num_queries=64, families=(family,))
    ep = make_episode(3, cfg)
    assert validate_episode(ep) == []
    assert ep.meta["family"] == family and ep.dynamic.any() and (~ep.dynamic).any()
    assert np.all(np.diff(ep.timestamps) > 0)
    s = evaluate_predictions(ep, *static_prediction(ep))
    assert s["epe_static"] < 1e-3      # "static" allows up to 5 mm of motion (settling, nudges); ~0 in practice
    assert s["epe_dynamic"] > 5e-3
    assert evaluate_predictions(ep, *oracle_prediction(ep))["epe"] == 0


def test_eval_routes_other_methods_to_backends(generated):
    root, _ = generated
    r = traceany("eval", "--data", str(root / "a"), "--method", "flow", "--limit", "1", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["method"] == "flow" and res["episodes"] == 1 and 0 <= res["epe"] < 1.0
    r = traceany("eval", "--data", str(root / "a"), "--method", "no-such-method")
    assert r.returncode != 0 and "unknown method 'no-such-method'" in r.stderr
