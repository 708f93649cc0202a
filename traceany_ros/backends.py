"""Predictor backends: one interface for the network and the baselines.

A backend turns a :class:`FrameWindow` (what a predictor may see of a clip)
into a :class:`~traceany_ros.field.TrajectoryField` in the WORLD frame whose
time span is ``(times[0], times[-1])``::

    backend = make_backend("flow")            # or "static", "model"
    field = backend.predict(window)           # TrajectoryField, control_points [T, h, w, K, 3]

Backends:
    ``static``  every pixel stays at its own unprojection (reference baseline).
    ``flow``    OpenCV dense optical flow chained frame to frame, lifted to 3D
                with depth and fitted with the project's B-spline (``tracker/flow.py``).
    ``flow-rigid`` the same with rigid parts, the learned matcher, segment ICP and
                stitching (``traceany_ros.tracker``; named presets ``tracker.flow.TRACKERS``).
    ``model``   the trajectory-field network (``traceany_ros.model``), loaded
                from a checkpoint (the shipped one by default).

Each backend has ``name``, ``device`` and ``predict(window)``. Heavy imports
(torch, cv2) happen inside the backends, so importing this module is cheap.
"""
from __future__ import annotations


from pathlib import Path

import numpy as np

from traceany_ros.episode import FrameWindow  # the one FrameWindow definition lives in episode.py
from traceany_ros.field import TrajectoryField
from traceany_ros.geometry import check_window, grid_points_world

__all__ = ["StaticBackend", "FlowBackend", "FlowRigidBackend", "ModelBackend", "make_backend", "BACKENDS"]


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
    """Dense optical flow baseline: the tracker preset ``preset`` (a ``tracker.flow.TRACKERS`` name) with
    ``options`` (FlowConfig fields, see :mod:`traceany_ros.tracker.flow`) on top."""

    name = "flow"
    default_preset = "plain"

    def __init__(self, device: str = "cpu", preset: str | None = None, **options):
        from traceany_ros.tracker.flow import TRACKERS, FlowConfig

        preset = preset or self.default_preset
        if preset not in TRACKERS:
            raise ValueError(f"unknown tracker preset {preset!r}; choose one of {sorted(TRACKERS)}")
        self.preset = preset
        self.config = FlowConfig(**{**TRACKERS[preset], **options})
        self.device = "cpu"

    def predict(self, window: FrameWindow) -> TrajectoryField:
        from traceany_ros.tracker.flow import flow_field

        return flow_field(window, self.config)


class FlowRigidBackend(FlowBackend):
    """The flow tracks made robust for moving rigid parts (:mod:`traceany_ros.tracker.rigid`): a track ends
    where the depth under it jumps (it slid onto another surface or an occluder), and a lost point
    moves with the fitted one-step motion of its rigid part instead of holding its last position.
    The flow is DIS started from the learned matcher's coarse matches (:mod:`traceany_ros.tracker.matcher`),
    or the depth flow where that matches better (:func:`traceany_ros.tracker.flow.learned_flow`), and on rigid
    depth segments their ICP motion where that explains the next frame better (:mod:`traceany_ros.tracker.icp`);
    a track's lost stretches are filled from other frames' tracks of the same point
    (:func:`traceany_ros.tracker.flow.stitch_tracks`), and a moving track is carried on past its ends by
    another track of the same point (tracked at the end, or beginning right after it) or its neighbours'
    rigid motion (:func:`traceany_ros.tracker.flow.extend_track_ends`,
    :func:`traceany_ros.tracker.flow.join_next_tracks`, :func:`traceany_ros.tracker.flow.extend_with_neighbours`).
    Default preset ``"offline"`` (all of these, DIS at full resolution); the tracer uses ``"stream"``, the planners
    ``"planners"``.
    """

    name = "flow-rigid"
    default_preset = "offline"


