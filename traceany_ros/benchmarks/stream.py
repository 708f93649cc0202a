"""Streaming: an episode played at --rate Hz through the real tracer node over DDS (kept rate, latency, drops, memory).

Starts the ``sim`` graph (camera node + tracer node, each its own process, Fast
DDS shared memory as ``traceany up`` does) and subscribes from this process:

* latency: ROS-clock time when a field arrives here minus its header stamp
  (the newest frame's stamp), i.e. frame published -> field received;
* kept_hz: distinct camera frames that reached the backend per second
  (from the fields' frame stamps), against ``rate_hz`` offered;
* dropped: frames offered during the measurement (rate x seconds) that no
  published field covers (skipped by the tracer when behind, lost in transport,
  or never published by the camera);
* rss_mb: resident memory of the tracer process at the end (rss_start_mb,
  rss_max_mb too, for soaks: ``--duration 600``).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time

import numpy as np


def add_arguments(p) -> None:
    from traceany_ros.backends import BACKENDS

    p.add_argument("--rate", type=float, default=15.0, help="camera rate offered to the tracer (Hz)")
    p.add_argument("--backend", choices=sorted(BACKENDS), default="flow")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (model backend)")
    p.add_argument("--preset", default="tiny", help="model preset used when no checkpoint exists (untrained)")
    p.add_argument("--checkpoint", default="", help="model checkpoint (default: the shipped one if present)")
    p.add_argument("--episode", default="", help="episode .npz to play (default: a synthetic one)")
    p.add_argument("--size", default="256x192", help="WxH of the synthetic episode")
    p.add_argument("--frames", type=int, default=48, help="frames of the synthetic episode (it loops)")
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--step", type=int, default=4)
    p.add_argument("--field-stride", type=int, default=4)
    p.add_argument("--key-frames", type=int, default=4,
                   help="model: key frames of a longer window (default: the tracer's, 4; 0: every frame)")
    p.add_argument("--input-downscale", type=int, default=1, help="tracer input_downscale (2: 640x480 -> 320x240)")
    p.add_argument("--depth-flow", action=argparse.BooleanOptionalAction, default=None,
                   help="flow backends: RGB-D flow (tracer depth_flow; default: the tracer's)")
    p.add_argument("--learned-matches", action=argparse.BooleanOptionalAction, default=None,
                   help="flow backends: DIS started from the learned matcher (tracer learned_matches; default: the "
                        "tracer's)")
    p.add_argument("--icp", action=argparse.BooleanOptionalAction, default=None,
                   help="flow backends: rigid depth segments moved by their ICP motion (tracer icp; default: the tracer's)")
    p.add_argument("--stitch", action=argparse.BooleanOptionalAction, default=None,
                   help="flow backends: fill lost stretches from other frames' tracks (tracer stitch; default: the tracer's)")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds (after warm-up)")
    p.add_argument("--warmup", type=float, default=4.0, help="seconds ignored at the start")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: from the pid)")


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MiB), from /proc."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        pids += [int(x) for x in out]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024.0


def _model_choice(args) -> tuple[str, str, str]:
    """(checkpoint, preset parameter, preset label) for the model backend."""
    if args.backend != "model":
        return "", "", "n/a"
    if args.checkpoint:
        return args.checkpoint, "", f"checkpoint:{os.path.basename(args.checkpoint)}"
    try:
        from traceany_ros.model import default_checkpoint

        ckpt = str(default_checkpoint())
        return ckpt, "", f"checkpoint:{os.path.basename(ckpt)}"
    except (FileNotFoundError, ImportError):
        return "", args.preset, f"{args.preset} (untrained: no checkpoint shipped)"


def run(args) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from traceany_ros.commands.up import commands
    from traceany_ros.episode import save_episode
    from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg
    from traceany_ros.nodes.convert import stamp_to_sec

    tmp = tempfile.mkdtemp(prefix="traceany_bench_")
    if args.episode:
        episode = args.episode
    else:
        from traceany_ros.sim.synthetic import make_synthetic_episode

        w, h = (int(v) for v in args.size.lower().split("x"))
        episode = os.path.join(tmp, "bench_episode.npz")
        save_episode(episode, make_synthetic_episode(num_frames=args.frames, height=h, width=w, seed=0,
                                                     num_queries=16))
    checkpoint, preset, preset_label = _model_choice(args)
    overrides = {"source": "episode", "episode": episode, "rate_hz": str(float(args.rate)), "loop": "true",
                 "backend": args.backend, "device": args.device, "window": str(args.window),
                 "step": str(args.step), "field_stride": str(args.field_stride), "wait_for_subscribers": "2",
                 "input_downscale": str(args.input_downscale),
                 "checkpoint": checkpoint, "preset": preset, "key_frames": str(args.key_frames)}
    for key in ("depth_flow", "learned_matches", "icp", "stitch"):
        if getattr(args, key) is not None:
            overrides[key] = str(getattr(args, key)).lower()
    cmds, env_add = commands("sim", overrides)
    env = dict(os.environ)
    env.update(env_add)
    env.setdefault("ROS_DOMAIN_ID", str(args.domain_id if args.domain_id is not None else 101 - os.getpid() % 50))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("ROS_HOME", os.path.join(tmp, "ros_home"))
    for k in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTRTPS_DEFAULT_PROFILES_FILE", "ROS_HOME",
              "RMW_IMPLEMENTATION"):
        if k in env:
            os.environ[k] = env[k]
    procs = {}
    logs = {}
    for name, argv in cmds:
        logs[name] = open(os.path.join(tmp, f"{name}.log"), "wb")
        procs[name] = subprocess.Popen(argv, env=env, stdout=logs[name], stderr=subprocess.STDOUT,
                                       start_new_session=True)
    rclpy.init()
    node = rclpy.create_node("traceany_bench_stream")
    arrivals = []   # (receive ROS time, header stamp, frame stamps)
    diag = {}

    def on_field(msg):
        now = node.get_clock().now().nanoseconds * 1e-9
        arrivals.append((now, stamp_to_sec(msg.header.stamp), [stamp_to_sec(s) for s in msg.frame_stamps]))

    def on_diag(msg):
        for st in msg.status:
            if "trajectory fields" in st.name:
                diag.update({kv.key: kv.value for kv in st.values})
                diag["_level"] = int.from_bytes(st.level, "little") if isinstance(st.level, bytes) else int(st.level)
                diag["_message"] = st.message

    node.create_subscription(TrajectoryFieldMsg, "/traceany_tracer/trajectory_field", on_field,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    # the camera waits for 2 subscribers on its colour topic: the tracer and us
    from sensor_msgs.msg import Image
    from rclpy.qos import qos_profile_sensor_data

    node.create_subscription(Image, "/camera/camera/color/image_raw", lambda m: None, qos_profile_sensor_data)
    tracer_pid = procs["traceany_tracer"].pid
    rss_start = None
    rss_samples = []
    try:
        t_start = None
        deadline_first = time.monotonic() + 120.0
        while not arrivals and time.monotonic() < deadline_first:
            rclpy.spin_once(node, timeout_sec=0.1)
            for name, p in procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}: see {logs[name].name}")
        if not arrivals:
            raise RuntimeError(f"no trajectory field within 120 s; logs in {tmp}")
        t_first = time.monotonic()
        while time.monotonic() - t_first < args.warmup:
            rclpy.spin_once(node, timeout_sec=0.05)
        n_warm = len(arrivals)
        rss_start = _rss_mb(tracer_pid)
        t_start = time.monotonic()
        last_sample = 0.0
        while time.monotonic() - t_start < args.duration:
            rclpy.spin_once(node, timeout_sec=0.05)
            if time.monotonic() - last_sample > 1.0:
                rss_samples.append(_rss_mb(tracer_pid))
                last_sample = time.monotonic()
        elapsed = time.monotonic() - t_start
        t_wait = time.monotonic()
        while time.monotonic() - t_wait < 1.5:  # one more diagnostics period
            rclpy.spin_once(node, timeout_sec=0.05)
        rss_end = _rss_mb(tracer_pid)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for p in procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, 2)
                except ProcessLookupError:
                    pass
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
        for f in logs.values():
            f.close()
    meas = arrivals[n_warm:]
    lat = np.array([(r - h) * 1e3 for r, h, _ in meas])
    frames = set()
    for _, _, fs in meas:
        frames.update(round(t, 6) for t in fs)
    first_meas = min((h for _, h, _ in meas), default=0.0)
    # frames newer than the first measured field's newest frame (the window before it counted at warm-up)
    new_frames = [t for t in frames if t > first_meas - 1e-9]

    def num(key, d=diag):
        try:
            return float(d.get(key, "nan"))
        except ValueError:
            return float("nan")

    offered = int(round(args.rate * elapsed))
    dropped = max(0, offered - len(new_frames))
    load1 = os.getloadavg()[0]
    return {
        "rate_hz": float(args.rate),
        "kept_hz": round(min(len(new_frames), offered) / elapsed, 2) if meas else 0.0,
        "fields_hz": round(len(meas) / elapsed, 2),
        "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "latency_p95_ms": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
        "latency_max_ms": round(float(lat.max()), 1) if lat.size else None,
        "dropped": int(dropped),
        "offered_frames": offered,
        "tracer_dropped_total": int(num("dropped")) if np.isfinite(num("dropped")) else None,
        "tracer_pushed_total": int(num("pushed")) if np.isfinite(num("pushed")) else None,
        "compute_p50_ms": round(num("compute_p50_ms"), 1) if np.isfinite(num("compute_p50_ms")) else None,
        "load_avg_1min": round(load1, 2),
        "rss_mb": round(rss_end, 1),
        "rss_start_mb": round(rss_start, 1) if rss_start else None,
        "rss_max_mb": round(max(rss_samples), 1) if rss_samples else None,
        "device": diag.get("device", args.device),
        "backend": diag.get("backend", args.backend),
        "preset": preset_label,
        "image_size": args.size if not args.episode else "episode",
        "window": args.window, "step": args.step, "key_frames": args.key_frames, "field_stride": args.field_stride,
        "input_downscale": args.input_downscale,
        "depth_flow": diag.get("depth_flow", args.depth_flow), "learned_matches": diag.get("learned_matches", args.learned_matches),
        "icp": diag.get("icp", args.icp), "stitch": diag.get("stitch", args.stitch),
        "duration_s": round(elapsed, 1),
        "fields": len(meas),
        "diagnostics_level": diag.get("_level"),
        "diagnostics_message": diag.get("_message"),
        "logs": tmp,
    }
