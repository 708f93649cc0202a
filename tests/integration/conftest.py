"""ROS 2 test fixtures: isolated DDS domain, ROS_HOME in tmp, processes that always die.

* Every pytest session gets its own ``ROS_DOMAIN_ID`` (from the pid) and
  localhost-only discovery, so parallel sessions on one machine never
  cross-talk; child processes inherit the environment.
* ``ros_procs`` starts OS processes in their own process group and kills the
  whole group at teardown (SIGINT, then SIGKILL after a grace period), whatever
  the test's outcome; their output goes to files under the test's tmp dir and
  is printed when a test fails.
* ``rclpy_context`` gives an in-process rclpy context (own executor) for fast
  node tests; it is shut down at teardown.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from traceany_ros.commands.up import stop_processes

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "ros_scripts"

os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 50)  # 1..50 (tests); the stream benchmark uses 52..101
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in Jazzy; when set it overrides the range above
os.environ.setdefault("RCUTILS_COLORIZED_OUTPUT", "0")
os.environ["PYTHONUNBUFFERED"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _ros_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("ros_home")
    os.environ["ROS_HOME"] = str(home)
    os.environ["ROS_LOG_DIR"] = str(home / "log")
    yield home


class RosProcesses:
    """Start processes for one test; ``close()`` kills every one of them."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, argv: list[str], env: dict | None = None) -> subprocess.Popen:
        log = self.log_dir / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        fh = open(log, "wb")
        p = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=full_env, cwd=str(REPO),
                             start_new_session=True)
        fh.close()
        self.procs.append((name, p, log))
        return p

    def python(self, name: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        return self.start(name, [sys.executable, *args], env)

    def script(self, name: str, script: str, args: list[str], env: dict | None = None) -> subprocess.Popen:
        return self.python(name, [str(SCRIPTS / script), *args], env)

    def log(self, name: str) -> str:
        for n, _, path in self.procs:
            if n == name:
                return path.read_text(errors="replace")
        raise KeyError(name)

    def wait(self, proc: subprocess.Popen, timeout: float) -> int:
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            name = next(n for n, p, _ in self.procs if p is proc)
            raise AssertionError(f"process {name} still running after {timeout} s; log:\n{self.log(name)[-3000:]}")

    def dump(self) -> str:
        return "\n".join(f"===== {n} (rc={p.poll()}) =====\n{path.read_text(errors='replace')[-4000:]}"
                         for n, p, path in self.procs)

    def close(self, grace: float = 5.0) -> None:
        stop_processes([(n, p) for n, p, _ in self.procs], grace, label="ros_procs")


@pytest.fixture
def ros_procs(tmp_path, request):
    rp = RosProcesses(tmp_path)
    yield rp
    failed = getattr(request.node, "rep_call", None)
    rp.close()
    if failed is not None and failed.failed:
        print(rp.dump())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        item.rep_call = rep


@pytest.fixture
def rclpy_context():
    """An initialised rclpy Context of its own (shut down at teardown)."""
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def spin_until(executor, predicate, timeout: float, step: float = 0.05) -> bool:
    """Spin ``executor`` until ``predicate()`` is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=step)
    return bool(predicate())
