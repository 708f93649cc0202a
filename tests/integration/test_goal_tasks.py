"""The tasks that need the field (rearrange-goal, articulated-goal, intercept-curved) in real PyBullet:
success checks that fail on wrong final states, the static planner's refusal, the field planners on a
ground-truth field."""
import numpy as np
import pytest

from traceany_ros.policies.oracle import plan_oracle
from traceany_ros.policies.plan import Plan
from traceany_ros.policies.run import make_planner, run_episode
from traceany_ros.sim.tasks import make_task


def test_rearrange_fails_unless_every_box_is_at_its_goal():
    task = make_task("rearrange-goal", seed=2)
    assert len(task.targets) in (2, 3)
    m = task.execute(Plan.failure("do nothing"))
    assert not m["success"] and not m["grasp_success"]
    task = make_task("rearrange-goal", seed=2)
    good = [G.copy() for G in task.goal_poses]
    task.goal_poses[-1] = good[-1].copy()
    task.goal_poses[-1][:3, 3] += [0.06, 0.0, 0.0]        # plan one box 6 cm wrong ...
    plan = plan_oracle(task)
    task.goal_poses = good                                  # ... and score against the real goals
    m = task.execute(plan)
    assert m["grasp_success"] and not m["success"] and m["pos_error_cm"] > 3, m
    errs = task.object_errors()
    assert sum(e[0] <= task.config.pos_tol for e in errs) == len(errs) - 1   # the others are in place


def test_articulated_fails_short_of_the_goal_angle_or_still_holding():
    task = make_task("articulated-goal", seed=1)
    m = task.execute(Plan.failure("do nothing"))
    assert not m["success"] and not m["grasp_success"] and m["rot_error_deg"] > 30
    task = make_task("articulated-goal", seed=1)
    goal = task.goal_angle
    task.goal_angle = goal - np.sign(goal) * np.deg2rad(20)  # open it 20 degrees short ...
    plan = plan_oracle(task)
    task.goal_angle = goal
    m = task.execute(plan)
    assert m["grasp_success"] and not m["success"] and 15 < m["rot_error_deg"] < 25, m
    task = make_task("articulated-goal", seed=1)
    plan = plan_oracle(task)
    plan.waypoints = [w for w in plan.waypoints if w.label not in ("release", "retreat")]  # never lets go
    m = task.execute(plan)
    assert m["rot_error_deg"] < task.config.angle_tol_deg and not m["success"], m


def test_curved_mover_defeats_a_constant_velocity_forecast():
    from traceany_ros.policies.intercept import plan_intercept_from_track

    for seed in (1, 2, 3):
        task = make_task("intercept-curved", seed=seed)
        task.observe()
        assert not task.execute(Plan.failure("do nothing"))["success"]
        task = make_task("intercept-curved", seed=seed)
        task.observe()
        gt = task.oracle_info()
        straight = plan_intercept_from_track(gt["position"], gt["velocity"], gt["time"], task.ee_pose[0])
        straight.planning_time_s = 0.05
        m = task.execute(straight)
        assert straight.success and not m["success"] and m["stop_margin_cm"] < 0, (seed, m)


@pytest.mark.parametrize("name", ["pick-place-goal", "rearrange-goal", "articulated-goal"])
def test_static_backend_cannot_plan_what_needs_the_field(name):
    r = run_episode(make_task(name, seed=0), make_planner("static"))
    assert not r["planned"] and not r["success"]
    assert "consistent tracks" in r["message"] or "no moving object" in r["message"], r["message"]


@pytest.mark.parametrize("name", ["rearrange-goal", "articulated-goal"])
def test_field_planners_succeed_on_a_ground_truth_field(name):
    r = run_episode(make_task(name, seed=0), make_planner("oracle-field"))
    assert r["planned"] and r["success"], r["message"]
    assert r["method"].startswith("field-kabsch")
