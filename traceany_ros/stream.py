"""Streaming trajectory fields: a sliding window over a live RGB-D stream (no ROS).

::

    predictor = SlidingWindowPredictor(StreamConfig(window=8, step=4, backend="flow"),
                                       on_field=lambda field, info: ...)
    with predictor:                      # starts / stops the worker thread
        for rgb, depth, K, cam_to_world, t in frames:
            predictor.push(rgb, depth, K, cam_to_world, t)   # cheap, never runs the model

State machine (one worker thread, one pending slot):

* ``push`` validates the frame, appends it to a ring buffer of the last N
  (``window``) frames and, every S (``step``) new frames once the buffer is
  full, hands a snapshot of the buffer to the worker. There is one pending
  slot: when the worker is still busy, a newer snapshot replaces the waiting
  one, so memory and latency stay bounded; frames that never reach the backend
  are counted as ``dropped``.
* The worker stacks the snapshot into a :class:`~traceany_ros.backends.FrameWindow`,
  runs the backend and joins the result with the previous window's field
  (:func:`join_fields`), then calls ``on_field(field, info)``.
* A gap longer than ``max_gap_s`` or a change of image size / intrinsics
  restarts the window (the stream resumes cleanly after a camera restart).

Joining: consecutive windows overlap by N - S frames. For every frame seen by
both windows, the new curve is cross-faded from the previous window's curve
(at the start of the overlap) to the new window's (at the end of the previous
span) and refitted, so a point's trajectory is continuous across window
borders and all fields stay in the same world frame.
"""
from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field as dc_field
from typing import Callable

import numpy as np

from traceany_ros.backends import BACKENDS
from traceany_ros.config_utils import validate_fields
from traceany_ros.field import TrajectoryField, bspline_basis, fit_trajectory
from traceany_ros.tracker.flow import ENDS, ENDS_OFF, METHODS as FLOW_METHODS, STITCH_DISTANCE

log = logging.getLogger(__name__)

BACKEND_NAMES = tuple(sorted(BACKENDS))  # one list of names: traceany_ros.backends


