"""The planner node answers ~/plan_goal (action) and ~/plan_pick_place (service) end to end over ROS 2
(planner in its own process, camera frames from this one); a plan that needs the field fails with the
static backend."""
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import spin_until

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]


def _fake_camera(node, obs):
    """Publish ``obs`` as a still camera on the realsense-ros topics every 0.1 s (fresh stamps)."""
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from traceany_ros.nodes import convert

    ns = "/camera/camera"
    pubs = {"rgb": node.create_publisher(Image, f"{ns}/color/image_raw", qos_profile_sensor_data),
            "depth": node.create_publisher(Image, f"{ns}/aligned_depth_to_color/image_raw", qos_profile_sensor_data),
            "info": node.create_publisher(CameraInfo, f"{ns}/color/camera_info", qos_profile_sensor_data),
            "pose": node.create_publisher(PoseStamped, f"{ns}/pose", 10)}
    frame = "camera_color_optical_frame"

    def publish():
        t = time.time()
        pubs["pose"].publish(PoseStamped(header=Header(stamp=convert.sec_to_stamp(t), frame_id="world"),
                                         pose=convert.matrix_to_pose(obs.cam_to_world)))
        pubs["info"].publish(convert.intrinsics_to_camera_info(obs.intrinsics, 192, 256, t, frame))
        pubs["rgb"].publish(convert.rgb_to_image(obs.rgb, t, frame))
        pubs["depth"].publish(convert.depth_to_image(obs.depth, t, frame))

    node.create_timer(0.1, publish)


def _send(ex, client, goal_msg, ros_procs, timeout=90):
    """Send an action goal; returns (result plan, feedback stages)."""
    stages = []
    fut = client.send_goal_async(goal_msg, feedback_callback=lambda fb: stages.append(fb.feedback.stage))
    assert spin_until(ex, fut.done, timeout=timeout), ros_procs.dump()
    handle = fut.result()
    assert handle.accepted
    res = handle.get_result_async()
    assert spin_until(ex, res.done, timeout=timeout), ros_procs.dump()
    spin_until(ex, lambda: False, timeout=0.2)  # feedback that raced the result
    return res.result().result.plan, stages


def test_planner_action_plans_from_the_field_and_fails_with_static(ros_procs, rclpy_context):
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from scipy.spatial.transform import Rotation

    from traceany_ros.action import PlanGoal
    from traceany_ros.nodes import convert
    from traceany_ros.sim.tasks import make_task
    from traceany_ros.srv import PlanPickPlace

    procs = {}
    for name, backend in (("planner", "flow-rigid"), ("planner_static", "static")):
        procs[name] = ros_procs.python(name, [str(REPO / "scripts/ros/planner_node"), "--ros-args",
                                              "-r", f"__node:={name}", "-p", f"backend:={backend}",
                                              "-p", "clip_frames:=2", "-p", "max_frame_age_s:=0.0"])
    task = make_task("pick-place-goal", seed=1)
    obs, goal = task.render(), task.goal_observation
    gt = task.oracle_info()

    node = Node("fake_camera", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    _fake_camera(node, obs)
    frame = "camera_color_optical_frame"
    client = ActionClient(node, PlanGoal, "/planner/plan_goal")
    static = ActionClient(node, PlanGoal, "/planner_static/plan_goal")
    assert spin_until(ex, lambda: client.server_is_ready() and static.server_is_ready(), timeout=90), ros_procs.dump()
    spin_until(ex, lambda: False, timeout=1.5)  # let a few camera frames reach the planners
    goal_msg = PlanGoal.Goal(goal_rgb=convert.rgb_to_image(goal.rgb, 0.0, frame),
                             goal_depth=convert.depth_to_image(goal.depth, 0.0, frame), task="pick-place")

    plan, stages = _send(ex, client, goal_msg, ros_procs)
    assert plan.success, plan.message
    assert stages[:2] == ["predicting", "planning"], stages
    assert plan.header.frame_id == "world"
    assert list(plan.waypoint_labels) == ["pre-grasp", "grasp", "lift", "carry", "place", "release"]
    assert len(plan.waypoints) == 6 and len(plan.gripper) == 6 and plan.num_object_points > 0
    # the object's motion (from the field's tracks) is the true one: the start pose carried by it lands on the goal
    motion = convert.pose_to_matrix(plan.object_motion)
    moved = motion @ gt["start_pose"]
    assert np.linalg.norm(moved[:2, 3] - gt["goal_pose"][:2, 3]) < 0.02
    g = plan.waypoints[1].position
    assert np.linalg.norm([g.x - gt["start_pose"][0, 3], g.y - gt["start_pose"][1, 3]]) < 0.02
    q = plan.waypoints[1].orientation
    assert Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()[2, 2] < -0.99

    # the same goal with the static backend: its field does not move, so there is no plan
    plan, stages = _send(ex, static, goal_msg, ros_procs)
    assert not plan.success and "consistent tracks" in plan.message, plan.message
    assert "predicting" in stages

    # an unknown task is refused at once
    fut = client.send_goal_async(PlanGoal.Goal(goal_rgb=goal_msg.goal_rgb, task="juggle"))
    assert spin_until(ex, fut.done, timeout=30), ros_procs.dump()
    assert not fut.result().accepted

    # the service: the same pick-and-place plan; without a goal change there is nothing to do
    srv = node.create_client(PlanPickPlace, "/planner/plan_pick_place")
    assert spin_until(ex, srv.service_is_ready, timeout=30), ros_procs.dump()
    fut = srv.call_async(PlanPickPlace.Request(goal_rgb=goal_msg.goal_rgb, goal_depth=goal_msg.goal_depth))
    assert spin_until(ex, fut.done, timeout=90), ros_procs.dump()
    assert fut.result().plan.success, fut.result().plan.message
    fut = srv.call_async(PlanPickPlace.Request(goal_rgb=convert.rgb_to_image(obs.rgb, 0.0, frame),
                                               goal_depth=convert.depth_to_image(obs.depth, 0.0, frame)))
    assert spin_until(ex, fut.done, timeout=90), ros_procs.dump()
    assert not fut.result().plan.success and "no moving object" in fut.result().plan.message
    assert all(p.poll() is None for p in procs.values())
    node.destroy_node()
    task.close()
