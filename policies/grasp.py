"""Goal-conditioned pick-and-place on a trajectory field.

API (what the demo, the planner node and ``traceany eval-policy`` call)::

    from traceany_ros.backends import make_backend
    from traceany_ros.policies.grasp import plan_pick_place
    plan = plan_pick_place(window, goal_rgb, goal_depth, make_backend("flow"))
    # plan.waypoints: pre-grasp, grasp, lift, carry, place, release (world, Panda grasp-target poses)

Steps (docs/method.md, section 3, "goal-conditioned manipulation"):
1. the goal image becomes the last frame of the clip (``window`` frames, then the goal);
2. the backend predicts the trajectory field of that clip;
3. the object = the largest group of pixels of the last current frame whose
   curves move between now and the goal (:mod:`segment`);
4. its rigid motion start -> goal = the upright motion most of its curves'
   start and end points agree on and the goal view does not contradict
   (:func:`kabsch.verified_upright_fit`), optionally refined by ICP (open3d) of
   the moved object points against the goal frame's own points inside a trust
   region around the field's motion (it refines, never replaces);
   ``plan.info["method"]`` says where the motion came from;
5. a top-down grasp across the object's narrow side on its top face, and the
   same grasp carried through the motion (yaw only: objects stay upright).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from traceany_ros.geometry import unproject
from traceany_ros.policies.kabsch import RobustFitConfig, verified_upright_fit
from traceany_ros.policies.plan import Plan, Waypoint, top_down_quaternion
from traceany_ros.policies.segment import SegmentConfig, cell_spacing, free_space, join_radius, largest_cluster

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
    icp_refine / icp_max_distance: refine the field's motion by ICP against the goal frame's points
        (:func:`refine_motion`), inside a trust region around it: the object's centre within
        ``refine_max_shift`` (m), its yaw within the field's own yaw uncertainty (:func:`yaw_uncertainty_deg`)
        times ``refine_yaw_sigmas``, at least ``refine_max_yaw`` and at most ``refine_yaw_cap`` (deg); ICP
        starts from the field's motion turned by every ``refine_yaw_step_deg`` inside it.
    motion_source: "field" (the upright motion the field's tracks vote for, refined by registration at most) or
        "registration" (goal registration alone, a baseline that ignores the tracks); see
        :func:`motion_from_field`.
    min_object_evidence: a moved group counts as an object when its evidence is at least this
        fraction of the strongest group's (several objects: :func:`motions_from_field`).
    fit: of it the field's pair vote (:func:`kabsch.verified_upright_fit`) reads ``inlier_threshold`` (m; at
        least one field cell is used) and ``seed``; its RANSAC and IRLS settings serve
        :func:`kabsch.robust_rigid_fit`, which the goal planner no longer calls.
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
    refine_max_shift: float = 0.03
    refine_max_yaw: float = 20.0
    refine_yaw_sigmas: float = 3.0
    refine_yaw_cap: float = 90.0
    refine_yaw_step_deg: float = 10.0
    motion_source: str = "field"
    min_object_evidence: float = 0.15
    fast_speed: float = 0.6
    slow_speed: float = 0.25
    segment: SegmentConfig = SegmentConfig()
    fit: RobustFitConfig = RobustFitConfig()

    def __post_init__(self):
        if self.motion_source not in ("field", "registration"):
            raise ValueError(f"motion_source must be field or registration, got {self.motion_source!r}")


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


def _upright(T: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """The yaw-and-translation part of a (near-)upright motion [4,4]: objects on the table stay upright.

    With ``centre`` [3] (the object's centre) the upright motion takes it where T does: a small tilt
    about the world origin, far from the object, would otherwise leave its centre out of place."""
    out = np.eye(4)
    c, s = np.cos(yaw_of(T[:3, :3])), np.sin(yaw_of(T[:3, :3]))
    out[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    out[:3, 3] = T[:3, 3] if centre is None else T[:3, :3] @ centre + T[:3, 3] - out[:3, :3] @ centre
    return out


def _turn_about(T: np.ndarray, angle: float, centre: np.ndarray) -> np.ndarray:
    """T followed by a turn of ``angle`` (rad) about the vertical through ``centre`` [3]."""
    c, s = np.cos(angle), np.sin(angle)
    R = np.eye(4)
    R[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    R[:3, 3] = centre - R[:3, :3] @ centre
    return R @ T


def _motion_gap(A: np.ndarray, B: np.ndarray, points: np.ndarray) -> tuple[float, float]:
    """(xy displacement between where A and B put the centre of ``points`` m, yaw difference deg) of two
    motions."""
    c = np.asarray(points, np.float64).mean(0)
    d = float(np.linalg.norm((A[:3, :3] @ c + A[:3, 3] - B[:3, :3] @ c - B[:3, 3])[:2]))
    dyaw = abs((np.rad2deg(yaw_of(A[:3, :3]) - yaw_of(B[:3, :3])) + 180) % 360 - 180)
    return d, float(dyaw)


def yaw_uncertainty_deg(start: np.ndarray, rmse: float, floor: float) -> float:
    """Standard deviation (deg) of the yaw a rigid fit of tracks starting at ``start`` [N,3] gives.

    Each track's end is off by about ``max(rmse, floor)`` (m; the fit's inlier residual, at least the
    noise ``floor`` a handful of tracks cannot measure); N tracks at RMS distance r from their centre
    (in xy) fix the turn to about that / r / sqrt(N - 2) rad. A small object seen by a few tracks of a
    coarse field (a uniformly coloured box, whose cells all look alike) gets a wide one.
    """
    xy = np.asarray(start, np.float64)[:, :2]
    r = float(np.sqrt(((xy - xy.mean(0)) ** 2).sum(1).mean())) if len(xy) else 0.0
    noise = max(float(rmse) if np.isfinite(rmse) else floor, floor)
    return float(np.rad2deg(noise / max(r, 1e-3) / np.sqrt(max(len(xy) - 2, 1))))


def refine_motion(T_field: np.ndarray, src_top: np.ndarray, goal_points: np.ndarray,
                  config: "GraspConfig", yaw_sigma_deg: float = 0.0) -> tuple[np.ndarray, dict]:
    """Registration refinement of the field's motion ``T_field`` [4,4], inside a trust region around it.

    ICP (open3d) of the object's top face now ``src_top`` [N,3] onto the goal view's
    changed points ``goal_points`` [M,3] near where the field puts it, started from the
    field's motion and from it turned about the object's centre by every ``refine_yaw_step_deg``
    inside the yaw trust region: ``refine_yaw_sigmas`` x ``yaw_sigma_deg`` (the field's own yaw
    uncertainty, :func:`yaw_uncertainty_deg`), at least ``refine_max_yaw``, at most ``refine_yaw_cap``.
    A refined motion is taken only when it matches the goal view better (symmetric chamfer)
    and keeps the object's centre within ``refine_max_shift`` (m) and its yaw within the trust
    region of the field's motion: registration refines the field, it never replaces it.
    Returns (motion [4,4], info with "refined" bool, "yaw_trust_deg" and the chamfer distances).
    """
    T_field = _upright(T_field)
    trust = float(np.clip(config.refine_yaw_sigmas * yaw_sigma_deg, config.refine_max_yaw, config.refine_yaw_cap))
    info = {"refined": False, "yaw_trust_deg": round(trust, 1)}
    if goal_points is None or len(goal_points) < 10 or len(src_top) < 10:
        return T_field, info
    moved = src_top @ T_field[:3, :3].T + T_field[:3, 3]
    near = np.linalg.norm(goal_points[:, :2] - moved.mean(0)[:2], axis=1) < config.refine_max_shift + 0.06
    dst = goal_points[near]
    if len(dst) < 10:
        return T_field, info
    dst = _top_face(dst, config.top_band)
    base = _chamfer(T_field, src_top, dst)
    best, best_score = T_field, base
    centre = moved.mean(0)
    n = int(np.floor(trust / config.refine_yaw_step_deg))
    for a in config.refine_yaw_step_deg * np.arange(-n, n + 1):
        init = _turn_about(T_field, np.deg2rad(a), centre)
        T, _, _ = _icp_refine(src_top, dst, init, config.icp_max_distance)
        T = _upright(T, src_top.mean(0))
        shift, dyaw = _motion_gap(T, T_field, src_top)
        if shift > config.refine_max_shift or dyaw > trust:
            continue
        score = _chamfer(T, src_top, dst)
        if score < best_score:
            best, best_score = T, score
    info.update(refined=best is not T_field, chamfer_field_m=round(base, 4), chamfer_m=round(best_score, 4))
    return best, info


@dataclass
class _Views:
    """What the goal planners read from a field of [current frames..., goal] and its clip."""

    start: np.ndarray          # [h,w,3] the segmented frame's points now
    end: np.ndarray            # [h,w,3] their curves at the goal time
    conf: np.ndarray           # [h,w]
    consistent: np.ndarray     # [h,w] bool: moving curves the goal view does not contradict
    cand: np.ndarray           # [h,w] bool: moving, contradicted or vanished
    score: np.ndarray          # [h,w] how much each candidate says "the object"
    full_now: np.ndarray       # [P,3] current view's full-resolution points where the goal view changed
    full_goal: np.ndarray      # [Q,3] goal view's full-resolution points where the current view changed
    cell_size: float = 0.0     # m: how far apart the field's side-by-side cells lie (segment.cell_spacing)
    goal_view: tuple = ()      # (depth [H,W], K [3,3], cam_to_world [4,4]) of the goal frame


def _views(fld, clip, frame: int, config: "GraspConfig") -> _Views:
    cfg = config.segment
    t_goal = float(fld.times[-1])
    K = np.asarray(clip.intrinsics, np.float64)
    c2w = np.asarray(clip.cam_to_world, np.float64)
    depth_now, depth_goal = np.asarray(clip.depth[frame]), np.asarray(clip.depth[-1])
    conf_now = fld.confidence[frame]
    start = fld.frame_points()[frame]
    end = fld.positions(t_goal, frames=[frame])[0]
    disp = np.linalg.norm(end - start, axis=-1)
    contradicted = free_space(end, depth_goal, K, c2w[-1])
    vanished = free_space(start, depth_goal, K, c2w[-1])       # the goal view sees past where it is now
    above = (start[..., 2] > config.table_z + 0.004) & (start[..., 2] < config.table_z + cfg.max_height)
    valid_now = (conf_now > 0) & above
    consistent = valid_now & (disp > cfg.min_displacement) & ~contradicted
    cand = valid_now & ((disp > cfg.min_displacement) | contradicted | vanished)
    full_now = unproject(depth_now, K, c2w[frame])
    full_goal = unproject(depth_goal, K, c2w[-1])
    changed_now = free_space(full_now, depth_goal, K, c2w[-1]) & (depth_now > 0)
    changed_goal = free_space(full_goal, depth_now, K, c2w[frame]) & (depth_goal > 0)
    return _Views(start=start, end=end, conf=conf_now, consistent=consistent, cand=cand,
                  score=conf_now * (vanished + 0.1 * consistent), full_now=full_now[changed_now],
                  full_goal=full_goal[changed_goal], cell_size=cell_spacing(start), goal_view=(depth_goal, K, c2w[-1]))


def _object_masks(v: _Views, config: "GraspConfig", max_objects: int) -> list[np.ndarray]:
    """[h,w] masks of the moved objects (eps-connected groups of candidates), most evidence first.

    The neighbourhood is ``segment.eps``, widened where the field's cells are coarser (:func:`segment.join_radius`)."""
    from traceany_ros.policies.segment import _components

    cfg = config.segment
    ij = np.argwhere(v.cand)
    if len(ij) < cfg.min_points:
        return []
    labels = _components(v.start[v.cand].astype(np.float64), join_radius(cfg.eps, v.cell_size))
    sc = v.score[v.cand]
    groups = []
    for lab in np.unique(labels):
        m = labels == lab
        if m.sum() >= cfg.min_points and sc[m].sum() > 0:
            groups.append((float(sc[m].sum()), m))
    groups.sort(key=lambda g: -g[0])
    out = []
    for s, m in groups[:max_objects]:
        if s < config.min_object_evidence * groups[0][0]:
            break
        mask = np.zeros(v.cand.shape, bool)
        mask[ij[m, 0], ij[m, 1]] = True
        out.append(mask)
    return out