class ModelBackend:
    """The trajectory-field network (:mod:`traceany_ros.model`): one forward pass of torch operations.

    Options: ``checkpoint`` (path; default: the shipped ``checkpoints/tiny.pt``), ``device``
    ("cpu" | "cuda" | "auto"), ``preset`` (build an untrained model of this preset instead of loading a
    checkpoint; for tests and timing only), ``key_frames`` (a longer window is predicted on that many
    evenly spaced key frames and the other frames take their curves from them,
    :mod:`traceany_ros.model.keyframes`; None: every frame goes through the network), ``zoom`` (the network
    sees the images this many times larger: cells of stride / zoom pixels, for small objects, at more than
    zoom^2 the time; :mod:`traceany_ros.model.zoom`), ``selection`` ("blend": each refinement pass moves an
    estimate by the convex blend of its candidate moves, as trained; "top": by its top-weighted move, the
    better choice for goal pairs, whose frames lie far apart; :meth:`traceany_ros.model.TraceModel.forward`).
    ``predict(window, future_s=0.3)`` also returns the network's forecast: the curves then cover 0.3 s
    past the last frame (``time_span`` ends there).
    """

    name = "model"
    supports_forecast = True
    default_window, default_overlap = 24, 8  # sliding windows of offline prediction
    default_key_frames = 8  # key frames of a longer window (training windows: 6-10 frames)

    def __init__(self, checkpoint: str | None = None, device: str = "cpu", preset: str | None = None,
                 key_frames: int | None = default_key_frames, zoom: int = 1, selection: str = "blend"):
        from traceany_ros.checkpoint_file import resolve_device
        from traceany_ros.model import ModelConfig, TraceModel, default_checkpoint, load_checkpoint
        from traceany_ros.model.keyframes import check_key_frames
        from traceany_ros.model.network import check_selection
        from traceany_ros.model.zoom import check_zoom

        key_frames = check_key_frames(key_frames)
        self.selection = check_selection(selection)

        self.device = resolve_device(device)
        if preset is not None and checkpoint is None:
            self.model = TraceModel(ModelConfig.preset(preset)).eval()
            self.checkpoint, self.label = None, f"{preset}@untrained"
        else:
            path = checkpoint or default_checkpoint()
            self.model, self.checkpoint = load_checkpoint(path, device=self.device)
            self.label = f"{self.model.config.name}@{Path(path).name}"
        self.model.to(self.device).eval()
        self.key_frames = key_frames
        self.zoom = check_zoom(zoom, self.model.config.stride)

    def predict(self, window: FrameWindow, future_s: float = 0.0) -> TrajectoryField:
        from traceany_ros.model import predict_field
        from traceany_ros.model.zoom import unzoom_field, zoom_window

        check_window(window)
        field = predict_field(self.model, zoom_window(window, self.zoom), device=self.device, future_s=float(future_s),
                              meta={"checkpoint": self.label}, key_frames=self.key_frames, selection=self.selection)
        return unzoom_field(field, self.zoom, np.asarray(window.depth).shape[1:])

    def with_options(self, zoom: int | None = None, selection: str | None = None) -> "ModelBackend":
        """The same network (its weights shared, not copied) with another input zoom or selection."""
        import copy

        from traceany_ros.model.network import check_selection
        from traceany_ros.model.zoom import check_zoom

        other = copy.copy(self)
        if zoom is not None:
            other.zoom = check_zoom(zoom, self.model.config.stride)
        if selection is not None:
            other.selection = check_selection(selection)
        return other

    def predict_moving(self, window: FrameWindow, future_s: float = 0.0, zoom: int = 2, pad: int = 24,
                       find_frames: int = 3):
        """The field of the window's moving region, seen ``zoom`` times larger (finer cells on a small
        mover at about the cost of one more pass; :func:`traceany_ros.model.zoom.moving_box`).

        A first pass over ``find_frames`` evenly spaced frames of the whole window at the network's own
        cells (zoom 1) finds the cells that move; the second predicts every frame of a crop around them
        (grown by ``pad`` pixels) at ``zoom``. Returns (field, box): the crop's field (its pixels are
        the crop's, its points and curves in the world as always) and the crop box (r0, r1, c0, c1) in
        the window; (the whole window's field, None) when nothing moves.
        """
        from traceany_ros.episode import window_frames
        from traceany_ros.model.keyframes import pick_key_frames
        from traceany_ros.model.zoom import check_zoom, crop_window, moving_box

        check_zoom(zoom, self.model.config.stride)
        own = self.with_options(zoom=1)
        keys = pick_key_frames(len(window.times), max(2, int(find_frames)))
        first = own.predict(window if keys is None else window_frames(window, keys))
        box = moving_box(first, pad=pad)
        if box is None:
            whole = keys is None and future_s <= 0  # the first pass was already the whole window's field
            return (first if whole else own.predict(window, future_s=future_s)), None
        field = self.with_options(zoom=zoom).predict(crop_window(window, box), future_s=future_s)
        field.meta["crop"] = box
        return field, box


BACKENDS = {"static": StaticBackend, "flow": FlowBackend, "flow-rigid": FlowRigidBackend, "model": ModelBackend}


def make_backend(name: str, **options):
    """Build a backend by name ("static" | "flow" | "flow-rigid" | "model") with its options (see each class)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    return BACKENDS[name](**options)
