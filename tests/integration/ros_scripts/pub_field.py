"""Publish one deterministic TrajectoryField (from --seed) on --topic every --period s until killed."""
import argparse

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy

from traceany_ros.field import TrajectoryField
from traceany_ros.nodes.convert import field_to_msg
from traceany_ros.msg import TrajectoryField as TrajectoryFieldMsg


def make_field(seed: int) -> TrajectoryField:
    rng = np.random.default_rng(seed)
    cp = rng.normal(size=(5, 6, 7, 10, 3)).astype(np.float32)
    conf = rng.random((5, 6, 7)).astype(np.float32)  # [0, 1], the message's scale
    times = 1_750_000_000.0 + np.cumsum(rng.uniform(0.03, 0.07, size=5))
    return TrajectoryField(cp, conf, times, stride=4, pixel_offset=2, image_size=(24, 28), frame_id="odom",
                           time_span=(times[0], times[-1] + 0.1), meta={"backend": "test:seed%d" % seed})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--topic", default="/field")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--period", type=float, default=0.2)
    a = ap.parse_args()
    rclpy.init()
    node = rclpy.create_node("test_field_publisher")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(TrajectoryFieldMsg, a.topic, qos)
    msg = field_to_msg(make_field(a.seed), camera_frame_id="camera_color_optical_frame")
    node.create_timer(a.period, lambda: pub.publish(msg))
    print("publishing", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
