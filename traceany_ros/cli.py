"""The ``traceany`` command.

Subcommands live in ``traceany_ros/commands/<name>.py``; each module defines
``register(subparsers)`` which adds its parser(s) and sets ``func`` to a
callable ``func(args) -> int``. Heavy imports (torch, pybullet, rclpy) happen
inside those functions, so ``traceany --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType

from traceany_ros import commands as _commands_pkg


def discover(package) -> list[tuple[str, ModuleType]]:
    """(name, module) of every module in ``package`` whose name does not start with ``_``, sorted by name.

    Used for the subcommands (``traceany_ros.commands``) and the benchmarks
    (``traceany_ros.benchmarks``).
    """
    names = sorted(info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_"))
    return [(name, importlib.import_module(f"{package.__name__}.{name}")) for name in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="traceany",
        description="Trajectory fields from RGB-D streams: data, training, prediction, ROS 2 graphs, planners.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for _, module in discover(_commands_pkg):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
