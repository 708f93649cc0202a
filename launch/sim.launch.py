"""Launch simulator camera + tracer: `ros2 launch traceany_ros sim.launch.py source:=sim seed:=3`.

The nodes, parameters and arguments come from config/graphs/sim.yaml, the
same description `traceany up sim` runs without ROS launch (pip installs).
List the arguments with `ros2 launch traceany_ros sim.launch.py --show-args`
or `traceany up --show-args sim`.
"""
from traceany_ros.nodes.launch_support import launch_description


def generate_launch_description():
    return launch_description("sim")
