"""Training: a short run overfits one episode; runs resume; the command works end to end."""
import json

import numpy as np
import pytest

from traceany_ros.backends import make_backend
from traceany_ros.cli import main
from traceany_ros.episode import list_episodes, save_episode
from traceany_ros.model import ModelConfig, load_checkpoint
from traceany_ros.predict import predict_episode
from traceany_ros.sim.synthetic import make_synthetic_episode
from traceany_ros.train.data import WindowDataset
from traceany_ros.train.loop import TrainConfig, train


@pytest.fixture(scope="module")
def one_episode(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    ep = make_synthetic_episode(num_frames=8, height=64, width=96, seed=3, num_queries=128)
    save_episode(root / "train" / "ep0.npz", ep)
    save_episode(root / "val" / "ep0.npz", ep)
    return root, ep


def _epe(ep, tracks):
    err = np.linalg.norm(tracks - ep.tracks_world, axis=-1)
    return err.mean(), err[ep.dynamic].mean()


def test_model_overfits_one_episode(one_episode, tmp_path):
    root, ep = one_episode
    cfg = TrainConfig(data=str(root / "train"), out=str(tmp_path / "run"), steps=150, val_every=150, window=8,
                      min_window=8, max_stride=1, warmup=10, lr=1e-3, threads=1, dense_points=0)
    log = train(cfg, progress=False)
    static_all, static_dyn = _epe(ep, predict_episode(ep, make_backend("static"))[0])
    best = str(tmp_path / "run" / "best.pt")
    model_all, model_dyn = _epe(ep, predict_episode(ep, make_backend("model", checkpoint=best, bf16="off"))[0])
    assert static_dyn > 0.05  # the card really moves (about 7 cm on average)
    assert model_dyn < 0.25 * static_dyn, (model_dyn, static_dyn)
    assert model_all < 0.35 * static_all, (model_all, static_all)
    assert log["val"][-1]["epe"] == pytest.approx(model_all, rel=1e-3)  # in-loop validation runs float32
    # the bf16 trunk (on where the CPU has native bf16) moves this sub-centimetre error by a few percent
    bf16_all, _ = _epe(ep, predict_episode(ep, make_backend("model", checkpoint=best, bf16="on"))[0])
    assert bf16_all == pytest.approx(model_all, rel=0.1, abs=1e-3)


def test_training_resumes_from_last_checkpoint(one_episode, tmp_path):
    root, _ = one_episode
    out = tmp_path / "run"
    cfg = TrainConfig(data=str(root / "train"), out=str(out), steps=4, val_every=2, log_every=1, threads=1,
                      window=4, min_window=4)
    train(cfg, progress=False)
    first = json.loads((out / "log.json").read_text())
    assert [v["step"] for v in first["val"]] == [2, 4]
    _, meta = load_checkpoint(out / "last.pt")
    assert meta["train"]["step"] == 4 and meta["data"]["train_episodes"] == 1
    log = train(TrainConfig(**{**cfg.__dict__, "steps": 6}), progress=False)
    assert [v["step"] for v in log["val"]] == [2, 4, 6]
    assert [e["step"] for e in log["train"]] == [1, 2, 3, 4, 5, 6]
    _, meta = load_checkpoint(out / "last.pt")
    assert meta["train"]["step"] == 6
    assert (out / "curves.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="another --out"):
        train(TrainConfig(**{**cfg.__dict__, "steps": 8, "num_control_points": 7}), progress=False)
    # a new run can start from shipped weights (no last.pt in its directory)
    log = train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "from_init"), "steps": 7,
                               "init": str(out / "last.pt")}), progress=False)
    assert log["init"]["step"] == 6 and [e["step"] for e in log["train"]] == [7]
    # ... also onto another flow-prior tracker (same weights, new prior), but not another shape
    log = train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "rigid"), "steps": 7, "init": str(out / "last.pt"),
                               "flow_tracker": "rigid", "flow_method": "dis_fine", "prior_anchor": "constant"}),
                progress=False)
    assert log["init"]["step"] == 6
    model, _ = load_checkpoint(tmp_path / "rigid" / "last.pt")
    assert (model.config.flow_tracker, model.config.flow_method, model.config.prior_anchor) == (
        "rigid", "dis_fine", "constant")
    with pytest.raises(ValueError, match="--init"):
        train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "k7"), "steps": 7, "init": str(out / "last.pt"),
                             "num_control_points": 7}), progress=False)


