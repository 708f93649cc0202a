"""The flow baseline on a synthetic translating, textured scene."""
import numpy as np
import pytest

from traceany_ros.backends import make_backend
from traceany_ros.predict import predict_episode
from traceany_ros.sim.synthetic import make_synthetic_episode
from traceany_ros.tracker.flow import FlowConfig, track_window


@pytest.fixture(scope="module")
def episode():
    return make_synthetic_episode(num_frames=12, height=96, width=128, seed=2, card_velocity=(0.2, 0.05),
                                  card_spin=0.0)


def _errors(ep, tracks):
    err = np.linalg.norm(tracks - ep.tracks_world, axis=-1)
    return err[ep.dynamic].mean(), err[~ep.dynamic].mean()


def test_flow_beats_static_on_moving_points(episode):
    static_dyn, static_sta = _errors(episode, predict_episode(episode, make_backend("static"))[0])
    flow_dyn, flow_sta = _errors(episode, predict_episode(episode, make_backend("flow"))[0])
    assert static_sta < 1e-6  # the static baseline is exact on static points
    assert flow_dyn < 0.5 * static_dyn, (flow_dyn, static_dyn)
    assert flow_sta < 0.02, flow_sta  # and flow keeps static points within 2 cm


def test_flow_field_contract(episode):
    field = make_backend("flow", stride=8).predict(episode.inputs())
    assert field.control_points.shape == (12, 12, 16, 10, 3)
    assert field.time_span == (episode.timestamps[0], episode.timestamps[-1])
    assert field.stride == 8 and field.pixel_offset == 4
    assert np.all((field.confidence >= 0) & (field.confidence <= 1))


def test_tracks_start_at_own_unprojection(episode):
    points, weights, alive, valid = track_window(episode.inputs(), FlowConfig(stride=16))
    T = points.shape[0]
    own = points[np.arange(T), :, :, np.arange(T)]  # [T,h,w,3]
    r = 8 + 16 * np.arange(points.shape[1])
    c = 8 + 16 * np.arange(points.shape[2])
    from traceany_ros.geometry import unproject
    expect = np.stack([unproject(episode.depth[f], episode.intrinsics, episode.cam_to_world[f])[np.ix_(r, c)]
                       for f in range(T)])
    np.testing.assert_allclose(own, expect, atol=1e-5)
    assert np.all(weights[np.arange(T), :, :, np.arange(T)] == 1.0)


def test_bad_flow_method_is_refused():
    with pytest.raises(ValueError, match="flow method"):
        FlowConfig(method="lucas")


def test_full_resolution_dis_follows_a_sub_pixel_shift_closer():
    """"dis_fine" (DIS down to full resolution) vs the half-resolution medium preset on fine texture."""
    import cv2

    from traceany_ros.tracker.flow import dense_flow

    rng = np.random.default_rng(0)
    tex = cv2.normalize(cv2.GaussianBlur(rng.uniform(0, 255, (96, 128)).astype(np.float32), (0, 0), 1.5), None, 0, 255,
                        cv2.NORM_MINMAX)
    shift = (2.3, 1.6)
    moved = cv2.warpAffine(tex, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (128, 96), flags=cv2.INTER_CUBIC)
    a, b = tex.astype(np.uint8), moved.astype(np.uint8)
    err = {m: np.abs(dense_flow(a, b, m)[12:-12, 12:-12] - shift).mean() for m in ("dis_medium", "dis_fine")}
    assert err["dis_fine"] < 0.6 * err["dis_medium"], err
    assert err["dis_fine"] < 0.06, err


def _plain_bump_pair(shift=(3.0, 2.0)):
    """An untextured scene (uniform grey) with a dome 20 cm proud of a floor at 1 m, moved by ``shift`` px."""
    rows, cols = np.mgrid[0:64, 0:80].astype(np.float64)

    def depth(cx, cy):
        r2 = ((cols - cx) ** 2 + (rows - cy) ** 2) / 14.0 ** 2
        return np.where(r2 < 1, 1.0 - 0.2 * np.sqrt(np.clip(1 - r2, 0, 1)), 1.0).astype(np.float32)

    grey = np.full((64, 80), 128, np.uint8)
    d0, d1 = depth(36.0, 30.0), depth(36.0 + shift[0], 30.0 + shift[1])
    inside = ((cols - 36.0) ** 2 + (rows - 30.0) ** 2) < 10.0 ** 2
    return grey, d0, d1, inside