def _object_motion(v: _Views, obj_mask: np.ndarray, config: "GraspConfig") -> tuple[np.ndarray, dict]:
    """One object's points now [N,3] and its motion (see :func:`motion_from_field`)."""
    src = _dense_object_points(v.start[obj_mask], v.full_now, config.table_z)
    src_top = _top_face(src, config.top_band)
    tracks = v.consistent & obj_mask
    info: dict = {"num_points": int(obj_mask.sum()), "num_consistent_tracks": int(tracks.sum()),
                  "object_mask": obj_mask}
    if config.motion_source == "registration":
        goal_obj = _goal_object_near(v, src, config)
        if goal_obj is None:
            raise ValueError("goal registration found no changed goal points to register the object onto")
        T = _yaw_search(src_top, _top_face(goal_obj, config.top_band), config.icp_max_distance)
        info.update(motion=T, method="goal-registration", motion_source="registration",
                    rmse=float("nan"), goal_points=goal_obj)
        return src, info
    if tracks.sum() < 3:
        raise ValueError(f"the field gives {int(tracks.sum())} consistent tracks of the moved object (3 needed): "
                         "its curves do not reach the object's place in the goal image; a backend that "
                         "tracks the object to the goal frame (the network) is needed")

    def contradicted(T):  # share of the object's points the goal view sees past, where T puts them
        return float(free_space(src @ T[:3, :3].T + T[:3, 3], *v.goal_view).mean()) if len(src) else 0.0

    T, inl, rmse = verified_upright_fit(v.start[tracks], v.end[tracks], v.conf[tracks],
                                        max(config.fit.inlier_threshold, v.cell_size), contradicted,
                                        seed=config.fit.seed)
    info.update(rmse=rmse, num_inliers=int(inl.sum()), kabsch_motion=T.copy(),
                goal_view_contradicts=round(contradicted(T), 3))
    method = "field-kabsch"
    if config.icp_refine:
        sigma = yaw_uncertainty_deg(v.start[tracks][inl], rmse, config.fit.inlier_threshold)
        T, rinfo = refine_motion(T, src_top, v.full_goal, config, yaw_sigma_deg=sigma)
        info.update(rinfo)
        if rinfo["refined"]:
            method = "field-kabsch+registration"
    info.update(motion=T, method=method, motion_source="field")
    return src, info


