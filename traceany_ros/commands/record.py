"""``traceany record`` / ``traceany play``: camera and field topics as rosbag2 MCAP files.

Written with ``rosbags`` (no rosbag2_py wheel): the bags hold CDR messages
with their definitions (the package's own ``traceany_ros/msg/TrajectoryField``
included), so ``ros2 bag play`` on a robot and Foxglove Studio open them.

    traceany record out_bag --duration 10                # default: camera + field topics
    traceany record out_bag --topics /traceany_tracer/trajectory_field
    traceany play out_bag --rate 1.0 --loop
"""
from __future__ import annotations

import importlib
import signal
import sys
import threading
import time
from pathlib import Path

DEFAULT_TOPICS = (
    "/camera/camera/color/image_raw",
    "/camera/camera/aligned_depth_to_color/image_raw",
    "/camera/camera/color/camera_info",
    "/camera/camera/pose",
    "/tf",
    "/tf_static",
    "/traceany_tracer/trajectory_field",
)
LATCHED_TOPICS = ("/tf_static",)  # transient local, as tf2's static broadcaster publishes them


def register(sub) -> None:
    r = sub.add_parser("record", help="record camera and trajectory-field topics to a rosbag2 MCAP bag")
    r.add_argument("output", help="bag directory to create (must not exist)")
    r.add_argument("--topics", nargs="+", default=list(DEFAULT_TOPICS), help="topics to record")
    r.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = until Ctrl-C)")
    r.add_argument("--max-messages", type=int, default=0, help="stop after this many messages (0 = no limit)")
    r.add_argument("--discovery-timeout", type=float, default=10.0,
                   help="seconds to wait for the topics' publishers to appear")
    r.add_argument("--settle", type=float, default=3.0,
                   help="once one topic is seen, wait at most this long for the others")
    r.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    r.set_defaults(func=run_record)
    p = sub.add_parser("play", help="publish a rosbag2 bag's messages (MCAP or sqlite3) with their timing")
    p.add_argument("bag", help="bag directory")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor")
    p.add_argument("--loop", action="store_true", help="start again at the end")
    p.add_argument("--topics", nargs="+", default=None, help="only these topics")
    p.add_argument("--start-delay", type=float, default=1.0, help="seconds to let subscribers discover us")
    p.set_defaults(func=run_play)


def typestore():
    """The Jazzy typestore plus this package's messages (from msg/*.msg)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(Stores.ROS2_JAZZY)
    msg_dir = _msg_dir()
    types = {}
    for f in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"traceany_ros/msg/{f.stem}"))
    ts.register(types)
    return ts


def _msg_dir() -> Path:
    here = Path(__file__).resolve().parents[2] / "msg"
    if here.is_dir():
        return here
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("traceany_ros")) / "msg"


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def _sensor_like(topic: str) -> bool:
    return any(s in topic for s in ("image", "camera_info", "depth", "points"))


def run_record(args) -> int:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from rosbags.rosbag2 import StoragePlugin, Writer

    out = Path(args.output)
    if out.exists():
        print(f"traceany record: {out} exists; choose a new directory", file=sys.stderr)
        return 2
    rclpy.init()
    node = rclpy.create_node("traceany_recorder")
    ts = typestore()
    # wait for the publishers so that each topic's type (and QoS) is known
    wanted = list(dict.fromkeys(args.topics))
    found: dict[str, str] = {}
    deadline = time.monotonic() + args.discovery_timeout
    while time.monotonic() < deadline and len(found) < len(wanted):
        for name, types in node.get_topic_names_and_types():
            if name in wanted and types:
                found[name] = types[0]
        if found:  # the graph is up: give the other topics a few more seconds, not the whole timeout
            deadline = min(deadline, time.monotonic() + args.settle)
        rclpy.spin_once(node, timeout_sec=0.1)
    missing = [t for t in wanted if t not in found]
    if not found:
        print(f"traceany record: none of {wanted} is published (waited {args.discovery_timeout:.0f} s); "
              f"is the graph running with the same ROS_DOMAIN_ID?", file=sys.stderr)
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
    if missing:
        print(f"traceany record: not published, skipped: {missing}", file=sys.stderr)
    writer = Writer(out, version=8, storage_plugin=StoragePlugin.MCAP if args.storage == "mcap"
                    else StoragePlugin.SQLITE3)
    writer.open()
    lock = threading.Lock()
    counts = {t: 0 for t in found}
    stop = threading.Event()
    subs = []
    for topic, type_name in found.items():
        conn = writer.add_connection(topic, type_name, typestore=ts)
        infos = node.get_publishers_info_by_topic(topic)
        best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
        latched = topic in LATCHED_TOPICS or any(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                                                 for i in infos)
        qos = (qos_profile_sensor_data if best_effort else
               QoSProfile(depth=50, durability=DurabilityPolicy.TRANSIENT_LOCAL) if latched else QoSProfile(depth=50))

        def on_msg(data, conn=conn, topic=topic):
            with lock:
                if stop.is_set():
                    return
                writer.write(conn, node.get_clock().now().nanoseconds, bytes(data))
                counts[topic] += 1
                if args.max_messages and sum(counts.values()) >= args.max_messages:
                    stop.set()

        subs.append(node.create_subscription(message_class(type_name), topic, on_msg, qos, raw=True))
    print(f"traceany record: recording {sorted(found)} to {out}", file=sys.stderr)
    old = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t_end = time.monotonic() + args.duration if args.duration > 0 else float("inf")
    try:
        while not stop.is_set() and time.monotonic() < t_end:
            rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        stop.set()
        signal.signal(signal.SIGINT, old)
        with lock:
            writer.close()
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"traceany record: wrote {sum(counts.values())} messages: {counts}", file=sys.stderr)
    return 0


def run_play(args) -> int:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data
    from rosbags.rosbag2 import Reader

    if args.rate <= 0:
        print("traceany play: --rate must be > 0", file=sys.stderr)
        return 2
    try:
        reader = Reader(args.bag)
        reader.open()
    except Exception as e:  # noqa: BLE001 - rosbags raises several types for unreadable bags
        print(f"traceany play: cannot open {args.bag}: {e}", file=sys.stderr)
        return 2
    rclpy.init()
    node = rclpy.create_node("traceany_player")
    conns = [c for c in reader.connections if args.topics is None or c.topic in args.topics]
    pubs = {}
    for c in conns:
        qos = (qos_profile_sensor_data if _sensor_like(c.topic) else
               QoSProfile(depth=50, durability=DurabilityPolicy.TRANSIENT_LOCAL) if c.topic in LATCHED_TOPICS
               else QoSProfile(depth=50))
        pubs[c.id] = node.create_publisher(message_class(c.msgtype), c.topic, qos)
    stop = threading.Event()
    old = signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sent = 0
    try:
        time.sleep(args.start_delay)
        while not stop.is_set():
            t0_bag = t0_wall = None
            for conn, stamp, data in reader.messages(connections=conns):
                if stop.is_set():
                    break
                if t0_bag is None:
                    t0_bag, t0_wall = stamp, time.monotonic()
                delay = t0_wall + (stamp - t0_bag) * 1e-9 / args.rate - time.monotonic()
                if delay > 0:
                    stop.wait(delay)
                pubs[conn.id].publish(bytes(data))
                sent += 1
            if not args.loop:
                break
        stop.wait(0.5)  # let reliable subscribers take the last messages
    finally:
        signal.signal(signal.SIGINT, old)
        reader.close()
        node.destroy_node()
        rclpy.try_shutdown()
    print(f"traceany play: published {sent} messages", file=sys.stderr)
    return 0
