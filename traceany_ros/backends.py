"""Predictor backends: one interface for the network and the baselines.

A backend turns a :class:`FrameWindow` (what a predictor may see of a clip)
into a :class:`~traceany_ros.field.TrajectoryField` in the WORLD frame whose
time span is ``(times[0], times[-1])``::

    backend = make_backend("flow")            # or "static", "model"
    field = backend.predict(window)           # TrajectoryField, control_points [T, h, w, K, 3]

Backends:
    ``static``  every pixel stays at its own unprojection (reference baseline).
    ``flow``    OpenCV dense optical flow chained frame to frame, lifted to 3D
                with depth and fitted with the project's B-spline (``flow.py``).
    ``model``   the trajectory-field network (``traceany_ros.model``), loaded
                from a checkpoint (the shipped one by default).

Each backend has ``name``, ``device`` and ``predict(window)``. Heavy imports
(torch, cv2) happen inside the backends, so importing this module is cheap.
"""
from __future__ import annotations


import numpy as np

from traceany_ros.episode import FrameWindow, unproject  # the one FrameWindow definition lives in episode.py
from traceany_ros.field import TrajectoryField

__all__ = ["FrameWindow", "StaticBackend", "FlowBackend", "ModelBackend", "make_backend", "BACKENDS",
           "check_window", "grid_points_world"]


def check_window(window: FrameWindow) -> tuple[int, int, int]:
    """Validate a window's shapes; returns (T, H, W). Raises ValueError naming the bad field."""
    rgb, depth = np.asarray(window.rgb), np.asarray(window.depth)
    if rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise ValueError(f"FrameWindow.rgb must be [T,H,W,3] uint8, got shape {rgb.shape}")
    t, h, w = rgb.shape[:3]
    if depth.shape != (t, h, w):
        raise ValueError(f"FrameWindow.depth must be [T,H,W] = {(t, h, w)} like rgb, got {depth.shape}")
    if np.asarray(window.intrinsics).shape != (3, 3):
        raise ValueError(f"FrameWindow.intrinsics must be [3,3], got {np.asarray(window.intrinsics).shape}")
    if np.asarray(window.cam_to_world).shape != (t, 4, 4):
        raise ValueError(f"FrameWindow.cam_to_world must be [T,4,4] = {(t, 4, 4)}, "
                         f"got {np.asarray(window.cam_to_world).shape}")
    times = np.asarray(window.times, np.float64).reshape(-1)
    if times.shape[0] != t:
        raise ValueError(f"FrameWindow.times must have T={t} entries, got {times.shape[0]}")
    if t > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("FrameWindow.times must be strictly increasing")
    return t, h, w