def test_depth_image_range_and_invalid():
    from traceany_ros.tracker.flow import DEPTH_IMAGE_RANGE, depth_image

    z = np.array([[DEPTH_IMAGE_RANGE[0], 1.0, DEPTH_IMAGE_RANGE[1], 0.0, np.nan]], np.float32)
    img = depth_image(z)
    assert img.dtype == np.uint8
    assert img[0, 0] == 0 and img[0, 2] == 255
    assert 0 < img[0, 1] < 255
    assert img[0, 3] == 255 and img[0, 4] == 255  # invalid depth reads as far


def test_rgbd_flow_follows_an_untextured_object_by_its_depth():
    from traceany_ros.tracker.flow import dense_flow, depth_image, rgbd_flow

    grey, d0, d1, inside = _plain_bump_pair(shift=(3.0, 2.0))
    plain = dense_flow(grey, grey)
    assert np.abs(plain[inside]).max() < 0.5  # the grey images carry no motion at all
    flow = rgbd_flow(grey, grey, depth_image(d0), depth_image(d1))
    med = np.median(flow[inside], axis=0)
    np.testing.assert_allclose(med, [3.0, 2.0], atol=0.75)
    # a depth flow that does not match better than the grey one by the margin is not taken
    held = rgbd_flow(grey, grey, depth_image(d0), depth_image(d1), margin=1000.0)
    np.testing.assert_array_equal(held, plain)


def test_depth_images_flow_method_is_its_own_option():
    from traceany_ros.tracker.flow import dense_flow, depth_image, rgbd_flow

    grey, d0, d1, inside = _plain_bump_pair(shift=(3.0, 2.0))
    di0, di1 = depth_image(d0), depth_image(d1)
    fine = rgbd_flow(grey, grey, di0, di1, method="dis_fine")
    mixed = rgbd_flow(grey, grey, di0, di1, method="dis_fine", depth_method="dis_medium")
    # the depth flow (taken inside the dome) is the half-resolution one, the grey flow the full-resolution one
    np.testing.assert_array_equal(mixed[inside], dense_flow(di0, di1, "dis_medium")[inside])
    np.testing.assert_array_equal(fine[inside], dense_flow(di0, di1, "dis_fine")[inside])
    assert not np.array_equal(mixed, fine)
    with pytest.raises(ValueError, match="depth flow method"):
        FlowConfig(depth_flow_method="lucas")


def test_depth_flow_option_reaches_the_tracker(episode):
    base = track_window(episode.inputs(), FlowConfig(stride=16))[0]
    rgbd = track_window(episode.inputs(), FlowConfig(stride=16, depth_flow=True))[0]
    assert not np.allclose(base, rgbd)


def _stitch_scene(T=5, h=4, w=5):
    """A static wall 1 m in front of an identity camera, on a stride-4 grid: own points, K, poses."""
    K = np.array([[100.0, 0, 10.0], [0, 100.0, 8.0], [0, 0, 1]])
    rows, cols = np.meshgrid(2 + 4 * np.arange(h), 2 + 4 * np.arange(w), indexing="ij")
    own = np.stack([(cols - K[0, 2]) / K[0, 0], (rows - K[1, 2]) / K[1, 1], np.ones_like(rows, float)], -1)
    own = np.broadcast_to(own.reshape(1, h * w, 3), (T, h * w, 3)).copy()
    c2w = np.repeat(np.eye(4)[None], T, 0)
    n = h * w
    points = np.repeat(own[:, :, None, :], T, 2).copy()  # every track is perfect (static wall) ...
    alive = np.ones((T, n, T), bool)
    weights = np.ones((T, n, T))
    return points, weights, alive, own, np.ones((T, n), bool), (h, w), K, c2w


def test_stitching_fills_a_lost_stretch_from_another_frames_track():
    from traceany_ros.tracker.flow import stitch_tracks

    points, weights, alive, own, valid, grid, K, c2w = _stitch_scene()
    p = 7
    # ... but frame 0's track of p is lost from frame 2 on and held somewhere wrong
    alive[0, p, 2:] = False
    weights[0, p, 2:] = 0.05
    points[0, p, 2:] = own[0, p] + [0.2, 0.0, 0.0]
    # frame 1's track of the same point reaches frame 0 alive but dies at frame 4: frames 2, 3 come
    # from it; frame 4 only from frame 3's or 4's tracks, which do reach back alive
    alive[1, p, 4] = False
    stitch_tracks(points, weights, alive, own, valid, grid, 4, 2, K, c2w, 0.015)
    assert alive[0, p, 2:].all() and np.allclose(weights[0, p, 2:], 1.0)
    assert np.allclose(points[0, p, 2:], own[0, p])


