"""The ``flow`` baseline: dense 2D optical flow chained over a clip, lifted to 3D.

For every frame ``f`` and every field pixel (a grid at ``stride``), the pixel is
followed frame to frame forward (``f -> f+1 -> ...``) and backward
(``f -> f-1 -> ...``) with OpenCV's DIS (or Farneback) flow. At each step the
forward-backward check (the flow back from the new position must return to
the old one) decides whether the track is still alive. Alive positions are
lifted to the world with that frame's depth, intrinsics and camera pose; lost
frames hold the last alive world position at a small weight (a "stays put"
prior). The samples are fitted with the project's one B-spline
(:func:`traceany_ros.field.fit_trajectory`).

Options (``FlowConfig``): RGB-D flow (:func:`rgbd_flow`, DIS also on log-depth images) and learned
matches (:func:`learned_flow`: DIS started from the coarse matches of :mod:`traceany_ros.tracker.matcher`);
``TRACKERS`` names the tracker of each use: the backends offline, the tracer, the planners.

Confidence of a field pixel: valid depth at its own frame times the fraction
of frames its track stayed alive.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from traceany_ros.episode import FrameWindow
from traceany_ros.field import TrajectoryField, fit_trajectory

METHODS = ("dis_fast", "dis_medium", "dis_fine", "dis_fine_novr", "dis_fine_novr_s4", "dis_ultrafast", "farneback")
STITCH_DISTANCE = 0.015  # m: how near another frame's track must land to be the same point (chosen on val)
NEIGHBOUR_REACH = 0.15  # m: neighbours that carry a lost moving point on (chosen on val)
JOIN_NEXT = 0.05  # m (+ half the last step): a track that begins right after a moving track's end
# carrying moving tracks on past their ends (:func:`extend_track_ends`, :func:`join_next_tracks`,
# :func:`extend_with_neighbours`), and the same turned off (the tracer's and planners' latency)
ENDS = {"stitch_ends": STITCH_DISTANCE, "join_next": JOIN_NEXT, "neighbour_reach": NEIGHBOUR_REACH}
ENDS_OFF = {k: 0.0 for k in ENDS}
_RIGID = {"depth_jump_abs": 0.04, "rigid": True}
_STITCH = {"stitch": STITCH_DISTANCE, "stitch_parts": True}
_OFFLINE = {**_RIGID, "depth_flow": True, "depth_flow_margin": 1.0, "learned_matches": True, "icp": True, **_STITCH,
            **ENDS, "method": "dis_fine"}
# The named trackers, one per use: FlowConfig overrides (stride and K come from the caller).
TRACKERS = {
    # the ``flow`` backend: chained DIS, a lost point holds its last position
    "plain": {},
    # tracks end at depth jumps and lost points move with their rigid part (the cheapest rigid tracker)
    "rigid": _RIGID,
    # the ``flow-rigid`` backend offline (``traceany predict/eval``): DIS at full resolution started from the
    # learned matcher, RGB-D flow, segment ICP, stitching, moving tracks carried on past their ends
    "offline": _OFFLINE,
    # the tracer's ``flow-rigid`` (``StreamConfig``'s switches set the same on top): no depth flow, ICP or carried
    # ends, DIS at half resolution, for latency
    "stream": {**_OFFLINE, "depth_flow": False, "icp": False, **ENDS_OFF, "method": "dis_medium"},
    # the planners' ``flow-rigid`` (``policies/run.py``): the offline tracker without segment ICP or carried ends
    "planners": {**_OFFLINE, "icp": False, **ENDS_OFF, "method": "dis_medium"},
}


@dataclass(frozen=True)
class FlowConfig:
    """Options of the flow baseline.

    method: "dis_medium" | "dis_fine" (the medium preset at full resolution) | "dis_fine_novr" (that without
        variational refinement) | "dis_fine_novr_s4" (and patches every 4 pixels) | "dis_fast" | "dis_ultrafast" |
        "farneback" (:func:`_dis`).
    stride: field pixel spacing (the field has H/stride x W/stride curves per frame).
    num_control_points: K of the fitted B-spline.
    fb_threshold_px: forward-backward error (px) above which a track is lost,
        plus ``fb_relative`` times the flow magnitude.
    lost_weight: fit weight of the held position at frames where the track is lost.
    depth_jump_abs, depth_jump_rel: a step whose change of camera depth exceeds
        ``abs + rel * (its in-plane 3D motion)`` ends the track (it slid onto another surface at a
        depth edge, or onto an occluder); ``inf`` turns the check off.
    rigid: move lost points with the fitted motion of their rigid part instead of holding them
        (:mod:`traceany_ros.tracker.rigid`; ``rigid_options`` overrides its RigidConfig fields).
    depth_flow: also run the flow on log-depth images and keep, per pixel, whichever of the grey
        and depth flows matches both images better (:func:`rgbd_flow`): untextured moving things
        (a grey robot arm, a plain box) have depth edges where the grey image has none.
        ``depth_flow_margin`` (grey levels) is how much better the depth flow must match to be taken;
        ``depth_flow_method`` the depth images' flow method ("" = ``method``; smooth depth images need no
        full-resolution DIS).
    learned_matches: also start DIS from the learned matcher's coarse matches (:func:`learned_flow`,
        :mod:`traceany_ros.tracker.matcher`), which finds the large motions of thin, plain parts that
        coarse-to-fine DIS misses. ``matcher``: its checkpoint ("" = the shipped ``checkpoints/matcher.pt``).
    icp: then replace the flow on rigid depth segments by their ICP motion where that explains the
        next frame better (:mod:`traceany_ros.tracker.icp`; ``icp_options`` overrides IcpConfig fields): the
        depth sees a turning object that the flow barely follows.
    stitch: fill a track's lost frames from another frame's track that reaches the same point (within
        this many metres) alive (:func:`stitch_tracks`; 0 = off); ``stitch_parts``: also from that track's
        samples moved by a rigid part, where this one's were held; where neither is tracked, the sample
        last tracked nearer the frame wins.
    stitch_ends: then carry a moving track on past its last (before its first) tracked frame with
        another track that is tracked at that frame within this many metres of it, one frame further, and
        agrees with it at the frame before where both are tracked (:func:`extend_track_ends`; 0 = off);
        ``stitch_ends_motion``: only tracks that moved more than this (metres) since their own frame, or
        5 mm in their last step, are carried on (a still point's held position is already right).
    join_next: then carry a moving track that still ends on with a track that begins right after its end
        where it would be at its last step (within this many metres + half that step) and moves like it
        (:func:`join_next_tracks`; 0 = off).
    neighbour_reach: then move a moving track's held samples past its ends with the rigid motion of up to
        16 tracks within this many metres of it at the end that moved like it into the end frame and are
        tracked or moved by a part further on (:func:`extend_with_neighbours`; 0 = off).
    """

    method: str = "dis_medium"
    stride: int = 4
    num_control_points: int = 10
    fb_threshold_px: float = 1.0
    fb_relative: float = 0.05
    lost_weight: float = 0.05
    depth_jump_abs: float = float("inf")
    depth_jump_rel: float = 1.0
    rigid: bool = False
    rigid_options: tuple = ()
    depth_flow: bool = False
    depth_flow_margin: float = 0.0
    depth_flow_method: str = ""
    learned_matches: bool = False
    matcher: str = ""
    icp: bool = False
    icp_options: tuple = ()
    stitch: float = 0.0
    stitch_parts: bool = False
    stitch_ends: float = 0.0
    stitch_ends_motion: float = 0.01
    neighbour_reach: float = 0.0
    join_next: float = 0.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"flow method must be one of {METHODS}, got {self.method!r}")
        if self.depth_flow_method not in ("",) + METHODS:
            raise ValueError(f"depth flow method must be one of {METHODS} (or '' for the flow method), got "
                             f"{self.depth_flow_method!r}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        if self.learned_matches and self.method == "farneback":
            raise ValueError("learned_matches refines the matcher's matches with DIS; use a dis_* method, not farneback")


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def dense_flow(img0: np.ndarray, img1: np.ndarray, method: str = "dis_medium") -> np.ndarray:
    """Optical flow from img0 to img1 (both [H,W] uint8 grey): [H,W,2] float32 (dx=col, dy=row)."""
    import cv2

    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(img0, img1, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    return _dis(method).calc(img0, img1, None)


def _dis(method: str):
    """OpenCV DIS flow object of a ``dis_*`` method.

    "dis_fine": the medium preset down to full resolution, where the presets stop at half (~4x the time);
    "dis_fine_novr": the same without the variational refinement (DIS's smoothing of the patch flow at
    every scale; ~2/3 of dis_fine's time);
    "dis_fine_novr_s4": that with patches every 4 pixels instead of 3 (~1/3 of dis_fine's time; for the
    smooth depth images, where it costs nothing on val).
    """
    import cv2

    medium = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    preset = {"dis_ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "dis_fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
              "dis_medium": medium, "dis_fine": medium, "dis_fine_novr": medium, "dis_fine_novr_s4": medium}[method]
    dis = cv2.DISOpticalFlow_create(preset)
    if method.startswith("dis_fine"):
        dis.setFinestScale(0)
    if method.startswith("dis_fine_novr"):
        dis.setVariationalRefinementIterations(0)
    if method == "dis_fine_novr_s4":
        dis.setPatchStride(4)
    return dis


# log-depth image range (metres) of the depth flow: 0.2 m -> 0, 4 m -> 255
DEPTH_IMAGE_RANGE = (0.2, 4.0)


def depth_image(depth: np.ndarray) -> np.ndarray:
    """Depth [H,W] metres (0 = invalid) -> uint8 log-depth image for optical flow (invalid = far)."""
    lo, hi = np.log(DEPTH_IMAGE_RANGE[0]), np.log(DEPTH_IMAGE_RANGE[1])
    z = np.where(np.isfinite(depth) & (depth > 0), depth, DEPTH_IMAGE_RANGE[1])
    return np.clip((np.log(np.maximum(z, 1e-6)) - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def warp_cost(img0: np.ndarray, img1: np.ndarray, flow: np.ndarray, box: int = 7) -> np.ndarray:
    """Box-filtered |img1(x + flow) - img0(x)| [H,W] float32 (255 where the flow leaves the image)."""
    import cv2

    gx, gy = _pixel_grid(*img0.shape)
    warped = cv2.remap(img1.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=-1000.0)
    return cv2.blur(np.minimum(np.abs(warped - img0.astype(np.float32)), 255.0), (box, box))


@functools.lru_cache(maxsize=4)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Column and row of every pixel, [h,w] float32 each (read only)."""
    gy, gx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx.flags.writeable = gy.flags.writeable = False
    return gx, gy


def rgbd_flow(gray0: np.ndarray, gray1: np.ndarray, depth_img0: np.ndarray, depth_img1: np.ndarray,
              method: str = "dis_medium", margin: float = 0.0, depth_method: str | None = None) -> np.ndarray:
    """Flow from frame 0 to 1 using colour and depth: [H,W,2] float32 (dx=col, dy=row).

    gray0, gray1: [H,W] uint8 grey images; depth_img0, depth_img1: their :func:`depth_image`.
    Two candidate flows, one on the grey images and one on the log-depth images; a pixel takes
    the depth flow where its box-filtered warp error (grey + depth) is lower
    than the grey flow's by more than ``margin`` grey levels. Grey flow slides along an untextured
    surface (aperture problem) where depth flow follows its silhouette, so the choice helps most
    on plain moving objects and robot links. ``depth_method``: the depth images' flow method (None or "":
    ``method``).
    """
    grey = dense_flow(gray0, gray1, method)
    return _prefer_depth_flow(gray0, gray1, depth_img0, depth_img1, grey, depth_method or method, margin)


def _prefer_depth_flow(gray0, gray1, depth_img0, depth_img1, flow, depth_method, margin):
    """``flow``, or per pixel the depth images' own flow where its grey + depth warp error is lower by > margin."""
    dflow = dense_flow(depth_img0, depth_img1, depth_method)
    cost_f = warp_cost(gray0, gray1, flow) + warp_cost(depth_img0, depth_img1, flow)
    cost_d = warp_cost(gray0, gray1, dflow) + warp_cost(depth_img0, depth_img1, dflow)
    return np.where((cost_d < cost_f - margin)[..., None], dflow, flow)


def learned_flow(gray0: np.ndarray, gray1: np.ndarray, coarse: np.ndarray, depth_img0: np.ndarray | None = None,
                 depth_img1: np.ndarray | None = None, method: str = "dis_medium", margin: float = 0.0,
                 depth_method: str | None = None) -> np.ndarray:
    """Flow from frame 0 to 1 started from learned coarse matches: [H,W,2] float32 (dx=col, dy=row).

    coarse [H,W,2]: the matcher's flow (:func:`traceany_ros.tracker.matcher.match_pair`), refined here by
    DIS on the grey images started from it. With depth images given, the plain depth flow is a second
    candidate and a pixel takes it where its warp error (grey + depth, :func:`warp_cost`) is lower
    than the refined flow's by more than ``margin`` grey levels (as in :func:`rgbd_flow`; the depth images'
    flow by ``depth_method``; None or "": ``method``).
    """
    if method == "farneback":
        raise ValueError("learned matches refine with DIS; use a dis_* flow method")
    refined = _dis(method).calc(gray0, gray1, np.ascontiguousarray(coarse, np.float32))
    if depth_img0 is None:
        return refined
    return _prefer_depth_flow(gray0, gray1, depth_img0, depth_img1, refined, depth_method or method, margin)


def sample_bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear lookup with edge clamping (OpenCV remap): img [H,W,C] float32, x (cols) [M], y (rows) [M] -> [M,C]."""
    import cv2

    h, w = img.shape[:2]
    m = x.shape[0]
    width = 4096  # remap's output must stay below 32767 pixels per side
    rows = max(1, -(-m // width))
    mx = np.zeros(rows * width, np.float32)
    my = np.zeros(rows * width, np.float32)
    mx[:m] = np.clip(x, 0, w - 1)
    my[:m] = np.clip(y, 0, h - 1)
    out = cv2.remap(np.ascontiguousarray(img, dtype=np.float32), mx.reshape(rows, width), my.reshape(rows, width),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * width, -1)[:m].astype(np.float64)


def _lift(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray, x: np.ndarray, y: np.ndarray):
    """World points of sub-pixel positions (nearest-pixel depth): -> points [M,3], valid [M]."""
    h, w = depth.shape
    r = np.clip(np.rint(y).astype(np.int64), 0, h - 1)
    c = np.clip(np.rint(x).astype(np.int64), 0, w - 1)
    z = depth[r, c].astype(np.float64)
    valid = np.isfinite(z) & (z > 0)
    z = np.where(valid, z, 0.0)
    pc = np.stack([(x - K[0, 2]) / K[0, 0] * z, (y - K[1, 2]) / K[1, 1] * z, z], -1)
    return pc @ c2w[:3, :3].T + c2w[:3, 3], valid


def one_blas_thread():
    """Context manager: NumPy's BLAS (OpenBLAS, and OpenCV's) on one thread per caller while it is open.

    The tracker's matrix products are small ([n,3] @ [3,3], Kabsch's 3x3 systems, the spline fit's
    normal equations) and run on our own thread pool (:func:`_parallel`) or beside PyTorch's threads;
    OpenBLAS's own threads then only oversubscribe the cores, and after each call they spin for a while,
    taking a core from whatever runs next (the network's forward). Results are the same (each product's
    arithmetic does not depend on how many threads share its rows). Process-wide while open, as
    OpenBLAS's setting is.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _parallel(jobs: list) -> list:
    """Run zero-argument callables on a small thread pool (at most 2 threads, 1 on a 1-core machine);
    results in order. NumPy's BLAS keeps to one thread meanwhile (:func:`one_blas_thread`)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    workers = min(2, os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        return [job() for job in jobs]
    with one_blas_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def track_window(window: FrameWindow, config: FlowConfig = FlowConfig()):
    """Chain flow from every grid pixel of every frame through the whole window.

    Returns:
        points [T, h, w, T, 3] float64 world positions (source frame, grid, target frame),
        weights [T, h, w, T] float64 fit weights (1 alive with depth, ``lost_weight`` held, 0 none),
        alive [T, h, w, T] bool, own_valid [T, h, w] bool (valid depth at the own frame).
    """
    from traceany_ros.geometry import check_window, grid_points_world

    T, H, W = check_window(window)
    s = config.stride
    off = s // 2
    K = np.asarray(window.intrinsics, np.float64)
    c2w = np.asarray(window.cam_to_world, np.float64)
    depth = np.asarray(window.depth, np.float32)
    own_pts, own_valid = grid_points_world(window, s, off)  # [T,h,w,3]
    h, w = own_pts.shape[1:3]
    n = h * w
    gy, gx = np.meshgrid(off + s * np.arange(h), off + s * np.arange(w), indexing="ij")
    gx, gy = gx.reshape(-1).astype(np.float64), gy.reshape(-1).astype(np.float64)

    gray = [_gray(window.rgb[i]) for i in range(T)]
    if config.learned_matches:
        from traceany_ros.tracker.matcher import cached_matcher, match_window

        coarse = match_window(cached_matcher(config.matcher), window.rgb, depth)
        dimg = [depth_image(depth[i]) for i in range(T)] if config.depth_flow else [None] * T

        def pair(a, b):
            return learned_flow(gray[a], gray[b], coarse[a, b], dimg[a], dimg[b], config.method,
                                config.depth_flow_margin, config.depth_flow_method)
    elif config.depth_flow:
        dimg = [depth_image(depth[i]) for i in range(T)]

        def pair(a, b):
            return rgbd_flow(gray[a], gray[b], dimg[a], dimg[b], config.method, config.depth_flow_margin,
                             config.depth_flow_method)
    else:
        def pair(a, b):
            return dense_flow(gray[a], gray[b], config.method)
    # the frame pairs are independent: OpenCV and NumPy's large-array work release the GIL, so threads help
    # (DIS pairs and ICP frames ~1.5x; the per-segment ICP loop, mostly small Python work, hardly gains)
    flows = _parallel([lambda i=i: pair(i, i + 1) for i in range(T - 1)] + [lambda i=i: pair(i + 1, i) for i in range(T - 1)])
    fwd, bwd = flows[:T - 1], flows[T - 1:]
    if config.icp:
        from traceany_ros.tracker.icp import IcpConfig, IcpFrame, flow_motions, refine_flow

        ic = IcpConfig(**dict(config.icp_options))
        frames = _parallel([lambda i=i: IcpFrame(depth[i], gray[i], K, c2w[i], ic) for i in range(T)])
        # each frame's segments move to both neighbours; the inverse of one motion starts ICP for the
        # other too (constant velocity through the frame), where the flow's own start fails
        m_fwd = _parallel([lambda i=i: flow_motions(fwd[i], frames[i], frames[i + 1]) for i in range(T - 1)])
        m_bwd = _parallel([lambda i=i: flow_motions(bwd[i], frames[i + 1], frames[i]) for i in range(T - 1)])
        cv = ic.constant_velocity
        refined = _parallel(
            [lambda i=i: refine_flow(fwd[i], frames[i], frames[i + 1], ic, m_fwd[i],
                                     np.linalg.inv(m_bwd[i - 1]) if cv and i > 0 else None) for i in range(T - 1)]
            + [lambda i=i: refine_flow(bwd[i], frames[i + 1], frames[i], ic, m_bwd[i],
                                       np.linalg.inv(m_fwd[i + 1]) if cv and i + 1 < T - 1 else None)
               for i in range(T - 1)])
        fwd, fwd_rigid = zip(*refined[:T - 1]) if T > 1 else ((), ())
        bwd, bwd_rigid = zip(*refined[T - 1:]) if T > 1 else ((), ())

    points = np.zeros((T, n, T, 3))
    alive = np.zeros((T, n, T), bool)
    weights = np.zeros((T, n, T))
    for f in range(T):
        points[f, :, f] = own_pts[f].reshape(n, 3)
        alive[f, :, f] = own_valid[f].reshape(n)
        weights[f, :, f] = 1.0

    rc = None
    if config.rigid:
        from traceany_ros.tracker.rigid import RigidConfig, StepMotion

        rc = RigidConfig(**dict(config.rigid_options))
    # direction +1: sources f <= t step from t to t+1 with fwd[t]; direction -1: sources f >= t step to t-1
    def chain(direction):
        # one direction of the chain; the two write disjoint target frames (later / earlier than the source)
        x = np.tile(gx, (T, 1))  # [T_src, n] current positions
        y = np.tile(gy, (T, 1))
        live = alive[np.arange(T), :, np.arange(T)].copy()  # [T_src, n]
        held = points[np.arange(T), :, np.arange(T)].copy()  # [T_src, n, 3] last alive world position
        moving = np.zeros((T, n), bool)  # rigid mode: the point was last seen moving
        vel = np.zeros((T, n, 3))         # rigid mode: its last one-step displacement
        steps = range(T - 1) if direction > 0 else range(T - 1, 0, -1)
        for t in steps:
            nxt = t + direction
            # the sources still stepping, a slice: their rows of x, y, live, held, moving, vel are views (read before
            # they are assigned below), not copies
            src = slice(0, t + 1) if direction > 0 else slice(t, T)
            # only the live tracks step (a lost track never comes back; where its grid position goes no longer matters)
            live_src = live[src].reshape(-1)
            act = np.flatnonzero(live_src)
            xs, ys = x[src].reshape(-1), y[src].reshape(-1)
            xa, ya = xs[act], ys[act]
            flow_a = fwd[t] if direction > 0 else bwd[t - 1]  # t -> nxt
            flow_b = bwd[t] if direction > 0 else fwd[t - 1]  # nxt -> t
            d = sample_bilinear(flow_a, xa, ya)
            xn, yn = xa + d[:, 0], ya + d[:, 1]
            db = sample_bilinear(flow_b, xn, yn)
            fb = np.hypot(d[:, 0] + db[:, 0], d[:, 1] + db[:, 1])
            ok_a = (fb < config.fb_threshold_px + config.fb_relative * np.hypot(d[:, 0], d[:, 1]))
            if config.icp:
                # a segment's ICP motion was checked against the next frame's depth and grey already;
                # the reverse flow, from other segments or the flow, need not agree to the pixel
                rigid_a = fwd_rigid[t] if direction > 0 else bwd_rigid[t - 1]
                ok_a |= rigid_a[np.clip(np.rint(ya).astype(np.int64), 0, H - 1), np.clip(np.rint(xa).astype(np.int64), 0, W - 1)]
            ok_a &= (xn >= 0) & (xn <= W - 1) & (yn >= 0) & (yn <= H - 1)
            pts_a, depth_a = _lift(depth[nxt], K, c2w[nxt], xn, yn)
            prev = held[src].reshape(-1, 3)
            if np.isfinite(config.depth_jump_abs):
                w2c = np.linalg.inv(c2w[nxt])
                step = (pts_a - prev[act]) @ w2c[:3, :3].T  # camera-frame step
                jump = depth_a & (np.abs(step[:, 2]) > config.depth_jump_abs
                                  + config.depth_jump_rel * np.hypot(step[:, 0], step[:, 1]))
                ok_a &= ~jump
            ok, has_depth = np.zeros(len(live_src), bool), np.zeros(len(live_src), bool)
            ok[act], has_depth[act] = ok_a, depth_a
            pts = np.zeros((len(live_src), 3))
            pts[act] = pts_a
            xs[act], ys[act] = xn, yn
            lv = live_src & ok
            good = lv & has_depth
            shape = (len(live_src) // n, n)
            new_flat = np.where(good[:, None], pts, prev)  # tracked, else held
            wgt = np.where(good, 1.0, config.lost_weight)
            if rc is not None:
                own = t if direction > 0 else 0  # row of the sources that start at frame t (the plain grid)
                own_ok = (ok & has_depth).reshape(shape)[own] & live[t]
                motion = StepMotion(own_pts[t].reshape(n, 3), pts.reshape(*shape, 3)[own], own_ok,
                                    own_valid[t].reshape(n), (h, w), rc)
                v_prev = vel[src].reshape(-1, 3)
                found = np.zeros(len(good), bool)
                # lost points that were moving: the part that best continues their last step
                lost_moving = np.flatnonzero(moving[src].reshape(-1) & ~good)
                hit, hit_pos = motion.apply_sparse(prev, lost_moving, v_prev)
                new_flat[hit] = hit_pos
                found[hit] = True
                # grid points of frame t that lost their first step: move with the part they lie on
                first = ~good.reshape(shape)[own] & own_valid[t].reshape(n)
                moved_own, found_own = motion.apply_own(prev.reshape(*shape, 3)[own], first)
                j = own * n + np.flatnonzero(found_own)
                new_flat[j] = moved_own[found_own]
                found[j] = True
                # moving points no part explains coast on their last step, damped
                coast = np.zeros(len(good), bool)
                if rc.coast_decay > 0:
                    ci = lost_moving[~found[lost_moving]]
                    coast[ci] = True
                    new_flat[ci] = prev[ci] + rc.coast_decay * v_prev[ci]
                step_d = new_flat - prev
                step_sq = np.einsum("ij,ij->i", step_d, step_d)
                moving[src] = np.where(good | coast, step_sq > rc.step_move ** 2, found).reshape(shape)
                vel[src] = np.where((good | found | coast)[:, None], step_d, 0.0).reshape(*shape, 3)
                wgt = np.where(found, rc.propagated_weight, wgt)
            new_pts = new_flat.reshape(*shape, 3)
            held[src] = new_pts
            points[src, :, nxt] = new_pts
            alive[src, :, nxt] = good.reshape(shape)
            weights[src, :, nxt] = wgt.reshape(shape)
            live[src] = lv.reshape(shape)
            # (x and y were moved in place: xs, ys are views)

    _parallel([lambda: chain(+1), lambda: chain(-1)])
    if config.stitch > 0 and T > 2:
        stitch_tracks(points, weights, alive, own_pts.reshape(T, n, 3), own_valid.reshape(T, n), (h, w), s, off, K,
                      c2w, config.stitch, config.stitch_parts, config.lost_weight)
    if config.stitch_ends > 0 and T > 2:
        extend_track_ends(points, weights, alive, config.stitch_ends, config.stitch_ends_motion)
    if config.join_next > 0 and T > 3:
        join_next_tracks(points, weights, alive, config.join_next, config.stitch_ends_motion)
    if config.neighbour_reach > 0 and T > 2:
        extend_with_neighbours(points, weights, alive, config.neighbour_reach, config.stitch_ends_motion,
                               lost_weight=config.lost_weight)
    return (points.reshape(T, h, w, T, 3), weights.reshape(T, h, w, T), alive.reshape(T, h, w, T),
            own_valid)


def stitch_tracks(points, weights, alive, own_pts, own_valid, grid, stride, offset, K, c2w, max_dist,
                  parts: bool = False, lost_weight: float = 0.05):
    """Fill a track's lost frames from another frame's track of the same point (in place).

    Frame i's grid point p lost at frame j (a failed check in one direction, a stretch the flow lost) is
    often still followed by a track started at another frame m: a grid point q of frame m whose track
    reaches frame i alive and lands within ``max_dist`` (metres) of p is the same surface point, so
    where q's track is alive and p's is not, q's position is p's. With ``parts``, q's samples moved by
    a rigid part (not alive, weight above ``lost_weight``) also fill p's held or coasting ones. Where neither is alive, the
    fresher sample wins: the one whose track was alive nearer the frame j (a point held since frame 5
    is a worse guess at frame 20 than one held since frame 15). Order: tracked, then part-moved, then
    held; within each the fewest frames since the track was last alive, then the frame m nearest j
    (the shortest chain of flow).

    points [T,n,T,3], weights [T,n,T], alive [T,n,T] (source frame, grid point, target frame) as in
    :func:`track_window`; own_pts [T,n,3], own_valid [T,n] the grid's own points; grid (h, w); K [3,3],
    c2w [T,4,4]. Filled samples take q's weight and alive flag; only samples as they were tracked fill
    (one pass).
    """
    from traceany_ros.geometry import project

    T, n = own_valid.shape
    h, w = grid
    frames = np.arange(T)
    # rank of a sample: tier 200 tracked, 100 moved by a part, 0 held or coasting; minus its staleness
    i16 = np.int16  # (small integers: int16 halves the time of these [T,n,T] passes)
    tier = np.where(alive, i16(200), np.where(weights > lost_weight, i16(100), i16(0)) if parts else i16(0))
    # frames since the source's track was last alive, on the way to the target frame
    idx = np.broadcast_to(frames.astype(i16), alive.shape)
    last_f = np.maximum.accumulate(np.where(alive, idx, i16(-10 * T)), axis=2)
    last_b = np.minimum.accumulate(np.where(alive, idx, i16(10 * T))[:, :, ::-1], axis=2)[:, :, ::-1]
    staleness = np.where(idx >= frames[:, None, None].astype(i16), idx - last_f, last_b - idx)
    rank = tier - np.minimum(staleness, i16(99))  # higher is better

    alive_at = np.ascontiguousarray(alive.transpose(2, 0, 1))  # [T target, T source, n]: frame i's flags in one block

    def fill(i):  # frame i's filled rows (points, weights, alive), or None
        lost_any = own_valid[i] & ~alive[i].all(1)
        if not lost_any.any():
            return None
        # every other frame's tracks alive at frame i ...
        m, q = np.nonzero(alive_at[i] & (frames != i)[:, None])
        at_i = np.ascontiguousarray(points[:, :, i])[m, q]  # [P,3] (one strided copy, then a gather)
        rows, cols, z = project(at_i, K, c2w[i])
        col = np.rint((cols - offset) / stride).astype(np.int64)
        row = np.rint((rows - offset) / stride).astype(np.int64)
        inside = np.flatnonzero((z > 1e-6) & (col >= 0) & (col < w) & (row >= 0) & (row < h))
        cell = (row * w + col)[inside]
        lost = np.flatnonzero(lost_any[cell])  # ... landing on a lost grid point of frame i ...
        m, q, cell, inside = m[inside[lost]], q[inside[lost]], cell[lost], inside[lost]
        diff = at_i[inside] - own_pts[i, cell]
        d = np.sqrt(diff[:, 0] ** 2 + diff[:, 1] ** 2 + diff[:, 2] ** 2)  # (np.linalg.norm's sum, without its reduction)
        ok = d < max_dist  # ... near its point
        if not ok.any():
            return None
        m, q, cell, d = m[ok], q[ok], cell[ok], d[ok]
        order = np.lexsort((d, m * n + cell))  # one q per (frame m, cell): the closest
        m, q, cell = m[order], q[order], cell[order]
        first = np.r_[True, (m[1:] != m[:-1]) | (cell[1:] != cell[:-1])]
        m, q, cell = m[first], q[first], cell[first]
        rq = rank[m, q]  # [P, T]
        pk, jj = np.nonzero(rq > rank[i, cell])
        if not len(pk):
            return None
        # per lost sample (cell, j) the best-scoring pair (rank, then the frame m nearest j)
        key = cell[pk] * T + jj
        score = rq[pk, jj] - np.abs(jj - m[pk]) / 100.0
        order = np.lexsort((-score, key))
        pk, jj, key = pk[order], jj[order], key[order]
        win = np.r_[True, key[1:] != key[:-1]]
        pk, jj = pk[win], jj[win]
        row_p, row_w, row_a = points[i].copy(), weights[i].copy(), alive[i].copy()
        row_p[cell[pk], jj] = points[m[pk], q[pk], jj]
        row_w[cell[pk], jj] = weights[m[pk], q[pk], jj]
        row_a[cell[pk], jj] = alive[m[pk], q[pk], jj]
        return i, row_p, row_w, row_a

    # frames are independent (and only read the tracks as they were): two threads
    for res in _parallel([lambda i=i: fill(i) for i in range(T)]):
        if res is not None:
            i, row_p, row_w, row_a = res
            points[i], weights[i], alive[i] = row_p, row_w, row_a


def _flat_tracks(points, weights, alive):
    """Views of [T,n,T,...] tracks as N = T * n rows: (T, N, P [N,T,3], W [N,T], A [N,T], own frame [N])."""
    T, n = points.shape[:2]
    N = T * n
    return T, N, points.reshape(N, T, 3), weights.reshape(N, T), alive.reshape(N, T), np.repeat(np.arange(T), n)


def _track_ends(A: np.ndarray, direction: int) -> np.ndarray:
    """Last (direction +1) or first (-1) tracked frame of each track, A [N,T] bool (-1 / T for none)."""
    T = A.shape[1]
    tracked = A.any(1)
    if direction > 0:
        return np.where(tracked, T - 1 - A[:, ::-1].argmax(1), -1)
    return np.where(tracked, A.argmax(1), T)


def _moving_ends(ending, b: int, pb: int, Pt, At, own, min_motion: float, step_motion: float):
    """Which tracks ``ending`` at frame b moved: more than ``min_motion`` from their own frame's point
    (``own`` [N]: each track's source frame) to b, or ``step_motion`` from frame pb (where tracked there) to b."""
    at_b = Pt[b, ending]
    moved = np.linalg.norm(at_b - Pt[own[ending], ending], axis=-1) > min_motion
    if 0 <= pb < Pt.shape[0]:
        moved |= At[pb, ending] & (np.linalg.norm(at_b - Pt[pb, ending], axis=-1) > step_motion)
    return moved


def _past_end(b: int, direction: int, T: int) -> slice:
    """The frames past end frame b: later ones (direction +1) or earlier ones (-1)."""
    return slice(b + 1, T) if direction > 0 else slice(0, b)


def _lend(P, Wt, A, p_rows, q_rows, frames: slice) -> None:
    """Tracks ``p_rows`` take the samples (points, weights, alive flags) of tracks ``q_rows`` at ``frames``."""
    P[p_rows, frames], Wt[p_rows, frames], A[p_rows, frames] = P[q_rows, frames], Wt[q_rows, frames], A[q_rows, frames]


def _voxel_keys(q: np.ndarray) -> np.ndarray:
    """One int64 key per row of integer cell coordinates q [N,3] (21 bits an axis)."""
    q = q + (1 << 20)
    return (q[:, 0] << 42) | (q[:, 1] << 21) | q[:, 2]


_NEIGHBOUR_CELLS = np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij"), -1).reshape(-1, 3)


def _near_tracks(rows, pos, at, radius: float, k: int, distinct: bool = False):
    """The up to k of the candidate tracks ``rows`` [M] (at positions pos [M,3], each track's at the frame) within
    ``radius`` of each point of at [E,3] (one per distinct position with ``distinct``): (rows [E,k] of the
    candidates, dist [E,k], ok [E,k]) or None."""
    from scipy.spatial import cKDTree

    # only tracks in a radius-sized cell next to one of the points' cells can be within reach: a cheap
    # filter before the KD-tree (the candidates are most of the clip's tracks, the points a few hundred)
    cell_at = np.floor(at / radius).astype(np.int64)
    cells = np.unique(_voxel_keys((cell_at[:, None] + _NEIGHBOUR_CELLS).reshape(-1, 3)))
    # first the box around all those cells (a few comparisons; with a hair of slack for rounding), then the cells
    lo, hi = (cell_at.min(0) - 1) * radius - 1e-9, (cell_at.max(0) + 2) * radius + 1e-9
    with np.errstate(invalid="ignore"):
        box = np.flatnonzero((pos[:, 0] >= lo[0]) & (pos[:, 0] <= hi[0]) & (pos[:, 1] >= lo[1]) & (pos[:, 1] <= hi[1])
                             & (pos[:, 2] >= lo[2]) & (pos[:, 2] <= hi[2]))
    keys = _voxel_keys(np.floor(pos[box] / radius).astype(np.int64))
    near = box[cells[np.minimum(np.searchsorted(cells, keys), len(cells) - 1)] == keys]  # (np.isin, by binary search)
    cand, pc = rows[near], pos[near]
    if distinct and len(cand):
        # one 64-bit key per position rounded to 0.1 mm; a 1-D unique is ~10x faster than np.unique over rows
        _, first = np.unique(_voxel_keys(np.round(pc * 1e4).astype(np.int64)), return_index=True)
        first.sort()
        cand, pc = cand[first], pc[first]
    if not len(cand):
        return None
    k = min(k, len(cand))
    tree = cKDTree(pc, balanced_tree=False, compact_nodes=False)  # built once, queried once: build cheaply
    dist, idx = tree.query(at, k=k, distance_upper_bound=radius)
    dist, idx = dist.reshape(len(at), k), idx.reshape(len(at), k)
    return cand[np.minimum(idx, len(cand) - 1)], dist, np.isfinite(dist)


def _candidates(mask, Pt, frame: int):
    """Rows of the tracks in ``mask`` [N] and their positions at ``frame`` (Pt [T,N,3], a view or an array)."""
    rows = np.flatnonzero(mask)
    return rows, Pt[frame, rows]


def extend_track_ends(points, weights, alive, max_dist: float, min_motion: float = 0.01, step_motion: float = 0.005):
    """Carry moving tracks on past their ends with other tracks of the same point (in place).

    Every track's tracked samples are one unbroken stretch around its own frame (stitching included): the
    flow lost the point at both ends, where it moved too fast, turned away or left the picture for a
    while. Another track (any source frame) that is tracked at such an end frame b within ``max_dist`` of
    it (and within ``max_dist`` at the frame before b too, where both are tracked) and also one frame
    further is on the same surface point but got through: this track's samples past b become that
    track's (points, weights, alive flags). Among candidates the one tracked furthest wins (then the
    nearest). Ends are taken from the latest down (forward; backward from the earliest up), so a track
    already carried on passes that on to the tracks it carries. Only tracks that moved (more than
    ``min_motion`` from their own frame's point to the end, or ``step_motion`` in their last step) are
    carried: a still point lost behind an occluder is right where it is held.

    points [T,n,T,3], weights [T,n,T], alive [T,n,T] (source frame, grid point, target frame) as in
    :func:`track_window`.
    """
    T, N, P, Wt, A, own = _flat_tracks(points, weights, alive)
    for direction in (+1, -1):
        # [T, N] by frame: the frames a candidate or an ending track is read at (b and its neighbours) are never
        # among those lent to below (past an end further on), so the positions are read from a view of the
        # tracks (a contiguous copy of every track costs more than the stage) and the flags from a copy
        At = np.ascontiguousarray(A.T)
        Pt = P.transpose(1, 0, 2)
        end = _track_ends(A, direction)
        # tracks ending later are carried on first, then they carry others
        order = range(T - 2, -1, -1) if direction > 0 else range(1, T)
        for b in order:
            nb, pb = b + direction, b - direction
            ending = np.flatnonzero(end == b)
            if not len(ending):
                continue
            ending = ending[_moving_ends(ending, b, pb, Pt, At, own, min_motion, step_motion)]
            if not len(ending):
                continue
            found = _near_tracks(*_candidates(At[b] & At[nb], Pt, b), Pt[b, ending], max_dist, 8)
            if found is None:
                continue
            q, dist, ok = found  # [E, k]
            k = q.shape[1]
            if 0 <= pb < T:  # both tracked at the frame before: they must agree there too
                p_rows = np.repeat(ending[:, None], k, 1)
                both = At[pb, p_rows] & At[pb, q]
                ok &= ~both | (np.linalg.norm(Pt[pb, p_rows] - Pt[pb, q], axis=-1) < max_dist)
            reach = np.where(ok, end[q] * direction, -(10 ** 6))
            score = reach - np.where(ok, dist, 0.0) / (2.0 * max_dist)  # furthest, then nearest
            best = score.argmax(1)
            sel = np.arange(len(ending))
            good = ok[sel, best] & (reach[sel, best] > b * direction)
            p_rows, q_rows = ending[good], q[sel, best][good]
            if not len(p_rows):
                continue
            _lend(P, Wt, A, p_rows, q_rows, _past_end(b, direction, T))
            end[p_rows] = end[q_rows]


def extend_with_neighbours(points, weights, alive, reach: float, min_motion: float = 0.01,
                           step_motion: float = 0.005, neighbours: int = 16, min_neighbours: int = 3,
                           weight: float = 0.5, lost_weight: float = 0.05, max_step_gap: float = 0.006,
                           step_rel: float = 0.6):
    """Move a moving track's held samples past its ends with its neighbours' rigid motion (in place).

    Past the end b of a track (its last tracked frame; backward: its first) the tracker holds or coasts the
    point where no rigid part carried it. Nearby tracks often last longer: points further from the image
    border, on better textured or better lit parts of the same body. So: the up to ``neighbours`` tracks
    within ``reach`` of the point at frame b that are tracked at b and the frame before and moved like it
    into b (their steps differ by at most ``max_step_gap + step_rel * distance``: one rigid body) and whose
    own tracking reaches past b; at each later frame j where the track is held (weight at most
    ``lost_weight``) and at least ``min_neighbours`` of them are tracked or moved by a part (weight above
    ``lost_weight``), the sample becomes the point at b moved by their weighted rigid motion b -> j
    (Kabsch), with fit weight ``weight``. Only moving tracks (as in :func:`extend_track_ends`).
    Neighbours are read as the tracks were before this pass.

    points [T,n,T,3], weights [T,n,T], alive [T,n,T] as in :func:`track_window`.
    """
    from traceany_ros.tracker.rigid import batched_kabsch

    T, N, P, Wt, A, own = _flat_tracks(points, weights, alive)
    W0 = Wt.copy()
    At = np.ascontiguousarray(A.T)
    # [T, N, 3] a view: the samples this pass moves were held (weight <= lost_weight before it), so they are never
    # read as a neighbour's tracked position (zero weight in the fit) nor as an ending track's at b or the frame before
    Pt = P.transpose(1, 0, 2)
    rows_all = np.arange(N)

    def one_way(direction):
        end = _track_ends(A, direction)
        for b in range(1, T - 1):
            pb = b - direction
            ending = rows_all[(end == b)]
            ending = ending[At[pb, ending]]
            if not len(ending):
                continue
            later = _past_end(b, direction, T)
            moved = _moving_ends(ending, b, pb, Pt, At, own, min_motion, step_motion)
            ending = ending[moved & (Wt[ending, later] <= lost_weight).any(1)]
            if not len(ending):
                continue
            at_b = Pt[b, ending]
            # stitched tracks share positions: one candidate per distinct point (else a rigid fit
            # of copies of one point is free to turn)
            found = _near_tracks(*_candidates(At[b] & At[pb] & (end * direction > b * direction), Pt, b), at_b, reach,
                                 neighbours, distinct=True)
            if found is None:
                continue
            q, dist, ok = found  # [E, k]
            step_p = at_b - Pt[pb, ending]
            step_q = Pt[b, q] - Pt[pb, q]
            ok &= np.linalg.norm(step_q - step_p[:, None], axis=-1) <= max_step_gap + step_rel * np.where(ok, dist, 0.0)
            # every (track, later frame) at once
            w_q = np.where(ok[:, :, None], W0[q, later], 0.0)  # [E, k, J]
            w_q = np.where(w_q > lost_weight, w_q, 0.0)
            fill = ((w_q > 0).sum(1) >= min_neighbours) & (Wt[ending, later] <= lost_weight)  # [E, J]
            e_i, j_i = np.nonzero(fill)
            if not len(e_i):
                continue
            frames = np.arange(T)[later][j_i]
            qq = q[e_i]
            R, t = batched_kabsch(Pt[b, qq], Pt[frames[:, None], qq], w_q[e_i, :, j_i])
            rows = ending[e_i]
            P[rows, frames] = np.einsum("mij,mj->mi", R, at_b[e_i]) + t
            Wt[rows, frames] = weight

    # the directions are independent: each writes only samples past its tracks' ends (later frames forward, earlier
    # ones backward; a track's held samples on one side are never read on the other), and the positions it writes
    # were held, so the other direction reads them at most with weight 0 in a neighbour's fit: two threads
    _parallel([lambda: one_way(+1), lambda: one_way(-1)])


def join_next_tracks(points, weights, alive, radius: float, min_motion: float = 0.01,
                     step_motion: float = 0.005, speed_rel: float = 0.5, step_gap: float = 0.01,
                     step_rel: float = 0.5):
    """Carry a moving track on with a track that begins right after its end (in place).

    Where the flow loses a moving point between frames b and b + 1 (its last tracked frame b; backward:
    its first), the grid point of some later frame often picks the same point up from b + 1 on, but
    neither track reaches the other's frames, so neither stitching nor :func:`extend_track_ends` can join
    them. So: a track whose tracked stretch begins at b + 1 and goes on to b + 2, lands within
    ``radius + speed_rel * |v|`` of where the ending track would be at its last step v, and whose first
    step is within ``step_gap + step_rel * |v|`` of v (it moves like it) is the same point: the ending
    track's samples from b + 1 on become that track's (points, weights, alive flags). The nearest wins;
    ends are taken from the latest down (backward from the earliest up), so chains pass on; which tracks
    end and begin where is read as it was before any join, so both directions join the same pairs. Only
    tracks that moved (as in :func:`extend_track_ends`) and were tracked at the frame before their end.

    points [T,n,T,3], weights [T,n,T], alive [T,n,T] (source frame, grid point, target frame) as in
    :func:`track_window`.
    """
    T, N, P, Wt, A, own = _flat_tracks(points, weights, alive)
    rows_all = np.arange(N)
    # ends and beginnings as the tracks were before any join; a join fills only untracked samples, so the
    # tracked positions read below stay as they were (a view: the few rows read are gathered; a contiguous
    # copy of every track would cost more than the joining)
    At = np.ascontiguousarray(A.T)
    Pt = P.transpose(1, 0, 2)  # [T, N, 3]

    def one_way(direction):
        end = _track_ends(At.T, direction)
        for b in (range(T - 3, 0, -1) if direction > 0 else range(2, T - 1)):
            pb, nb, nb2 = b - direction, b + direction, b + 2 * direction
            ending = rows_all[end == b]
            ending = ending[At[pb, ending]]
            if not len(ending):
                continue
            ending = ending[_moving_ends(ending, b, pb, Pt, At, own, min_motion, step_motion)]
            cand = rows_all[At[nb] & At[nb2] & ~At[b]]
            if not len(ending) or not len(cand):
                continue
            v = Pt[b, ending] - Pt[pb, ending]
            speed = np.linalg.norm(v, axis=-1)
            found = _near_tracks(cand, Pt[nb, cand], Pt[b, ending] + v,
                                 radius + speed_rel * float(speed.max()), 8, distinct=True)
            if found is None:
                continue
            q, dist, ok = found  # [E, k]
            ok &= dist <= (radius + speed_rel * speed)[:, None]
            step_q = Pt[nb2, q] - Pt[nb, q]
            ok &= np.linalg.norm(step_q - v[:, None], axis=-1) <= (step_gap + step_rel * speed)[:, None]
            best = np.where(ok, dist, np.inf).argmin(1)
            sel = np.arange(len(ending))
            good = ok[sel, best]
            p_rows, q_rows = ending[good], q[sel, best][good]
            if not len(p_rows):
                continue
            _lend(P, Wt, A, p_rows, q_rows, _past_end(b, direction, T))

    # the directions are independent: each lends only samples untracked before the pass (past its tracks' ends:
    # later frames forward, earlier ones backward) and reads only samples tracked before it: two threads
    _parallel([lambda: one_way(+1), lambda: one_way(-1)])


def flow_field(window: FrameWindow, config: FlowConfig = FlowConfig()) -> TrajectoryField:
    """The flow baseline's trajectory field of a window (world frame, stride ``config.stride``)."""
    with one_blas_thread():
        return _flow_field(window, config)


def _flow_field(window: FrameWindow, config: FlowConfig) -> TrajectoryField:
    points, weights, _, own_valid = track_window(window, config)
    T, h, w = points.shape[:3]
    meta = {"backend": "flow", "method": config.method}
    if config.rigid:
        meta["rigid"] = True
    times = np.asarray(window.times, np.float64)
    span = (float(times[0]), float(times[-1]))
    s = (times - span[0]) / max(span[1] - span[0], 1e-9) if T > 1 else np.zeros(1)
    if T == 1:
        cp = np.repeat(points[:, :, :, :1], config.num_control_points, axis=3)
    else:
        cp = fit_trajectory(s, points, config.num_control_points, weights=weights)
    conf = own_valid * (weights > config.lost_weight).mean(axis=-1)  # share of frames tracked or propagated
    return TrajectoryField(cp.astype(np.float32), conf.astype(np.float32), times, stride=config.stride,
                           pixel_offset=config.stride // 2, image_size=tuple(window.depth.shape[1:3]),
                           time_span=span, meta=meta)
