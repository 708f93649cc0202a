"""Conversions between ROS 2 messages and the core's numpy types.

Everything a node needs to turn messages into arrays and back, with errors
that say what was wrong and what to do:

* ``field_to_msg`` / ``field_from_msg``: :class:`traceany_ros.field.TrajectoryField`
  <-> ``traceany_ros/msg/TrajectoryField`` (``field_from_msg`` is the one-call
  helper for subscribers: planners never parse arrays by hand).
* ``image_to_rgb`` / ``image_to_depth`` / ``rgb_to_image`` / ``depth_to_image``:
  ``sensor_msgs/Image`` <-> numpy (no cv_bridge: numpy views of ``msg.data``).
* ``camera_info_to_intrinsics`` / ``intrinsics_to_camera_info``.
* ``pose_to_matrix`` / ``matrix_to_pose`` / ``matrix_to_transform``.
* ``make_point_cloud`` (``sensor_msgs/PointCloud2``) and ``field_markers``
  (``visualization_msgs/MarkerArray``: trajectories as line strips coloured by
  time, forecasts dashed).

Shapes: rgb [H, W, 3] uint8, depth [H, W] float32 metres (0 = invalid),
K [3, 3], poses [4, 4] (parent <- child).
"""
from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, Vector3
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from traceany_ros.field import SPLINE_TYPE, TrajectoryField, knot_vector
from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg


class ConversionError(ValueError):
    """A message that cannot be converted; the text says what to change."""


# ----------------------------------------------------------------------------- time

def stamp_to_sec(stamp) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def sec_to_stamp(t: float) -> Time:
    """float seconds (>= 0) -> builtin_interfaces/Time (rounded to the nanosecond)."""
    ns = int(round(float(t) * 1e9))
    if ns < 0:
        raise ConversionError(f"ROS time must be >= 0 s, got {t}")
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


# ----------------------------------------------------------------------------- field

