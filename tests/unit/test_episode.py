"""The episode contract: reader/writer round trip, byte determinism, geometry, and one test per validator rule."""
import json
import zipfile

import numpy as np
import pytest

from traceany_ros.episode import Episode, FrameWindow, load_episode, save_episode, validate_arrays, validate_episode
from traceany_ros.geometry import project, unproject, unproject_pixels


def make_episode(T=5, H=12, W=16, Q=6, seed=0) -> Episode:
    """A valid synthetic episode: a moving camera over a fronto-parallel wall, half the queries on a moving part."""
    rng = np.random.default_rng(seed)
    K = np.array([[20, 0, 7.5], [0, 20, 5.5], [0, 0, 1]], np.float32)
    P = np.tile(np.eye(4, dtype=np.float32), (T, 1, 1))
    P[:, 0, 3] = np.arange(T) * 0.05
    depth = rng.uniform(1.5, 2.5, (T, H, W)).astype(np.float32)
    qp = np.stack([rng.integers(0, T, Q), rng.integers(0, H, Q), rng.integers(0, W, Q)], 1).astype(np.int32)
    pts = unproject_pixels(depth, K, P, qp)
    tracks = np.repeat(pts[:, None], T, 1)
    dyn = np.arange(Q) % 2 == 1
    tracks[dyn] += (np.arange(T) - qp[dyn, 0:1]).reshape(-1, T, 1) * np.array([0.0, 0.0, 0.02])  # 2 cm/frame up
    vis = np.ones((Q, T), bool)
    vis[0, (qp[0, 0] + 1) % T] = False if T > 1 else True
    return Episode(rgb=rng.integers(0, 255, (T, H, W, 3), dtype=np.uint8), depth=depth, intrinsics=K,
                   cam_to_world=P, timestamps=np.arange(T) / 15.0, query_pixels=qp,
                   tracks_world=tracks.astype(np.float32), visible=vis, dynamic=dyn,
                   meta={"generator": "test", "version": "0", "seed": seed, "scene": {"family": "none"}})


def arrays(ep=None):
    return (ep or make_episode()).to_arrays()


def test_valid_episode_has_no_violations():
    assert validate_episode(make_episode()) == []


def test_round_trip_and_deterministic_bytes(tmp_path):
    ep = make_episode()
    ep.extras = {"gt_labels": np.zeros((5, 12, 16), np.int16)}
    save_episode(tmp_path / "a.npz", ep)
    save_episode(tmp_path / "b.npz", ep)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    back = load_episode(tmp_path / "a.npz")
    for k in ("rgb", "depth", "intrinsics", "cam_to_world", "timestamps", "query_pixels", "tracks_world",
              "visible", "dynamic"):
        np.testing.assert_array_equal(getattr(back, k), getattr(ep, k))
        assert getattr(back, k).dtype == ep.to_arrays()[k].dtype
    assert back.meta == ep.meta and set(back.extras) == {"gt_labels"}
    assert validate_episode(tmp_path / "a.npz") == []
    assert not list(tmp_path.glob(".*tmp*"))            # no temporary files left behind


def test_inputs_carry_no_ground_truth():
    w = make_episode().inputs()
    assert isinstance(w, FrameWindow)
    assert set(vars(w)) == {"rgb", "depth", "intrinsics", "cam_to_world", "times"}


def test_unproject_then_project_returns_the_pixel():
    ep = make_episode()
    pts = unproject(ep.depth[2], ep.intrinsics, ep.cam_to_world[2])
    r, c, z = project(pts, ep.intrinsics, ep.cam_to_world[2])
    rows, cols = np.mgrid[0:12, 0:16]
    np.testing.assert_allclose(r, rows, atol=1e-4)
    np.testing.assert_allclose(c, cols, atol=1e-4)
    np.testing.assert_allclose(z, ep.depth[2], rtol=1e-6)
    # the principal point pixel looks straight down the optical axis
    K = np.array([[10, 0, 3], [0, 10, 2], [0, 0, 1.0]])
    p = unproject(np.full((5, 7), 2.0), K, np.eye(4))
    np.testing.assert_allclose(p[2, 3], [0, 0, 2.0])


def _violations(mutate):
    d = arrays()
    mutate(d)
    return validate_arrays(d)


def _assert_one(mutate, needle):
    errs = _violations(mutate)
    assert errs and any(needle in e for e in errs), errs


