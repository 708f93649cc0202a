"""A small TF buffer: the camera pose at an image's stamp from ``/tf`` and ``/tf_static``.

``tf2_ros`` (its Buffer and TransformListener) has no PyPI wheel, so the tracer
keeps this stand-in; on a full ROS 2 install it behaves as tf2 does for what the
tracer needs, and nothing more: a tree of frames (each child has one parent),
static edges (from ``/tf_static``, valid at every time) and dynamic edges (from
``/tf``, a bounded history per child), chains composed through the nearest
common ancestor, and dynamic edges interpolated at the asked stamp (translation
linearly, rotation by scipy's Slerp). A stamp outside an edge's history is an
extrapolation error unless it is within ``tolerance_s`` of the history's end
(then the end sample is used); ``stamp=None`` asks for the newest common time.

Failures raise :class:`TransformError` whose ``kind`` is ``unknown_frame``,
``not_connected`` or ``extrapolation`` and whose text names the frames, the
stamp and what is known, so a node can put it in ``/diagnostics`` as it is.

No ROS import: :func:`add_tf_message` reads ``tf2_msgs/TFMessage`` objects by
their fields. Poses are [4, 4] float64, parent <- child.
"""
from __future__ import annotations

import bisect
import threading

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


class TransformError(LookupError):
    """No transform between two frames at a stamp; ``kind`` says why, the text what to check."""

    def __init__(self, kind: str, message: str, future: bool = False):
        super().__init__(message)
        self.kind = kind
        self.future = future  # extrapolation past the newest transform: it may still arrive


class _Edge:
    """parent <- child transforms of one child frame: one static value or a time-sorted history."""

    def __init__(self, parent: str, static: bool):
        self.parent, self.static = parent, static
        self.times: list[float] = []
        self.poses: list[np.ndarray] = []

    def add(self, stamp: float, T: np.ndarray, max_history: int, cache_s: float) -> None:
        if self.static:
            self.times, self.poses = [stamp], [T]
            return
        i = bisect.bisect_left(self.times, stamp)
        if i < len(self.times) and self.times[i] == stamp:
            self.poses[i] = T
        else:
            self.times.insert(i, stamp)
            self.poses.insert(i, T)
        newest = self.times[-1]
        cut = bisect.bisect_left(self.times, newest - cache_s)
        cut = max(cut, len(self.times) - max_history)
        if cut > 0:
            del self.times[:cut], self.poses[:cut]

    def at(self, stamp: float | None, tolerance_s: float, child: str) -> np.ndarray:
        if self.static or stamp is None:
            return self.poses[-1]
        t = self.times
        if stamp < t[0] - tolerance_s or stamp > t[-1] + tolerance_s:
            side = "before the oldest" if stamp < t[0] else "after the newest"
            raise TransformError("extrapolation", f"{self.parent} <- {child} at {stamp:.6f} s is {side} transform "
                                                  f"({t[0]:.6f} .. {t[-1]:.6f} s, {len(t)} kept)",
                                 future=stamp > t[-1])
        if stamp <= t[0]:
            return self.poses[0]
        if stamp >= t[-1]:
            return self.poses[-1]
        i = bisect.bisect_right(t, stamp)
        t0, t1 = t[i - 1], t[i]
        a, b = self.poses[i - 1], self.poses[i]
        u = (stamp - t0) / (t1 - t0)
        rot = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]])))([u])
        out = np.eye(4)
        out[:3, :3] = rot.as_matrix()[0]
        out[:3, 3] = (1.0 - u) * a[:3, 3] + u * b[:3, 3]
        return out

    def newest(self) -> float | None:
        return None if self.static else self.times[-1]