def _goal_object_near(v: _Views, src: np.ndarray, config: "GraspConfig"):
    """Goal view's changed points in the largest group that is not the object's own place (registration only)."""
    pts = v.full_goal
    if len(pts) < 10:
        return None
    pts = pts[pts[:, 2] > config.table_z + 0.004]
    keep = largest_cluster(pts[::2], eps=0.008, min_points=10)
    return pts[::2][keep] if keep.any() else None


def motion_from_field(fld, clip, frame: int, config: GraspConfig = GraspConfig()) -> tuple[np.ndarray, dict]:
    """Object points and rigid motion from a field whose last frame is the goal.

    Object pixels come from the field: pixels of ``frame`` whose curves move by
    more than ``segment.min_displacement`` between now and the goal, or whose
    place the goal view sees past (it left); the eps-connected group with the
    most evidence is the object (:mod:`segment`). Its motion is the upright motion
    that most of its consistent curves' start and goal points (the field's own
    correspondences, confidence-weighted) agree on, scored down where the goal
    view sees past the object it moves (:func:`kabsch.verified_upright_fit`); with ``icp_refine``
    registration onto the goal view may refine it inside a trust region
    (:func:`refine_motion`), never replace it. ``motion_source="registration"``
    instead registers the object onto the goal view alone (a comparison
    baseline that does not read the field's tracks).

    Args:
        fld: TrajectoryField of the clip [current frames..., goal].
        clip: the FrameWindow it was predicted from (full-resolution depth for the checks).
        frame: source frame whose pixels are segmented (the last current frame).
    Returns:
        (object points now [N,3], info dict with "motion" [4,4], "rmse", "method"
        ("field-kabsch", "field-kabsch+registration" or "goal-registration"), ...).
        Raises ValueError when no moving object, or no consistent track of it, is found.
    """
    objs = motions_from_field(fld, clip, frame, config, max_objects=1)
    return objs[0]


