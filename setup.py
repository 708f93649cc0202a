"""pip install path of traceany_ros (colcon on a full ROS 2 install uses CMakeLists.txt).

The ROS interfaces (traceany_ros.msg, traceany_ros.srv, traceany_ros.action) are generated into
traceany_ros/ by scripts/build_msgs.sh (run by `make install`).
"""
from setuptools import find_packages, setup

core = find_packages(include=["traceany_ros", "traceany_ros.*"])
sim = ["traceany_ros.sim"] + ["traceany_ros.sim." + p for p in find_packages("sim")]
policies = ["traceany_ros.policies"] + ["traceany_ros.policies." + p for p in find_packages("policies")]
checkpoints = ["traceany_ros.checkpoints"]  # the shipped model, loaded by default (no download)

setup(
    name="traceany_ros",
    version="0.1.0",
    description="Trajectory fields (Trace Anything) from live RGB-D streams on ROS 2, and planners on them",
    license="Apache-2.0",
    python_requires="==3.11.*",
    packages=core + sim + policies + checkpoints,
    package_dir={"traceany_ros.sim": "sim", "traceany_ros.policies": "policies",
                 "traceany_ros.checkpoints": "checkpoints"},
    package_data={"traceany_ros": ["msg/*", "srv/*", "action/*", "*.so"], "traceany_ros.checkpoints": ["*.pt", "*.json"]},
    include_package_data=True,
    entry_points={
        "console_scripts": [
            "traceany = traceany_ros.cli:main",
        ],
    },
)
