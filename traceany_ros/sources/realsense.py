"""Intel RealSense frames through pyrealsense2: a live camera or a recording file.

::

    with RealSenseSource(RealSenseConfig(file="clip.db3")) as src:   # or RealSenseConfig() for a camera
        for frame in src:                                               # Frame: rgb, depth (m), K, stamp
            ...

Recordings: pyrealsense2 2.59 records rosbag2 ``.db3`` files (``rs.recorder``)
and plays them back through a playback device (``context.load_device``);
older ``.bag`` recordings are untested. :func:`write_recording` makes a recording from numpy frames with
``rs.software_device`` (no camera needed; the tests use it).

Depth is aligned to colour with ``rs.align`` when the two streams differ
(``align="auto"``); frames are paired by timestamp, so the non-real-time
playback of a file gives every recorded frame exactly once.
"""
from __future__ import annotations

import collections
import os
import threading
import time
from dataclasses import dataclass, field as dc_field
from typing import Iterator

import numpy as np

from traceany_ros.config_utils import validate_fields
from traceany_ros.sources import Frame


@dataclass(frozen=True)
class RealSenseConfig:
    """Where frames come from and how.

    file: recording to play (.db3 or .bag); empty = a live camera.
    serial: camera serial number (live; empty = the first one).
    width, height, fps: live stream profile (colour and depth alike).
    align: "auto" (align depth to colour when they differ), "on", "off".
    real_time: play a file at its recorded speed (False: as fast as read, every frame).
    repeat: loop the file.
    timeout_s: no frame for this long = the source is gone (live) or finished (file).
    """

    file: str = dc_field(default="", metadata={"help": "recording to play (.db3/.bag); empty = live camera"})
    serial: str = dc_field(default="", metadata={"help": "camera serial number; empty = first camera"})
    width: int = dc_field(default=640, metadata={"range": (16, 4096), "help": "live stream width"})
    height: int = dc_field(default=480, metadata={"range": (16, 4096), "help": "live stream height"})
    fps: int = dc_field(default=30, metadata={"range": (1, 300), "help": "live stream rate"})
    align: str = dc_field(default="auto", metadata={"choices": ("auto", "on", "off"),
                                                    "help": "align depth to colour"})
    real_time: bool = dc_field(default=True, metadata={"help": "play a file at recorded speed"})
    repeat: bool = dc_field(default=False, metadata={"help": "loop the recording"})
    timeout_s: float = dc_field(default=5.0, metadata={"range": (0.1, 600.0),
                                                       "help": "no frame for this long ends a file / flags a dead camera"})

    def __post_init__(self):
        validate_fields(self)
        if self.file and not os.path.exists(self.file):
            raise ValueError(f"RealSense recording {self.file!r} does not exist")


def _intrinsics_matrix(intr) -> np.ndarray:
    return np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]], np.float32)


