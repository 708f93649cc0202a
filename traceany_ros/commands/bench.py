"""``traceany bench TARGET``: benchmarks that write JSON.

Targets live in ``traceany_ros/benchmarks/<target>.py``; each defines
``add_arguments(parser)`` and ``run(args) -> dict``. The result is printed as a
readable table, or as one JSON object with ``--json``, and written to
``--output`` when given. Every result records the machine it came from.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time


def machine_info() -> dict:
    info = {"hostname": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def register(sub) -> None:
    from traceany_ros import benchmarks
    from traceany_ros.cli import discover

    p = sub.add_parser("bench", help="run a benchmark and report JSON")
    targets = p.add_subparsers(dest="target", metavar="TARGET")
    targets.required = True
    for name, mod in discover(benchmarks):
        tp = targets.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0] if mod.__doc__ else None)
        tp.add_argument("--json", action="store_true", help="print one JSON object")
        tp.add_argument("--output", help="also write the JSON result to this file")
        mod.add_arguments(tp)
        tp.set_defaults(func=lambda args, mod=mod: _run(mod, args))


def _run(mod, args) -> int:
    t0 = time.time()
    result = mod.run(args)
    result = {"benchmark": args.target, **result, "machine": machine_info(),
              "wall_s": round(time.time() - t0, 3)}
    text = json.dumps(result, indent=None if args.json else 2, default=float)
    if args.output:
        with open(args.output, "w") as f:
            f.write(json.dumps(result, indent=2, default=float) + "\n")
    if args.json:
        print(text)
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    sys.stdout.flush()
    return 0
