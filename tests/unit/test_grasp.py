"""Grasp geometry, plan construction, segmentation by motion, and the Wilson interval."""
import numpy as np
import pytest

from traceany_ros.field import TrajectoryField, fit_trajectory
from traceany_ros.policies.grasp import GraspConfig, plan_from_motion, top_down_grasp
from traceany_ros.policies.oracle import box_surface_points
from traceany_ros.policies.run import wilson_interval
from traceany_ros.policies.segment import moving_segments


def _pose(x, y, z, yaw):
    T = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    T[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    T[:3, 3] = [x, y, z]
    return T


@pytest.mark.parametrize("yaw", [0.0, 0.4, -1.2, 1.5])
def test_top_down_grasp_closes_across_the_narrow_side(yaw):
    half = np.array([0.03, 0.018, 0.02])
    pts = box_surface_points(_pose(0.5, 0.1, 0.02, yaw), half)
    g = top_down_grasp(pts)
    assert np.linalg.norm(g.position[:2] - [0.5, 0.1]) < 2e-3
    assert abs(g.position[2] - (0.04 - GraspConfig().grasp_depth)) < 2e-3
    assert abs(g.width - 2 * half[1]) < 4e-3
    finger_axis = np.array([np.sin(g.yaw), -np.cos(g.yaw)])
    narrow_axis = np.array([-np.sin(yaw), np.cos(yaw)])  # the box's local y in the world
    assert abs(abs(finger_axis @ narrow_axis) - 1) < 1e-3


def test_plan_from_motion_carries_the_grasp_through_the_motion():
    start, goal = _pose(0.45, 0.15, 0.02, 0.3), _pose(0.6, -0.1, 0.02, 1.0)
    pts = box_surface_points(start, [0.03, 0.018, 0.02])
    plan = plan_from_motion(pts, goal @ np.linalg.inv(start))
    assert plan.labels() == ["pre-grasp", "grasp", "lift", "carry", "place", "release"]
    grasp, place = plan.waypoints[1], plan.waypoints[4]
    # the grasp point relative to the object is the same at the place
    rel_start = np.linalg.inv(start) @ np.append(grasp.position, 1)
    rel_goal = np.linalg.inv(goal) @ np.append(place.position - [0, 0, GraspConfig().place_clearance], 1)
    assert np.allclose(rel_start[:3], rel_goal[:3], atol=1e-6)
    assert plan.waypoints[1].gripper == 0.0 and plan.waypoints[4].gripper > 0.07
    assert all(w.position[2] >= GraspConfig().min_grasp_height for w in plan.waypoints)


def test_moving_segments_separates_two_objects_and_ignores_the_table():
    times = np.array([0.0, 1.0])
    h, w = 10, 20
    xs, ys = np.meshgrid(np.linspace(0.3, 0.5, w), np.linspace(-0.05, 0.05, h))  # ~1 cm apart
    start = np.stack([xs, ys, np.zeros_like(xs)], -1)
    end = start.copy()
    start[2:5, 2:5, 2] = end[2:5, 2:5, 2] = 0.03
    end[2:5, 2:5] += [0.1, 0.0, 0.0]              # object A moves +x
    start[6:9, 12:15, 2] = end[6:9, 12:15, 2] = 0.03
    end[6:9, 12:15] += [0.0, -0.08, 0.0]           # object B moves -y
    pts = np.stack([start, end], -2)[None]          # [1, h, w, 2, 3]
    cp = fit_trajectory(times, pts, 4)
    fld = TrajectoryField(cp, np.ones((1, h, w)), np.array([0.0]), time_span=(0.0, 1.0))
    segs = moving_segments(fld, 0.0, 1.0, frame=0)
    assert len(segs) == 2
    assert sorted(len(s) for s in segs) == [9, 9]
    disp = sorted(tuple(np.round(np.median(s.end - s.start, 0), 3)) for s in segs)
    assert disp == sorted([(0.1, 0.0, 0.0), (0.0, -0.08, 0.0)])


def test_wilson_interval():
    lo, hi = wilson_interval(90, 100)
    assert 0.82 < lo < 0.83 and 0.94 < hi < 0.95  # textbook values 0.826 .. 0.945
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_draw_plan_marks_the_projected_waypoints():
    from traceany_ros.policies.viz import draw_plan

    K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    c2w = np.eye(4)  # camera at the origin looking along +z
    plan = plan_from_motion(box_surface_points(_pose(0.0, 0.0, 1.0, 0.0), [0.02, 0.015, 0.02]), np.eye(4))
    img = draw_plan(np.full((48, 64, 3), 255, np.uint8), K, c2w, plan, scale=2)
    assert img.shape == (96, 128, 3)
    g = plan.waypoints[1].position
    u, v = 2 * (100 * g[0] / g[2] + 32) + 1, 2 * (100 * g[1] / g[2] + 24) + 1
    assert tuple(img[int(v), int(u)]) != (255, 255, 255)  # something is drawn at the grasp