class _FrameQueue:
    """Frames from the playback thread to __iter__; ``put`` waits while full once ``bounded`` (back-pressure)."""

    def __init__(self, maxsize: int):
        self.maxsize, self.bounded = maxsize, False
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def put(self, item, closing) -> None:
        with self._cond:
            while self.bounded and len(self._items) >= self.maxsize and not closing():
                self._cond.wait(0.1)
            self._items.append(item)
            self._cond.notify_all()

    def get_all(self, timeout: float) -> list:
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            out = list(self._items)
            self._items.clear()
            self._cond.notify_all()
            return out

    def clear(self) -> None:
        with self._cond:
            self._items.clear()
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class RealSenseSource:
    """Aligned RGB-D frames from pyrealsense2 (see the module docstring)."""

    def __init__(self, config: RealSenseConfig = RealSenseConfig()):
        import pyrealsense2 as rs

        self.rs = rs
        self.config = config
        self.pipeline = None
        self.depth_scale = 0.001
        self.intrinsics: np.ndarray | None = None
        self.image_size: tuple[int, int] | None = None
        self._align = None
        self._playback = None
        self._sensors: list = []
        self._pyq: _FrameQueue | None = None
        self._closing = False
        self._syncer = None
        self._pace = None
        self._started = False
        self.fps = config.fps
        self._index = 0
        self._last_emitted = -np.inf

    def start(self) -> "RealSenseSource":
        rs, cfg = self.rs, self.config
        if cfg.file:
            # a playback device driven sensor by sensor: every recorded frame once, no syncer duplicates
            try:
                dev = rs.context().load_device(cfg.file)
            except RuntimeError as e:
                raise RuntimeError(f"cannot open RealSense recording {cfg.file!r}: {e}") from e
            self._playback = dev.as_playback() if hasattr(dev, "as_playback") else dev
            # read every frame (non-real-time, back-pressured by a small queue); real-time pacing happens
            # in __iter__ from the recorded timestamps, so playback is exact and never drops frames
            self._playback.set_real_time(False)
            self._pyq = _FrameQueue(maxsize=8)
            self._closing = False
            self._sensors = list(dev.query_sensors())
            profiles = []
            for s in self._sensors:
                sp = list(s.get_stream_profiles())
                s.open(sp)
                profiles += sp
            # start every sensor while paused: a non-real-time playback otherwise races the second start
            self._playback.pause()
            for s in self._sensors:
                s.start(self._on_frame)
            # resume() waits for the reader thread: the callback must not block before it returns
            self._playback.resume()
            self._pyq.bounded = True
            cprof = next(p for p in profiles if p.stream_type() == rs.stream.color).as_video_stream_profile()
            dprof = next(p for p in profiles if p.stream_type() == rs.stream.depth).as_video_stream_profile()
            depth_sensors = [s for s in self._sensors if s.is_depth_sensor()]
            if depth_sensors:
                self.depth_scale = float(depth_sensors[0].as_depth_sensor().get_depth_scale())
        else:
            # ask first: pipeline.start() waits ~15 s before it reports a missing camera
            serials = [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
            if not serials:
                raise RuntimeError("no RealSense camera connected (rs-enumerate-devices lists none): plug one in, "
                                   "or play a recording with file:=PATH")
            if cfg.serial and cfg.serial not in serials:
                raise RuntimeError(f"RealSense {cfg.serial} is not connected; connected: {serials}")
            pipe = rs.pipeline()
            rcfg = rs.config()
            if cfg.serial:
                rcfg.enable_device(cfg.serial)
            rcfg.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
            rcfg.enable_stream(rs.stream.depth, cfg.width, cfg.height, rs.format.z16, cfg.fps)
            try:
                profile = pipe.start(rcfg)
            except RuntimeError as e:
                where = f"camera {cfg.serial}" if cfg.serial else "a camera"
                raise RuntimeError(f"cannot start RealSense {where}: {e}. Is it connected (rs-enumerate-devices) "
                                   f"and not used by another process?") from e
            self.pipeline = pipe
            try:
                self.depth_scale = float(profile.get_device().first_depth_sensor().get_depth_scale())
            except RuntimeError:
                self.depth_scale = 0.001
            cprof = profile.get_stream(rs.stream.color).as_video_stream_profile()
            dprof = profile.get_stream(rs.stream.depth).as_video_stream_profile()
        ci, di = cprof.get_intrinsics(), dprof.get_intrinsics()
        self.intrinsics = _intrinsics_matrix(ci)
        self.image_size = (ci.height, ci.width)
        self.fps = int(cprof.fps()) or cfg.fps
        ext = dprof.get_extrinsics_to(cprof)
        differ = (ci.width, ci.height) != (di.width, di.height) or \
            not np.allclose(_intrinsics_matrix(ci), _intrinsics_matrix(di)) or \
            not np.allclose(np.asarray(ext.rotation), np.eye(3).ravel()) or \
            not np.allclose(np.asarray(ext.translation), 0.0)
        if cfg.align == "on" or (cfg.align == "auto" and differ):
            if cfg.file:
                # rs.align works on framesets: let a syncer build them
                self._syncer = rs.syncer()
            self._align = rs.align(rs.stream.color)
        self._started = True
        return self

    def _on_frame(self, fr) -> None:
        """Playback callback: hand the frame to __iter__, waiting while the queue is full (back-pressure)."""
        fr.keep()
        q = self._pyq
        if q is not None:
            q.put(fr, lambda: self._closing)

    def stop(self) -> None:
        self._closing = True
        if self.pipeline is not None:
            try:
                self.pipeline.stop()
            except RuntimeError:
                pass
            self.pipeline = None
        if self._pyq is not None:  # unblock a callback waiting on a full queue
            self._pyq.clear()
        for s in self._sensors:
            try:
                s.stop()
                s.close()
            except RuntimeError:
                pass
        self._sensors = []
        self._pyq = None
        self._started = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def finished(self) -> bool:
        """A file that played to its end (never true for a live camera or a looping file)."""
        if self._playback is None or self._pyq is None:
            return False
        return self._playback.current_status() == self.rs.playback_status.stopped and not len(self._pyq)

    def _next(self, timeout_ms: int) -> list:
        """Frames that arrived within ``timeout_ms``: [(seconds, rs.frame)], [] on timeout."""
        if self.pipeline is not None:
            ok, fs = self.pipeline.try_wait_for_frames(timeout_ms)
            if not ok:
                return []
            frames = [fs]
        else:
            frames = self._pyq.get_all(timeout_ms / 1000)
            if not frames:
                return []
        out = []
        for fr in frames:
            if self._align is not None:
                fs = fr.as_frameset() if fr.is_frameset() else None
                if fs is None and self._syncer is not None:
                    self._syncer.invoke(fr)
                    ok, fs = self._syncer.try_wait_for_frames(0)
                    if not ok:
                        continue
                fr = self._align.process(fs)
            if fr.is_frameset():
                out += [(f.get_timestamp() * 1e-3, f) for f in fr.as_frameset()]
            else:
                out.append((fr.get_timestamp() * 1e-3, fr))
        return out

    def _wait_until(self, t: float) -> None:
        """Real-time pacing of a file: frame at recorded time t goes out (t - t0) after the first one."""
        if self._pace is None or self._pace[1] is None:
            start = time.monotonic() if self._pace is None else max(self._pace[0], time.monotonic())
            self._pace = (start, t)
        delay = self._pace[0] + (t - self._pace[1]) - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def __iter__(self) -> Iterator[Frame]:
        """Yield aligned frames until a file ends or no frame comes for ``timeout_s`` (then TimeoutError if live)."""
        if not self._started:
            self.start()
        rs = self.rs
        colours: dict[float, np.ndarray] = {}
        depths: dict[float, np.ndarray] = {}
        tol = 0.5 / max(self.fps, 1)
        last_frame_wall = time.monotonic()
        while True:
            got = self._next(int(min(self.config.timeout_s, 0.5) * 1000))
            if not got:
                if self.finished or (self.config.file and time.monotonic() - last_frame_wall > self.config.timeout_s):
                    if not self.config.repeat:
                        return
                    # loop the recording: reopen it (stamps start again; subscribers see a time jump)
                    self.stop()
                    self.start()
                    colours.clear()
                    depths.clear()
                    self._last_emitted = -np.inf
                    if self._pace is not None:
                        self._pace = (time.monotonic() + 1.0 / max(self.fps, 1), None)
                    last_frame_wall = time.monotonic()
                    continue
                if time.monotonic() - last_frame_wall > self.config.timeout_s:
                    raise TimeoutError(f"no RealSense frame for {self.config.timeout_s:.1f} s: camera unplugged?")
                continue
            last_frame_wall = time.monotonic()
            for t, fr in got:
                st = fr.profile.stream_type()
                if st == rs.stream.color:
                    colours[t] = np.asanyarray(fr.get_data()).copy()
                elif st == rs.stream.depth:
                    depths[t] = np.asanyarray(fr.get_data()).copy()
            for tc in sorted(colours):
                if not depths:
                    break
                td = min(depths, key=lambda x: abs(x - tc))
                if abs(td - tc) > tol:
                    continue
                rgb, raw = colours.pop(tc), depths.pop(td)
                if tc <= self._last_emitted:
                    continue
                self._last_emitted = tc
                if self.config.file and self.config.real_time:
                    self._wait_until(tc)
                depth = raw.astype(np.float32) * np.float32(self.depth_scale)
                yield Frame(rgb=rgb, depth=depth, intrinsics=self.intrinsics, cam_to_world=None, stamp=tc,
                            index=self._index)
                self._index += 1
            # bounded: forget partners that can no longer match
            for d in (colours, depths):
                while len(d) > 30:
                    d.pop(min(d))


def write_recording(path: str | os.PathLike, rgb: np.ndarray, depth: np.ndarray, intrinsics: np.ndarray,
                    stamps: np.ndarray, depth_units: float = 0.001) -> str:
    """Write a RealSense recording of aligned RGB-D frames with ``rs.software_device`` + ``rs.recorder``.

    Args:
        path: output file; pyrealsense2 2.59 writes rosbag2 ``.db3`` (the extension is required).
        rgb: [T, H, W, 3] uint8. depth: [T, H, W] metres (0 = invalid). intrinsics: [3, 3].
        stamps: [T] seconds (strictly increasing).
    Returns:
        the path.
    """
    import pyrealsense2 as rs

    path = str(path)
    rgb = np.asarray(rgb, np.uint8)
    T, H, W = rgb.shape[:3]
    stamps = np.asarray(stamps, np.float64)
    fps = int(round(1.0 / np.median(np.diff(stamps)))) if T > 1 else 30
    K = np.asarray(intrinsics, np.float64)
    dev = rs.software_device()
    ds, cs = dev.add_sensor("Depth"), dev.add_sensor("Color")
    intr = rs.intrinsics()
    intr.width, intr.height = W, H
    intr.fx, intr.fy, intr.ppx, intr.ppy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    intr.model = rs.distortion.none
    intr.coeffs = [0.0] * 5

    def stream(kind, uid, bpp, fmt):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = kind, 0, uid
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = W, H, fps, bpp, fmt
        vs.intrinsics = intr
        return vs

    dp = ds.add_video_stream(stream(rs.stream.depth, 0, 2, rs.format.z16))
    cp = cs.add_video_stream(stream(rs.stream.color, 1, 3, rs.format.rgb8))
    ds.add_read_only_option(rs.option.depth_units, float(depth_units))
    ext = rs.extrinsics()
    ext.rotation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    ext.translation = [0.0, 0.0, 0.0]
    dp.register_extrinsics_to(cp, ext)
    recorder = rs.recorder(path, dev)
    ds.open(dp)
    cs.open(cp)
    queue = rs.frame_queue(max(T * 2, 16))
    ds.start(queue)
    cs.start(queue)
    for i in range(T):
        d = np.asarray(depth[i], np.float64)
        d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
        z16 = np.ascontiguousarray(np.clip(np.round(d / depth_units), 0, 65535).astype(np.uint16))
        ms = float(stamps[i]) * 1e3
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp, f.timestamp, f.frame_number = z16, W * 2, 2, ms, i
        f.domain, f.profile, f.depth_units = rs.timestamp_domain.hardware_clock, dp.as_video_stream_profile(), depth_units
        ds.on_video_frame(f)
        c = rs.software_video_frame()
        c.pixels, c.stride, c.bpp, c.timestamp, c.frame_number = np.ascontiguousarray(rgb[i]), W * 3, 3, ms, i
        c.domain, c.profile = rs.timestamp_domain.hardware_clock, cp.as_video_stream_profile()
        cs.on_video_frame(c)
    ds.stop()
    cs.stop()
    ds.close()
    cs.close()
    del recorder
    return path
