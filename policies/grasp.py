"""Goal-conditioned pick-and-place on a trajectory field.

API (what the demo, the planner node and ``traceany eval-policy`` call)::

    from traceany_ros.backends import make_backend
    from traceany_ros.policies.grasp import plan_pick_place
    plan = plan_pick_place(window, goal_rgb, goal_depth, make_backend("flow"))
    # plan.waypoints: pre-grasp, grasp, lift, carry, place, release (world, Panda grasp-target poses)

Steps (method.md, "goal-conditioned manipulation"):
1. the goal image becomes the last frame of the clip (``window`` frames, then the goal);
2. the backend predicts the trajectory field of that clip;
3. the object = the largest group of pixels of the last current frame whose
   curves move between now and the goal (:mod:`segment`);
4. its rigid motion start -> goal = a confidence-weighted robust Kabsch fit of
   the curves' start and end points (:mod:`kabsch`), optionally refined by ICP
   (open3d) of the moved object points against the goal frame's own points;
5. a top-down grasp across the object's narrow side on its top face, and the
   same grasp carried through the motion (yaw only: objects stay upright).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from traceany_ros.episode import unproject
from traceany_ros.policies.kabsch import RobustFitConfig, robust_rigid_fit
from traceany_ros.policies.plan import Plan, Waypoint, top_down_quaternion
from traceany_ros.policies.segment import SegmentConfig, free_space, largest_cluster

MAX_GRIPPER_WIDTH = 0.08


@dataclass(frozen=True)
class GraspConfig:
    """Geometry of the pick-and-place path (metres, m/s).

    approach_height: pre-grasp / release height above the grasp / place pose.
    lift_height: height of the lift and carry waypoints above the grasp.
    grasp_depth: grasp this far below the top face of the object.
    min_grasp_height: never put the grasp target lower than this above the table.
    place_clearance: release this far above the predicted place pose.
    top_band: points within this of the top are the top face.
    table_z: height of the table plane (world z).
    goal_dt: seconds between the last current frame and the goal frame in the clip.
    icp_refine / icp_max_distance: refine the motion by ICP against the goal frame's points.
    motion_source: "auto" (best of both hypotheses), "field" (Kabsch on the field's tracks only),
        "registration" (goal registration only); see :func:`motion_from_field`.
    """

    approach_height: float = 0.10
    lift_height: float = 0.15
    grasp_depth: float = 0.02
    min_grasp_height: float = 0.012
    place_clearance: float = 0.012
    top_band: float = 0.012
    table_z: float = 0.0
    goal_dt: float = 1.0
    icp_refine: bool = True
    icp_max_distance: float = 0.02
    motion_source: str = "auto"
    fast_speed: float = 0.6
    slow_speed: float = 0.25
    segment: SegmentConfig = SegmentConfig()
    fit: RobustFitConfig = RobustFitConfig()

    def __post_init__(self):
        if self.motion_source not in ("auto", "field", "registration"):
            raise ValueError(f"motion_source must be auto, field or registration, got {self.motion_source!r}")


def yaw_of(R: np.ndarray) -> float:
    """Rotation about world z of a (near-)upright rotation matrix [3,3], radians."""
    return float(np.arctan2(R[1, 0], R[0, 0]))


def _wrap_half_turn(a: float) -> float:
    """Angle to [-pi/2, pi/2): a parallel gripper is symmetric under a half turn."""
    return float((a + np.pi / 2) % np.pi - np.pi / 2)


@dataclass
class TopGrasp:
    """A top-down grasp: position [3] (grasp target), yaw (rad, finger axis), width (m, object size across)."""

    position: np.ndarray
    yaw: float
    width: float
    info: dict = field(default_factory=dict)


def top_down_grasp(points: np.ndarray, config: GraspConfig = GraspConfig()) -> TopGrasp:
    """Top-down grasp on an object's points [N,3] (world): across the narrow side of its top face.

    The top face = points within ``top_band`` of the 90th height percentile;
    its principal axes (PCA in xy) give the long and narrow directions; the
    centre is the middle of the robust (2nd-98th percentile) extent along each.
    """
    pts = np.asarray(points, np.float64)
    if pts.shape[0] < 3:
        raise ValueError(f"need at least 3 object points for a grasp, got {pts.shape[0]}")
    top = float(np.percentile(pts[:, 2], 90))
    face = pts[pts[:, 2] > top - config.top_band]
    if face.shape[0] < 3:
        face = pts
    xy = face[:, :2]
    mu = xy.mean(0)
    cov = np.cov((xy - mu).T) if xy.shape[0] > 2 else np.eye(2)
    evals, evecs = np.linalg.eigh(cov)
    major, minor = evecs[:, 1], evecs[:, 0]
    proj_major, proj_minor = (xy - mu) @ major, (xy - mu) @ minor
    lo_M, hi_M = np.percentile(proj_major, [2, 98])
    lo_m, hi_m = np.percentile(proj_minor, [2, 98])
    center = mu + major * (lo_M + hi_M) / 2 + minor * (lo_m + hi_m) / 2
    width_minor, width_major = float(hi_m - lo_m), float(hi_M - lo_M)
    close_dir = minor
    width = width_minor
    if width_minor > MAX_GRIPPER_WIDTH - 0.01 and width_major < width_minor:
        close_dir, width = major, width_major
    # Panda: the finger axis of a top-down pose with yaw psi is (sin psi, -cos psi)
    yaw = _wrap_half_turn(float(np.arctan2(close_dir[1], close_dir[0])) + np.pi / 2)
    z = max(top - config.grasp_depth, config.table_z + config.min_grasp_height)
    return TopGrasp(position=np.array([center[0], center[1], z]), yaw=yaw, width=width,
                    info={"top_z": top, "face_points": int(face.shape[0]), "extent_major": width_major,
                          "extent_minor": width_minor})


def plan_from_motion(points: np.ndarray, motion: np.ndarray, config: GraspConfig = GraspConfig()) -> Plan:
    """Pick-and-place waypoints for an object seen as ``points`` [N,3] that must move by ``motion`` [4,4].

    The place pose is the grasp carried by the motion's translation and its
    rotation about z (the object stays upright).
    """
    g = top_down_grasp(points, config)
    psi = yaw_of(motion[:3, :3])  # stay upright: only the yaw of the motion turns the gripper
    place = motion[:3, :3] @ g.position + motion[:3, 3]
    place[2] = max(place[2], config.table_z + config.min_grasp_height) + config.place_clearance
    place_yaw = _wrap_half_turn(g.yaw + psi)
    q_grasp, q_place = top_down_quaternion(g.yaw), top_down_quaternion(place_yaw)
    up = np.array([0, 0, 1.0])
    open_w = MAX_GRIPPER_WIDTH
    fast, slow = config.fast_speed, config.slow_speed
    wps = [
        Waypoint("pre-grasp", g.position + config.approach_height * up, q_grasp, open_w, fast),
        Waypoint("grasp", g.position, q_grasp, 0.0, slow),
        Waypoint("lift", g.position + config.lift_height * up, q_grasp, 0.0, slow),
        Waypoint("carry", place + config.lift_height * up, q_place, 0.0, fast),
        Waypoint("place", place, q_place, open_w, slow),
        Waypoint("release", place + config.approach_height * up, q_place, open_w, fast),
    ]
    return Plan(success=True, message="ok", waypoints=wps, object_motion=np.asarray(motion, np.float64),
                grasp=wps[1], info={"grasp_width": g.width, "grasp_yaw": g.yaw, "place_yaw": place_yaw,
                                    **g.info})


def _icp_refine(src_pts: np.ndarray, goal_pts: np.ndarray, init: np.ndarray, max_dist: float):
    """Point-to-point ICP (open3d) of the object's start points onto the goal frame's points."""
    import open3d as o3d

    a, b = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
    a.points = o3d.utility.Vector3dVector(np.asarray(src_pts, np.float64))
    b.points = o3d.utility.Vector3dVector(np.asarray(goal_pts, np.float64))
    res = o3d.pipelines.registration.registration_icp(
        a, b, max_dist, np.asarray(init, np.float64),
        o3d.pipelines.registration.TransformationEstimationPointToPoint(),
        o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=30))
    return np.asarray(res.transformation), float(res.fitness), float(res.inlier_rmse)


def _dense_object_points(seed_pts: np.ndarray, points: np.ndarray, table_z: float, reach: float = 0.08,
                         eps: float = 0.006, min_height: float = 0.004) -> np.ndarray:
    """Full-resolution points [M,3] of the object the coarse field points [N,3] lie on.

    Region growing over ``points`` [P,3] (a view's points where it changed, so that a
    box resting on another does not grow into it): the above-table points near the
    seeds, grouped into eps-connected components; those that touch a seed are the object.
    """
    from scipy.spatial import cKDTree

    from traceany_ros.policies.segment import _components

    pts = np.asarray(points, np.float64).reshape(-1, 3)
    ok = pts[:, 2] > table_z + min_height
    lo, hi = seed_pts.min(0) - reach, seed_pts.max(0) + reach
    ok &= np.all((pts > lo) & (pts < hi), axis=1)
    cand = pts[ok]
    if len(cand) < len(seed_pts):
        return seed_pts
    labels = _components(cand, eps)
    d, idx = cKDTree(cand).query(seed_pts, distance_upper_bound=2 * eps)
    hit = np.unique(labels[idx[np.isfinite(d)]])
    dense = cand[np.isin(labels, hit)]
    return dense if len(dense) >= len(seed_pts) else seed_pts


def _top_face(points: np.ndarray, band: float) -> np.ndarray:
    top = float(np.percentile(points[:, 2], 95))
    face = points[points[:, 2] > top - band]
    return face if len(face) >= 10 else points


def _chamfer(T: np.ndarray, src: np.ndarray, dst: np.ndarray, cap: float = 0.02) -> float:
    """Symmetric truncated chamfer distance (m) between T(src) [N,3] and dst [M,3]."""
    from scipy.spatial import cKDTree

    moved = src @ T[:3, :3].T + T[:3, 3]
    d1, _ = cKDTree(dst).query(moved)
    d2, _ = cKDTree(moved).query(dst)
    return float(0.5 * (np.minimum(d1, cap).mean() + np.minimum(d2, cap).mean()))


def _yaw_search(src: np.ndarray, dst: np.ndarray, max_dist: float, steps: int = 36):
    """Upright rigid registration src -> dst: ICP from ``steps`` yaw hypotheses about the centroids,
    the one with the smallest symmetric chamfer distance wins."""
    best = (None, np.inf)
    cs, cd = src.mean(0), dst.mean(0)
    for a in np.linspace(-np.pi, np.pi, steps, endpoint=False):
        c, s = np.cos(a), np.sin(a)
        init = np.eye(4)
        init[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
        init[:3, 3] = cd - init[:3, :3] @ cs
        T, _, _ = _icp_refine(src, dst, init, max_dist)
        score = _chamfer(T, src, dst)
        if score < best[1]:
            best = (T, score)
    return best[0]


def motion_from_field(fld, clip, frame: int, config: GraspConfig = GraspConfig()) -> tuple[np.ndarray, dict]:
    """Object points and rigid motion from a field whose last frame is the goal.

    Object pixels come from the field: pixels of ``frame`` whose curves move by
    more than ``segment.min_displacement`` between now and the goal, or whose
    predicted goal position the goal view contradicts (it sees past it); the
    largest eps-connected group is the object (:mod:`segment`). Likewise the
    goal frame's pixels whose curves at "now" the current view contradicts give
    the object at the goal. Two motion hypotheses are scored by how many moved
    object points land on the goal object's points:
    (a) robust confidence-weighted Kabsch on the field's own correspondences
    (start -> end of each consistent curve), (b) when the field's tracks are
    not borne out by the goal view, upright registration (yaw hypotheses + ICP)
    of the object's points now onto the object's points in the goal frame.
    The best one is refined by ICP.

    Args:
        fld: TrajectoryField of the clip [current frames..., goal].
        clip: the FrameWindow it was predicted from (full-resolution depth for the checks).
        frame: source frame whose pixels are segmented (the last current frame).
    Returns:
        (object points now [N,3], info dict with "motion" [4,4], "rmse", "method", "support", ...).
        Raises ValueError when no moving object is found.
    """
    cfg = config.segment
    t_now, t_goal = float(fld.times[frame]), float(fld.times[-1])
    K = np.asarray(clip.intrinsics, np.float64)
    c2w = np.asarray(clip.cam_to_world, np.float64)
    depth_now, depth_goal = np.asarray(clip.depth[frame]), np.asarray(clip.depth[-1])
    own = fld.frame_points()
    conf_now, conf_goal = fld.confidence[frame], fld.confidence[-1]
    above = lambda p: (p[..., 2] > config.table_z + 0.004) & (p[..., 2] < config.table_z + cfg.max_height)

    # object now: curves that move, or whose goal position the goal view contradicts
    start = own[frame]
    end = fld.positions(t_goal, frames=[frame])[0]
    disp = np.linalg.norm(end - start, axis=-1)
    contradicted = free_space(end, depth_goal, K, c2w[-1])
    vanished = free_space(start, depth_goal, K, c2w[-1])       # the goal view sees past where it is now
    valid_now = (conf_now > 0) & above(start)
    consistent = valid_now & (disp > cfg.min_displacement) & ~contradicted
    cand = valid_now & ((disp > cfg.min_displacement) | contradicted | vanished)
    if cand.sum() < cfg.min_points:
        raise ValueError("no moving object in the field between the current view and the goal image: "
                         "is the object moved in the goal image, and is the backend's field confident?")
    # the object is the group that left its place (vanished) or whose tracks the goal view confirms
    score = conf_now * (vanished + 0.1 * consistent)
    keep = largest_cluster(start[cand], score[cand], eps=cfg.eps, min_points=cfg.min_points)
    obj_mask = np.zeros_like(cand)
    obj_mask[np.nonzero(cand)[0][keep], np.nonzero(cand)[1][keep]] = True
    src_coarse = start[obj_mask]
    full_now = unproject(depth_now, K, c2w[frame])
    full_goal = unproject(depth_goal, K, c2w[-1])
    changed_now = free_space(full_now, depth_goal, K, c2w[-1]) & (depth_now > 0)
    changed_goal = free_space(full_goal, depth_now, K, c2w[frame]) & (depth_goal > 0)
    src = _dense_object_points(src_coarse, full_now[changed_now], config.table_z)

    # object at the goal: goal pixels the current view contradicts, where they are or where their curves were
    g_own = own[-1]
    g_start = fld.positions(t_now, frames=[fld.num_frames - 1])[0]
    g_valid = (conf_goal > 0) & above(g_own)
    appeared = free_space(g_own, depth_now, K, c2w[frame])
    g_moved = np.linalg.norm(g_own - g_start, axis=-1) > cfg.min_displacement
    g_cand = g_valid & (free_space(g_start, depth_now, K, c2w[frame]) | g_moved | appeared)
    info: dict = {"num_points": int(obj_mask.sum()), "num_consistent_tracks": int((consistent & obj_mask).sum())}
    goal_obj = None
    if g_cand.sum() >= cfg.min_points:
        g_score = conf_goal * (appeared + 0.1 * (g_moved & ~appeared))
        gk = largest_cluster(g_own[g_cand], g_score[g_cand], eps=cfg.eps, min_points=cfg.min_points)
        if gk.any():
            goal_obj = _dense_object_points(g_own[g_cand][gk], full_goal[changed_goal], config.table_z)

    hyps = {}
    tracks = consistent & obj_mask
    if tracks.sum() >= 3 and config.motion_source in ("auto", "field"):
        fit = robust_rigid_fit(start[tracks], end[tracks], conf_now[tracks], config.fit)
        hyps["field-kabsch"] = fit.T
        info.update(rmse=fit.rmse, num_inliers=int(fit.inliers.sum()), kabsch_motion=fit.T.copy())
    src_top = _top_face(src, config.top_band)
    goal_top = _top_face(goal_obj, config.top_band) if goal_obj is not None and len(goal_obj) >= 10 else None
    if goal_top is not None and len(src) >= 10 and config.motion_source in ("auto", "registration"):
        hyps["goal-registration"] = _yaw_search(src_top, goal_top, config.icp_max_distance)
    if not hyps:
        raise ValueError("found the object now but neither consistent tracks nor the object in the goal image: "
                         "the backend's field is too uncertain for this goal")
    # score: symmetric chamfer distance of the top faces (lower is better); no goal object: trust the tracks
    scores = {k: (_chamfer(T, src_top, goal_top) if goal_top is not None else 0.0) for k, T in hyps.items()}
    method = min(hyps, key=lambda k: (scores[k], k != "field-kabsch"))
    T = hyps[method]
    if config.icp_refine and goal_top is not None:
        T_icp, fitness, rmse = _icp_refine(src_top, goal_top, T, config.icp_max_distance)
        info.update(icp_fitness=fitness, icp_rmse=rmse)
        if _chamfer(T_icp, src_top, goal_top) <= scores[method]:
            T = T_icp
    info.setdefault("rmse", float(info.get("icp_rmse", np.nan)))
    info.update(motion=T, method=method, chamfer_m={k: round(v, 4) for k, v in scores.items()},
                object_mask=obj_mask, goal_points=goal_obj)
    return src, info


def plan_pick_place(window, goal_rgb: np.ndarray, goal_depth: np.ndarray | None, backend,
                    config: GraspConfig = GraspConfig()) -> Plan:
    """Goal-conditioned pick-and-place plan from the current view(s) and a goal image.

    Args:
        window: FrameWindow-like (rgb [T,H,W,3] uint8, depth [T,H,W] m, intrinsics [3,3],
            cam_to_world [T,4,4], times [T] s) of the current view; T >= 1, the last frame is "now".
        goal_rgb: [H,W,3] uint8 goal image from the same camera (the scene with the object moved).
        goal_depth: [H,W] float32 metres, or None (then the current depth is reused for the goal
            frame, which only holds while the moved object stays small in the image).
        backend: a ``traceany_ros.backends`` backend (``predict(window) -> TrajectoryField``).
    Returns:
        :class:`Plan` with waypoints pre-grasp, grasp, lift, carry, place, release (world frame),
        ``object_motion`` [4,4], ``fit_rmse``, ``num_object_points`` and ``planning_time_s``;
        ``success=False`` with a message when no moving object is found.
    """
    from traceany_ros.episode import FrameWindow

    t0 = time.perf_counter()
    rgb = np.asarray(window.rgb)
    if rgb.ndim == 3:
        raise ValueError("window.rgb must be [T,H,W,3]; wrap a single view as T = 1")
    goal_rgb = np.asarray(goal_rgb, np.uint8)
    if goal_rgb.shape != rgb.shape[1:]:
        raise ValueError(f"goal_rgb is {goal_rgb.shape} but the current view is {rgb.shape[1:]}: "
                         "the goal image must come from the same camera at the same resolution")
    depth = np.asarray(window.depth, np.float32)
    gd = depth[-1] if goal_depth is None else np.asarray(goal_depth, np.float32)
    if gd.shape != depth.shape[1:]:
        raise ValueError(f"goal_depth is {gd.shape} but the current depth is {depth.shape[1:]}")
    times = np.asarray(window.times, np.float64)
    clip = FrameWindow(rgb=np.concatenate([rgb, goal_rgb[None]]), depth=np.concatenate([depth, gd[None]]),
                       intrinsics=np.asarray(window.intrinsics, np.float32),
                       cam_to_world=np.concatenate([np.asarray(window.cam_to_world, np.float32),
                                                    np.asarray(window.cam_to_world, np.float32)[-1:]]),
                       times=np.append(times, times[-1] + config.goal_dt))
    t_pred = time.perf_counter()
    fld = backend.predict(clip)
    pred_s = time.perf_counter() - t_pred
    try:
        pts, info = motion_from_field(fld, clip, frame=rgb.shape[0] - 1, config=config)
    except ValueError as e:
        p = Plan.failure(str(e), predict_s=pred_s)
        p.planning_time_s = time.perf_counter() - t0
        return p
    plan = plan_from_motion(pts, info["motion"], config)
    plan.fit_rmse = float(info["rmse"])
    plan.num_object_points = int(info["num_points"])
    plan.info.update(info, predict_s=pred_s, backend=getattr(backend, "name", type(backend).__name__),
                     field=fld, object_points=pts)
    plan.planning_time_s = time.perf_counter() - t0
    return plan
