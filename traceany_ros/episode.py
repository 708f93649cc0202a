"""The one episode reader, writer and validator (``docs/episode-format.md``).

An episode is one short RGB-D clip with ground-truth 3D point trajectories::

    rgb           uint8    [T,H,W,3]
    depth         float32  [T,H,W]    z-depth in metres, 0 = invalid
    intrinsics    float32  [3,3]      pinhole K, pixel (r, c) centre at (u, v) = (c, r)
    cam_to_world  float32  [T,4,4]    world <- camera (OpenCV optical frame)
    timestamps    float64  [T]        seconds, strictly increasing
    query_pixels  int32    [Q,3]      (frame, row, col)
    tracks_world  float32  [Q,T,3]    ground-truth world positions
    visible       bool     [Q,T]
    dynamic       bool     [Q]        moves more than 5 mm over the clip
    meta          str 0-d             JSON (generator, version, seed, scene)

Files may carry extra arrays next to the contract keys (e.g. ``dense_tracks``
for training, see ``docs/data.md``); they are kept in ``Episode.extras`` and
never change the meaning of the contract keys.

Writing is byte-deterministic: keys in a fixed order, zip entries with a fixed
timestamp (``np.savez_compressed`` stamps the wall clock into the zip, so it is
not used), so the same episode always gives the same bytes.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from traceany_ros.geometry import unproject_pixels

# Contract keys in file order, with dtype and shape pattern (letters are sizes that must agree).
CONTRACT: dict[str, tuple[np.dtype, tuple]] = {
    "rgb": (np.dtype(np.uint8), ("T", "H", "W", 3)),
    "depth": (np.dtype(np.float32), ("T", "H", "W")),
    "intrinsics": (np.dtype(np.float32), (3, 3)),
    "cam_to_world": (np.dtype(np.float32), ("T", 4, 4)),
    "timestamps": (np.dtype(np.float64), ("T",)),
    "query_pixels": (np.dtype(np.int32), ("Q", 3)),
    "tracks_world": (np.dtype(np.float32), ("Q", "T", 3)),
    "visible": (np.dtype(np.bool_), ("Q", "T")),
    "dynamic": (np.dtype(np.bool_), ("Q",)),
    "meta": (None, ()),  # 0-d unicode string
}
KEYS = tuple(CONTRACT)
META_KEYS = ("generator", "version", "seed", "scene")

DYNAMIC_THRESHOLD_M = 0.005      # contract: "moves more than 5 mm over the clip"
DYNAMIC_MARGIN_M = 0.001         # validator leaves +-1 mm of slack around the threshold
UNPROJECT_TOL_M = 0.01           # per-query limit for the unprojection rule (validator)
UNPROJECT_MEDIAN_TOL_M = 0.003   # median limit for the unprojection rule (validator)

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class FrameWindow:
    """What a predictor may see of a clip (no ground truth).

    rgb [T,H,W,3] uint8, depth [T,H,W] float32 metres (0 = invalid),
    intrinsics [3,3] float32, cam_to_world [T,4,4] float32 (world <- OpenCV camera),
    times [T] float64 seconds.
    """

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray
    cam_to_world: np.ndarray
    times: np.ndarray


def window_frames(window: FrameWindow, frames) -> FrameWindow:
    """The frames of a window that ``frames`` (a slice, or indices in any order) picks."""
    return FrameWindow(rgb=window.rgb[frames], depth=window.depth[frames], intrinsics=window.intrinsics,
                       cam_to_world=window.cam_to_world[frames], times=np.asarray(window.times)[frames])


@dataclass
class Episode:
    """One episode; attributes are the contract keys (``meta`` parsed to a dict).

    Shapes: rgb [T,H,W,3], depth [T,H,W], intrinsics [3,3], cam_to_world [T,4,4],
    timestamps [T], query_pixels [Q,3] (frame,row,col), tracks_world [Q,T,3],
    visible [Q,T], dynamic [Q]. ``extras`` holds optional non-contract arrays.
    """

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: np.ndarray
    cam_to_world: np.ndarray
    timestamps: np.ndarray
    query_pixels: np.ndarray
    tracks_world: np.ndarray
    visible: np.ndarray
    dynamic: np.ndarray
    meta: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[2])

    @property
    def num_queries(self) -> int:
        return int(self.query_pixels.shape[0])

    def inputs(self) -> FrameWindow:
        """The predictor's view of this clip (no tracks, visibility or dynamic flags)."""
        return FrameWindow(rgb=self.rgb, depth=self.depth, intrinsics=self.intrinsics,
                           cam_to_world=self.cam_to_world, times=self.timestamps)

    def query_points_world(self) -> np.ndarray:
        """[Q,3] unprojection of each query pixel at its own frame (the `static` prediction's anchor)."""
        return unproject_pixels(self.depth, self.intrinsics, self.cam_to_world, self.query_pixels)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Contract arrays (with exact dtypes) followed by extras, in file order."""
        out = {
            "rgb": np.ascontiguousarray(self.rgb, dtype=np.uint8),
            "depth": np.ascontiguousarray(self.depth, dtype=np.float32),
            "intrinsics": np.ascontiguousarray(self.intrinsics, dtype=np.float32),
            "cam_to_world": np.ascontiguousarray(self.cam_to_world, dtype=np.float32),
            "timestamps": np.ascontiguousarray(self.timestamps, dtype=np.float64),
            "query_pixels": np.ascontiguousarray(self.query_pixels, dtype=np.int32),
            "tracks_world": np.ascontiguousarray(self.tracks_world, dtype=np.float32),
            "visible": np.ascontiguousarray(self.visible, dtype=np.bool_),
            "dynamic": np.ascontiguousarray(self.dynamic, dtype=np.bool_),
            "meta": np.array(json.dumps(self.meta, sort_keys=True, default=_json_default)),
        }
        for k in sorted(self.extras):
            if k in out:
                raise ValueError(f"extra key {k!r} collides with a contract key; rename it")
            out[k] = np.ascontiguousarray(self.extras[k])
        return out


def _json_default(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"meta value of type {type(o).__name__} is not JSON serialisable")


# ----------------------------------------------------------------------------- I/O

def save_episode(path: str | os.PathLike, ep: Episode) -> None:
    """Write ``ep`` as a compressed ``.npz``, byte-deterministic, atomically (tmp file + rename)."""
    path = Path(path)
    arrays = ep.to_arrays()
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for key, arr in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr, allow_pickle=False)
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue(), compresslevel=6)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"episode file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npz episode ({e}); regenerate it") from e


def load_episode(path: str | os.PathLike) -> Episode:
    """Read an episode file. Raises ValueError naming the problem if a contract key is missing
    or ``meta`` is not JSON; run ``validate_episode`` for the full rule check."""
    d = _read_arrays(path)
    missing = [k for k in KEYS if k not in d]
    if missing:
        raise ValueError(f"{path}: missing contract keys {missing}; run `traceany validate {path}`")
    try:
        meta = json.loads(str(d["meta"][()]))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: meta is not a JSON string ({e})") from e
    extras = {k: v for k, v in d.items() if k not in CONTRACT}
    return Episode(rgb=d["rgb"], depth=d["depth"], intrinsics=d["intrinsics"], cam_to_world=d["cam_to_world"],
                   timestamps=d["timestamps"], query_pixels=d["query_pixels"], tracks_world=d["tracks_world"],
                   visible=d["visible"], dynamic=d["dynamic"], meta=meta if isinstance(meta, dict) else {"_": meta},
                   extras=extras)


def list_episodes(path: str | Path) -> list[Path]:
    """All ``*.npz`` episodes under a directory (recursive), sorted; or the file itself."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"data path {p} does not exist; generate episodes with `traceany generate`")
    files = sorted(p.rglob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no .npz episodes under {p}; generate some with `traceany generate`")
    return files


def load_prediction(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a prediction file: (tracks_world [Q,T,3] float32, confidence [Q,T] or None)."""
    d = _read_arrays(path)
    if "tracks_world" not in d:
        raise ValueError(f"{path}: prediction has no 'tracks_world' array (keys: {sorted(d)})")
    return d["tracks_world"].astype(np.float32), (d["confidence"].astype(np.float32) if "confidence" in d else None)


def save_prediction(path: str | os.PathLike, tracks_world: np.ndarray, confidence: np.ndarray | None = None) -> None:
    """Write a prediction file per the contract (tracks_world [Q,T,3], optional confidence [Q,T])."""
    arrays = {"tracks_world": np.asarray(tracks_world, dtype=np.float32)}
    if confidence is not None:
        arrays["confidence"] = np.asarray(confidence, dtype=np.float32)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


# ----------------------------------------------------------------------------- validation

def validate_episode(path_or_ep: str | os.PathLike | Episode, *, unproject_tol: float = UNPROJECT_TOL_M,
                     unproject_median_tol: float = UNPROJECT_MEDIAN_TOL_M) -> list[str]:
    """Check every rule of the contract; returns one message per violated rule (empty = valid)."""
    if isinstance(path_or_ep, Episode):
        d = path_or_ep.to_arrays()
    else:
        try:
            d = _read_arrays(path_or_ep)
        except (ValueError, FileNotFoundError) as e:
            return [str(e)]
    return validate_arrays(d, unproject_tol=unproject_tol, unproject_median_tol=unproject_median_tol)


def validate_arrays(d: dict[str, np.ndarray], *, unproject_tol: float = UNPROJECT_TOL_M,
                    unproject_median_tol: float = UNPROJECT_MEDIAN_TOL_M) -> list[str]:
    """Rule checks on a dict of raw arrays (as read from a file). See ``validate_episode``."""
    errs: list[str] = []
    missing = [k for k in KEYS if k not in d]
    if missing:
        errs.append(f"missing keys: {missing} (the contract needs all of {list(KEYS)})")

    # dtypes
    for k, (dt, _) in CONTRACT.items():
        if k not in d:
            continue
        a = d[k]
        if k == "meta":
            if a.dtype.kind != "U" or a.ndim != 0:
                errs.append(f"meta: must be a 0-d unicode string array, got dtype {a.dtype} shape {a.shape}")
        elif a.dtype != dt:
            errs.append(f"{k}: dtype is {a.dtype}, contract needs {dt}")

    # shapes and size agreement
    sizes: dict[str, tuple[int, str]] = {}
    shape_ok = True
    for k, (_, pattern) in CONTRACT.items():
        if k not in d or k == "meta":
            continue
        shp = d[k].shape
        if len(shp) != len(pattern):
            errs.append(f"{k}: shape {shp} has {len(shp)} dims, contract needs {len(pattern)} {pattern}")
            shape_ok = False
            continue
        for n, p in zip(shp, pattern):
            if isinstance(p, int):
                if n != p:
                    errs.append(f"{k}: shape {shp} does not match {pattern}")
                    shape_ok = False
                    break
            else:
                if p in sizes and sizes[p][0] != n:
                    errs.append(f"{k}: size {p}={n} disagrees with {sizes[p][1]} ({p}={sizes[p][0]})")
                    shape_ok = False
                    break
                sizes.setdefault(p, (n, k))
    if sizes.get("T", (1,))[0] < 1 or sizes.get("Q", (1,))[0] < 1:
        errs.append(f"empty episode: T={sizes.get('T', (0,))[0]} frames, Q={sizes.get('Q', (0,))[0]} queries")
        shape_ok = False

    # meta
    if "meta" in d and d["meta"].dtype.kind == "U" and d["meta"].ndim == 0:
        try:
            meta = json.loads(str(d["meta"][()]))
            if not isinstance(meta, dict):
                errs.append("meta: JSON must be an object (dict)")
            else:
                lacking = [k for k in META_KEYS if k not in meta]
                if lacking:
                    errs.append(f"meta: JSON lacks keys {lacking} (needs {list(META_KEYS)})")
        except json.JSONDecodeError as e:
            errs.append(f"meta: not valid JSON ({e})")

    if missing or not shape_ok:
        return errs  # the remaining rules need consistent arrays

    T, H, W = d["depth"].shape
    f64 = lambda k: d[k].astype(np.float64)  # noqa: E731

    ts = f64("timestamps")
    if not np.all(np.isfinite(ts)):
        errs.append("timestamps: contain NaN or inf")
    elif T > 1 and not np.all(np.diff(ts) > 0):
        bad = int(np.argmin(np.diff(ts)))
        errs.append(f"timestamps: not strictly increasing (t[{bad}]={ts[bad]} >= t[{bad + 1}]={ts[bad + 1]})")

    K = f64("intrinsics")
    if not (np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1])
            and K[1, 0] == 0 and K[2, 0] == 0):
        errs.append(f"intrinsics: not a pinhole K (fx, fy > 0, last row [0 0 1]): {K.tolist()}")

    P = f64("cam_to_world")
    R = P[:, :3, :3]
    rigid = (np.all(np.isfinite(P)) and np.allclose(P[:, 3], [0, 0, 0, 1], atol=1e-6)
             and np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-4)
             and np.allclose(np.linalg.det(R), 1.0, atol=1e-4))
    if not rigid:
        errs.append("cam_to_world: not rigid transforms (rotation orthonormal with det +1, last row [0 0 0 1])")

    depth = d["depth"]
    if not np.all(np.isfinite(depth)) or np.any(depth < 0):
        errs.append("depth: must be finite and >= 0 (0 marks invalid pixels)")

    tracks = d["tracks_world"]
    if not np.all(np.isfinite(tracks)):
        errs.append("tracks_world: contains NaN or inf (tracks must stay defined through occlusion)")

    qp = d["query_pixels"].astype(np.int64)
    f, r, c = qp[:, 0], qp[:, 1], qp[:, 2]
    inside = (f >= 0) & (f < T) & (r >= 0) & (r < H) & (c >= 0) & (c < W)
    if not np.all(inside):
        errs.append(f"query_pixels: {int((~inside).sum())} queries outside (frame<{T}, row<{H}, col<{W}), "
                    f"e.g. {qp[~inside][0].tolist()}")
        return errs
    vis_own = d["visible"][np.arange(len(qp)), f]
    if not np.all(vis_own):
        errs.append(f"visible: {int((~vis_own).sum())} queries are not visible at their own frame "
                    f"(e.g. query {int(np.argmin(vis_own))})")
    qd = depth[f, r, c]
    if not np.all(qd > 0):
        errs.append(f"depth: {int((qd <= 0).sum())} query pixels have invalid depth (0) at their own frame")

    if rigid and np.all(np.isfinite(K)) and K[0, 0] > 0 and np.all(np.isfinite(tracks)):
        pts = unproject_pixels(depth, K, P, qp)
        gt = tracks[np.arange(len(qp)), f].astype(np.float64)
        err = np.linalg.norm(pts - gt, axis=-1)
        valid = qd > 0
        if valid.any():
            e = err[valid]
            med = float(np.median(e))
            if med > unproject_median_tol or np.any(e > unproject_tol):
                errs.append(f"tracks_world: query-frame position differs from the unprojection of the query pixel "
                            f"(median {med * 1e3:.2f} mm, max {float(e.max()) * 1e3:.2f} mm, "
                            f"{int((e > unproject_tol).sum())} over {unproject_tol * 1e3:.0f} mm; "
                            f"limits median {unproject_median_tol * 1e3:.0f} mm)")

        motion = np.linalg.norm(tracks.astype(np.float64) - gt[:, None], axis=-1).max(axis=1)
        dyn = d["dynamic"]
        wrong = (dyn & (motion < DYNAMIC_THRESHOLD_M - DYNAMIC_MARGIN_M)) | \
                (~dyn & (motion > DYNAMIC_THRESHOLD_M + DYNAMIC_MARGIN_M))
        if wrong.any():
            errs.append(f"dynamic: {int(wrong.sum())} flags disagree with the tracks "
                        f"(dynamic = moves more than {DYNAMIC_THRESHOLD_M * 1e3:.0f} mm from the query position)")
    return errs
