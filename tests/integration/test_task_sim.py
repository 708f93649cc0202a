"""The simulated goal task on the ROS 2 graph: task_sim streams its camera, sends the goal image to the
planner's PlanGoal action, executes the plan with the Panda and publishes the outcome (separate processes)."""
import json
from pathlib import Path

import pytest

from conftest import spin_until

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[2]


def _outcome(rclpy_context, ros_procs, node_name: str, timeout: float) -> dict:
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    node = Node("outcome_probe", context=rclpy_context)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    got = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(String, f"/{node_name}/result", lambda m: got.append(json.loads(m.data)), qos)
    assert spin_until(ex, lambda: bool(got), timeout=timeout), ros_procs.dump()
    node.destroy_node()
    return got[0]


def test_task_sim_executes_the_planners_plan_with_the_panda(ros_procs, rclpy_context):
    ros_procs.python("planner", [str(REPO / "scripts/ros/planner_node"), "--ros-args", "-p", "backend:=flow-rigid"])
    ros_procs.python("task_sim", [str(REPO / "scripts/ros/task_sim_node"), "--ros-args", "-p", "task:=pick-place-goal",
                                  "-p", "seed:=1", "-p", "warmup_s:=0.5", "-p", "realtime:=2.0"])
    out = _outcome(rclpy_context, ros_procs, "task_sim", timeout=240)
    assert out["task"] == "pick-place-goal" and out["seed"] == 1
    assert out["plan_found"] and out["plan_method"].startswith("field-kabsch"), out
    assert out["success"] and out["grasp_success"] and out["pos_error_cm"] < 3.0, out
    assert "FAILED" not in ros_procs.log("task_sim")


def test_task_sim_without_a_planner_reports_no_plan_and_keeps_streaming(ros_procs, rclpy_context):
    proc = ros_procs.python("task_sim", [str(REPO / "scripts/ros/task_sim_node"), "--ros-args",
                                         "-p", "task:=articulated-goal", "-p", "action:=/nobody/plan_goal",
                                         "-p", "wait_for_subscribers:=0", "-p", "start_timeout_s:=2.0",
                                         "-p", "warmup_s:=0.2", "-p", "realtime:=0.0"])
    out = _outcome(rclpy_context, ros_procs, "task_sim", timeout=120)
    assert not out["plan_found"] and "no PlanGoal action server on /nobody/plan_goal" in out["plan_message"], out
    assert not out["success"] and out["task"] == "articulated-goal"
    assert proc.poll() is None, "the node goes on streaming the final scene"
    assert "[ERROR]" in ros_procs.log("task_sim") and "planner:=true" in ros_procs.log("task_sim")
