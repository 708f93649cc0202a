"""Training losses: exactly zero on ground truth, positive off it; pair selection."""
import numpy as np
import pytest
import torch

from traceany_ros.train.losses import (correspondence_loss, correspondence_pairs, motion_loss, pair_distance_loss,
                                       rigid_pairs, rigidity_loss, static_loss, timestamp_loss, trajectory_loss)


@pytest.fixture
def gt():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 6, 3, generator=g)


def test_trajectory_loss_zero_on_gt_positive_off(gt):
    ones = torch.ones(32)
    assert float(trajectory_loss(gt, gt, ones)) == 0.0
    off = gt + 0.01 * torch.randn_like(gt)
    assert float(trajectory_loss(off, gt, ones)) > 0.0


def test_trajectory_loss_rewards_confidence_only_where_accurate(gt):
    small = gt + 0.01
    big = gt + 1.0
    # accurate: raising confidence lowers the loss (the -alpha log c term wins)
    assert float(trajectory_loss(small, gt, torch.full((32,), 2.0))) < float(trajectory_loss(small, gt, torch.ones(32)))
    # inaccurate: raising confidence raises it
    assert float(trajectory_loss(big, gt, torch.full((32,), 2.0))) > float(trajectory_loss(big, gt, torch.ones(32)))


def test_static_loss_zero_for_constant_control_points():
    cp = torch.randn(10, 1, 3).expand(10, 10, 3).clone()
    static = torch.ones(10, dtype=torch.bool)
    assert float(static_loss(cp, static)) == pytest.approx(0.0, abs=1e-7)
    cp[0, 3] += 0.1
    assert float(static_loss(cp, static)) > 1e-3
    # a dynamic point may move freely
    assert float(static_loss(cp, torch.tensor([False] + [True] * 9))) == pytest.approx(0.0, abs=1e-7)


def test_pair_losses_zero_on_gt_positive_off(gt):
    pairs = torch.tensor([[0, 1], [2, 3], [4, 5]])
    assert float(rigidity_loss(gt, gt, pairs)) == pytest.approx(0.0, abs=1e-7)
    assert float(correspondence_loss(gt, gt, pairs)) == pytest.approx(0.0, abs=1e-7)
    bent = gt.clone()
    bent[0, 3:] += 0.2  # point 0 leaves its rigid partner half way
    assert float(rigidity_loss(bent, gt, pairs)) > 1e-3
    assert float(pair_distance_loss(gt, gt, torch.zeros((0, 2), dtype=torch.long))) == 0.0


def test_timestamp_and_motion_losses():
    s = torch.linspace(0, 1, 8)
    assert float(timestamp_loss(s, s)) == 0.0
    assert float(timestamp_loss(s + 0.1, s)) == pytest.approx(0.1, abs=1e-6)
    dyn = torch.tensor([True, False, True, False])
    right = torch.tensor([30.0, -30.0, 30.0, -30.0])
    assert float(motion_loss(right, dyn)) < 1e-9
    assert float(motion_loss(-right, dyn)) > 10.0


def test_rigid_and_correspondence_pairs():
    rng = np.random.default_rng(0)
    T = 6
    t = np.linspace(0, 1, T)
    body = rng.normal(size=(10, 3)) * 0.03
    # points 0..9 translate together (rigid), points 10..19 each wander on their own
    rigid = body[:, None, :] + np.stack([t * 0.3, 0 * t, 0 * t], -1)[None]
    loose = rng.normal(size=(10, 1, 3)) * 0.03 + rng.normal(size=(10, T, 3)) * 0.02
    gt = np.concatenate([rigid, loose])
    pairs = rigid_pairs(gt, np.ones(20, bool), np.arange(20), rng, 200, max_dist=0.5, tol=0.002)
    assert len(pairs) > 20
    assert np.all(pairs < 10), "only the rigid body's points may pair"
    assert np.all(pairs[:, 0] != pairs[:, 1])
    qid = np.array([0, 0, 1, 1, 2, 3])
    frame = np.array([0, 3, 1, 2, 0, 0])
    cp = correspondence_pairs(qid, frame, rng, 100)
    assert len(cp) > 10
    assert np.all(qid[cp[:, 0]] == qid[cp[:, 1]]) and np.all(frame[cp[:, 0]] != frame[cp[:, 1]])


def test_motion_pos_weight_makes_missed_motion_cost_more():
    dyn = torch.tensor([True, False])
    miss_moving = torch.tensor([-2.0, -2.0])   # calls both static: misses the moving point
    false_alarm = torch.tensor([2.0, 2.0])     # calls both moving: a false alarm on the static point
    assert torch.isclose(motion_loss(miss_moving, dyn), motion_loss(false_alarm, dyn))
    assert motion_loss(miss_moving, dyn, pos_weight=3.0) > 1.5 * motion_loss(false_alarm, dyn, pos_weight=3.0)