def test_rule_missing_key():
    _assert_one(lambda d: d.pop("visible"), "missing keys")


def test_rule_dtype():
    _assert_one(lambda d: d.update(depth=d["depth"].astype(np.float64)), "depth: dtype")


def test_rule_shape_dims():
    _assert_one(lambda d: d.update(intrinsics=np.eye(4, dtype=np.float32)), "intrinsics: shape")


def test_rule_sizes_agree():
    _assert_one(lambda d: d.update(timestamps=np.arange(4) / 15.0), "timestamps: size T=4 disagrees")


def test_rule_meta_json():
    _assert_one(lambda d: d.update(meta=np.array("{not json")), "meta: not valid JSON")


def test_rule_meta_keys():
    _assert_one(lambda d: d.update(meta=np.array(json.dumps({"generator": "x"}))), "meta: JSON lacks keys")


def test_rule_meta_is_a_string():
    _assert_one(lambda d: d.update(meta=np.array([1, 2])), "meta: must be a 0-d unicode string")


def test_rule_timestamps_strictly_increasing():
    def m(d):
        d["timestamps"][3] = d["timestamps"][2]
    _assert_one(m, "timestamps: not strictly increasing")


def test_rule_intrinsics_pinhole():
    def m(d):
        d["intrinsics"][0, 0] = -1
    _assert_one(m, "intrinsics: not a pinhole K")


def test_rule_cam_to_world_rigid():
    def m(d):
        d["cam_to_world"][1, :3, :3] *= 1.1
    _assert_one(m, "cam_to_world: not rigid")


def test_rule_depth_finite_nonnegative():
    def m(d):
        d["depth"][0, 0, 0] = np.nan
    _assert_one(m, "depth: must be finite")


def test_rule_tracks_finite():
    def m(d):
        d["tracks_world"][1, 2, 0] = np.inf
    _assert_one(m, "tracks_world: contains NaN")


def test_rule_query_inside_clip():
    def m(d):
        d["query_pixels"][0] = [0, 12, 0]
    _assert_one(m, "query_pixels: 1 queries outside")


def test_rule_query_visible_at_own_frame():
    def m(d):
        q = d["query_pixels"][2]
        d["visible"][2, q[0]] = False
    _assert_one(m, "not visible at their own frame")


def test_rule_query_has_valid_depth():
    def m(d):
        f, r, c = d["query_pixels"][3]
        d["depth"][f, r, c] = 0.0
    _assert_one(m, "query pixels have invalid depth")


def test_rule_unprojection():
    def m(d):
        f = d["query_pixels"][4, 0]
        d["tracks_world"][4, f] += [0.0, 0.02, 0.0]
    _assert_one(m, "differs from the unprojection")


def test_rule_unprojection_median_within_3mm():
    def m(d):
        f = d["query_pixels"][:, 0]
        d["tracks_world"][np.arange(6), f] += [0.004, 0.0, 0.0]   # every query 4 mm off: each under 1 cm
    _assert_one(m, "median 4.00 mm")


def test_rule_dynamic_flags_match_tracks():
    def m(d):
        d["dynamic"][:] = ~d["dynamic"]
    _assert_one(m, "dynamic: 6 flags disagree")


def test_rule_empty_episode():
    def m(d):
        for k in ("query_pixels", "tracks_world", "visible", "dynamic"):
            d[k] = d[k][:0]
    _assert_one(m, "empty episode")


def test_unreadable_file_is_reported(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"not a zip")
    errs = validate_episode(p)
    assert len(errs) == 1 and "not a readable .npz" in errs[0]
    with pytest.raises(ValueError, match="not a readable"):
        load_episode(p)


def test_load_names_missing_keys(tmp_path):
    p = tmp_path / "x.npz"
    d = arrays()
    d.pop("tracks_world")
    np.savez(p, **d)
    with pytest.raises(ValueError, match="missing contract keys"):
        load_episode(p)
    assert any("missing keys" in e for e in validate_episode(p))


def test_writer_zip_has_fixed_timestamps(tmp_path):
    save_episode(tmp_path / "a.npz", make_episode())
    with zipfile.ZipFile(tmp_path / "a.npz") as z:
        assert {i.date_time for i in z.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert [i.filename for i in z.infolist()][:2] == ["rgb.npy", "depth.npy"]