class TfBuffer:
    """Frames and their transforms; thread-safe (subscriptions add, the image callback looks up).

    Args:
        cache_s: dynamic transforms older than the newest one of their child by more than this are dropped.
        max_history: at most this many dynamic transforms per child.
        tolerance_s: a stamp this close past either end of a child's history uses the end sample.
    """

    def __init__(self, cache_s: float = 10.0, max_history: int = 1000, tolerance_s: float = 0.0):
        self.cache_s, self.max_history, self.tolerance_s = float(cache_s), int(max_history), float(tolerance_s)
        self._edges: dict[str, _Edge] = {}
        self._lock = threading.Lock()
        self.conflicts: set[str] = set()   # child frames seen on both /tf and /tf_static
        self.reparented: set[str] = set()  # child frames that changed parent

    def set_transform(self, parent: str, child: str, stamp: float, T: np.ndarray, static: bool = False) -> None:
        """Add ``parent <- child`` = ``T`` [4, 4] at ``stamp`` (seconds); ``static`` for /tf_static."""
        if not parent or not child or parent == child:
            raise ValueError(f"a transform needs two different frame names, got {parent!r} <- {child!r}")
        T = np.asarray(T, np.float64)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise ValueError(f"transform {parent} <- {child} must be a finite [4, 4] matrix")
        with self._lock:
            e = self._edges.get(child)
            if e is not None and e.static != static:
                self.conflicts.add(child)
            if e is not None and e.parent != parent:
                self.reparented.add(child)
            if e is None or e.static != static or e.parent != parent:
                e = self._edges[child] = _Edge(parent, static)
            e.add(float(stamp), T, self.max_history, self.cache_s)

    def frames(self) -> list[str]:
        """Every frame named so far (parents and children)."""
        with self._lock:
            return sorted(set(self._edges) | {e.parent for e in self._edges.values()})

    def _path_to_root(self, frame: str) -> list[str]:
        path, seen = [frame], {frame}
        while path[-1] in self._edges:
            p = self._edges[path[-1]].parent
            if p in seen:
                raise TransformError("not_connected", f"frames form a loop through {p!r}; check the TF publishers")
            path.append(p)
            seen.add(p)
        return path

    def _known(self, frame: str) -> bool:
        return frame in self._edges or any(e.parent == frame for e in self._edges.values())

    def lookup(self, target: str, source: str, stamp: float | None) -> np.ndarray:
        """[4, 4] ``target <- source`` at ``stamp`` (None = the newest time all edges on the chain share)."""
        with self._lock:
            for f in (target, source):
                if not self._known(f):
                    known = sorted(set(self._edges) | {e.parent for e in self._edges.values()})
                    raise TransformError("unknown_frame", f"no transform {target} <- {source}: frame {f!r} is on no "
                                                          f"/tf or /tf_static transform (frames known: "
                                                          f"{', '.join(known) or 'none'})")
            if target == source:
                return np.eye(4)
            up_s, up_t = self._path_to_root(source), self._path_to_root(target)
            common = next((f for f in up_s if f in set(up_t)), None)
            if common is None:
                raise TransformError("not_connected", f"no transform {target} <- {source}: they are in different "
                                                      f"trees (roots {up_t[-1]!r} and {up_s[-1]!r}); publish the "
                                                      f"transform that joins them")
            chain_s, chain_t = up_s[:up_s.index(common)], up_t[:up_t.index(common)]
            if stamp is None:
                newest = [self._edges[c].newest() for c in chain_s + chain_t]
                newest = [t for t in newest if t is not None]
                stamp = min(newest) if newest else None
            try:
                root_s = np.eye(4)
                for c in chain_s:                      # common <- source
                    root_s = self._edges[c].at(stamp, self.tolerance_s, c) @ root_s
                root_t = np.eye(4)
                for c in chain_t:                      # common <- target
                    root_t = self._edges[c].at(stamp, self.tolerance_s, c) @ root_t
            except TransformError as e:
                raise TransformError(e.kind, f"no transform {target} <- {source} at {stamp:.6f} s: {e}",
                                     e.future) from None
        return np.linalg.inv(root_t) @ root_s


def transform_to_matrix(tf) -> np.ndarray:
    """geometry_msgs/Transform (by its fields) -> [4, 4] float64; raises ValueError on a bad rotation."""
    q = np.array([tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w], np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"transform rotation {q.tolist()} (x, y, z, w) is not a rotation")
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(q / n).as_matrix()
    T[:3, 3] = [tf.translation.x, tf.translation.y, tf.translation.z]
    return T


def add_tf_message(buffer: TfBuffer, msg, static: bool) -> int:
    """Add every ``TransformStamped`` of a ``tf2_msgs/TFMessage``; returns how many were added.

    Raises ValueError for the first malformed transform (after adding the good ones before it).
    """
    n = 0
    for t in msg.transforms:
        stamp = float(t.header.stamp.sec) + float(t.header.stamp.nanosec) * 1e-9
        buffer.set_transform(t.header.frame_id, t.child_frame_id, stamp, transform_to_matrix(t.transform), static)
        n += 1
    return n