@dataclass(frozen=True)
class StreamConfig:
    """Settings of the sliding-window predictor (mirrored as node parameters).

    Each field's ``metadata`` holds the parameter description and, for numbers,
    its allowed range (used by the ROS node's parameter descriptors).
    """

    window: int = dc_field(default=8, metadata={"range": (2, 64), "help": "frames per backend call (N)"})
    step: int = dc_field(default=4, metadata={"range": (1, 64),
                                               "help": "run the backend every S new frames (S <= N)"})
    backend: str = dc_field(default="flow-rigid", metadata={"choices": BACKEND_NAMES,
                                                       "help": "predictor: flow | flow-rigid | model | static"})
    device: str = dc_field(default="cpu", metadata={"choices": ("cpu", "cuda", "auto"),
                                                      "help": "torch device of the model backend"})
    checkpoint: str = dc_field(default="", metadata={"help": "model checkpoint (.pt); empty = the shipped one"})
    preset: str = dc_field(default="", metadata={
        "help": "model preset to build UNTRAINED when no checkpoint is given (timing only); empty = load"})
    key_frames: int = dc_field(default=4, metadata={
        "range": (0, 64), "help": "model: a longer window is predicted on this many evenly spaced key frames, the "
                                  "others take their curves from them (0: every frame goes through the network; "
                                  "4 of 8 frames keep 15 Hz on 2 cores)"})
    input_downscale: int = dc_field(default=1, metadata={
        "range": (1, 8), "help": "use every n-th image row/column (e.g. 2: 640x480 -> 320x240); the field "
                                 "still refers to full-size pixels"})
    field_stride: int = dc_field(default=4, metadata={"range": (1, 64),
                                                      "help": "pixel stride of the field (flow/static)"})
    num_control_points: int = dc_field(default=10, metadata={"range": (4, 31),
                                                             "help": "K = 3m+1 control points (flow/static)"})
    flow_method: str = dc_field(default="dis_medium", metadata={
        "choices": FLOW_METHODS, "help": "OpenCV flow of the flow backend (dis_fine: the medium preset at full "
                                         "resolution, ~4x its time)"})
    depth_flow: bool = dc_field(default=False, metadata={
        "help": "flow backends: RGB-D flow (grey or depth flow per pixel; better on untextured moving things, "
                "about 100 ms more per 8-frame window)"})
    learned_matches: bool = dc_field(default=True, metadata={
        "help": "flow backends: start DIS from the learned matcher's coarse matches (finds large moves of thin, "
                "plain parts; costs a matcher pass per window)"})
    icp: bool = dc_field(default=False, metadata={
        "help": "flow backends: move rigid depth segments by their ICP motion where that explains the next frame "
                "better (follows turning objects the flow misses; about 0.6 s more per 8-frame window on one core)"})
    stitch: bool = dc_field(default=True, metadata={
        "help": "flow backends: fill a track's lost frames from other frames' tracks of the same point (and, "
                "flow-rigid, their part-moved samples; about 30 ms per 8-frame window)"})
    carry_ends: bool = dc_field(default=False, metadata={
        "help": "flow-rigid: carry moving tracks on past their ends with another track of the same point (tracked "
                "at the end or beginning right after it) or their neighbours' rigid motion (the offline default; "
                "off here for latency)"})
    join_windows: bool = dc_field(default=True, metadata={"help": "join consecutive windows continuously"})
    max_gap_s: float = dc_field(default=1.0, metadata={"range": (0.01, 60.0),
                                                       "help": "a longer gap between frames restarts the window"})
    min_valid_depth: float = dc_field(default=0.01, metadata={
        "range": (0.0, 1.0), "help": "reject frames with a smaller fraction of valid depth pixels"})
    stats_window: int = dc_field(default=100, metadata={"range": (2, 10000),
                                                        "help": "fields kept for rate/latency statistics"})

    def __post_init__(self):
        validate_fields(self)
        if self.step > self.window:
            raise ValueError(f"step ({self.step}) must be <= window ({self.window}), or frames are never seen")
        if self.key_frames == 1:
            raise ValueError("key_frames must be 0 (every frame through the network) or at least 2 (the window's "
                             "first and last frames)")
        if (self.num_control_points - 1) % 3:
            raise ValueError(f"num_control_points must be 3m + 1 (4, 7, 10, 13, ...), got {self.num_control_points}")

    def backend_options(self) -> dict:
        """Keyword options of ``make_backend(self.backend, **options)``."""
        if self.backend in ("flow", "flow-rigid"):
            return {"preset": "stream" if self.backend == "flow-rigid" else "plain",
                    "stride": self.field_stride, "num_control_points": self.num_control_points,
                    "method": self.flow_method, "depth_flow": self.depth_flow,
                    "learned_matches": self.learned_matches, "icp": self.icp,
                    "stitch": STITCH_DISTANCE if self.stitch else 0.0,
                    **(ENDS if self.carry_ends else ENDS_OFF)}
        if self.backend == "static":
            return {"stride": self.field_stride, "num_control_points": self.num_control_points}
        opts = {"device": self.device, "key_frames": self.key_frames or None}
        if self.checkpoint:
            opts["checkpoint"] = self.checkpoint
        elif self.preset:
            opts["preset"] = self.preset
        return opts


