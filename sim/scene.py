"""Tabletop scenes for episode generation: one PyBullet world per episode, scripted motions, renders.

A ``TabletopScene(seed, family, cfg)`` builds a textured room (floor, four walls, a table),
puts 2-6 objects on the table (procedural boxes, cylinders, spheres, two-link composites,
and pybullet_data models), optionally a Franka Panda, and scripts the motions of its scene
family. ``simulate()`` steps the physics at ``physics_hz``, renders every frame with
TinyRenderer and logs the pose of every rigid link, returning a ``Clip``: everything
``sim/groundtruth.py`` needs to build the ground truth.

Scene families (``FAMILIES``):

    push   a kinematic pusher bar slides objects across the table (some topple)
    drop   objects fall from 0.15-0.45 m, bounce and tumble
    carry  objects carried along smooth 3D paths, rotating, occluding others
    arm    the Panda moves through view and pushes objects with its hand
    spin   objects spun about the vertical on the table or in the air   (held out)
    mixed  two or three of the motions above in one clip, Panda likely   (held out)

Every env owns its ``BulletClient`` (DIRECT); nothing touches the global client.
Determinism: all randomness comes from the one ``np.random.Generator`` seeded by the
episode seed, drawn in a fixed order; the physics is deterministic for the same calls.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from traceany_ros.sim.camera import CameraConfig, Lighting, intrinsics, look_at, quiet_stdout, render

FAMILIES = ("push", "drop", "carry", "arm", "spin", "mixed")
TRAIN_FAMILIES = ("push", "drop", "carry", "arm")
HELDOUT_FAMILIES = ("spin", "mixed")
GENERATOR = "traceany_ros.sim"
VERSION = "1.1"  # 1.1: visibility compares depth at the sub-pixel position

TABLE_TOP_Z = 0.0
TABLE_HALF = (0.7, 0.5)            # table top half extents (x, y), metres
PANDA_BASE = (-0.62, 0.0, TABLE_TOP_Z)
PANDA_EE_LINK = 11
PANDA_HOME = (0.0, -0.5, 0.0, -2.2, 0.0, 1.8, 0.785)

_DATA_TEXTURES = ("checker_blue.png", "checker_grid.jpg", "tex256.png", "uvmap.png", "table/table.png",
                  "jenga/jenga.png", "cube.png", "duckCM.png")
_NUM_PROC_TEXTURES = 16
# Generator styles. "standard": the families' default draws. "wide" (training): 48 more procedural textures,
# random_urdfs models whose id does not end in 9, fast orbits, dollies and stronger hand shake, a wider
# field of view, up to three carried objects. "shifted" (held out, unlike training): only random_urdfs ids
# ending in 9 plus pybullet_data models no other style loads, capsules, textures of other patterns (rings,
# plasma, hexagons), camera paths no other style takes (crane moves, near low-elevation arcs, top-down).
STYLES = ("standard", "wide", "shifted")
_NUM_WIDE_TEXTURES = 48
_NUM_SHIFTED_TEXTURES = 16
_SHIFTED_URDF_OBJECTS = (
    ("soccerball.urdf", (0.08, 0.14)),
    ("teddy_large.urdf", (0.08, 0.12)),
    ("sphere2red.urdf", (0.05, 0.1)),
    ("random_urdfs/{:03d}/{:03d}.urdf", (0.9, 1.4)),
)
_URDF_OBJECTS = (  # (path in pybullet_data, global scaling range)
    ("duck_vhacd.urdf", (0.8, 1.3)),
    ("teddy_vhacd.urdf", (0.8, 1.2)),
    ("objects/mug.urdf", (0.9, 1.3)),
    ("lego/lego.urdf", (1.5, 2.5)),
    ("jenga/jenga.urdf", (0.8, 1.2)),
    ("cube_small.urdf", (1.0, 2.0)),
    ("random_urdfs/{:03d}/{:03d}.urdf", (0.9, 1.4)),
)


@dataclass(frozen=True)
class SceneConfig:
    """Episode size and physics clock. ``frames`` at ``fps``; physics at ``physics_hz`` (a multiple of fps)."""

    width: int = 256
    height: int = 192
    frames: int = 24
    fps: float = 15.0
    physics_hz: float = 240.0
    settle_s: float = 0.25
    panda_share: float = 0.35          # share of non-arm scenes that also contain a Panda
    random_length: bool = False        # clip length uniform in [frames // 2, frames]
    style: str = "standard"            # one of STYLES: what objects, textures and camera paths a scene draws from


@dataclass
class Clip:
    """Raw simulation output.

    rgb [T,H,W,3] uint8, depth [T,H,W] float32, labels [T,H,W] int16 (index into ``links``, -1 none),
    cam_to_world [T,4,4], timestamps [T] (sim clock, s), K [3,3], poses [L,T,4,4] world <- link,
    links: list of (body_uid, link_index, name), description: JSON-able scene description.
    """

    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    cam_to_world: np.ndarray
    timestamps: np.ndarray
    K: np.ndarray
    poses: np.ndarray
    links: list
    description: dict


def texture_paths(style: str = "standard") -> list[str]:
    """The texture bank of a style: pybullet_data images plus procedural ones cached on disk (deterministic
    content). "shifted" has only its own procedural patterns."""
    import pybullet_data

    root = Path(pybullet_data.getDataPath())
    cache = Path(os.environ.get("TRACEANY_TEXTURE_CACHE", Path(tempfile.gettempdir()) / "traceany_textures"))
    cache.mkdir(parents=True, exist_ok=True)
    if style == "shifted":
        jobs = [(f"shifted_{VERSION}_{i:02d}", lambda i=i: _shifted_texture(i)) for i in range(_NUM_SHIFTED_TEXTURES)]
        paths = []
    else:
        n = _NUM_PROC_TEXTURES + (_NUM_WIDE_TEXTURES if style == "wide" else 0)
        jobs = [(f"proc_{VERSION}_{i:02d}", lambda i=i: _procedural_texture(i)) for i in range(n)]
        paths = [str(root / p) for p in _DATA_TEXTURES if (root / p).exists()]
    for name, make in jobs:
        p = cache / f"{name}.png"
        if not p.exists():
            _write_png_atomic(p, make())
        paths.append(str(p))
    return paths


def _shifted_texture(i: int, size: int = 128) -> np.ndarray:
    """[size,size,3] uint8 patterns no training style uses: rings, plasma or hexagons, colours from seed i."""
    rng = np.random.default_rng(20_000 + i)
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    y, x = np.mgrid[0:size, 0:size] / size
    kind = i % 3
    if kind == 0:
        cx, cy = rng.uniform(0.2, 0.8, 2)
        m = 0.5 + 0.5 * np.sin(np.hypot(x - cx, y - cy) * rng.uniform(30, 80))
    elif kind == 1:
        m = np.zeros((size, size))
        for _ in range(4):
            f, a, ph = rng.uniform(2, 9), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            m += np.sin((x * np.cos(a) + y * np.sin(a)) * f * 2 * np.pi + ph)
        m = (m - m.min()) / max(np.ptp(m), 1e-9)
    else:
        n = rng.uniform(6, 14)
        q = x * n * 2 / np.sqrt(3)
        r = y * n - x * n / np.sqrt(3)
        m = ((np.floor(q) + np.floor(r)) % 3 == 0).astype(float)
    return _two_colours(m, c0, c1, rng, 4)


def _two_colours(m: np.ndarray, c0, c1, rng: np.random.Generator, noise: float) -> np.ndarray:
    """A pattern m [size,size] in [0, 1] painted from colour c0 to c1, with Gaussian noise -> uint8 image."""
    img = c0[None, None] * (1 - m[..., None]) + c1[None, None] * m[..., None]
    img += rng.normal(0, noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _procedural_texture(i: int, size: int = 128) -> np.ndarray:
    """[size,size,3] uint8: checkers, stripes, blobs or noise, colours from seed i."""
    rng = np.random.default_rng(10_000 + i)
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    y, x = np.mgrid[0:size, 0:size] / size
    kind = i % 4
    if kind == 0:
        n = rng.integers(3, 12)
        m = ((np.floor(x * n) + np.floor(y * n)) % 2).astype(float)
    elif kind == 1:
        a = rng.uniform(0, np.pi)
        m = (np.sin((x * np.cos(a) + y * np.sin(a)) * rng.uniform(10, 40)) > 0).astype(float)
    elif kind == 2:
        m = np.zeros((size, size))
        for _ in range(12):
            cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.04, 0.15)
            m = np.maximum(m, (((x - cx) ** 2 + (y - cy) ** 2) < r * r).astype(float))
    else:
        small = rng.uniform(0, 1, (16, 16))
        m = np.kron(small, np.ones((size // 16, size // 16)))
    return _two_colours(m, c0, c1, rng, 6)


def _write_png_atomic(path: Path, img: np.ndarray) -> None:
    import imageio.v3 as iio

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    iio.imwrite(tmp, img)
    os.replace(tmp, path)


def _smoothstep(s):
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3 - 2 * s)


def _bezier(ctrl: np.ndarray, s: float) -> np.ndarray:
    """Cubic Bezier through 4 control points [4,3] at s in [0, 1]."""
    s = float(np.clip(s, 0.0, 1.0))
    b = np.array([(1 - s) ** 3, 3 * s * (1 - s) ** 2, 3 * s * s * (1 - s), s ** 3])
    return b @ ctrl


def _pose_matrix(pos, quat) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(quat).as_matrix()
    T[:3, 3] = pos
    return T


class TabletopScene:
    """One episode's world. Use ``simulate()`` once, then ``close()`` (or a ``with`` block)."""

    def __init__(self, seed: int, family: str, cfg: SceneConfig = SceneConfig()):
        import pybullet as pb
        import pybullet_data
        from pybullet_utils import bullet_client

        if family not in FAMILIES:
            raise ValueError(f"unknown scene family {family!r}; choose one of {FAMILIES}")
        self.pb = pb
        self.cfg = cfg
        self.family = family
        self.seed = int(seed)
        self.rng = np.random.default_rng([self.seed, FAMILIES.index(family)])
        with quiet_stdout():
            self.client = bullet_client.BulletClient(connection_mode=pb.DIRECT)
        self.client.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.client.setGravity(0, 0, -9.81)
        self.client.setPhysicsEngineParameter(fixedTimeStep=1.0 / cfg.physics_hz, deterministicOverlappingPairs=1)
        self.substeps = int(round(cfg.physics_hz / cfg.fps))
        if abs(self.substeps * cfg.fps - cfg.physics_hz) > 1e-6:
            raise ValueError(f"physics_hz {cfg.physics_hz} must be a multiple of fps {cfg.fps}")
        self.num_frames = int(self.rng.integers(cfg.frames // 2, cfg.frames + 1)) if cfg.random_length else cfg.frames
        self.duration = (self.num_frames - 1) / cfg.fps
        if cfg.style not in STYLES:
            raise ValueError(f"unknown scene style {cfg.style!r}; choose one of {STYLES}")
        self.style = cfg.style
        self.textures = texture_paths(cfg.style)
        self._tex_ids: dict[int, int] = {}
        self.bodies: list[tuple[int, str]] = []   # (uid, name) in creation order
        self.scripts: list = []                   # callables f(tau) applied before every physics step
        self.desc: dict = {"family": family, "frames": self.num_frames, "objects": [], "motions": []}
        self.panda: int | None = None
        self._build()

    # ------------------------------------------------------------------ construction
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client = None

    def _texture(self, idx: int) -> int:
        if idx not in self._tex_ids:
            self._tex_ids[idx] = self.client.loadTexture(self.textures[idx])
        return self._tex_ids[idx]

    def _random_color(self) -> list[float]:
        return [*self.rng.uniform(0.1, 1.0, 3).round(3).tolist(), 1.0]

    def _maybe_texture(self, uid: int, link: int, p: float) -> int | None:
        if self.rng.uniform() < p:
            idx = int(self.rng.integers(len(self.textures)))
            self.client.changeVisualShape(uid, link, textureUniqueId=self._texture(idx))
            return idx
        return None

    def _static_box(self, name: str, half, pos, tex_p: float = 1.0) -> int:
        pb = self.pb
        vis = self.client.createVisualShape(pb.GEOM_BOX, halfExtents=list(half), rgbaColor=self._random_color())
        col = self.client.createCollisionShape(pb.GEOM_BOX, halfExtents=list(half))
        uid = self.client.createMultiBody(0, col, vis, basePosition=list(pos))
        self._maybe_texture(uid, -1, tex_p)
        self.bodies.append((uid, name))
        return uid

    def _build(self) -> None:
        rng = self.rng
        room = float(rng.uniform(1.8, 3.0))
        self._static_box("floor", (room, room, 0.02), (0, 0, -0.75))
        self._static_box("table", (TABLE_HALF[0], TABLE_HALF[1], 0.02), (0, 0, TABLE_TOP_Z - 0.02))
        for i, (x, y, hx, hy) in enumerate([(room, 0, 0.02, room), (-room, 0, 0.02, room),
                                            (0, room, room, 0.02), (0, -room, room, 0.02)]):
            self._static_box(f"wall{i}", (hx, hy, 1.5), (x, y, 0.6), tex_p=0.8)
        for _ in range(int(rng.integers(0, 3))):  # clutter at the back of the table (static distractors)
            half = rng.uniform(0.03, 0.1, 3)
            pos = (rng.uniform(-0.6, 0.6), rng.choice([-1, 1]) * rng.uniform(0.38, 0.45), half[2])
            self._static_box("clutter", half, pos, tex_p=0.6)

        fam = self.family
        with_panda = fam == "arm" or (fam == "mixed" and rng.uniform() < 0.6) or rng.uniform() < self.cfg.panda_share
        if with_panda:
            self._add_panda()
        n_obj = int(rng.integers(2, 7))
        spots = self._table_spots(n_obj, with_panda)
        self.objects = [self._add_object(p) for p in spots]
        self._settle()
        self._script_motions(fam)
        self._sample_camera()
        self._sample_light()

    def _table_spots(self, n: int, with_panda: bool) -> list[np.ndarray]:
        spots: list[np.ndarray] = []
        xmin = -0.2 if with_panda else -0.45
        for _ in range(200):
            if len(spots) == n:
                break
            p = np.array([self.rng.uniform(xmin, 0.4), self.rng.uniform(-0.32, 0.32)])
            if all(np.linalg.norm(p - q) > 0.14 for q in spots):
                spots.append(p)
        return spots

    def _add_object(self, xy: np.ndarray) -> int:
        pb, rng, c = self.pb, self.rng, self.client
        kinds = ["box", "cylinder", "sphere", "composite", "urdf", "urdf"]
        if self.style == "shifted":
            kinds = ["capsule", "cylinder", "urdf", "urdf", "urdf"]
        kind = str(rng.choice(kinds))
        yaw = float(rng.uniform(-np.pi, np.pi))
        quat = Rotation.from_euler("z", yaw).as_quat().tolist()
        color = self._random_color()
        info: dict = {"kind": kind, "color": color}
        if kind == "urdf":
            bank = _SHIFTED_URDF_OBJECTS if self.style == "shifted" else _URDF_OBJECTS
            path, (s0, s1) = bank[int(rng.integers(len(bank)))]
            if "{" in path:
                k = int(rng.integers(0, 1000))
                if self.style == "wide" and k % 10 == 9:
                    k -= 1
                elif self.style == "shifted":
                    k = 10 * (k // 10) + 9
                path = path.format(k, k)
            scale = float(rng.uniform(s0, s1))
            uid = c.loadURDF(path, basePosition=[xy[0], xy[1], 0.08], baseOrientation=quat, globalScaling=scale)
            info.update(urdf=path, scale=round(scale, 4))
            if rng.uniform() < 0.5:
                c.changeVisualShape(uid, -1, rgbaColor=color)
            height = 0.08
        else:
            if kind == "box":
                half = rng.uniform(0.02, 0.07, 3)
                vis = c.createVisualShape(pb.GEOM_BOX, halfExtents=half.tolist(), rgbaColor=color)
                col = c.createCollisionShape(pb.GEOM_BOX, halfExtents=half.tolist())
                height, info["half_extents"] = half[2], half.round(4).tolist()
            elif kind == "cylinder":
                r, h = rng.uniform(0.02, 0.05), rng.uniform(0.04, 0.15)
                vis = c.createVisualShape(pb.GEOM_CYLINDER, radius=r, length=h, rgbaColor=color)
                col = c.createCollisionShape(pb.GEOM_CYLINDER, radius=r, height=h)
                height, info["radius"], info["length"] = h / 2, round(r, 4), round(h, 4)
            elif kind == "capsule":
                r, h = rng.uniform(0.02, 0.04), rng.uniform(0.04, 0.12)
                vis = c.createVisualShape(pb.GEOM_CAPSULE, radius=r, length=h, rgbaColor=color)
                col = c.createCollisionShape(pb.GEOM_CAPSULE, radius=r, height=h)
                height, info["radius"], info["length"] = r + h / 2, round(r, 4), round(h, 4)
            elif kind == "sphere":
                r = rng.uniform(0.025, 0.055)
                vis = c.createVisualShape(pb.GEOM_SPHERE, radius=r, rgbaColor=color)
                col = c.createCollisionShape(pb.GEOM_SPHERE, radius=r)
                height, info["radius"] = r, round(r, 4)
            else:  # composite: a box base with a second rigid link (box or cylinder) on a fixed joint
                half = rng.uniform(0.025, 0.06, 3)
                vis = c.createVisualShape(pb.GEOM_BOX, halfExtents=half.tolist(), rgbaColor=color)
                col = c.createCollisionShape(pb.GEOM_BOX, halfExtents=half.tolist())
                r2, h2 = rng.uniform(0.012, 0.03), rng.uniform(0.04, 0.1)
                vis2 = c.createVisualShape(pb.GEOM_CYLINDER, radius=r2, length=h2, rgbaColor=self._random_color())
                col2 = c.createCollisionShape(pb.GEOM_CYLINDER, radius=r2, height=h2)
                uid = c.createMultiBody(
                    float(rng.uniform(0.1, 0.5)), col, vis, basePosition=[xy[0], xy[1], half[2] + 0.002],
                    baseOrientation=quat, linkMasses=[0.05], linkCollisionShapeIndices=[col2],
                    linkVisualShapeIndices=[vis2], linkPositions=[[0, 0, half[2] + h2 / 2]],
                    linkOrientations=[[0, 0, 0, 1]], linkInertialFramePositions=[[0, 0, 0]],
                    linkInertialFrameOrientations=[[0, 0, 0, 1]], linkParentIndices=[0],
                    linkJointTypes=[pb.JOINT_FIXED], linkJointAxis=[[0, 0, 1]])
                info["half_extents"], info["link"] = half.round(4).tolist(), {"radius": round(r2, 4), "length": round(h2, 4)}
                info["texture"] = self._maybe_texture(uid, -1, 0.6)
                self._maybe_texture(uid, 0, 0.4)
                self._finish_object(uid, info)
                return uid
            uid = c.createMultiBody(float(rng.uniform(0.1, 0.6)), col, vis,
                                    basePosition=[xy[0], xy[1], float(height) + 0.002], baseOrientation=quat)
        info["texture"] = self._maybe_texture(uid, -1, 0.6)
        self._finish_object(uid, info)
        return uid

    def _finish_object(self, uid: int, info: dict) -> None:
        friction = float(self.rng.uniform(0.3, 0.8))
        self.client.changeDynamics(uid, -1, lateralFriction=friction, restitution=float(self.rng.uniform(0.05, 0.4)))
        info["friction"] = round(friction, 3)
        self.bodies.append((uid, f"object{len(self.desc['objects'])}"))
        self.desc["objects"].append(info)

    def _add_panda(self) -> None:
        c = self.client
        self.panda = c.loadURDF("franka_panda/panda.urdf", basePosition=list(PANDA_BASE), useFixedBase=True)
        self.panda_joints = list(range(7))
        home = np.array(PANDA_HOME) + self.rng.normal(0, 0.1, 7)
        for j, q in enumerate(home):
            c.resetJointState(self.panda, j, float(q))
        for j in (9, 10):
            c.resetJointState(self.panda, j, 0.02)
        n = c.getNumJoints(self.panda)
        c.setJointMotorControlArray(self.panda, list(range(n)), self.pb.VELOCITY_CONTROL, forces=[0.0] * n)
        self.panda_home = home
        self.bodies.append((self.panda, "panda"))
        self.desc["panda"] = True

    def _settle(self) -> None:
        steps = int(round(self.cfg.settle_s * self.cfg.physics_hz))
        for _ in range(steps):
            if self.panda is not None:
                self._hold_panda(self.panda_home, np.zeros(7))
            self.client.stepSimulation()
        self.t0 = steps / self.cfg.physics_hz

    def _hold_panda(self, q, dq) -> None:
        for j in range(7):
            self.client.resetJointState(self.panda, j, float(q[j]), float(dq[j]))
        for j in (9, 10):
            self.client.resetJointState(self.panda, j, 0.02, 0.0)

    # ------------------------------------------------------------------ motions
    def _pose(self, uid):
        p, q = self.client.getBasePositionAndOrientation(uid)
        return np.array(p), np.array(q)

    def _script_motions(self, fam: str) -> None:
        rng = self.rng
        objs = list(self.objects)
        order = rng.permutation(len(objs))
        objs = [objs[i] for i in order]
        if fam == "mixed":
            kinds = list(rng.choice(["push", "drop", "carry", "spin"], size=int(rng.integers(2, 4)), replace=False))
        elif fam == "arm":
            kinds = []
        else:
            kinds = [fam]
        for k in kinds:
            if not objs:
                break
            if k == "push":
                self._script_push(objs.pop(0))
            elif k == "drop":
                for _ in range(int(rng.integers(1, 3))):
                    self._script_drop()
            elif k == "carry":
                for _ in range(min(len(objs), int(rng.integers(1, 4 if self.style == "wide" else 3)))):
                    self._script_carry(objs.pop(0))
            elif k == "spin":
                for _ in range(min(len(objs), int(rng.integers(1, 3)))):
                    self._script_spin(objs.pop(0))
        if self.panda is not None:
            self._script_panda(push=(fam == "arm" or (fam == "mixed" and rng.uniform() < 0.5)))

    def _script_push(self, target: int) -> None:
        rng, pb, c = self.rng, self.pb, self.client
        p, _ = self._pose(target)
        ang = float(rng.uniform(-np.pi, np.pi))
        d = np.array([np.cos(ang), np.sin(ang), 0.0])
        speed = float(rng.uniform(0.15, 0.4))
        half = np.array([0.015, rng.uniform(0.05, 0.1), rng.uniform(0.03, 0.06)])
        start = np.array([p[0], p[1], 0]) - d * (0.1 + half[0]) + [0, 0, half[2] + 0.001]
        q = Rotation.from_euler("z", ang).as_quat()
        vis = c.createVisualShape(pb.GEOM_BOX, halfExtents=half.tolist(), rgbaColor=self._random_color())
        col = c.createCollisionShape(pb.GEOM_BOX, halfExtents=half.tolist())
        uid = c.createMultiBody(2.0, col, vis, basePosition=start.tolist(), baseOrientation=q.tolist())
        self._maybe_texture(uid, -1, 0.5)
        self.bodies.append((uid, "pusher"))
        delay = float(rng.uniform(0, 0.3))

        def script(tau, uid=uid):
            s = max(0.0, tau - delay)
            pos = start + d * speed * s
            vel = d * speed * (tau > delay)
            c.resetBasePositionAndOrientation(uid, pos.tolist(), q.tolist())
            c.resetBaseVelocity(uid, vel.tolist(), [0, 0, 0])

        self.scripts.append(script)
        self.desc["motions"].append({"type": "push", "target": self._name(target), "speed": round(speed, 3),
                                     "direction_rad": round(ang, 3), "delay_s": round(delay, 3)})

    def _script_drop(self) -> None:
        rng, c = self.rng, self.client
        xy = np.array([rng.uniform(-0.25, 0.3), rng.uniform(-0.25, 0.25)])
        uid = self._add_object(xy)
        z = float(rng.uniform(0.15, 0.45))
        q = Rotation.random(random_state=int(rng.integers(2**31))).as_quat()
        pos = [float(xy[0]), float(xy[1]), z]
        lin = (rng.normal(0, 0.2, 3) * [1, 1, 0] + [0, 0, rng.uniform(0.0, 1.2)]).tolist()
        ang = rng.normal(0, 3.0, 3).tolist()
        release = float(rng.uniform(0.0, 0.5 * self.duration))
        c.resetBasePositionAndOrientation(uid, pos, q.tolist())
        state = {"released": False}

        def script(tau, uid=uid):
            if tau < release:  # held still until the release time
                c.resetBasePositionAndOrientation(uid, pos, q.tolist())
                c.resetBaseVelocity(uid, [0, 0, 0], [0, 0, 0])
            elif not state["released"]:
                c.resetBaseVelocity(uid, lin, ang)
                state["released"] = True

        self.scripts.append(script)
        self.desc["motions"].append({"type": "drop", "target": self._name(uid), "height": round(z, 3),
                                     "release_s": round(release, 3)})

    def _script_carry(self, uid: int) -> None:
        rng, c = self.rng, self.client
        p0, q0 = self._pose(uid)
        ctrl = [p0 + [0, 0, 0.001]]
        for h in (rng.uniform(0.06, 0.25), rng.uniform(0.06, 0.25)):
            ctrl.append(np.array([rng.uniform(-0.3, 0.35), rng.uniform(-0.25, 0.25), h]))
        ctrl.append(np.array([rng.uniform(-0.3, 0.35), rng.uniform(-0.25, 0.25), rng.uniform(0.05, 0.25)]))
        ctrl = np.stack(ctrl)
        q1 = Rotation.random(random_state=int(rng.integers(2**31)))
        slerp = Slerp([0, 1], Rotation.from_quat([q0, q1.as_quat()]))
        span = self.duration * float(rng.uniform(0.7, 1.0))
        delay = float(rng.uniform(0, self.duration - span + 1e-9))
        dt = 1.0 / self.cfg.physics_hz

        def at(tau):
            s = _smoothstep((tau - delay) / span)
            return _bezier(ctrl, s), slerp(s).as_quat()

        def script(tau, uid=uid):
            pos, quat = at(tau)
            pos2, _ = at(tau + dt)
            c.resetBasePositionAndOrientation(uid, pos.tolist(), quat.tolist())
            c.resetBaseVelocity(uid, ((pos2 - pos) / dt).tolist(), [0, 0, 0])

        self.scripts.append(script)
        self.desc["motions"].append({"type": "carry", "target": self._name(uid), "path": ctrl.round(3).tolist(),
                                     "delay_s": round(delay, 3), "span_s": round(span, 3)})

    def _script_spin(self, uid: int) -> None:
        rng, c = self.rng, self.client
        p0, q0 = self._pose(uid)
        lift = float(rng.choice([0.0, rng.uniform(0.05, 0.2)]))
        omega = float(rng.choice([-1, 1]) * rng.uniform(1.5, 5.0))
        axis = np.array([0, 0, 1.0]) if lift == 0 else Rotation.random(random_state=int(rng.integers(2**31))).apply([0, 0, 1])
        R0 = Rotation.from_quat(q0)
        pos = p0 + [0, 0, lift + 0.001]

        def script(tau, uid=uid):
            q = (Rotation.from_rotvec(axis * omega * tau) * R0).as_quat()
            c.resetBasePositionAndOrientation(uid, pos.tolist(), q.tolist())
            c.resetBaseVelocity(uid, [0, 0, 0], (axis * omega).tolist())

        self.scripts.append(script)
        self.desc["motions"].append({"type": "spin", "target": self._name(uid), "omega": round(omega, 3),
                                     "lift": round(lift, 3), "axis": axis.round(3).tolist()})

    def _ik(self, pos) -> np.ndarray:
        """Panda joint angles [7] putting the hand at ``pos`` pointing down (random yaw), solved from home."""
        c = self.client
        for j, q in enumerate(self.panda_home):
            c.resetJointState(self.panda, j, float(q))
        orn = Rotation.from_euler("xyz", [np.pi, 0, float(self.rng.uniform(-0.6, 0.6))]).as_quat()
        sol = c.calculateInverseKinematics(self.panda, PANDA_EE_LINK, list(pos), orn.tolist(),
                                           maxNumIterations=60, residualThreshold=1e-4)
        return np.array(sol[:7])

    def _script_panda(self, push: bool) -> None:
        rng = self.rng
        base = np.array(PANDA_BASE)
        if push and self.objects:
            target, _ = self._pose(self.objects[int(rng.integers(len(self.objects)))])
            ang = float(rng.uniform(-0.8, 0.8))
            d = np.array([np.cos(ang), np.sin(ang), 0.0])
            z = 0.035 + float(rng.uniform(0, 0.03))
            way = [base + [0.35, rng.uniform(-0.2, 0.2), 0.35],
                   np.array([target[0], target[1], z]) - d * 0.16 + [0, 0, 0.08],
                   np.array([target[0], target[1], z]) - d * 0.14,
                   np.array([target[0], target[1], z]) + d * rng.uniform(0.05, 0.15),
                   np.array([target[0], target[1], 0]) + d * 0.1 + [0, 0, 0.3]]
            kind = "panda_push"
        elif rng.uniform() < 0.3 and self.family != "arm":
            way = [None]
            kind = "panda_idle"
        else:
            way = [np.array([rng.uniform(-0.2, 0.35), rng.uniform(-0.35, 0.35), rng.uniform(0.08, 0.5)])
                   for _ in range(int(rng.integers(3, 5)))]
            kind = "panda_sweep"
        if way[0] is None:
            qs = np.stack([self.panda_home, self.panda_home])
        else:
            qs = np.stack([self.panda_home] + [self._ik(p) for p in way])
        self._hold_panda(self.panda_home, np.zeros(7))
        times = np.linspace(0, self.duration * float(rng.uniform(0.85, 1.0)), len(qs))
        dt = 1.0 / self.cfg.physics_hz

        def joint(tau):
            i = int(np.clip(np.searchsorted(times, tau, side="right") - 1, 0, len(times) - 2))
            s = _smoothstep((tau - times[i]) / (times[i + 1] - times[i]))
            return qs[i] + (qs[i + 1] - qs[i]) * s

        def script(tau):
            q = joint(tau)
            self._hold_panda(q, (joint(tau + dt) - q) / dt)

        self.scripts.append(script)
        self.desc["motions"].append({"type": kind, "waypoints": [None if p is None else np.round(p, 3).tolist()
                                                                  for p in way]})

    def _name(self, uid: int) -> str:
        return next(n for u, n in self.bodies if u == uid)

    # ------------------------------------------------------------------ camera, light
    def _sample_camera(self) -> None:
        rng = self.rng
        if self.style != "standard":
            return self._sample_camera_style()
        fov = float(rng.uniform(45, 65))
        self.cam_cfg = CameraConfig(width=self.cfg.width, height=self.cfg.height, fov_deg=fov)
        self.K = intrinsics(self.cam_cfg)
        target = np.array([rng.uniform(-0.15, 0.2), rng.uniform(-0.15, 0.15), rng.uniform(0.0, 0.08)])
        dist = float(rng.uniform(0.6, 1.2))
        az0 = float(rng.uniform(-np.pi, np.pi))
        el = float(np.deg2rad(rng.uniform(25, 65)))
        mode = str(rng.choice(["fixed", "orbit", "handheld"], p=[0.4, 0.3, 0.3]))
        rate = float(rng.choice([-1, 1]) * np.deg2rad(rng.uniform(5, 15))) if mode == "orbit" else 0.0
        if mode == "handheld":
            freqs = rng.uniform(0.4, 2.0, (2, 3))
            phases = rng.uniform(0, 2 * np.pi, (2, 3))
            amps = np.stack([rng.uniform(0.003, 0.015, 3), rng.uniform(0.005, 0.02, 3)])
        else:
            freqs, phases, amps = np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3))
        self._camera_path(fov, target, dist, az0, el, mode, rate, 0.0, 0.0, freqs, phases, amps)

    def _sample_camera_style(self) -> None:
        """The camera paths of the "wide" and "shifted" styles (see STYLES)."""
        rng = self.rng
        if self.style == "wide":
            fov = float(rng.uniform(40, 75))
            mode = str(rng.choice(["fixed", "orbit", "fast", "handheld", "dolly"], p=[0.25, 0.2, 0.15, 0.25, 0.15]))
            dist = float(rng.uniform(0.45, 1.1))
            el = float(np.deg2rad(rng.uniform(20, 70)))
        else:
            fov = float(rng.uniform(50, 70))
            mode = str(rng.choice(["crane", "low", "topdown"]))
            dist = float(rng.uniform(0.45, 0.6)) if mode == "low" else float(rng.uniform(0.6, 1.0))
            el = float(np.deg2rad({"crane": rng.uniform(20, 40), "low": rng.uniform(10, 20),
                                   "topdown": rng.uniform(75, 85)}[mode]))
        target = np.array([rng.uniform(-0.15, 0.2), rng.uniform(-0.15, 0.15), rng.uniform(0.0, 0.08)])
        az0 = float(rng.uniform(-np.pi, np.pi))
        sign = float(rng.choice([-1, 1]))
        rate = {"orbit": np.deg2rad(rng.uniform(5, 15)), "fast": np.deg2rad(rng.uniform(20, 45)),
                "low": np.deg2rad(rng.uniform(10, 20))}.get(mode, 0.0) * sign
        dolly = float(rng.uniform(0.1, 0.3)) * sign if mode == "dolly" else 0.0  # m/s along the view axis
        crane = float(rng.uniform(0.15, 0.3)) * sign if mode == "crane" else 0.0  # m/s up or down
        freqs = rng.uniform(0.4, 2.0, (2, 3))
        phases = rng.uniform(0, 2 * np.pi, (2, 3))
        shake = {"handheld": 1.5, "topdown": 0.5}.get(mode, 0.0)
        amps = shake * np.stack([rng.uniform(0.003, 0.015, 3), rng.uniform(0.005, 0.02, 3)])
        self._camera_path(fov, target, dist, az0, el, mode, rate, dolly, crane, freqs, phases, amps)

    def _camera_path(self, fov, target, dist, az0, el, mode, rate, dolly, crane, freqs, phases, amps) -> None:
        self.cam_cfg = CameraConfig(width=self.cfg.width, height=self.cfg.height, fov_deg=fov)
        self.K = intrinsics(self.cam_cfg)
        poses = []
        for k in range(self.num_frames):
            tau = k / self.cfg.fps
            az = az0 + rate * tau
            d = max(0.3, dist + dolly * tau)
            eye = target + d * np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
            eye = eye + [0.0, 0.0, crane * tau] + amps[0] * np.sin(2 * np.pi * freqs[0] * tau + phases[0])
            tgt = target + amps[1] * np.sin(2 * np.pi * freqs[1] * tau + phases[1])
            poses.append(look_at(eye, tgt))
        self.cam_poses = np.stack(poses)
        self.desc["camera"] = {"mode": mode, "fov_deg": round(fov, 3), "distance": round(dist, 3),
                               "azimuth_rad": round(az0, 3), "elevation_rad": round(el, 3),
                               "orbit_rate_rad_s": round(rate, 4), "target": np.round(target, 3).tolist()}
        if self.style != "standard":
            self.desc["camera"].update(style=self.style, dolly_m_s=round(dolly, 3), crane_m_s=round(crane, 3))

    def _sample_light(self) -> None:
        rng = self.rng
        d = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.5, 1.5)])
        self.light = Lighting(direction=tuple(d.round(3).tolist()),
                              color=tuple(rng.uniform(0.8, 1.0, 3).round(3).tolist()),
                              ambient=float(round(rng.uniform(0.3, 0.7), 3)), diffuse=float(round(rng.uniform(0.3, 0.7), 3)),
                              specular=float(round(rng.uniform(0.0, 0.4), 3)), shadow=bool(rng.uniform() < 0.5))
        self.desc["light"] = asdict(self.light)

    # ------------------------------------------------------------------ run
    def link_table(self) -> list[tuple[int, int, str]]:
        """Every rigid link in the scene: (body uid, link index (-1 = base), name), in a fixed order."""
        return link_table(self.client, self.bodies)

    def simulate(self) -> Clip:
        """Run the clip: render every frame, log every link's pose. Returns a ``Clip``."""
        clip = record_clip(self.client, self.bodies, self.scripts, self.cam_poses, self.cam_cfg, self.light,
                           substeps=self.substeps, physics_hz=self.cfg.physics_hz, t0=self.t0)
        self.desc["links"] = [name for _, _, name in clip.links]
        clip.description = self.desc
        return clip


