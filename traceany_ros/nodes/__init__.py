"""ROS 2 nodes: thin adapters between messages and the core (every module here may import rclpy).

* ``tracer``      lifecycle node: RGB-D topics -> :class:`~traceany_ros.stream.SlidingWindowPredictor`
                  -> ``~/trajectory_field``, ``~/markers``, ``~/fused_points``, ``/diagnostics``
* ``sim_camera``  publishes an episode file / PyBullet scene / analytic scene on the realsense-ros topics
* ``realsense``   publishes a RealSense camera or recording (pyrealsense2) on the same topics
* ``convert``     message <-> numpy conversions; ``field_from_msg(msg) -> TrajectoryField`` for subscribers
* ``sync``, ``params``, ``camera``, ``graph``, ``launch_support``: approximate-time sync, dataclass
  parameters, camera publishing, graph descriptions shared by ``traceany up`` and ``launch/``.

Run a node: ``python -m traceany_ros.nodes.tracer --ros-args -p backend:=flow`` (or ``traceany up``).
"""
