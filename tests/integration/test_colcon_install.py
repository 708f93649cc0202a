"""The robot's build path: ``colcon build`` of a workspace holding this package, its installed
layout, and each launch graph (sim, tracer, playback) started from the install space.

colcon comes from the package index and builds on the venv's ament/rosidl wheels
(``AMENT_PREFIX_PATH=$VIRTUAL_ENV``), as on a robot it builds on /opt/ros/jazzy. The
workspace gets the package's source files only (tracked or not ignored: what a clone holds),
so nothing generated in the checkout (traceany_ros/msg, build/) can stand in for the build.

The graphs start the way ``ros2 launch traceany_ros NAME.launch.py`` starts them:
the launch file's nodes are resolved from the installed ``share/traceany_ros/config/graphs``
(launch_support.launch_description reads the same description) and each node is the
installed executable ``lib/traceany_ros/<exe> --ros-args -r __node:=NAME --params-file ...``,
which is the command line launch_ros's Node action runs. ``launch``/``launch_ros`` themselves
have no PyPI wheel, so the launch library is not run here.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, spin_until

pytestmark = [pytest.mark.ros, pytest.mark.timeout(1800)]  # the colcon build: ~1 min idle, much longer on a loaded machine

PKG = "traceany_ros"
EXECUTABLES = ("tracer_node", "sim_camera_node", "realsense_node", "planner_node", "task_sim_node")
LAUNCH_FILES = ("sim.launch.py", "tracer.launch.py", "playback.launch.py")


def _venv() -> Path:
    return Path(sys.prefix)


@pytest.fixture(scope="module")
def colcon_ws(tmp_path_factory):
    """A colcon workspace with this package (its source files), built and installed; returns its root."""
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / PKG
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           check=True, capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        p = REPO / rel
        if p.is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, src / rel)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(_venv()), CMAKE_PREFIX_PATH=str(_venv()),
               PATH=f"{_venv() / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)
    t0 = time.monotonic()
    r = subprocess.run([str(_venv() / "bin" / "colcon"), "build", "--event-handlers", "console_direct-",
                        "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF",
                        "-DCMAKE_BUILD_TYPE=Release"],
                       cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"colcon build failed ({time.monotonic() - t0:.0f} s):\n{r.stdout[-6000:]}\n" \
                              f"{r.stderr[-6000:]}"
    return ws


def install_env(ws: Path) -> dict:
    """The environment of ``source install/setup.bash`` (venv python first on PATH, as a robot's python3)."""
    out = subprocess.run(["bash", "-c", f"source {ws / 'install' / 'setup.bash'} && env -0"], capture_output=True,
                         check=True, env=dict(os.environ, AMENT_PREFIX_PATH=str(_venv()))).stdout
    env = dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)
    env["PATH"] = f"{_venv() / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def test_installed_layout(colcon_ws):
    prefix = colcon_ws / "install" / PKG
    for exe in EXECUTABLES:
        p = prefix / "lib" / PKG / exe
        assert p.is_file(), f"{p} missing: ros2 run/launch look for executables in lib/{PKG}"
        assert p.stat().st_mode & stat.S_IXUSR, f"{p} is not executable"
    share = prefix / "share" / PKG
    for f in [*(f"launch/{n}" for n in LAUNCH_FILES), "package.xml", "config/tracer.yaml",
              "config/fastdds_shm.xml", "config/graphs/sim.yaml", "config/graphs/tracer.yaml",
              "config/graphs/playback.yaml", "msg/TrajectoryField.msg", "srv/PlanPickPlace.srv"]:
        assert (share / f).is_file(), f"{share / f} missing"
    index = prefix / "share" / "ament_index" / "resource_index"
    assert (index / "packages" / PKG).is_file()
    assert "msg/TrajectoryField.msg" in (index / "rosidl_interfaces" / PKG).read_text()
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / PKG
    assert (site / "msg" / "_trajectory_field.py").is_file(), "generated Python messages missing"
    assert list(site.glob("traceany_ros_s__rosidl_typesupport_c*.so")), "type support extension missing"
    # every module of the Python package in the workspace is installed next to the generated ones
    src = colcon_ws / "src" / PKG
    missing = []
    for top in ("traceany_ros", "sim", "policies"):
        for p in (src / top).rglob("*.py"):
            rel = p.relative_to(src).as_posix()
            inst = rel if rel.startswith(PKG + "/") else f"{PKG}/{rel}"
            if not (site.parent / inst).is_file():
                missing.append(inst)
    assert not missing, f"not installed: {missing[:10]}"
    assert (site / "checkpoints" / "tiny.pt").is_file(), "the shipped checkpoint must be installed"


