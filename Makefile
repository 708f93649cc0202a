# The README's two commands: `make demo` and `make test`. Both set up first.
VENV ?= .venv
PY := $(VENV)/bin/python
export ROS_HOME ?= $(CURDIR)/.ros
export PYTHONDONTWRITEBYTECODE = 1

.PHONY: install demo test test-fast bench clean

install:
	bash scripts/install.sh

demo: install
	$(PY) -m traceany_ros.cli demo --out demo_out

test: install
	$(PY) -m pytest tests -q

test-fast: install
	$(PY) -m pytest tests/unit -q -x

bench: install
	$(PY) -m traceany_ros.cli bench all --json

clean:
	rm -rf build/interfaces build/tf2_msgs traceany_ros/msg traceany_ros/srv traceany_ros/action traceany_ros/*.so .pytest_cache