def unit_confidence(confidence: np.ndarray) -> np.ndarray:
    """Confidence on the message's one scale, [0, 1] (0 = no estimate, 1 = certain): every backend gives
    that scale; NaN reads as 0 and values outside are clipped."""
    c = np.nan_to_num(np.asarray(confidence, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(c, 0.0, 1.0)


def backend_label(backend) -> str:
    """The exact name of a predictor for messages: ``flow``, ``flow-rigid``, ``static``, or
    ``model:<preset>@<checkpoint file>:<sha256 first 12 hex>`` (``@untrained`` for a preset built
    without weights)."""
    name = str(getattr(backend, "name", backend))
    if name != "model":
        return name
    model = getattr(backend, "model", None)
    preset = getattr(getattr(model, "config", None), "name", "") or "?"
    ck = getattr(backend, "checkpoint", None)
    path = ck.get("path") if isinstance(ck, dict) else None
    if not path:
        return f"model:{preset}@untrained"
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return f"model:{preset}@{Path(path).name}:{h.hexdigest()[:12]}"


def _probabilities_to_bytes(p: np.ndarray | None) -> bytes:
    if p is None:
        return b""
    q = np.rint(np.clip(np.nan_to_num(np.asarray(p, np.float32), nan=0.0), 0.0, 1.0) * 255.0)
    return np.ascontiguousarray(q, np.uint8).tobytes()


def _bytes_to_probabilities(data, shape: tuple, what: str) -> np.ndarray | None:
    raw = np.frombuffer(bytes(data), np.uint8) if len(data) else np.zeros(0, np.uint8)
    if raw.size == 0:
        return None
    n = int(np.prod(shape))
    if raw.size != n:
        raise ConversionError(f"{what} has {raw.size} values but {'*'.join(map(str, shape))} = {n} (or 0 for none)")
    return (raw.reshape(shape).astype(np.float32) / np.float32(TrajectoryFieldMsg.PROBABILITY_MAX))


def field_to_msg(field: TrajectoryField, *, stamp: float | None = None, frame_id: str | None = None,
                 camera_frame_id: str = "", backend: str | None = None) -> TrajectoryFieldMsg:
    """TrajectoryField -> traceany_ros/msg/TrajectoryField.

    Args:
        field: control points [T, h, w, K, 3] in ``field.frame_id`` (or ``frame_id``); its optional
            ``motion`` [T, h, w] and ``visibility`` [T, h, w, T] go out as uint8 (p * 255, rounded).
        stamp: header stamp in seconds; default the latest frame's time.
        camera_frame_id: optical frame of the camera that saw the clip.
        backend: name of the predictor (:func:`backend_label`); default ``field.meta["backend"]``.
    Confidence is sent on the [0, 1] scale (:func:`unit_confidence`).
    """
    msg = TrajectoryFieldMsg()
    t_last = float(field.times[-1]) if stamp is None else float(stamp)
    msg.header = Header(stamp=sec_to_stamp(t_last), frame_id=frame_id or field.frame_id)
    msg.camera_frame_id = camera_frame_id or str(field.meta.get("camera_frame_id", ""))
    msg.spline_type = SPLINE_TYPE
    k = field.num_control_points
    msg.num_control_points = k
    msg.knots = knot_vector(k).tolist()
    msg.frame_stamps = [sec_to_stamp(t) for t in field.times]
    msg.time_start, msg.time_end = float(field.time_span[0]), float(field.time_span[1])
    t, h, w = field.control_points.shape[:3]
    msg.num_frames, msg.height, msg.width = t, h, w
    msg.image_height, msg.image_width = int(field.image_size[0]), int(field.image_size[1])
    msg.stride, msg.pixel_offset = int(field.stride), int(field.pixel_offset)
    # array.array('f') assignment is the fast path of the generated setter
    msg.control_points = array.array("f", np.ascontiguousarray(field.control_points, np.float32).tobytes())
    msg.confidence = array.array("f", unit_confidence(field.confidence).tobytes())
    msg.motion = _probabilities_to_bytes(field.motion)
    msg.visibility = _probabilities_to_bytes(field.visibility)
    msg.backend = str(backend if backend is not None else field.meta.get("backend", ""))
    return msg


def field_from_msg(msg: TrajectoryFieldMsg) -> TrajectoryField:
    """traceany_ros/msg/TrajectoryField -> TrajectoryField, in one call.

    The returned field's ``frame_id`` is the header's; ``meta`` carries
    ``backend``, ``camera_frame_id`` and ``stamp`` (header stamp, seconds);
    confidence is in [0, 1]; ``motion`` [T, h, w] and ``visibility`` [T, h, w, T]
    are float32 in [0, 1] (multiples of 1/255), or None when the message has none.
    Raises ConversionError when the message is inconsistent (sizes, spline type).
    """
    if msg.spline_type and msg.spline_type != SPLINE_TYPE:
        raise ConversionError(f"unsupported spline_type {msg.spline_type!r}: this build evaluates "
                              f"{SPLINE_TYPE!r} only; update traceany_ros on the subscriber")
    t, h, w, k = int(msg.num_frames), int(msg.height), int(msg.width), int(msg.num_control_points)
    try:
        want_knots = knot_vector(k)
    except ValueError as e:
        raise ConversionError(f"bad num_control_points in TrajectoryField message: {e}") from e
    if len(msg.knots) and (len(msg.knots) != k + 4 or not np.allclose(np.asarray(msg.knots), want_knots)):
        raise ConversionError(f"knot vector of length {len(msg.knots)} does not match {SPLINE_TYPE} with K={k}")
    cp = np.frombuffer(memoryview(msg.control_points), dtype=np.float32) if len(msg.control_points) \
        else np.zeros(0, np.float32)
    conf = np.frombuffer(memoryview(msg.confidence), dtype=np.float32) if len(msg.confidence) \
        else np.zeros(0, np.float32)
    if cp.size != t * h * w * k * 3:
        raise ConversionError(f"control_points has {cp.size} floats but num_frames*height*width*K*3 = "
                              f"{t}*{h}*{w}*{k}*3 = {t * h * w * k * 3}")
    if conf.size != t * h * w:
        raise ConversionError(f"confidence has {conf.size} floats but num_frames*height*width = {t * h * w}")
    if len(msg.frame_stamps) != t:
        raise ConversionError(f"frame_stamps has {len(msg.frame_stamps)} entries but num_frames = {t}")
    times = np.array([stamp_to_sec(s) for s in msg.frame_stamps], dtype=np.float64)
    motion = _bytes_to_probabilities(msg.motion, (t, h, w), "motion")
    visibility = _bytes_to_probabilities(msg.visibility, (t, h, w, t), "visibility")
    return TrajectoryField(
        control_points=cp.reshape(t, h, w, k, 3).copy(), confidence=conf.reshape(t, h, w).copy(),
        times=times, stride=max(int(msg.stride), 1), pixel_offset=int(msg.pixel_offset),
        image_size=(int(msg.image_height), int(msg.image_width)) if msg.image_height else None,
        frame_id=msg.header.frame_id or "world", time_span=(float(msg.time_start), float(msg.time_end)),
        meta={"backend": msg.backend, "camera_frame_id": msg.camera_frame_id,
              "stamp": stamp_to_sec(msg.header.stamp)}, motion=motion, visibility=visibility)


# ----------------------------------------------------------------------------- images

_COLOUR = {"rgb8": (3, False), "bgr8": (3, True), "rgba8": (4, False), "bgra8": (4, True)}


def _image_array(msg: Image, dtype, channels: int) -> np.ndarray:
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if h == 0 or w == 0:
        raise ConversionError(f"{msg.encoding} image is empty ({w}x{h}); check the camera driver")
    if step < row:
        raise ConversionError(f"{msg.encoding} image {w}x{h} has step {step} < width*channels*bytes = {row}")
    buf = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if buf.size < step * h:
        raise ConversionError(f"{msg.encoding} image {w}x{h} (step {step}) needs {step * h} bytes "
                              f"but data has {buf.size}; the message is truncated")
    rows = buf[: step * h].reshape(h, step)[:, :row]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.ascontiguousarray(rows).view(dt).reshape(h, w, channels) if channels > 1 \
        else np.ascontiguousarray(rows).view(dt).reshape(h, w)
    return arr.astype(np.dtype(dtype).newbyteorder("="), copy=False)


def image_to_rgb(msg: Image) -> np.ndarray:
    """Colour Image (rgb8, bgr8, rgba8, bgra8, mono8) -> [H, W, 3] uint8 RGB."""
    enc = msg.encoding.lower()
    if enc in _COLOUR:
        ch, swap = _COLOUR[enc]
        a = _image_array(msg, np.uint8, ch)[..., :3]
        return np.ascontiguousarray(a[..., ::-1] if swap else a)
    if enc in ("mono8", "8uc1"):
        a = _image_array(msg, np.uint8, 1)
        return np.repeat(a[..., None], 3, axis=2)
    raise ConversionError(f"colour image has encoding {msg.encoding!r}; expected one of rgb8, bgr8, rgba8, bgra8, "
                          f"mono8 (RealSense: rgb_camera.color_format:=RGB8)")


def image_to_depth(msg: Image, depth_scale: float = 0.001) -> np.ndarray:
    """Depth Image -> [H, W] float32 metres, 0 where invalid (NaN/inf/<=0 -> 0).

    16UC1 / mono16 are integer units of ``depth_scale`` metres (RealSense: mm);
    32FC1 is metres.
    """
    enc = msg.encoding.lower()
    if enc in ("16uc1", "mono16"):
        d = _image_array(msg, np.uint16, 1).astype(np.float32) * np.float32(depth_scale)
    elif enc == "32fc1":
        d = _image_array(msg, np.float32, 1).astype(np.float32, copy=True)
    else:
        raise ConversionError(f"depth image has encoding {msg.encoding!r}; expected 16UC1 (millimetres) or "
                              f"32FC1 (metres) — subscribe to the aligned depth topic, not a colourised one")
    bad = ~np.isfinite(d) | (d <= 0)
    if bad.any():
        d[bad] = 0.0
    return d


def rgb_to_image(rgb: np.ndarray, stamp: float = 0.0, frame_id: str = "") -> Image:
    """[H, W, 3] uint8 RGB -> Image rgb8."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(f"rgb must be [H, W, 3] uint8, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    return Image(header=Header(stamp=sec_to_stamp(stamp), frame_id=frame_id), height=h, width=w,
                 encoding="rgb8", is_bigendian=0, step=w * 3, data=rgb.tobytes())


def depth_to_image(depth: np.ndarray, stamp: float = 0.0, frame_id: str = "", encoding: str = "16UC1",
                   depth_scale: float = 0.001) -> Image:
    """[H, W] float metres -> Image 16UC1 (units of depth_scale, RealSense style) or 32FC1."""
    d = np.asarray(depth, dtype=np.float32)
    if d.ndim != 2:
        raise ConversionError(f"depth must be [H, W], got shape {d.shape}")
    h, w = d.shape
    if encoding == "16UC1":
        d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
        data = np.clip(np.round(d / depth_scale), 0, 65535).astype("<u2")
        step = w * 2
    elif encoding == "32FC1":
        data = d.astype("<f4")
        step = w * 4
    else:
        raise ConversionError(f"depth encoding must be 16UC1 or 32FC1, got {encoding!r}")
    return Image(header=Header(stamp=sec_to_stamp(stamp), frame_id=frame_id), height=h, width=w,
                 encoding=encoding, is_bigendian=0, step=step, data=data.tobytes())


def camera_info_to_intrinsics(msg: CameraInfo) -> tuple[np.ndarray, tuple[int, int]]:
    """CameraInfo -> (K [3, 3] float32, (height, width)). Raises on an all-zero / invalid K."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1.0:
        raise ConversionError(f"camera_info has an invalid K {K.ravel().tolist()}: fx, fy must be > 0 and "
                              f"K[2][2] = 1; is the camera calibrated?")
    if msg.height == 0 or msg.width == 0:
        raise ConversionError("camera_info has width or height 0; the driver has not filled it")
    return K.astype(np.float32), (int(msg.height), int(msg.width))


def intrinsics_to_camera_info(K: np.ndarray, height: int, width: int, stamp: float = 0.0,
                              frame_id: str = "") -> CameraInfo:
    """K [3, 3] -> CameraInfo (plumb_bob, no distortion: the images are rectified)."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:3, :3] = K
    return CameraInfo(header=Header(stamp=sec_to_stamp(stamp), frame_id=frame_id), height=int(height),
                      width=int(width), distortion_model="plumb_bob", d=[0.0] * 5, k=K.ravel().tolist(),
                      r=np.eye(3).ravel().tolist(), p=P.ravel().tolist())


# ----------------------------------------------------------------------------- poses

def position_quaternion_to_matrix(position, orientation) -> np.ndarray:
    """Position [3] (x, y, z) and unit quaternion [4] in ROS order (x, y, z, w) -> [4, 4] float64."""
    from transforms3d.quaternions import quat2mat

    x, y, z, w = orientation
    T = np.eye(4)
    T[:3, :3] = quat2mat([w, x, y, z])
    T[:3, 3] = position
    return T


def static_camera_pose(position, orientation) -> np.ndarray:
    """A camera pose given as parameters -> [4, 4] world <- optical, checked.

    Args:
        position: [x, y, z] metres; orientation: unit quaternion [x, y, z, w] (ROS order).
    Raises:
        ValueError naming the parameter when either is malformed.
    """
    p = np.asarray(position, np.float64)
    if p.shape != (3,) or not np.isfinite(p).all():
        raise ValueError(f"camera_position must be [x, y, z], got {list(position)}")
    q = np.asarray(orientation, np.float64)
    if q.shape != (4,) or not np.isfinite(q).all() or abs(np.linalg.norm(q) - 1.0) > 1e-3:
        raise ValueError(f"camera_orientation must be a unit quaternion [x, y, z, w], got {q.tolist()}")
    return position_quaternion_to_matrix(p, q)


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """geometry_msgs/Pose -> [4, 4] float64."""
    q = np.array([pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z])
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ConversionError(f"pose orientation {q.tolist()} (w, x, y, z) is not a rotation; "
                              f"send a unit quaternion")
    w, x, y, z = q / n
    return position_quaternion_to_matrix([pose.position.x, pose.position.y, pose.position.z], (x, y, z, w))


def _matrix_parts(T: np.ndarray) -> tuple[tuple[float, float, float], Quaternion]:
    """[4, 4] -> translation (x, y, z), rotation as a geometry_msgs/Quaternion."""
    from transforms3d.quaternions import mat2quat

    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise ConversionError(f"pose must be [4, 4], got {T.shape}")
    w, x, y, z = (float(v) for v in mat2quat(T[:3, :3]))
    tx, ty, tz = (float(v) for v in T[:3, 3])
    return (tx, ty, tz), Quaternion(x=x, y=y, z=z, w=w)


def matrix_to_pose(T: np.ndarray) -> Pose:
    """[4, 4] -> geometry_msgs/Pose."""
    (x, y, z), q = _matrix_parts(T)
    return Pose(position=Point(x=x, y=y, z=z), orientation=q)


def matrix_to_transform(T: np.ndarray) -> Transform:
    """[4, 4] -> geometry_msgs/Transform."""
    (x, y, z), q = _matrix_parts(T)
    return Transform(translation=Vector3(x=x, y=y, z=z), rotation=q)


# ----------------------------------------------------------------------------- clouds and markers

def make_point_cloud(points: np.ndarray, stamp: float, frame_id: str, rgb: np.ndarray | None = None,
                     confidence: np.ndarray | None = None) -> PointCloud2:
    """points [N, 3] (+ rgb [N, 3] uint8, confidence [N]) -> PointCloud2 (x, y, z[, rgb][, confidence])."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    n = pts.shape[0]
    names = [("x", np.float32), ("y", np.float32), ("z", np.float32)]
    if rgb is not None:
        names.append(("rgb", np.float32))
    if confidence is not None:
        names.append(("confidence", np.float32))
    rec = np.zeros(n, dtype=np.dtype([(nm, "<f4") for nm, _ in names]))
    rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if rgb is not None:
        c = np.asarray(rgb, dtype=np.uint32).reshape(-1, 3)
        if c.shape[0] != n:
            raise ConversionError(f"rgb has {c.shape[0]} rows but points has {n}")
        rec["rgb"] = ((c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]).astype("<u4").view("<f4")
    if confidence is not None:
        conf = np.asarray(confidence, dtype=np.float32).reshape(-1)
        if conf.shape[0] != n:
            raise ConversionError(f"confidence has {conf.shape[0]} entries but points has {n}")
        rec["confidence"] = conf
    fields = [PointField(name=nm, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, (nm, _) in enumerate(names)]
    return PointCloud2(header=Header(stamp=sec_to_stamp(stamp), frame_id=frame_id), height=1, width=n,
                       fields=fields, is_bigendian=False, point_step=4 * len(names), row_step=4 * len(names) * n,
                       data=rec.tobytes(), is_dense=True)


def point_cloud_to_array(msg: PointCloud2, names=("x", "y", "z")) -> np.ndarray:
    """PointCloud2 with float32 fields -> [N, len(names)] float32 (for tests and tools)."""
    offsets = {f.name: f.offset for f in msg.fields}
    missing = [n for n in names if n not in offsets]
    if missing:
        raise ConversionError(f"point cloud has no field(s) {missing}; it has {sorted(offsets)}")
    raw = np.frombuffer(memoryview(msg.data), dtype=np.uint8).reshape(-1, msg.point_step)
    return np.stack([raw[:, offsets[n]: offsets[n] + 4].copy().view("<f4")[:, 0] for n in names], -1)


def _time_colour(u: float) -> ColorRGBA:
    """Blue (old) -> red (new) for u in [0, 1]."""
    u = float(min(max(u, 0.0), 1.0))
    return ColorRGBA(r=u, g=0.2, b=1.0 - u, a=1.0)


def field_markers(field: TrajectoryField, stamp: float, *, frame: int = -1, max_curves: int = 200,
                  samples: int = 12, forecast_s: float = 0.5, line_width: float = 0.003,
                  only_dynamic: bool = True, ns: str = "traceany") -> MarkerArray:
    """Trajectories of one frame's pixels as RViz line strips coloured by time, forecasts dashed.

    Args:
        field: the field; curves of source frame ``frame`` are drawn.
        max_curves: at most this many curves (the most confident moving ones first).
        samples: points per curve over the time span.
        forecast_s: seconds of forecast beyond the span, drawn as a dashed LINE_LIST.
    Returns:
        MarkerArray whose first marker is a DELETEALL (so old curves vanish).
    """
    out = MarkerArray()
    header = Header(stamp=sec_to_stamp(stamp), frame_id=field.frame_id)
    out.markers.append(Marker(header=header, ns=ns, action=Marker.DELETEALL))
    f = int(frame) % field.num_frames
    conf = field.confidence[f].ravel()
    score = conf.copy()
    if only_dynamic:
        dyn = field.dynamic_mask()[f].ravel()
        score = np.where(dyn, score, -np.inf)
    order = np.argsort(-score, kind="stable")
    order = order[np.isfinite(score[order])][:max_curves]
    if order.size == 0:
        return out
    ts = np.linspace(field.time_span[0], field.time_span[1], max(samples, 2))
    cps = field.control_points[f].reshape(-1, field.num_control_points, 3)[order]  # [n, K, 3]
    from traceany_ros.field import evaluate

    pos = evaluate(cps, field.normalized_time(ts))  # [n, S, 3]
    n_fc = 6
    fc_t = field.time_span[1] + np.linspace(0.0, forecast_s, n_fc)
    fc = evaluate(cps, field.normalized_time(fc_t)) if forecast_s > 0 else None
    for i in range(order.size):
        m = Marker(header=header, ns=ns, id=2 * i + 1, type=Marker.LINE_STRIP, action=Marker.ADD)
        m.pose.orientation.w = 1.0
        m.scale.x = float(line_width)
        m.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in pos[i]]
        m.colors = [_time_colour(u) for u in np.linspace(0, 1, len(m.points))]
        out.markers.append(m)
        if fc is not None:
            d = Marker(header=header, ns=ns + "_forecast", id=2 * i + 2, type=Marker.LINE_LIST, action=Marker.ADD)
            d.pose.orientation.w = 1.0
            d.scale.x = float(line_width)
            d.color = ColorRGBA(r=1.0, g=0.6, b=0.0, a=0.9)
            # dashes: every other segment of the forecast polyline
            for a, b in zip(fc[i][0:-1:2], fc[i][1::2]):
                d.points.extend([Point(x=float(a[0]), y=float(a[1]), z=float(a[2])),
                                 Point(x=float(b[0]), y=float(b[1]), z=float(b[2]))])
            out.markers.append(d)
    return out