def test_install_space_imports_its_own_package(colcon_ws, tmp_path):
    code = ("import json, traceany_ros, traceany_ros.msg, traceany_ros.sim, traceany_ros.policies\n"
            "from traceany_ros.msg import TrajectoryField\n"
            "from traceany_ros.srv import PlanPickPlace\n"
            "from ament_index_python.packages import get_package_share_directory as share\n"
            "from traceany_ros.nodes.graph import config_dir\n"
            "from traceany_ros.model import default_checkpoint\n"
            "print(json.dumps({'pkg': traceany_ros.__file__, 'msg': traceany_ros.msg.__file__,\n"
            "                  'share': share('traceany_ros'), 'config': str(config_dir()),\n"
            "                  'ckpt': str(default_checkpoint())}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=install_env(colcon_ws), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    inst = str(colcon_ws / "install" / PKG)
    for k, v in got.items():
        assert v.startswith(inst), f"{k} resolved to {v}, not the install space {inst}"


def _resolved_nodes(ws: Path, graph: str, overrides: dict) -> tuple[list[dict], dict]:
    """Nodes and environment of an installed graph, resolved by the installed package."""
    code = ("import json, sys\n"
            "from traceany_ros.nodes.graph import load_graph, resolve\n"
            f"nodes, env = resolve(load_graph({graph!r}), {overrides!r})\n"
            "print(json.dumps({'nodes': [dict(name=n.name, executable=n.executable, argv=n.ros_args())\n"
            "                            for n in nodes], 'env': env}))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ws, env=install_env(ws), capture_output=True, text=True,
                       timeout=120, check=True)
    d = json.loads(r.stdout.strip().splitlines()[-1])
    return d["nodes"], d["env"]


def _start_graph(ros_procs, ws: Path, graph: str, overrides: dict) -> list[str]:
    nodes, genv = _resolved_nodes(ws, graph, overrides)
    env = {**install_env(ws), **genv}
    share = str(ws / "install" / PKG / "share" / PKG)
    for n in nodes:
        assert any(a.startswith(share) for a in n["argv"] if a.endswith(".yaml")) or "--params-file" not in n["argv"], \
            f"{n['name']} reads parameter files from outside the install space: {n['argv']}"
        exe = ws / "install" / PKG / "lib" / PKG / n["executable"]
        ros_procs.start(n["name"], [str(exe), *n["argv"]], env=env)
    return [n["name"] for n in nodes]


def _wait_field(ctx, topic: str, timeout: float, ros_procs):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from traceany_ros.msg import TrajectoryField
    from traceany_ros.nodes.convert import field_from_msg

    got = []
    node = rclpy.create_node("colcon_probe", context=ctx)
    node.create_subscription(TrajectoryField, topic, got.append, QoSProfile(depth=5,
                                                                            reliability=ReliabilityPolicy.RELIABLE))
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    try:
        ok = spin_until(ex, lambda: got or any(p.poll() is not None for _, p, _ in ros_procs.procs), timeout)
        assert ok and got, f"no field on {topic} within {timeout} s\n{ros_procs.dump()}"
        return field_from_msg(got[0])
    finally:
        ex.shutdown()
        node.destroy_node()


def test_sim_graph_starts_from_the_install_space(colcon_ws, ros_procs, rclpy_context):
    names = _start_graph(ros_procs, colcon_ws, "sim", {"source": "synthetic", "width": 64, "height": 48,
                                                        "frames": 12, "backend": "static", "window": 4, "step": 2})
    assert names == ["sim_camera", "traceany_tracer"]
    field = _wait_field(rclpy_context, "/traceany_tracer/trajectory_field", 90.0, ros_procs)
    assert field.num_frames == 4 and field.image_size == (48, 64)
    assert field.meta["backend"] == "static"


def test_playback_graph_starts_from_the_install_space(colcon_ws, ros_procs, rclpy_context, tmp_path):
    from traceany_ros.sim.synthetic import make_synthetic_episode
    from traceany_ros.sources.realsense import write_recording

    ep = make_synthetic_episode(num_frames=10, height=48, width=64, seed=2)
    rec = write_recording(tmp_path / "clip.db3", ep.rgb, ep.depth, ep.intrinsics, 5.0 + ep.timestamps)
    names = _start_graph(ros_procs, colcon_ws, "playback", {"file": str(rec), "backend": "static", "window": 4,
                                                             "step": 2, "input_downscale": 1})
    assert names == ["realsense", "traceany_tracer"]
    field = _wait_field(rclpy_context, "/traceany_tracer/trajectory_field", 90.0, ros_procs)
    assert field.num_frames == 4 and field.image_size == (48, 64)


def test_tracer_graph_starts_from_the_install_space(colcon_ws, ros_procs, rclpy_context):
    """No camera here: the installed realsense node reports it on /diagnostics and the tracer waits for frames."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor

    names = _start_graph(ros_procs, colcon_ws, "tracer", {"backend": "static"})
    assert names == ["realsense", "traceany_tracer"]
    seen: dict[str, str] = {}
    node = rclpy.create_node("colcon_diag_probe", context=rclpy_context)
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: seen.update({s.name.split(":")[0]: s.message for s in m.status}), 10)
    ex = SingleThreadedExecutor(context=rclpy_context)
    ex.add_node(node)
    try:
        ok = spin_until(ex, lambda: {"realsense", "traceany_tracer"} <= set(seen), 90.0)
        assert ok, f"diagnostics seen from {sorted(seen)} only\n{ros_procs.dump()}"
    finally:
        ex.shutdown()
        node.destroy_node()
    assert seen["traceany_tracer"].startswith(("active", "stale")), seen
    assert all(p.poll() is None for _, p, _ in ros_procs.procs), ros_procs.dump()
