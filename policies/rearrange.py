"""Goal-conditioned rearrangement: several objects moved at once, each segmented and planned from the field.

    plan = plan_rearrange(window, goal_rgb, goal_depth, make_backend("flow-rigid"))
    # plan.waypoints: (pre-grasp, grasp, lift, carry, place, release) once per moved object

The goal image becomes the clip's last frame (:func:`grasp.goal_clip`); the
backend predicts the field; every group of the current frame's pixels that
the field moves (or whose place the goal view sees past) is one object
(:func:`grasp.motions_from_field`), its motion the confidence-weighted Kabsch
fit of its own tracks (refined by registration inside a trust region at most).
The objects are moved one after the other, each place checked against the
others' current positions: an object whose place is still taken waits.
"""
from __future__ import annotations

import time

import numpy as np

from traceany_ros.policies.grasp import GraspConfig, goal_clip, motions_from_field, plan_from_motion
from traceany_ros.policies.plan import Plan


def order_moves(starts: list[np.ndarray], places: list[np.ndarray], clearance: float = 0.07) -> list[int]:
    """Order in which to move objects now at ``starts`` [3] to ``places`` [3] (xy centres).

    Greedy: next comes the object whose place is farthest from every object still waiting at its
    start (ties: the input order), so that a place another object still occupies is filled last.
    """
    left = list(range(len(starts)))
    order = []
    while left:
        def free(i):
            others = [np.linalg.norm(np.asarray(places[i])[:2] - np.asarray(starts[j])[:2]) for j in left if j != i]
            return min(others) if others else np.inf
        best = max(left, key=lambda i: (min(free(i), clearance), -i))
        order.append(best)
        left.remove(best)
    return order


def combine_plans(plans: list[Plan]) -> Plan:
    """One plan that runs ``plans`` one after the other (all must have succeeded)."""
    wps = [w for p in plans for w in p.waypoints]
    motions = [p.object_motion for p in plans]
    return Plan(success=True, message="ok", waypoints=wps, object_motion=motions[0] if motions else np.eye(4),
                grasp=plans[0].grasp if plans else None,
                num_object_points=int(sum(p.num_object_points for p in plans)),
                fit_rmse=max((p.fit_rmse for p in plans if np.isfinite(p.fit_rmse)), default=float("nan")),
                info={"object_motions": motions, "num_objects": len(plans)})


def plan_rearrange(window, goal_rgb: np.ndarray, goal_depth: np.ndarray | None, backend,
                   config: GraspConfig = GraspConfig(), max_objects: int = 3) -> Plan:
    """Pick-and-place plans for every object the goal image shows moved, in a safe order.

    Args as :func:`traceany_ros.policies.grasp.plan_pick_place`; ``max_objects``: most objects moved.
    Returns a :class:`Plan` whose waypoints repeat pre-grasp .. release per object;
    ``info["methods"]`` says where each object's motion came from, ``info["method"]`` sums it up.
    """
    t0 = time.perf_counter()
    clip = goal_clip(window, goal_rgb, goal_depth, config.goal_dt)
    t_pred = time.perf_counter()
    fld = backend.predict(clip)
    pred_s = time.perf_counter() - t_pred
    try:
        objs = motions_from_field(fld, clip, frame=np.asarray(window.rgb).shape[0] - 1, config=config,
                                  max_objects=max_objects)
    except ValueError as e:
        p = Plan.failure(str(e), predict_s=pred_s, method="none")
        p.planning_time_s = time.perf_counter() - t0
        return p
    plans = [plan_from_motion(pts, info["motion"], config) for pts, info in objs]
    for p, (_, info) in zip(plans, objs):
        p.fit_rmse = float(info.get("rmse", np.nan))
        p.num_object_points = int(info["num_points"])
    starts = [p.waypoints[1].position for p in plans]
    places = [p.waypoints[4].position for p in plans]
    order = order_moves(starts, places)
    plan = combine_plans([plans[i] for i in order])
    methods = [objs[i][1]["method"] for i in order]
    if len(set(methods)) == 1:
        method = methods[0]
    elif all(m.startswith("field-kabsch") for m in methods):  # every motion from the field, some refined
        method = "field-kabsch+registration"
    else:
        method = "mixed"
    plan.info.update(methods=methods, method=method,
                     predict_s=pred_s, backend=getattr(backend, "name", type(backend).__name__), field=fld)
    plan.planning_time_s = time.perf_counter() - t0
    return plan
