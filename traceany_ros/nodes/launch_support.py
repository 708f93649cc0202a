"""Build a ROS 2 LaunchDescription from a graph description (config/graphs/NAME.yaml).

The launch files in launch/ are one call to :func:`launch_description`, so
``ros2 launch traceany_ros sim.launch.py seed:=3`` and ``traceany up sim seed:=3``
start the same nodes with the same parameters and environment. ``launch`` and
``launch_ros`` exist on a full ROS 2 install only (no PyPI wheels).
"""
from __future__ import annotations

from traceany_ros.nodes.graph import format_value, load_graph, resolve


def launch_description(graph_name: str):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    graph = load_graph(graph_name)

    def make_nodes(context, *args, **kwargs):
        values = {k: LaunchConfiguration(k).perform(context) for k in graph.arguments}
        nodes, env = resolve(graph, values)
        actions = [SetEnvironmentVariable(k, v) for k, v in env.items()]
        for n in nodes:
            actions.append(Node(package="traceany_ros", executable=n.executable, name=n.name, output="screen",
                                emulate_tty=True, parameters=[*n.param_files, n.parameters]))
        return actions

    declared = [DeclareLaunchArgument(k, default_value=format_value(a.get("default", "")),
                                      description=str(a.get("description", "")))
                for k, a in graph.arguments.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=make_nodes)])
