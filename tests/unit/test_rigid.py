"""Rigid-part propagation of flow tracks (traceany_ros.tracker.rigid) and the flow-rigid backend."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from traceany_ros.backends import make_backend
from traceany_ros.predict import predict_episode
from traceany_ros.sim.synthetic import make_synthetic_episode
from traceany_ros.tracker.flow import FlowConfig, track_window
from traceany_ros.tracker.rigid import RigidConfig, StepMotion, _member_median, batched_kabsch, rigid_parts


def test_batched_kabsch_recovers_motions_and_ignores_zero_weights():
    rng = np.random.default_rng(0)
    B, N = 16, 30
    R_true = Rotation.random(B, random_state=1).as_matrix()
    t_true = rng.normal(size=(B, 3))
    src = rng.normal(size=(B, N, 3))
    dst = np.einsum("bij,bnj->bni", R_true, src) + t_true[:, None]
    w = np.ones((B, N))
    dst[:, :5] += 5.0      # outliers ...
    w[:, :5] = 0.0         # ... with zero weight
    R, t = batched_kabsch(src, dst, w)
    assert np.allclose(R, R_true, atol=1e-9) and np.allclose(t, t_true, atol=1e-9)
    assert np.allclose(np.linalg.det(R), 1.0)
    # a mirrored target still yields a proper rotation, and an all-zero weight row the identity
    R2, _ = batched_kabsch(src[:1], src[:1] * np.array([1.0, 1.0, -1.0]), np.ones((1, N)))
    assert np.isclose(np.linalg.det(R2[0]), 1.0)
    R3, t3 = batched_kabsch(src[:1], dst[:1], np.zeros((1, N)))
    assert np.allclose(R3[0], np.eye(3)) and np.allclose(t3[0], 0.0)


def _two_boxes(h=12, w=16, spacing=0.01):
    """A flat grid: left box moves +x, right box rotates about its centre, the rest is still."""
    ys, xs = np.mgrid[0:h, 0:w]
    p0 = np.stack([xs * spacing, ys * spacing, np.full((h, w), 0.5)], -1).reshape(-1, 3)
    left = ((xs >= 1) & (xs <= 5) & (ys >= 2) & (ys <= 8)).reshape(-1)
    right = ((xs >= 9) & (xs <= 14) & (ys >= 2) & (ys <= 8)).reshape(-1)
    p1 = p0.copy()
    p1[left] += [0.04, 0.0, 0.0]
    c = p0[right].mean(0)
    Rz = Rotation.from_euler("z", 0.3).as_matrix()
    p1[right] = (p0[right] - c) @ Rz.T + c
    return p0, p1, left, right, (h, w)


def test_member_median_is_the_median_of_each_rows_members():
    """A part's robust scale: the median of its members' residuals (the first ``count`` of its padded row),
    exactly what np.median gives, ties and even counts included."""
    rng = np.random.default_rng(1)
    for _ in range(500):
        parts, width = rng.integers(1, 6), rng.integers(1, 30)
        counts = rng.integers(1, width + 1, size=parts)
        values = rng.random((parts, width)) * rng.choice([1e-3, 1.0, 1e3])
        values = np.where(rng.random((parts, width)) < 0.3, values.round(1), values)  # ties
        want = np.array([np.median(row[:c]) for row, c in zip(values, counts)])
        np.testing.assert_array_equal(_member_median(values, counts), want)


def test_rigid_parts_separate_differently_moving_objects():
    p0, p1, left, right, grid = _two_boxes()
    n = len(p0)
    labels = rigid_parts(p0, p1, np.ones(n, bool), grid, RigidConfig(step_rel=0.6, step_move=0.005))
    still = ~(left | right)
    assert np.all(labels[still] == -1)
    # each box is one part, and the two boxes are different parts
    assert len(np.unique(labels[left])) == 1 and labels[left][0] >= 0
    moving_right = right & (np.linalg.norm(p1 - p0, axis=-1) > 0.005)
    assert len(np.unique(labels[moving_right])) == 1 and labels[moving_right][0] >= 0
    assert labels[left][0] != labels[moving_right][0]


def test_step_motion_moves_a_hidden_point_with_its_part_only():
    p0, p1, left, right, grid = _two_boxes()
    n = len(p0)
    motion = StepMotion(p0, p1, np.ones(n, bool), np.ones(n, bool), grid,
                        RigidConfig(velocity_rel=0.5, velocity_slack=0.01))
    # a point behind the left box (not on the grid) that was moving with it
    hidden = p0[left].mean(0) + [0.0, 0.0, 0.03]
    x = np.stack([hidden, hidden])
    vel = np.array([[0.04, 0.0, 0.0], [0.0, 0.04, 0.0]])  # the second moved like neither box last step
    moved, found = motion.apply(x, np.array([True, True]), vel)
    assert found[0] and np.allclose(moved[0], hidden + [0.04, 0.0, 0.0], atol=1e-6)
    assert not found[1] and np.allclose(moved[1], hidden)
    # a point that is not flagged moving stays put
    moved, found = motion.apply(x[:1], np.array([False]), vel[:1])
    assert not found[0] and np.allclose(moved[0], hidden)


def test_step_motion_picks_the_part_that_best_continues_each_step_among_many():
    """apply_sparse against the rule written out densely over every (point, part) pair."""
    rng = np.random.default_rng(4)
    P, M = 12, 400
    motion = StepMotion.__new__(StepMotion)  # parts set by hand: P rigid motions around scattered centres
    motion.config = RigidConfig(reach=0.15, velocity_slack=0.03, velocity_rel=2.0)
    motion.R = Rotation.from_rotvec(rng.normal(scale=0.05, size=(P, 3))).as_matrix()
    motion.t = rng.normal(scale=0.02, size=(P, 3))
    motion.centre = rng.uniform(-0.5, 0.5, size=(P, 3))
    motion.radius = rng.uniform(0.02, 0.1, size=P)
    x = rng.uniform(-0.6, 0.6, size=(M, 3))
    vel = rng.normal(scale=0.02, size=(M, 3))
    idx = np.flatnonzero(rng.random(M) < 0.7)
    got_idx, got = motion.apply_sparse(x, idx, vel)
    moved = np.einsum("kij,mj->mki", motion.R, x[idx]) + motion.t[None]  # [m,P,3]
    dist = np.linalg.norm(x[idx, None] - motion.centre[None], axis=-1) - motion.radius[None]
    mismatch = np.where(dist <= 0.15, np.linalg.norm(moved - x[idx, None] - vel[idx, None], axis=-1), np.inf)
    best = mismatch.argmin(1)
    ok = mismatch[np.arange(len(idx)), best] <= 0.03 + 2.0 * np.linalg.norm(vel[idx], axis=1)
    assert 0 < ok.sum() < len(idx)  # some points are explained, some are not
    np.testing.assert_array_equal(got_idx, idx[ok])
    np.testing.assert_allclose(got, moved[np.flatnonzero(ok), best[ok]], atol=1e-12)


@pytest.fixture(scope="module")
def fast_card():
    # the card slides half out of view: plain flow loses those points at the image border
    return make_synthetic_episode(num_frames=12, height=96, width=128, seed=2, card_velocity=(0.5, 0.0),
                                  card_spin=0.0)


def test_flow_rigid_follows_points_plain_flow_loses(fast_card):
    ep = fast_card
    err = {}
    for name in ("flow", "flow-rigid"):
        tracks = predict_episode(ep, make_backend(name))[0]
        e = np.linalg.norm(tracks - ep.tracks_world, axis=-1)
        err[name] = (e[ep.dynamic].mean(), e[~ep.dynamic].mean(), e[ep.dynamic][~ep.visible[ep.dynamic]].mean())
    assert (~ep.visible[ep.dynamic]).mean() > 0.1  # the test needs out-of-view points
    assert err["flow-rigid"][2] < 0.75 * err["flow"][2], err      # out of view: moved with the card
    assert err["flow-rigid"][0] < 0.8 * err["flow"][0], err
    assert err["flow-rigid"][1] < 0.015, err  # static points stay within 1.5 cm


def test_depth_jump_ends_tracks_and_rigid_marks_propagated_weights(fast_card):
    window = fast_card.inputs()
    _, _, alive_plain, _ = track_window(window, FlowConfig(stride=8))
    _, _, alive_jump, _ = track_window(window, FlowConfig(stride=8, depth_jump_abs=0.005))
    assert alive_jump.sum() < alive_plain.sum()  # the card's edge steps onto the floor 10 cm below
    _, w, alive, _ = track_window(window, FlowConfig(stride=8, depth_jump_abs=0.02, rigid=True))
    assert np.any(np.isclose(w, RigidConfig().propagated_weight))
    assert np.all(w[alive] == 1.0)
