"""Spatio-temporal fusion: a moving object's points from every frame line up at the reference time."""
import numpy as np

from traceany_ros.field import TrajectoryField, fit_trajectory
from traceany_ros.policies.fusion import fuse, render_png, save_ply


def _field(T=6, n=5):
    """n x n grid; the top-left 2x2 pixels of every frame see a point moving at 0.2 m/s along y."""
    times = np.arange(T) / 10.0
    s = times / times[-1]
    v = np.array([0.0, 0.2, 0.0])
    pts = np.zeros((T, n, n, T, 3))
    xs, ys = np.meshgrid(np.arange(n) * 0.05, np.arange(n) * 0.05, indexing="ij")
    pts[..., 0] = xs[None, :, :, None]
    pts[..., 1] = ys[None, :, :, None]
    for f in range(T):
        for i in range(2):
            for j in range(2):
                at_f = np.array([0.5 + 0.01 * i, 0.01 * j + v[1] * times[f], 0.05])  # object at frame f
                pts[f, i, j] = at_f + (times - times[f])[:, None] * v
    conf = np.ones((T, n, n), np.float32)
    conf[:, -1, -1] = 0.0  # one unconfident pixel per frame
    return TrajectoryField(fit_trajectory(s, pts, 4).astype(np.float32), conf, times), v


def test_fused_object_lines_up_and_confidence_filters(tmp_path):
    fld, v = _field()
    t = fld.times[2]
    cloud = fuse(fld, t, min_confidence=0.5)
    pts = np.asarray(cloud.points)
    T, n = fld.num_frames, fld.shape[0]
    assert len(pts) == T * (n * n - 1)  # the unconfident pixel is gone from every frame
    obj = pts[pts[:, 2] > 0.04]
    assert len(obj) == T * 4
    # all frames' views of the object land where the object is at t: four distinct points, no smear
    want = np.array([[0.5 + 0.01 * i, 0.01 * j + v[1] * t, 0.05] for i in range(2) for j in range(2)])
    d = np.linalg.norm(obj[:, None] - want[None], axis=-1).min(1)
    assert d.max() < 1e-5
    # without fusion (each frame at its own time) the object smears along its path
    own = fld.frame_points()[:, :2, :2].reshape(-1, 3)
    assert np.ptp(own[:, 1]) > 0.09
    ply = save_ply(cloud, tmp_path / "c.ply")
    png = render_png(cloud, tmp_path / "c.png")
    assert ply.stat().st_size > 100 and png.read_bytes()[:4] == b"\x89PNG"