def test_stitching_needs_the_same_point_and_keeps_tracked_samples():
    from traceany_ros.tracker.flow import stitch_tracks

    points, weights, alive, own, valid, grid, K, c2w = _stitch_scene()
    p = 7
    alive[0, p, 2:] = False
    weights[0, p, 2:] = 0.05
    held = own[0, p] + [0.2, 0.0, 0.0]
    points[0, p, 2:] = held
    # every other frame's track of p lands 3 cm away from p at frame 0: not the same point
    points[1:, p, 0] += [0.0, 0.0, 0.03]
    for m in range(1, 5):  # and the neighbours' tracks do not land on p's cell either
        alive[m, :, 0] &= np.arange(alive.shape[1]) == p
    other = points.copy()
    stitch_tracks(points, weights, alive, own, valid, grid, 4, 2, K, c2w, 0.015)
    assert not alive[0, p, 2:].any() and np.allclose(points[0, p, 2:], held)
    np.testing.assert_array_equal(points, other)  # nothing else changed (every other sample was tracked)


def test_stitching_takes_part_moved_samples_only_when_asked():
    from traceany_ros.tracker.flow import stitch_tracks

    for parts in (False, True):
        points, weights, alive, own, valid, grid, K, c2w = _stitch_scene()
        p = 7
        alive[0, p, 3:] = False
        weights[0, p, 3:] = 0.05           # held ...
        alive[1:, p, 3:] = False
        weights[1:, p, 3:] = 0.5            # ... where every other frame's track was moved by its rigid part
        moved = own[0, p] + [0.0, 0.01, 0.0]
        points[1:, p, 3:] = moved
        stitch_tracks(points, weights, alive, own, valid, grid, 4, 2, K, c2w, 0.015, parts=parts)
        assert not alive[0, p, 3:].any()
        if parts:
            assert np.allclose(points[0, p, 3:], moved) and np.allclose(weights[0, p, 3:], 0.5)
        else:
            assert np.allclose(points[0, p, 3:], own[0, p]) and np.allclose(weights[0, p, 3:], 0.05)


def test_stitching_prefers_the_track_lost_last():
    from traceany_ros.tracker.flow import stitch_tracks

    points, weights, alive, own, valid, grid, K, c2w = _stitch_scene(T=6)
    p = 7
    early, late = own[0, p] + [0.1, 0, 0], own[0, p] + [0.02, 0, 0]
    alive[0, p, 2:] = False          # frame 0's track: lost after frame 1, held far back
    weights[0, p, 2:] = 0.05
    points[0, p, 2:] = early
    for m in range(1, 6):            # every other frame's track: held since frame 3, nearer the truth
        alive[m, p, 4:] = False
        weights[m, p, 4:] = 0.05
        points[m, p, 4:] = late
    alive[4:, p, :4] = False         # (frames 4, 5 never saw p tracked back to frame 0)
    stitch_tracks(points, weights, alive, own, valid, grid, 4, 2, K, c2w, 0.015)
    assert alive[0, p, :4].all() and np.allclose(points[0, p, 2:4], own[0, p])   # tracked stretch filled
    assert not alive[0, p, 4:].any() and np.allclose(points[0, p, 4:], late)      # the fresher hold wins


def _moving_patch(T=6, side=5, spacing=0.01, turn=0.15, shift=(0.02, 0.0, 0.0)):
    """Tracks [T, n, T] of a flat patch turning about its centre (``turn`` rad per frame about z) and
    shifting by ``shift`` per frame, every track perfect and alive: (points, weights, alive, truth [n,T,3])."""
    from transforms3d.axangles import axangle2mat

    g = (np.arange(side) - (side - 1) / 2) * spacing
    base = np.stack(list(np.meshgrid(g, g, indexing="ij")) + [np.zeros((side, side))], -1).reshape(-1, 3) + [0, 0, 1.0]
    centre = base.mean(0)
    truth = np.stack([(base - centre) @ axangle2mat([0, 0, 1], turn * t).T + centre + np.multiply(shift, t)
                      for t in range(T)], 1)  # [n, T, 3]
    n = len(base)
    points = np.broadcast_to(truth[None], (T, n, T, 3)).copy()
    return points, np.ones((T, n, T)), np.ones((T, n, T), bool), truth