def grid_points_world(window: FrameWindow, stride: int = 1, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """World points of a pixel grid of every frame.

    Returns:
        points [T, h, w, 3] float64 (pixel rows ``offset + stride * i``), and
        valid [T, h, w] bool (depth > 0 and finite). Invalid pixels are filled
        with the unprojection at the frame's median valid depth, so they stay
        finite (give them zero confidence).
    """
    t, h, w = check_window(window)
    out, valid = [], []
    for f in range(t):
        d = np.asarray(window.depth[f], np.float64)[offset::stride, offset::stride]
        ok = np.isfinite(d) & (d > 0)
        fill = float(np.median(d[ok])) if ok.any() else 1.0
        d = np.where(ok, d, fill)
        # unproject a strided depth map: scale the intrinsics to the grid
        k = np.asarray(window.intrinsics, np.float64).copy()
        k[0, 0] /= stride
        k[1, 1] /= stride
        k[0, 2] = (k[0, 2] - offset) / stride
        k[1, 2] = (k[1, 2] - offset) / stride
        out.append(unproject(d, k, window.cam_to_world[f]))
        valid.append(ok)
    return np.stack(out), np.stack(valid)


class StaticBackend:
    """Every pixel stays where it is at its own frame (control points all equal).

    Options: ``stride`` (field pixel spacing, default 4: ``predict_episode`` translates the nearest
    curve through each query's own unprojection, so static tracks stay exact), ``num_control_points`` (K).
    """

    name = "static"

    def __init__(self, stride: int = 4, num_control_points: int = 10, device: str = "cpu"):
        self.stride = int(stride)
        self.num_control_points = int(num_control_points)
        self.device = "cpu"

    def predict(self, window: FrameWindow) -> TrajectoryField:
        t, h, w = check_window(window)
        pts, valid = grid_points_world(window, self.stride, 0)
        cp = np.repeat(pts[:, :, :, None, :], self.num_control_points, axis=3).astype(np.float32)
        times = np.asarray(window.times, np.float64)
        return TrajectoryField(cp, valid.astype(np.float32), times, stride=self.stride, pixel_offset=0,
                               image_size=(h, w), time_span=(float(times[0]), float(times[-1])),
                               meta={"backend": self.name})


class FlowBackend:
    """Dense optical flow baseline (see :mod:`traceany_ros.flow` for the options)."""

    name = "flow"

    def __init__(self, device: str = "cpu", **options):
        from traceany_ros.flow import FlowConfig

        self.config = FlowConfig(**options)
        self.device = "cpu"

    def predict(self, window: FrameWindow) -> TrajectoryField:
        from traceany_ros.flow import flow_field

        return flow_field(window, self.config)


class FlowRigidBackend(FlowBackend):
    """The flow tracks made robust for moving rigid parts (:mod:`traceany_ros.rigid`): a track ends
    where the depth under it jumps (it slid onto another surface or an occluder), and a lost point
    moves with the fitted one-step motion of its rigid part instead of holding its last position.
    The flow is DIS started from the learned matcher's coarse matches (:mod:`traceany_ros.matcher`),
    or the depth flow where that matches better (:func:`traceany_ros.flow.learned_flow`), and on rigid
    depth segments their ICP motion where that explains the next frame better (:mod:`traceany_ros.icp`);
    a track's lost stretches are filled from other frames' tracks of the same point
    (:func:`traceany_ros.flow.stitch_tracks`), and a moving track is carried on past its ends by
    another track of the same point (tracked at the end, or beginning right after it) or its neighbours'
    rigid motion (:func:`traceany_ros.flow.extend_track_ends`, :func:`traceany_ros.flow.join_next_tracks`,
    :func:`traceany_ros.flow.extend_with_neighbours`).
    Same options as ``flow``; these default on (``flow.TRACKERS["rigid-rgbd-learned-icp-stitch-ends"]``), with
    DIS at full resolution (``method="dis_fine"``: held out 5.01 -> 4.91 cm on moving points, 1.65 -> 1.39 on
    still ones, for ~0.3 s more a 24-frame clip).
    """

    name = "flow-rigid"

    def __init__(self, device: str = "cpu", **options):
        from traceany_ros.flow import TRACKERS

        super().__init__(device, **{**TRACKERS["rigid-rgbd-learned-icp-stitch-ends"], "method": "dis_fine", **options})


class ModelBackend:
    """The trajectory-field network.

    Options: ``checkpoint`` (path; default: the shipped ``checkpoints/tiny.pt``),
    ``device`` ("cpu" | "cuda" | "auto"), ``preset`` (build an untrained model of
    this preset instead of loading a checkpoint; for tests and timing only),
    ``prior_tracker`` (a ``flow.TRACKERS`` name: track the flow prior with it instead of the
    checkpoint's own (the shipped one since session 12: ``rigid-rgbd-learned-icp-stitch-join-neighbours-depth4``
    on ``dis_fine_novr``, held out 4.95 cm on moving points; before it ``rigid-rgbd-learned-icp-stitch-join`` on
    ``dis_medium``, 5.30 cm and ~0.35 s less per 24-frame clip),
    ``prior_flow_method`` (a ``flow.METHODS`` name: the prior's optical flow instead of the checkpoint's,
    e.g. "dis_medium", DIS at half resolution, for latency),
    ``bf16`` (run the network's transformer trunk under bfloat16 autocast on CPU: "auto" where the CPU
    has native bfloat16 (AMX / AVX512-BF16; ~0.15 s less per 24-frame clip; tracks 0.06 mm from
    float32 on average, 99 % within 0.4 mm), "on", "off").
    """

    name = "model"

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", preset: str | None = None,
                 prior_tracker: str | None = None, prior_flow_method: str | None = None, bf16: str = "auto"):
        from dataclasses import replace

        from traceany_ros.flow import METHODS, TRACKERS
        from traceany_ros.model import TraceModel, default_checkpoint, load_checkpoint, resolve_device

        self.device = resolve_device(device)
        if preset is not None and checkpoint is None:
            from traceany_ros.model import ModelConfig

            self.model = TraceModel(ModelConfig.preset(preset))
            self.checkpoint = None
        else:
            path = checkpoint or default_checkpoint()
            self.model, self.checkpoint = load_checkpoint(path, device=self.device)
        # how the flow prior is made may change (same weights): its tracker, its optical flow
        for what, value, allowed, field in (("prior tracker", prior_tracker, sorted(TRACKERS), "flow_tracker"),
                                            ("prior flow method", prior_flow_method, list(METHODS), "flow_method")):
            if value is None:
                continue
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r}; choose one of {allowed}")
            if not self.model.config.flow_prior:
                raise ValueError(f"this model ({self.model.config.name}) has no flow prior (no {what} to set)")
            self.model.config = replace(self.model.config, **{field: value})
        if bf16 not in ("auto", "on", "off"):
            raise ValueError(f"bf16 must be 'auto', 'on' or 'off', got {bf16!r}")
        from traceany_ros.model.network import cpu_has_native_bf16

        self.model.trunk_bf16 = self.device.type == "cpu" and (
            bf16 == "on" or (bf16 == "auto" and cpu_has_native_bf16()))
        self.model.to(self.device).eval()

    def predict(self, window: FrameWindow) -> TrajectoryField:
        from traceany_ros.flow import one_blas_thread

        check_window(window)
        with one_blas_thread():  # NumPy's BLAS threads would spin beside the network's (flow.one_blas_thread)
            return self.model.predict_field(window, device=self.device)


BACKENDS = {"static": StaticBackend, "flow": FlowBackend, "flow-rigid": FlowRigidBackend, "model": ModelBackend}


def make_backend(name: str, **options):
    """Build a backend by name ("static" | "flow" | "flow-rigid" | "model") with its options (see each class)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](**options)
