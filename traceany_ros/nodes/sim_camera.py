"""Simulator camera node: publishes a scene's RGB-D frames like a RealSense.

Sources (parameter ``source``):

* ``episode`` — play an episode file (``episode:=PATH``, the episode format).
* ``sim`` — simulate a PyBullet tabletop scene with ``traceany_ros.sim``
  (``seed``, ``width``, ``height``, ``frames``) at start-up, then play it.
* ``synthetic`` — the numpy-only analytic scene of ``traceany_ros.sim.synthetic``
  (a textured card moving over a plane; no PyBullet), for smoke tests.

Frames are published in real time at ``rate_hz`` (0 = the clip's own rate):
frame k goes out at ``start + k / rate`` with stamp ``time_origin + k / rate``
(``time_origin`` 0 = the wall clock at start), so stamps follow the ROS clock
and a subscriber can map a stamp back to its frame. A late timer skips frames
(as a camera would) instead of slowing down. Topics, frame ids and TF follow
:mod:`traceany_ros.nodes.camera`; the camera pose goes out with every frame.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field as dc_field

import numpy as np

from traceany_ros.config_utils import validate_fields
from traceany_ros.nodes.camera import CameraNode, CameraPublisher, run_camera_node
from traceany_ros.nodes.params import config_from_node


@dataclass(frozen=True)
class SimCameraConfig:
    """What the simulator camera plays and how fast (parameters)."""

    source: str = dc_field(default="synthetic", metadata={"choices": ("episode", "sim", "synthetic"),
                                                        "help": "episode file, PyBullet scene, or analytic scene"})
    episode: str = dc_field(default="", metadata={"help": "episode .npz to play (source=episode)"})
    seed: int = dc_field(default=0, metadata={"range": (0, 2**31 - 1), "help": "scene seed (sim/synthetic)"})
    width: int = dc_field(default=256, metadata={"range": (16, 4096), "help": "image width (sim/synthetic)"})
    height: int = dc_field(default=192, metadata={"range": (16, 4096), "help": "image height (sim/synthetic)"})
    frames: int = dc_field(default=24, metadata={"range": (2, 100000), "help": "clip length (sim/synthetic)"})
    rate_hz: float = dc_field(default=0.0, metadata={"range": (0.0, 1000.0),
                                                     "help": "publish rate; 0 = the clip's own frame rate"})
    loop: bool = dc_field(default=True, metadata={"dynamic": True,
                                                  "help": "start the clip again after its last frame"})
    time_origin: float = dc_field(default=0.0, metadata={"range": (0.0, 1e10),
                                                         "help": "stamp of frame 0 (s); 0 = wall clock at start"})
    wait_for_subscribers: int = dc_field(default=0, metadata={
        "range": (0, 100), "help": "wait until this many subscribers see the colour topic before playing"})
    start_timeout_s: float = dc_field(default=30.0, metadata={"range": (0.0, 3600.0),
                                                              "help": "give up waiting for subscribers after this"})
    exit_when_done: bool = dc_field(default=False, metadata={"help": "exit after the last frame (loop:=false)"})
    save_episode: str = dc_field(default="", metadata={
        "help": "also write the played clip (with its ground truth) to this episode .npz"})

    def __post_init__(self):
        validate_fields(self)
        if self.source == "episode" and not self.episode:
            raise ValueError("source:=episode needs episode:=PATH (an episode .npz), or use source:=sim / synthetic")


def load_clip(cfg: SimCameraConfig):
    """The Episode the camera plays (loaded, simulated or synthesised)."""
    if cfg.source == "episode":
        from traceany_ros.episode import load_episode

        return load_episode(cfg.episode)
    if cfg.source == "sim":
        try:
            from traceany_ros.sim.generate import GenerateConfig, make_episode
            from traceany_ros.sim.scene import SceneConfig
        except ImportError as e:
            raise RuntimeError(f"source:=sim needs traceany_ros.sim (PyBullet): {e}") from e
        gcfg = GenerateConfig(scene=SceneConfig(width=cfg.width, height=cfg.height, frames=cfg.frames),
                              gt_extras=False)
        return make_episode(cfg.seed, gcfg)
    from traceany_ros.sim.synthetic import make_synthetic_episode

    return make_synthetic_episode(num_frames=cfg.frames, height=cfg.height, width=cfg.width, seed=cfg.seed)


class SimCameraNode(CameraNode):
    """Plays a clip on the realsense-ros topics in real time (see the module docstring)."""

    def __init__(self, node_name: str = "sim_camera", **kwargs):
        super().__init__(node_name, (SimCameraConfig,), **kwargs)
        self.cfg = config_from_node(self, SimCameraConfig)
        from traceany_ros.sources.episode import EpisodeSource

        t0 = time.monotonic()
        self.source = EpisodeSource(load_clip(self.cfg), loop=self.cfg.loop)
        ep = self.source.episode
        if self.cfg.save_episode:
            from traceany_ros.episode import save_episode

            save_episode(self.cfg.save_episode, ep)
        self.rate = self.cfg.rate_hz or self.source.fps
        poses = np.asarray(ep.cam_to_world, np.float64)
        moving = bool(len(poses) > 1 and not np.allclose(poses, poses[:1], atol=1e-9))
        self.cam = CameraPublisher(self, self.topics, moving=moving)
        self.get_logger().info(f"{self.cfg.source}: {ep.num_frames} frames {ep.image_size[1]}x{ep.image_size[0]} "
                               f"(ready in {time.monotonic() - t0:.1f} s), publishing at {self.rate:.1f} Hz on "
                               f"{self.cam.color_topic}; camera {'moving (/tf)' if moving else 'fixed (/tf_static)'}")
        self.skipped = 0
        self._k = -1
        self._start_wall = None
        self._origin = None
        self._wait_since = time.monotonic()
        self._timer = self.create_timer(min(0.5 / self.rate, 0.05), self._tick)

    def apply_parameters(self, names: list[str]) -> None:
        """Run-time change of ``loop`` (the only dynamic parameter): the clip stops or goes on looping."""
        self.cfg = config_from_node(self, SimCameraConfig)
        self.source.loop = self.cfg.loop

    def _tick(self):
        if self.done:
            return
        now = time.monotonic()
        if self._start_wall is None:
            want = self.cfg.wait_for_subscribers
            if want and self.cam.subscribers() < want:
                if now - self._wait_since < self.cfg.start_timeout_s:
                    return
                self.get_logger().warning(f"only {self.cam.subscribers()} of {want} subscribers after "
                                          f"{self.cfg.start_timeout_s:.0f} s; playing anyway")
            self._start_wall = now
            self._origin = self.cfg.time_origin or self.get_clock().now().nanoseconds * 1e-9
        k = int((now - self._start_wall) * self.rate)
        if k <= self._k:
            return
        if k > self._k + 1:
            self.skipped += k - self._k - 1
        self._k = k
        if not self.cfg.loop and k >= len(self.source):
            self.done = True
            self.get_logger().info(f"played {self.cam.published} frames ({self.skipped} skipped); done")
            return
        self.cam.publish(self.source.frame(k), self._origin + k / self.rate)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``sim_camera_node [--ros-args -p name:=value ...]``."""
    return run_camera_node(SimCameraNode, "sim_camera", argv, errors=(ValueError, RuntimeError, OSError))


if __name__ == "__main__":
    raise SystemExit(main())