def _lose_after(points, weights, alive, p, frame):
    """Every track of point p loses it after ``frame`` and holds its position there."""
    alive[:, p, frame + 1:] = False
    weights[:, p, frame + 1:] = 0.05
    points[:, p, frame + 1:] = points[:, p, frame:frame + 1]


def test_track_ends_are_carried_on_by_a_track_of_the_same_point_that_gets_through():
    from traceany_ros.tracker.flow import extend_track_ends

    points, weights, alive, truth = _moving_patch(spacing=0.02)
    p = 12
    _lose_after(points, weights, alive, p, 2)
    # another point's frame-1 track passes within 5 mm of p at frames 1 and 2 and is followed to the end
    q = 13
    points[1, q] = truth[p] + [0.004, 0, 0]
    extend_track_ends(points, weights, alive, 0.015)
    assert alive[0, p, 3:].all() and np.allclose(weights[0, p, 3:], 1.0)
    np.testing.assert_allclose(points[0, p, 3:], truth[p, 3:] + [0.004, 0, 0])


def test_track_ends_need_a_track_that_agreed_before_and_a_moving_point():
    from traceany_ros.tracker.flow import extend_track_ends

    points, weights, alive, truth = _moving_patch(spacing=0.02)
    p, q = 12, 13
    _lose_after(points, weights, alive, p, 2)
    points[1, q] = truth[p] + [0.004, 0, 0]
    points[1, q, 1] += [0, 0.03, 0]   # ... but 3 cm off at the frame before the end: not the same point
    held = points[0, p].copy()
    extend_track_ends(points, weights, alive, 0.015)
    assert not alive[0, p, 3:].any() and np.allclose(points[0, p], held)
    # a still point is not carried on: its held position is right
    points, weights, alive, truth = _moving_patch(spacing=0.02, turn=0.0, shift=(0.0, 0.0, 0.0))
    _lose_after(points, weights, alive, p, 2)
    points[1, q] = truth[p] + [0.004, 0, 0]
    extend_track_ends(points, weights, alive, 0.015)
    assert not alive[0, p, 3:].any()


def _split_at(points, weights, alive, p, frame):
    """Point p's tracks of frames <= ``frame`` lose it after ``frame``; those of later frames pick it up only at
    ``frame`` + 1 (each held where it was last / first tracked)."""
    _lose_after(points[:frame + 1], weights[:frame + 1], alive[:frame + 1], p, frame)
    alive[frame + 1:, p, :frame + 1] = False
    weights[frame + 1:, p, :frame + 1] = 0.05
    points[frame + 1:, p, :frame + 1] = points[frame + 1:, p, frame + 1:frame + 2]


def test_a_moving_track_is_joined_to_the_track_that_begins_right_after_its_end():
    from traceany_ros.tracker.flow import join_next_tracks

    points, weights, alive, truth = _moving_patch(spacing=0.02)
    p = 12
    _split_at(points, weights, alive, p, 2)
    join_next_tracks(points, weights, alive, 0.05)
    # forward: frames 0-2's tracks go on with the track that begins at frame 3; backward: the other way
    assert alive[:3, p, 3:].all() and alive[3:, p, :3].all()
    np.testing.assert_allclose(points[:3, p, 3:], np.broadcast_to(truth[p, 3:], (3, 3, 3)))
    np.testing.assert_allclose(points[3:, p, :3], np.broadcast_to(truth[p, :3], (3, 3, 3)))


def test_a_track_that_begins_moving_otherwise_or_a_still_point_is_not_joined():
    from traceany_ros.tracker.flow import join_next_tracks

    points, weights, alive, truth = _moving_patch(spacing=0.02)
    p = 12
    # the track beginning at frame 3 lands where p would be, but then goes back the way p came
    later = truth[p, 3] - np.multiply.outer(np.arange(3), [0.02, 0, 0])
    points[3:, p, 3:] = later
    _split_at(points, weights, alive, p, 2)
    before = points.copy()
    join_next_tracks(points, weights, alive, 0.05)
    np.testing.assert_array_equal(points, before)
    assert not alive[:3, p, 3:].any() and not alive[3:, p, :3].any()
    # a still point: its held position is right, nothing is joined
    points, weights, alive, truth = _moving_patch(spacing=0.02, turn=0.0, shift=(0.0, 0.0, 0.0))
    _split_at(points, weights, alive, p, 2)
    join_next_tracks(points, weights, alive, 0.05)
    assert not alive[:3, p, 3:].any()


