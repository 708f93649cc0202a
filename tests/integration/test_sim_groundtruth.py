"""Ground truth from the real pipeline: a scripted occluder, and a dropped box against the physics log."""
import numpy as np
import pybullet as pb
from pybullet_utils import bullet_client
from scipy.spatial.transform import Rotation

from traceany_ros.sim.camera import CameraConfig, Lighting, look_at
from traceany_ros.sim.groundtruth import dynamic_flags, pixel_tracks, visibility
from traceany_ros.sim.scene import record_clip

CFG = CameraConfig(width=128, height=96, fov_deg=50)


def _world():
    c = bullet_client.BulletClient(connection_mode=pb.DIRECT)
    c.setGravity(0, 0, -9.81)
    c.setPhysicsEngineParameter(fixedTimeStep=1 / 240)
    vis = c.createVisualShape(pb.GEOM_BOX, halfExtents=[1, 1, 0.02], rgbaColor=[0.5, 0.4, 0.3, 1])
    col = c.createCollisionShape(pb.GEOM_BOX, halfExtents=[1, 1, 0.02])
    table = c.createMultiBody(0, col, vis, basePosition=[0, 0, -0.02])
    return c, table


def _box(c, half, pos, mass, color, quat=(0, 0, 0, 1)):
    vis = c.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=color)
    col = c.createCollisionShape(pb.GEOM_BOX, halfExtents=half)
    return c.createMultiBody(mass, col, vis, basePosition=pos, baseOrientation=list(quat))


def test_visibility_under_a_scripted_occluder():
    c, table = _world()
    try:
        target = _box(c, [0.05, 0.05, 0.05], [0, 0, 0.05], 0.0, [0.9, 0.1, 0.1, 1])
        occ = _box(c, [0.08, 0.08, 0.01], [-0.6, 0, 0.3], 1.0, [0.1, 0.1, 0.9, 1])
        path_x = np.linspace(-0.6, 0.6, 9)  # frame k: occluder at x = path_x[k], right above the target at k = 4

        def script(tau):
            x = np.interp(tau, np.arange(9) / 15, path_x)
            c.resetBasePositionAndOrientation(occ, [x, 0, 0.3], [0, 0, 0, 1])
            c.resetBaseVelocity(occ, [0, 0, 0], [0, 0, 0])

        cams = np.stack([look_at([0, 0, 1.0], [0, 0, 0], up=[0, 1, 0])] * 9)
        clip = record_clip(c, [(table, "table"), (target, "target"), (occ, "occluder")], [script], cams, CFG,
                           Lighting(shadow=False))
    finally:
        c.disconnect()
    tgt_label = [i for i, (_, _, n) in enumerate(clip.links) if n == "target"][0]
    rr, cc = np.nonzero(clip.labels[0] == tgt_label)
    assert len(rr) > 50
    pix = np.stack([np.zeros_like(rr), rr, cc], 1)
    tracks, links = pixel_tracks(pix, clip.labels, clip.depth, clip.K, clip.cam_to_world, clip.poses)
    vis = visibility(tracks, links, clip.labels, clip.depth, clip.K, clip.cam_to_world)
    # the occluder (half width 8 cm at 0.3 m) covers the target's line of sight only at frame 4
    assert not vis[:, 4].any()
    assert vis[:, [0, 1, 2, 3, 5, 6, 7, 8]].all()
    np.testing.assert_allclose(tracks, np.repeat(tracks[:, :1], 9, axis=1), atol=1e-6)     # static target stays
    assert not dynamic_flags(tracks, pix[:, 0]).any()
    # occluder points are dynamic
    occ_label = [i for i, (_, _, n) in enumerate(clip.links) if n == "occluder"][0]
    r2, c2 = np.nonzero(clip.labels[0] == occ_label)
    t2, _ = pixel_tracks(np.stack([np.zeros_like(r2), r2, c2], 1), clip.labels, clip.depth, clip.K,
                         clip.cam_to_world, clip.poses)
    assert dynamic_flags(t2, np.zeros(len(r2), int)).all()


def test_dropped_box_follows_the_physics_pose_log():
    q0 = Rotation.from_euler("xyz", [0.4, 0.7, 0.2]).as_quat()

    def build():
        c, table = _world()
        box = _box(c, [0.04, 0.05, 0.03], [0.0, 0.0, 0.35], 0.3, [0.2, 0.8, 0.2, 1], q0)
        c.resetBaseVelocity(box, [0.1, 0, 0], [2.0, -1.0, 3.0])
        return c, table, box

    cams = np.stack([look_at([0.6, -0.6, 0.7], [0, 0, 0.1])] * 12)
    c, table, box = build()
    try:
        clip = record_clip(c, [(table, "table"), (box, "box")], [], cams, CFG, Lighting(shadow=False))
    finally:
        c.disconnect()
    # independent physics run with the same calls: log the box pose at every frame time
    c, table, box = build()
    log = []
    try:
        for k in range(12):
            if k:
                for _ in range(16):
                    c.stepSimulation()
            p, q = c.getBasePositionAndOrientation(box)
            log.append((np.array(p), Rotation.from_quat(q).as_matrix()))
    finally:
        c.disconnect()
    assert log[0][0][2] - log[-1][0][2] > 0.2           # it really fell
    box_label = [i for i, (_, _, n) in enumerate(clip.links) if n == "box"][0]
    rr, cc = np.nonzero(clip.labels[0] == box_label)
    assert len(rr) > 20
    pix = np.stack([np.zeros_like(rr), rr, cc], 1)
    tracks, _ = pixel_tracks(pix, clip.labels, clip.depth, clip.K, clip.cam_to_world, clip.poses)
    local = (tracks[:, 0] - log[0][0]) @ log[0][1]       # R0^T (x - p0)
    for t, (p, R) in enumerate(log):
        np.testing.assert_allclose(tracks[:, t], local @ R.T + p, atol=1e-4)
    assert dynamic_flags(tracks, pix[:, 0]).all()
    assert np.all(tracks[:, -1, 2] > -0.005) and np.all(tracks[:, -1, 2] < 0.15)   # landed on the table


def test_grazing_surface_stays_visible_under_a_moving_camera():
    """A static plane seen at a grazing angle from an orbiting camera: never falsely occluded."""
    c, table = _world()
    try:
        eyes = [[1.6 * np.cos(a), 1.6 * np.sin(a), 0.3] for a in np.linspace(0, 0.12, 6)]
        cams = np.stack([look_at(e, [0, 0, 0]) for e in eyes])
        clip = record_clip(c, [(table, "table")], [], cams, CFG, Lighting(shadow=False))
    finally:
        c.disconnect()
    from scipy.ndimage import binary_erosion

    # away from the table's silhouette (edge points may land on background pixels after sub-pixel motion)
    rr, cc = np.nonzero(binary_erosion(clip.labels[0] == 0, iterations=4))
    pix = np.stack([np.zeros_like(rr), rr, cc], 1)
    tracks, links = pixel_tracks(pix, clip.labels, clip.depth, clip.K, clip.cam_to_world, clip.poses)
    vis = visibility(tracks, links, clip.labels, clip.depth, clip.K, clip.cam_to_world)
    from traceany_ros.geometry import project
    inside = np.ones_like(vis)
    for t in range(6):
        r, col, _ = project(tracks[:, t], clip.K, clip.cam_to_world[t])
        inside[:, t] = (r > 1) & (r < CFG.height - 2) & (col > 1) & (col < CFG.width - 2)
    assert inside.mean() > 0.8
    assert vis[inside].mean() > 0.999   # depth compared at the nearest pixel centre instead: ~0.8
