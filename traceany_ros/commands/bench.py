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
        tp.set_defaults(func=lambda args, mod=mod: _run(mod, args), bench_module=mod)
    ap = targets.add_parser("all", help="run every benchmark with its defaults; one JSON object keyed by name")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--output", help="also write the JSON result to this file")
    ap.set_defaults(func=lambda args: _run_all(targets, args))


def _run_all(targets, args) -> int:
    """Each benchmark with its own default arguments, in one result keyed by benchmark name."""
    import argparse

    t0 = time.time()
    results = {}
    for name, parser in targets.choices.items():
        if name == "all":
            continue
        sub = parser.parse_args([])
        sub.target = name
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        results[name] = sub.bench_module.run(sub)
    out = argparse.Namespace(target="all", json=args.json, output=args.output)
    return _emit({"benchmark": "all", "results": results, "machine": machine_info(),
                  "wall_s": round(time.time() - t0, 3)}, out)


def _run(mod, args) -> int:
    t0 = time.time()
    result = mod.run(args)
    return _emit({"benchmark": args.target, **result, "machine": machine_info(),
                  "wall_s": round(time.time() - t0, 3)}, args)


def _emit(result: dict, args) -> int:
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