def test_neighbours_carry_a_lost_moving_point_with_their_rigid_motion():
    from traceany_ros.tracker.flow import extend_with_neighbours

    points, weights, alive, truth = _moving_patch()
    p = 12  # the patch's centre: lost by every track after frame 2 (and before frame 1 backwards)
    _lose_after(points, weights, alive, p, 2)
    extend_with_neighbours(points, weights, alive, 0.05)
    # the turning, shifting neighbours put it where it is (a rigid motion fits them exactly)
    np.testing.assert_allclose(points[:3, p, 3:], np.broadcast_to(truth[p, 3:], (3, 3, 3)), atol=1e-9)
    assert np.allclose(weights[:3, p, 3:], 0.5) and not alive[:3, p, 3:].any()
    # without enough neighbours within reach nothing moves
    points, weights, alive, truth = _moving_patch()
    _lose_after(points, weights, alive, p, 2)
    held = points.copy()
    extend_with_neighbours(points, weights, alive, 0.005)
    np.testing.assert_array_equal(points, held)


def test_neighbours_that_moved_otherwise_do_not_carry_a_point():
    from traceany_ros.tracker.flow import extend_with_neighbours

    points, weights, alive, truth = _moving_patch()
    p = 12
    _lose_after(points, weights, alive, p, 2)
    # every other point came the other way into frame 2 (another body), then moved on with p: not p's part
    others = np.arange(points.shape[1]) != p
    points[:, others, :3] = truth[others, 2:3][None] - np.multiply.outer(np.arange(3) - 2, [0.02, 0, 0])[None, None]
    held = points[:, p].copy()
    extend_with_neighbours(points, weights, alive, 0.05)
    np.testing.assert_array_equal(points[:, p], held)


def test_near_tracks_finds_what_a_brute_force_search_finds():
    """_near_tracks (box and cell filters before a KD-tree): the k nearest candidates within the radius of each
    point, as a brute-force search over all candidates finds them (NaN positions never)."""
    from traceany_ros.tracker.flow import _near_tracks

    rng = np.random.default_rng(0)
    pos = rng.uniform(-1.0, 1.0, size=(5000, 3))
    pos[::97] = np.nan
    rows = np.arange(10_000, 15_000)
    at = np.concatenate([pos[rng.choice(5000, 40)] + rng.normal(0, 0.01, (40, 3)), [[5.0, 5.0, 5.0]]])
    at = at[np.isfinite(at).all(1)]
    radius, k = 0.06, 4
    q, dist, ok = _near_tracks(rows, pos, at, radius, k)
    d_all = np.linalg.norm(at[:, None] - pos[None], axis=-1)
    d_all[~np.isfinite(d_all)] = np.inf
    for e in range(len(at)):
        within = np.sort(d_all[e][d_all[e] <= radius])[:k]
        np.testing.assert_allclose(dist[e][ok[e]], within, rtol=1e-12)
        assert (q[e][ok[e]] >= 10_000).all()
        np.testing.assert_allclose(np.linalg.norm(pos[q[e][ok[e]] - 10_000] - at[e], axis=-1), within, rtol=1e-12)
    assert not ok[-1].any()  # the far point finds nothing


def test_full_resolution_dis_without_refinement_is_its_own_method():
    import cv2

    from traceany_ros.tracker.flow import _dis, dense_flow

    settings = {m: (d.getFinestScale(), d.getVariationalRefinementIterations(), d.getPatchStride())
                for m in ("dis_medium", "dis_fine", "dis_fine_novr", "dis_fine_novr_s4") for d in [_dis(m)]}
    assert settings["dis_fine"][0] == settings["dis_fine_novr"][0] == settings["dis_fine_novr_s4"][0] == 0
    assert settings["dis_medium"][0] == 1 and settings["dis_fine"][1] > 0
    assert settings["dis_fine_novr"][1:] == (0, settings["dis_fine"][2]) and settings["dis_fine_novr_s4"][1:] == (0, 4)
    # still sub-pixel on a textured shift
    rng = np.random.default_rng(0)
    tex = cv2.normalize(cv2.GaussianBlur(rng.uniform(0, 255, (96, 128)).astype(np.float32), (0, 0), 1.5), None, 0, 255,
                        cv2.NORM_MINMAX)
    moved = cv2.warpAffine(tex, np.float32([[1, 0, 2.3], [0, 1, 1.6]]), (128, 96), flags=cv2.INTER_CUBIC)
    for m in ("dis_fine_novr", "dis_fine_novr_s4"):
        err = np.abs(dense_flow(tex.astype(np.uint8), moved.astype(np.uint8), m)[12:-12, 12:-12] - (2.3, 1.6)).mean()
        assert err < 0.06, (m, err)