def test_background_workers_train_on_the_same_windows(one_episode, tmp_path):
    """--workers prepares windows (flow prior included) in other processes: the run is the same."""
    root, _ = one_episode
    base = dict(data=str(root / "train"), steps=3, val_every=3, log_every=1, threads=1, window=4, min_window=4)
    logs = [train(TrainConfig(out=str(tmp_path / f"w{w}"), workers=w, **base), progress=False) for w in (0, 2)]
    assert [e["step"] for e in logs[1]["train"]] == [1, 2, 3]
    a, b = (np.array([[e["total"], e["epe_m"]] for e in log["train"]]) for log in logs)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert logs[0]["val"][-1]["epe"] == pytest.approx(logs[1]["val"][-1]["epe"], rel=1e-5)
    # the prior field of the episode was made once, before the workers started
    assert len(list((tmp_path / "w2" / "flow_cache").glob("*.npz"))) == 1


def test_time_limit_stops_cleanly_and_the_same_command_resumes(one_episode, tmp_path):
    root, _ = one_episode
    cfg = TrainConfig(data=str(root / "train"), out=str(tmp_path / "run"), steps=5, val_every=100, log_every=1,
                      threads=1, window=4, min_window=4, max_minutes=1e-6)
    log = train(cfg, progress=False)
    assert log["stopped"]["step"] == 1 and [v["step"] for v in log["val"]] == [1]  # validated and saved at once
    _, meta = load_checkpoint(tmp_path / "run" / "last.pt")
    assert meta["train"]["step"] == 1
    log = train(TrainConfig(**{**cfg.__dict__, "max_minutes": 0.0}), progress=False)
    assert [e["step"] for e in log["train"]] == [1, 2, 3, 4, 5] and log["val"][-1]["step"] == 5
    assert "stopped" not in log  # the resumed run finished


def test_train_command(one_episode, tmp_path, capsys):
    root, _ = one_episode
    out = tmp_path / "cli"
    rc = main(["train", "--data", str(root / "train"), "--preset", "tiny", "--out", str(out), "--steps", "2",
               "--val-every", "2", "--window", "4", "--min-window", "4", "--no-progress"])
    assert rc == 0
    assert "val epe" in capsys.readouterr().out
    model, meta = load_checkpoint(out / "best.pt")
    assert meta["config"]["name"] == "tiny" and meta["train"]["step"] == 2


def test_dense_ground_truth_windows_from_simulator_extras(tmp_path):
    """Episodes with gt_labels / gt_link_poses give fresh points; their queries see the same point per id."""
    ep = make_synthetic_episode(num_frames=6, height=32, width=48, seed=1, num_queries=32)
    # two links: ground (static) and card (moving); card pose = its centre track
    labels = (ep.depth < 0.95).astype(np.int16)  # card top is nearer than the ground
    T = ep.num_frames
    poses = np.tile(np.eye(4), (2, T, 1, 1))
    card = np.nonzero(ep.dynamic)[0][0]
    poses[1, :, :3, 3] = ep.tracks_world[card] - ep.tracks_world[card, 0]  # pure translation is enough here
    ep.extras = {"gt_labels": labels, "gt_link_poses": poses.astype(np.float32)}
    save_episode(tmp_path / "ep.npz", ep)
    ds = WindowDataset(list_episodes(tmp_path), window=4, max_queries=256, dense_points_per_window=64,
                       model_config=ModelConfig.preset("tiny"))
    s = ds.sample(0)
    assert len(s.frame) > 64 and s.dynamic.any() and (~s.dynamic).any()
    # queries of one point id at different frames share the same ground-truth curve
    ids, counts = np.unique(s.qid, return_counts=True)
    i = ids[np.argmax(counts)]
    g = s.gt[s.qid == i]
    assert counts.max() > 1 and np.abs(g - g[0]).max() < 1e-9


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_ddp_on_cpu_stops_together_and_resumes(one_episode, tmp_path):
    """The multi-GPU command line, on two CPU processes (gloo): both ranks train, stop together at the
    time limit (rank 0's clock), rank 0 writes the checkpoint, and the same command resumes."""
    import os
    import subprocess
    import sys

    root, _ = one_episode
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "traceany_ros.cli", "train", "--data", str(root / "train"), "--preset", "tiny", "--out", str(out),
           "--steps", "3", "--val-every", "3", "--window", "4", "--min-window", "4", "--no-progress",
           "--workers", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(cmd + ["--max-minutes", "1e-6"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "stopping at step 1" in run.stdout
    _, meta = load_checkpoint(out / "last.pt")
    assert meta["train"]["world_size"] == 2 and meta["train"]["step"] == 1
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    _, meta = load_checkpoint(out / "last.pt")
    assert meta["train"]["step"] == 3
    log = json.loads((out / "log.json").read_text())
    assert [v["step"] for v in log["val"]] == [1, 3]
