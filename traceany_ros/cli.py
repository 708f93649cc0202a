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

from traceany_ros import commands as _commands_pkg


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="traceany",
        description="Trajectory fields from RGB-D streams: data, training, prediction, ROS 2 graphs, planners.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(_commands_pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_commands_pkg.__name__}.{info.name}")
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
