"""Launch a RealSense recording played back + tracer: `ros2 launch traceany_ros playback.launch.py file:=clip.db3`.

The nodes, parameters and arguments come from config/graphs/playback.yaml, the
same description `traceany up playback` runs without ROS launch (pip installs).
List the arguments with `ros2 launch traceany_ros playback.launch.py --show-args`
or `traceany up --show-args playback`.
"""
from traceany_ros.nodes.launch_support import launch_description


def generate_launch_description():
    return launch_description("playback")
