"""Launch RealSense camera (pyrealsense2) + tracer: `ros2 launch traceany_ros tracer.launch.py backend:=model device:=cuda`.

The nodes, parameters and arguments come from config/graphs/tracer.yaml, the
same description `traceany up tracer` runs without ROS launch (pip installs).
List the arguments with `ros2 launch traceany_ros tracer.launch.py --show-args`
or `traceany up --show-args tracer`.
"""
from traceany_ros.nodes.launch_support import launch_description


def generate_launch_description():
    return launch_description("tracer")