@pytest.mark.parametrize("stage", ["join", "neighbours"])
def test_end_stages_give_the_same_tracks_on_two_threads_as_on_one(stage, monkeypatch):
    """join_next_tracks and extend_with_neighbours run their two directions side by side: the same result as one
    after the other, on a real tracked clip where both directions change samples."""
    from traceany_ros.tracker import flow

    ep = make_synthetic_episode(num_frames=12, height=96, width=128, seed=3)
    cfg = FlowConfig(**{**flow.TRACKERS["offline"], **flow.ENDS_OFF, "method": "dis_fine_novr"})
    p, w, a, _ = track_window(ep.inputs(), cfg)
    T = p.shape[0]
    tracks = (p.reshape(T, -1, T, 3), w.reshape(T, -1, T), a.reshape(T, -1, T))
    run = {"join": lambda x: flow.join_next_tracks(*x, 0.05), "neighbours": lambda x: flow.extend_with_neighbours(*x, 0.15)}
    threaded = [x.copy() for x in tracks]
    run[stage](threaded)
    monkeypatch.setattr(flow, "_parallel", lambda jobs: [job() for job in jobs])
    serial = [x.copy() for x in tracks]
    run[stage](serial)
    for x, y in zip(threaded, serial):
        np.testing.assert_array_equal(x, y)
    changed = threaded[1] != tracks[1]
    assert changed[..., T // 2:].any() and changed[..., :T // 2].any()  # later (forward) and earlier (backward) frames


def test_tracker_pool_and_backends_keep_numpys_blas_to_one_thread(monkeypatch):
    """While the tracker's pool and a backend's predict run, NumPy's BLAS has one thread (its own threads
    would spin beside ours and the network's); afterwards the process's setting is back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from traceany_ros.tracker import flow

    def blas_threads(libs=None):
        return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
                if lib["user_api"] == "blas" and (libs is None or lib["filepath"] in libs)}

    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        assert before and set(before.values()) == {2}
        seen = flow._parallel([lambda: blas_threads(before), lambda: blas_threads(before)])
        assert all(set(s.values()) == {1} for s in seen) and blas_threads(before) == before
        inside = []
        real = flow._flow_field
        monkeypatch.setattr(flow, "_flow_field", lambda *a: inside.append(blas_threads(before)) or real(*a))
        ep = make_synthetic_episode(num_frames=3, height=32, width=48, seed=1)
        make_backend("flow").predict(ep.inputs())
        assert len(inside) == 1 and set(inside[0].values()) == {1} and blas_threads(before) == before


def test_the_named_trackers_are_the_ones_each_use_runs():
    """The presets are what the backends, the tracer and the planners build (stride and K from the caller)."""
    from traceany_ros.policies.run import PLANNER_BACKEND_OPTIONS
    from traceany_ros.stream import StreamConfig
    from traceany_ros.tracker.flow import TRACKERS

    def preset(name):
        return FlowConfig(**{**TRACKERS[name], "stride": 4, "num_control_points": 10})

    assert make_backend("flow").config == preset("plain")
    assert make_backend("flow-rigid").config == preset("offline")
    assert make_backend("flow-rigid", **StreamConfig().backend_options()).config == preset("stream")
    assert make_backend("flow-rigid", **PLANNER_BACKEND_OPTIONS["flow-rigid"]).config == preset("planners")
    stream, offline = preset("stream"), preset("offline")
    assert (stream.icp, stream.depth_flow, stream.join_next, stream.method) == (False, False, 0.0, "dis_medium")
    assert (offline.icp, offline.depth_flow, offline.join_next, offline.method) == (True, True, 0.05, "dis_fine")
    with pytest.raises(ValueError, match="offline"):
        make_backend("flow-rigid", preset="rigid-rgbd-learned-icp-stitch-ends")
