"""The planner node answers ~/plan_pick_place end to end over ROS 2 (planner in its own process)."""
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import spin_until

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]


def test_planner_node_plans_pick_place_over_ros(ros_procs, rclpy_context):
    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from scipy.spatial.transform import Rotation
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from traceany_ros.nodes import convert
    from traceany_ros.sim.tasks import make_task
    from traceany_ros.srv import PlanPickPlace

    planner = ros_procs.python("planner", [str(REPO / "scripts/ros/planner_node"), "--ros-args",
                                           "-r", "__node:=planner", "-p", "backend:=flow",
                                           "-p", "max_frame_age_s:=0.0"])
    task = make_task("pick-place-goal", seed=3)
    obs, goal = task.render(), task.goal_observation
    gt = task.oracle_info()

    node = Node("fake_camera", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    ns = "/camera/camera"
    pubs = {"rgb": node.create_publisher(Image, f"{ns}/color/image_raw", qos_profile_sensor_data),
            "depth": node.create_publisher(Image, f"{ns}/aligned_depth_to_color/image_raw", qos_profile_sensor_data),
            "info": node.create_publisher(CameraInfo, f"{ns}/color/camera_info", qos_profile_sensor_data),
            "pose": node.create_publisher(PoseStamped, f"{ns}/pose", 10)}
    frame = "camera_color_optical_frame"

    def publish():
        t = time.time()
        pubs["info"].publish(convert.intrinsics_to_camera_info(obs.intrinsics, 192, 256, t, frame))
        pubs["rgb"].publish(convert.rgb_to_image(obs.rgb, t, frame))
        pubs["depth"].publish(convert.depth_to_image(obs.depth, t, frame))
        pubs["pose"].publish(PoseStamped(header=Header(stamp=convert.sec_to_stamp(t), frame_id="world"),
                                         pose=convert.matrix_to_pose(obs.cam_to_world)))

    node.create_timer(0.1, publish)
    client = node.create_client(PlanPickPlace, "/planner/plan_pick_place")
    assert spin_until(ex, client.service_is_ready, timeout=60), ros_procs.dump()
    spin_until(ex, lambda: False, timeout=1.5)  # let a few camera frames reach the planner
    req = PlanPickPlace.Request(goal_rgb=convert.rgb_to_image(goal.rgb, 0.0, frame),
                                goal_depth=convert.depth_to_image(goal.depth, 0.0, frame))
    fut = client.call_async(req)
    assert spin_until(ex, fut.done, timeout=60), ros_procs.dump()
    plan = fut.result().plan
    assert plan.success, plan.message
    assert plan.header.frame_id == "world"
    assert list(plan.waypoint_labels) == ["pre-grasp", "grasp", "lift", "carry", "place", "release"]
    assert len(plan.waypoints) == 6 and len(plan.gripper) == 6 and plan.num_object_points > 0
    # the object's motion is the true one: start pose carried by it lands on the goal pose
    motion = convert.pose_to_matrix(plan.object_motion)
    moved = motion @ gt["start_pose"]
    assert np.linalg.norm(moved[:2, 3] - gt["goal_pose"][:2, 3]) < 0.02
    # grasp over the object, pointing down; place over the goal
    g = plan.waypoints[1].position
    assert np.linalg.norm([g.x - gt["start_pose"][0, 3], g.y - gt["start_pose"][1, 3]]) < 0.02
    q = plan.waypoints[1].orientation
    z_axis = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()[:, 2]
    assert z_axis[2] < -0.99
    p = plan.waypoints[4].position
    assert np.linalg.norm([p.x - gt["goal_pose"][0, 3], p.y - gt["goal_pose"][1, 3]]) < 0.03

    # without a goal change there is nothing to do: the service says so instead of inventing a plan
    fut = client.call_async(PlanPickPlace.Request(goal_rgb=convert.rgb_to_image(obs.rgb, 0.0, frame),
                                                  goal_depth=convert.depth_to_image(obs.depth, 0.0, frame)))
    assert spin_until(ex, fut.done, timeout=60), ros_procs.dump()
    assert not fut.result().plan.success and "no moving object" in fut.result().plan.message
    assert planner.poll() is None
    node.destroy_node()
    task.close()