def motions_from_field(fld, clip, frame: int, config: GraspConfig = GraspConfig(),
                       max_objects: int = 3) -> list[tuple[np.ndarray, dict]]:
    """Every moved object's points now and motion (as :func:`motion_from_field`), most evidence first.

    Groups with less than ``min_object_evidence`` of the first one's evidence are noise. An object
    whose motion cannot be found raises ValueError (a plan that skips an object would be wrong).
    """
    v = _views(fld, clip, frame, config)
    masks = _object_masks(v, config, max_objects)
    if not masks:
        raise ValueError("no moving object in the field between the current view and the goal image: "
                         "is the object moved in the goal image, and is the backend's field confident?")
    return [_object_motion(v, m, config) for m in masks]


def goal_clip(window, goal_rgb: np.ndarray, goal_depth: np.ndarray | None, goal_dt: float = 1.0):
    """The clip a goal planner predicts: the current frames of ``window``, then the goal image.

    window: FrameWindow-like (rgb [T,H,W,3], depth [T,H,W], intrinsics [3,3], cam_to_world [T,4,4],
    times [T]); goal_rgb [H,W,3] uint8 and goal_depth [H,W] m (None: the current depth) from the same
    camera. The goal frame is ``goal_dt`` s after the last current frame and seen from its pose.
    Returns a FrameWindow of T + 1 frames. Raises ValueError on mismatched shapes.
    """
    from traceany_ros.episode import FrameWindow

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
                       times=np.append(times, times[-1] + goal_dt))
    return clip


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
    t0 = time.perf_counter()
    clip = goal_clip(window, goal_rgb, goal_depth, config.goal_dt)
    rgb = np.asarray(window.rgb)
    t_pred = time.perf_counter()
    fld = backend.predict(clip)
    pred_s = time.perf_counter() - t_pred
    try:
        pts, info = motion_from_field(fld, clip, frame=rgb.shape[0] - 1, config=config)
    except ValueError as e:
        p = Plan.failure(str(e), predict_s=pred_s, method="none")
        p.planning_time_s = time.perf_counter() - t0
        return p
    plan = plan_from_motion(pts, info["motion"], config)
    plan.fit_rmse = float(info["rmse"])
    plan.num_object_points = int(info["num_points"])
    plan.info.update(info, predict_s=pred_s, backend=getattr(backend, "name", type(backend).__name__),
                     field=fld, object_points=pts)
    plan.planning_time_s = time.perf_counter() - t0
    return plan
