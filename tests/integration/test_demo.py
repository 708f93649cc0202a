"""End to end: `traceany demo` streams the simulated camera to the tracer and planner processes and grasps
(the defaults: the tracer on flow-rigid, the planner on the shipped network, whose field of the live clip and
the goal image gives the object's motion)."""
import json
import os
import subprocess
import sys

import pytest


@pytest.mark.ros
def test_demo_runs_end_to_end_and_writes_pictures(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, ROS_DOMAIN_ID=str(150 + os.getpid() % 50))
    proc = subprocess.run([sys.executable, "-m", "traceany_ros.cli", "demo", "--out", str(out), "--backend", "flow-rigid",
                           "--seed", "1"], capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] and summary["grasp_success"]
    assert summary["planner_backend"] == "model" and summary["plan_method"].startswith("field-kabsch")
    assert summary["pos_error_cm"] < 3.0
    # the tracer ran as its own process and its fields reached this graph
    assert summary["fields_received"] >= 3
    for name in ("plan.png", "trajectories.png", "fused_cloud.png", "fused_cloud.ply", "execution.gif"):
        assert (out / name).stat().st_size > 5000, name