def link_table(client, bodies) -> list[tuple[int, int, str]]:
    """Every rigid link of ``bodies`` [(uid, name)]: (body uid, link index (-1 = base), name), in a fixed order."""
    out = []
    for uid, name in bodies:
        out.append((uid, -1, name))
        for j in range(client.getNumJoints(uid)):
            out.append((uid, j, f"{name}/{client.getJointInfo(uid, j)[12].decode()}"))
    return out


def capture_poses(client, links) -> np.ndarray:
    """World <- link poses [L,4,4] of a link table (base: PyBullet's base frame; links: URDF link frame)."""
    out = np.empty((len(links), 4, 4))
    for i, (uid, link, _) in enumerate(links):
        if link < 0:
            p, q = client.getBasePositionAndOrientation(uid)
        else:
            st = client.getLinkState(uid, link, computeForwardKinematics=1)
            p, q = st[4], st[5]
        out[i] = _pose_matrix(p, q)
    return out


def record_clip(client, bodies, scripts, cam_poses: np.ndarray, cam_cfg: CameraConfig, light: Lighting = Lighting(),
                substeps: int = 16, physics_hz: float = 240.0, t0: float = 0.0) -> Clip:
    """Step, render and log a clip of ``len(cam_poses)`` frames.

    bodies [(uid, name)]: what is tracked; scripts: callables ``f(tau)`` applied before every
    physics step and at each frame time (tau = clip time in s); cam_poses [T,4,4] OpenCV
    cam_to_world per frame. Frame k is taken at tau = k * substeps / physics_hz; its
    timestamp is ``t0 + tau`` (the sim clock).
    """
    links = link_table(client, bodies)
    # (body, link) -> link-table index as one array lookup on key = body * stride + link + 1
    stride = 1 + max(l for _, l, _ in links) + 1
    lut = np.full((max(u for u, _, _ in links) + 1) * stride, -1, np.int16)
    for i, (u, l, _) in enumerate(links):
        lut[u * stride + l + 1] = i
    T, H, W = len(cam_poses), cam_cfg.height, cam_cfg.width
    rgb = np.empty((T, H, W, 3), np.uint8)
    depth = np.empty((T, H, W), np.float32)
    labels = np.full((T, H, W), -1, np.int16)
    poses = np.empty((len(links), T, 4, 4))
    stamps = np.empty(T)
    step = 0
    for k in range(T):
        if k > 0:
            for _ in range(substeps):
                for s in scripts:
                    s(step / physics_hz)
                client.stepSimulation()
                step += 1
        tau = step / physics_hz
        for s in scripts:  # scripted bodies exactly on their path at frame times
            s(tau)
        stamps[k] = t0 + tau
        poses[:, k] = capture_poses(client, links)
        rgb[k], depth[k], body, link = render(client, cam_poses[k], cam_cfg, light)
        seen = (body >= 0) & (body * stride + link + 1 < len(lut))
        labels[k][seen] = lut[(body * stride + link + 1)[seen]]
    return Clip(rgb=rgb, depth=depth, labels=labels, cam_to_world=np.asarray(cam_poses, dtype=np.float64).copy(),
                timestamps=stamps, K=intrinsics(cam_cfg), poses=poses, links=links, description={})