class FrameRejected(ValueError):
    """A pushed frame that was not used; ``reason`` is a short code, the text says what to do."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class _Frame:
    rgb: np.ndarray          # [H, W, 3] uint8
    depth: np.ndarray        # [H, W] float32 m
    intrinsics: np.ndarray   # [3, 3]
    cam_to_world: np.ndarray  # [4, 4]
    stamp: float             # seconds
    index: int               # running number of accepted frames
    wall: float              # time.monotonic() at push
    full_size: tuple = ()    # (H, W) before input_downscale


def join_fields(prev: TrajectoryField | None, new: TrajectoryField, anchor_weight: float = 100.0) -> TrajectoryField:
    """Join a window's field to the previous window's, continuously.

    Frames present in both fields (same timestamp) get a curve that follows
    ``prev`` at the start of the overlap ``[new.time_span[0], prev.time_span[1]]``
    and ``new`` from its end on (smoothstep cross-fade), refitted with the new
    field's K; the sample at the start of ``new`` is weighted ``anchor_weight``
    so the joined curve passes through the previous curve there. Frames only in
    ``new`` keep their curves. Fields on different grids or without overlap are
    returned unchanged.

    Shapes: prev [T1, h, w, K1, 3], new [T2, h, w, K, 3] -> [T2, h, w, K, 3].
    """
    if prev is None or prev.shape != new.shape or prev.stride != new.stride \
            or prev.pixel_offset != new.pixel_offset or prev.frame_id != new.frame_id:
        return new
    a, b_old, b_new = new.time_span[0], prev.time_span[1], new.time_span[1]
    if not (b_old > a and b_new > a):
        return new
    tol = 1e-6
    j_prev = np.searchsorted(prev.times, new.times - tol)
    j_prev = np.clip(j_prev, 0, prev.num_frames - 1)
    shared = np.abs(prev.times[j_prev] - new.times) <= tol
    if not shared.any():
        return new
    i_new = np.nonzero(shared)[0]
    i_prev = j_prev[shared]
    k = new.num_control_points
    m = max(3 * k, 2 * new.num_frames)
    ts = np.linspace(a, b_new, m)
    x = np.clip((b_old - ts) / (b_old - a), 0.0, 1.0)
    w_old = x * x * (3.0 - 2.0 * x)  # 1 at a, 0 at b_old
    # Everything is linear in the control points: blend the two curves' samples, then least-squares fit
    # them (the anchor sample repeated ``anchor_weight`` times) == one [K, K_old] and one [K, K] matrix.
    reps = max(int(round(anchor_weight)), 1)
    expand = np.vstack([np.repeat(np.eye(m)[:1], reps - 1, axis=0), np.eye(m)])       # [M', M]
    s_fit = expand @ new.normalized_time(ts)
    fit = fit_trajectory(s_fit, np.eye(len(s_fit))[:, :, None], k)[..., 0].T @ expand  # [K, M]: samples -> cp
    p_old = fit @ (w_old[:, None] * bspline_basis(prev.normalized_time(ts), prev.num_control_points))
    p_new = fit @ ((1.0 - w_old)[:, None] * bspline_basis(new.normalized_time(ts), k))

    def apply(mat, cps):  # [K, Kin] x [..., Kin, 3] -> [..., K, 3] as one matrix product
        moved = np.moveaxis(cps.astype(np.float64), -2, 0)
        return np.moveaxis((mat @ moved.reshape(moved.shape[0], -1)).reshape(mat.shape[0], *moved.shape[1:]), 0, -2)

    cp_old, cp_new = prev.control_points[i_prev], new.control_points[i_new]
    ok_old = np.isfinite(cp_old).all(axis=(-1, -2)) & (prev.confidence[i_prev] > 0)
    joined = apply(p_old, np.nan_to_num(cp_old)) + apply(p_new, cp_new)
    cp = new.control_points.copy()
    cp[i_new] = np.where(ok_old[..., None, None], joined, cp_new).astype(np.float32)
    out = new._replace(control_points=cp)
    out.meta["joined_frames"] = int(i_new.size)
    return out


class SlidingWindowPredictor:
    """Sliding-window trajectory fields over a stream of RGB-D frames.

    Args:
        config: :class:`StreamConfig`.
        backend: an object with ``predict(FrameWindow) -> TrajectoryField``;
            default ``make_backend(config.backend, **config.backend_options())``
            (built here, so a bad checkpoint fails at construction).
        on_field: ``on_field(field, info)`` called on the worker thread with
            each joined field and ``info`` (latency_s, first/last frame index,
            window stamps). Keep it short (publish and return).
        on_error: ``on_error(exc)`` called on the worker thread when the
            backend or ``on_field`` raises; the worker keeps running.
        frame_id: frame of the world poses (``field.frame_id``).
    """

    def __init__(self, config: StreamConfig = StreamConfig(), backend=None,
                 on_field: Callable | None = None, on_error: Callable | None = None, frame_id: str = "world"):
        self.config = config
        if backend is None:
            from traceany_ros.backends import make_backend

            backend = make_backend(config.backend, **config.backend_options())
        self.backend = backend
        self.on_field = on_field
        self.on_error = on_error
        self.frame_id = frame_id
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._buffer: collections.deque[_Frame] = collections.deque(maxlen=config.window)
        self._pending: tuple[_Frame, ...] | None = None
        self._busy = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._latest: tuple[TrajectoryField, dict] | None = None
        self._new_since_run = 0
        self._next_index = 0
        self._last_stamp = -math.inf
        self._last_covered = -1      # newest frame index that reached the backend
        self._prev_field: TrajectoryField | None = None
        self._latencies: collections.deque[float] = collections.deque(maxlen=config.stats_window)
        self._field_walls: collections.deque[float] = collections.deque(maxlen=config.stats_window)
        self._kept_log: collections.deque[tuple[float, int]] = collections.deque(maxlen=config.stats_window)
        self._compute: collections.deque[float] = collections.deque(maxlen=config.stats_window)
        self._counts = collections.Counter()
        self._last_error = ""
        self._first_push_wall: float | None = None
        self.seq = 0  # number of fields produced

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "SlidingWindowPredictor":
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="traceany-stream", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker (after the window in progress) and drop pending work."""
        with self._wake:
            self._stop = True
            self._pending = None
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("stream worker still busy after %.1f s; leaving it to finish", timeout)
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def reset(self) -> None:
        """Forget buffered frames and the previous field (e.g. after a camera restart)."""
        with self._lock:
            self._reset_locked("reset")

    def _reset_locked(self, why: str) -> None:
        # buffered frames that never reached the backend are lost
        self._counts["dropped"] += max(0, (self._next_index - 1) - self._last_covered)
        if self._buffer:
            self._counts["restarts"] += 1
            log.info("stream window restarted (%s)", why)
        self._buffer.clear()
        self._pending = None
        self._new_since_run = 0
        self._prev_field = None
        self._last_covered = self._next_index - 1
        self._last_stamp = -math.inf

    # ------------------------------------------------------------------ input
    def push(self, rgb: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray, cam_to_world: np.ndarray,
             stamp: float) -> int:
        """Add one frame; never blocks on the backend.

        Args:
            rgb: [H, W, 3] uint8. depth: [H, W] float32 metres (0 or NaN = invalid).
            intrinsics: [3, 3]. cam_to_world: [4, 4] world <- camera (OpenCV).
            stamp: seconds, strictly increasing.
        Returns:
            the frame's running index.
        Raises:
            FrameRejected (``reason`` in: shape, intrinsics, pose, stamp, duplicate,
            out_of_order, depth) — the frame is not used, the stream goes on.
        """
        rgb = np.asarray(rgb)
        depth = np.asarray(depth, dtype=np.float32)
        K = np.asarray(intrinsics, dtype=np.float64)
        T = np.asarray(cam_to_world, dtype=np.float64)
        stamp = float(stamp)
        try:
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise FrameRejected("shape", f"rgb must be [H, W, 3] uint8, got {rgb.shape} {rgb.dtype}")
            if depth.shape != rgb.shape[:2]:
                raise FrameRejected("shape", f"depth is {depth.shape[1]}x{depth.shape[0]} but colour is "
                                             f"{rgb.shape[1]}x{rgb.shape[0]}: use depth aligned to colour "
                                             f"(RealSense: align_depth.enable:=true)")
            if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
                raise FrameRejected("intrinsics", f"intrinsics must be a finite [3, 3] K with fx, fy > 0, got {K.tolist()}")
            if T.shape != (4, 4) or not np.all(np.isfinite(T)):
                raise FrameRejected("pose", "cam_to_world must be a finite [4, 4] matrix")
            if not math.isfinite(stamp):
                raise FrameRejected("stamp", f"stamp must be finite seconds, got {stamp}")
            valid = np.isfinite(depth) & (depth > 0)
            frac = float(valid.mean()) if valid.size else 0.0
            if frac < self.config.min_valid_depth or not valid.any():
                raise FrameRejected("depth", f"only {100 * frac:.1f}% of depth pixels are valid (need "
                                             f"{100 * self.config.min_valid_depth:.1f}%): is the depth stream "
                                             f"running and the scene within range?")
        except FrameRejected as e:
            with self._lock:
                self._counts[f"rejected_{e.reason}"] += 1
                self._counts["rejected"] += 1
            raise
        if not valid.all():
            depth = np.where(valid, depth, np.float32(0.0))
        full_size = rgb.shape[:2]
        f = self.config.input_downscale
        if f > 1:
            # subsampling keeps pixel (r', c') exactly at full-size pixel (f r', f c'); a centred Gaussian
            # blur first keeps the colour from aliasing (depth is taken as is: no mixing across edges)
            import cv2

            rgb = np.ascontiguousarray(cv2.GaussianBlur(rgb, (0, 0), 0.5 * f)[::f, ::f])
            depth = np.ascontiguousarray(depth[::f, ::f])
            K = K.copy()
            K[:2, :] /= f
            K[2, 2] = 1.0
        with self._wake:
            if stamp == self._last_stamp:
                self._counts["rejected_duplicate"] += 1
                self._counts["rejected"] += 1
                raise FrameRejected("duplicate", f"frame stamp {stamp:.9f} s repeats the previous one; dropped")
            if stamp < self._last_stamp - self.config.max_gap_s:
                self._reset_locked(f"time jumped back {self._last_stamp - stamp:.2f} s (source restarted?)")
            elif stamp < self._last_stamp:
                self._counts["rejected_out_of_order"] += 1
                self._counts["rejected"] += 1
                raise FrameRejected("out_of_order", f"frame stamp {stamp:.9f} s is older than the previous "
                                                    f"{self._last_stamp:.9f} s; dropped")
            if self._buffer:
                last = self._buffer[-1]
                if stamp - last.stamp > self.config.max_gap_s:
                    self._reset_locked(f"gap of {stamp - last.stamp:.2f} s > max_gap_s")
                elif last.rgb.shape != rgb.shape or not np.allclose(last.intrinsics, K):
                    self._reset_locked("image size or intrinsics changed")
            now = time.monotonic()
            if self._first_push_wall is None:
                self._first_push_wall = now
            frame = _Frame(rgb, depth, K, T, stamp, self._next_index, now, full_size)
            self._next_index += 1
            self._last_stamp = stamp
            self._buffer.append(frame)
            self._counts["pushed"] += 1
            self._new_since_run += 1
            if len(self._buffer) == self.config.window and self._new_since_run >= self.config.step:
                if self._pending is not None:
                    self._counts["replaced_windows"] += 1
                self._pending = tuple(self._buffer)
                self._new_since_run = 0
                self._wake.notify()
            return frame.index

    # ------------------------------------------------------------------ output
    def latest(self) -> tuple[TrajectoryField, dict] | None:
        """The newest (field, info), or None before the first window."""
        with self._lock:
            return self._latest

    def wait_for_field(self, after_seq: int = 0, timeout: float = 10.0) -> tuple[TrajectoryField, dict] | None:
        """Block until a field newer than ``after_seq`` exists (or timeout)."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self.seq <= after_seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._wake.wait(min(left, 0.1))
            return self._latest

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._pending is None and not self._busy

    def stats(self) -> dict:
        """Counters and rates: pushed, rejected (+ per reason), dropped, fields, restarts, errors,
        fields_hz, kept_hz (frames that reached the backend per second, over the last ``stats_window``
        fields), latency_{p50,p95,max}_ms (push of a window's newest frame -> its field)."""
        with self._lock:
            lat = np.array(self._latencies) * 1e3
            walls = np.array(self._field_walls)
            counts = dict(self._counts)
            out = {k: int(v) for k, v in counts.items()}
            for k in ("pushed", "rejected", "dropped", "fields", "restarts", "errors", "kept", "replaced_windows"):
                out.setdefault(k, 0)
            out["fields_hz"] = float((len(walls) - 1) / (walls[-1] - walls[0])) if len(walls) > 1 and \
                walls[-1] > walls[0] else 0.0
            kl = list(self._kept_log)
            span = kl[-1][0] - kl[0][0] if len(kl) > 1 else 0.0
            out["kept_hz"] = float(sum(k for _, k in kl[1:]) / span) if span > 0 else 0.0
            out["latency_p50_ms"] = float(np.percentile(lat, 50)) if lat.size else float("nan")
            out["latency_p95_ms"] = float(np.percentile(lat, 95)) if lat.size else float("nan")
            out["latency_max_ms"] = float(lat.max()) if lat.size else float("nan")
            comp = np.array(self._compute) * 1e3
            out["compute_p50_ms"] = float(np.percentile(comp, 50)) if comp.size else float("nan")
            out["buffered"] = len(self._buffer)
            out["busy"] = self._busy
            out["last_error"] = self._last_error
            out["backend"] = getattr(self.backend, "name", type(self.backend).__name__)
            out["device"] = str(getattr(self.backend, "device", "cpu"))
            return out

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        from traceany_ros.episode import FrameWindow

        while True:
            with self._wake:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                frames, self._pending = self._pending, None
                self._busy = True
                first, last = frames[0].index, frames[-1].index
                # frames that fell between the last covered frame and this window never reach the backend
                dropped = max(0, first - (self._last_covered + 1))
                self._counts["dropped"] += dropped
                kept = max(0, last - max(self._last_covered, first - 1))
                self._counts["kept"] += kept
                self._last_covered = max(self._last_covered, last)
                prev = self._prev_field
            try:
                window = FrameWindow(rgb=np.stack([f.rgb for f in frames]),
                                     depth=np.stack([f.depth for f in frames]),
                                     intrinsics=frames[-1].intrinsics.astype(np.float32),
                                     cam_to_world=np.stack([f.cam_to_world for f in frames]).astype(np.float32),
                                     times=np.array([f.stamp for f in frames], np.float64))
                t0 = time.monotonic()
                raw = self.backend.predict(window)
                raw.frame_id = self.frame_id
                f = self.config.input_downscale
                if f > 1:  # back to full-size pixels: field pixel (i, j) -> f * (offset + stride * i)
                    raw = raw._replace(stride=raw.stride * f, pixel_offset=raw.pixel_offset * f,
                                       image_size=frames[-1].full_size)
                compute = time.monotonic() - t0
                field = join_fields(prev, raw) if self.config.join_windows else raw
                field.meta.setdefault("backend", getattr(self.backend, "name", ""))
                now = time.monotonic()
                info = {"latency_s": now - frames[-1].wall, "compute_s": compute, "first_index": first,
                        "last_index": last, "stamp": frames[-1].stamp, "dropped_before": dropped}
                with self._wake:
                    if self._stop:
                        return
                    self._prev_field = field
                    self._latest = (field, info)
                    self.seq += 1
                    self._counts["fields"] += 1
                    self._latencies.append(info["latency_s"])
                    self._field_walls.append(now)
                    self._kept_log.append((now, kept))
                    self._compute.append(compute)
                    self._wake.notify_all()
                if self.on_field is not None:
                    self.on_field(field, info)
            except Exception as e:  # noqa: BLE001 - the worker must survive any backend/callback failure
                with self._lock:
                    self._counts["errors"] += 1
                    self._last_error = f"{type(e).__name__}: {e}"
                log.exception("stream worker: %s", e)
                if self.on_error is not None:
                    try:
                        self.on_error(e)
                    except Exception:  # noqa: BLE001
                        log.exception("stream on_error callback failed")
            finally:
                with self._lock:
                    self._busy = False


def config_dict(config: StreamConfig) -> dict:
    """The config as a plain dict (for logs and JSON)."""
    return asdict(config)
