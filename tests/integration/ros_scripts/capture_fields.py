"""Receive TrajectoryField messages on --topic, decode each with field_from_msg, save them to --out (npz).

Exits 0 after --count messages, 2 on --timeout. Keys per message i:
``i/control_points, i/confidence, i/times, i/time_span, i/grid`` (stride, pixel_offset, rows, cols),
``i/frame_id``, ``i/backend``, ``i/camera_frame_id``, ``i/received`` (wall clock).
"""
import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy

from traceany_ros.nodes.convert import field_from_msg
from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--topic", default="/field")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--transient-local", action="store_true")
    a = ap.parse_args()
    rclpy.init()
    node = rclpy.create_node("test_field_capture")
    got = []
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL if a.transient_local else DurabilityPolicy.VOLATILE)
    node.create_subscription(TrajectoryFieldMsg, a.topic, lambda m: got.append((field_from_msg(m), time.time())), qos)
    deadline = time.monotonic() + a.timeout
    while len(got) < a.count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    out = {}
    for i, (f, t) in enumerate(got):
        out[f"{i}/control_points"] = f.control_points
        out[f"{i}/confidence"] = f.confidence
        out[f"{i}/times"] = f.times
        out[f"{i}/time_span"] = np.array(f.time_span)
        out[f"{i}/grid"] = np.array([f.stride, f.pixel_offset, *f.image_size])
        out[f"{i}/frame_id"] = np.array(f.frame_id)
        out[f"{i}/backend"] = np.array(f.meta["backend"])
        out[f"{i}/camera_frame_id"] = np.array(f.meta["camera_frame_id"])
        out[f"{i}/received"] = np.array(t)
    np.savez(a.out, count=len(got), **out)
    print(f"captured {len(got)} field(s)", flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    sys.exit(0 if len(got) >= a.count else 2)


if __name__ == "__main__":
    main()
