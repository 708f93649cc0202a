"""``traceany up GRAPH [name:=value ...]``: run a ROS 2 graph without ``ros2 launch``.

Reads the same description as the launch files (``config/graphs/GRAPH.yaml``),
starts every node as its own OS process (``python -m MODULE --ros-args -r
__node:=NAME --params-file ... -p name:=value ...``) with the graph's
environment (Fast DDS shared memory by default), prefixes their output with
the node name, forwards SIGINT/SIGTERM to all of them and waits for a clean
shutdown (SIGKILL after ``--grace`` seconds).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time


def _add_flags(p) -> None:
    p.add_argument("--show-args", action="store_true", help="print the graph's launch arguments (markdown) and exit")
    p.add_argument("--dry-run", action="store_true", help="print the commands and environment, start nothing")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to wait after SIGINT before SIGKILL")
    p.add_argument("--exit-on-any", action="store_true", help="stop the whole graph when any node exits")


def register(sub) -> None:
    p = sub.add_parser("up", help="run a ROS 2 graph (tracer | playback | sim) as separate processes",
                       description=__doc__.split("\n\n")[0],
                       epilog="example: traceany up sim source:=synthetic backend:=flow window:=8")
    _add_flags(p)
    # graph name, name:=value overrides and flags in any order (argparse alone cannot mix them)
    p.add_argument("rest", nargs=argparse.REMAINDER, metavar="GRAPH [name:=value ...]",
                   help="graph name (config/graphs/NAME.yaml: tracer, playback, sim), then launch arguments")
    p.set_defaults(func=run)


def _split(args) -> None:
    """Fill args.graph / args.overrides (and late flags) from args.rest."""
    late = argparse.ArgumentParser(prog="traceany up", add_help=False)
    _add_flags(late)
    ns, positional = late.parse_known_args(args.rest)
    for k, v in vars(ns).items():
        if v != late.get_default(k):
            setattr(args, k, v)
    flags = [a for a in positional if a.startswith("-")]
    if flags:
        raise ValueError(f"unknown option(s) {flags}")
    if not positional:
        raise ValueError("name a graph: traceany up tracer|playback|sim [name:=value ...]")
    args.graph, args.overrides = positional[0], positional[1:]


def commands(graph_name: str, overrides: dict) -> tuple[list[tuple[str, list[str]]], dict]:
    """[(node name, argv)] and the environment additions of a graph."""
    from traceany_ros.nodes.graph import load_graph, resolve

    nodes, env = resolve(load_graph(graph_name), overrides)
    return [(n.name, [sys.executable, "-m", n.module, *n.ros_args()]) for n in nodes], env


def _pump(name: str, stream, out) -> None:
    for raw in iter(stream.readline, b""):
        out.write(f"[{name}] {raw.decode(errors='replace')}")
        out.flush()
    stream.close()


def run(args) -> int:
    from traceany_ros.nodes.graph import load_graph, parse_overrides

    try:
        _split(args)
        graph = load_graph(args.graph)
        overrides = parse_overrides(args.overrides)
        cmds, env_add = commands(args.graph, overrides)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"traceany up: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    if args.show_args:
        print(f"{graph.name}: {graph.description}\n")
        print(graph.argument_table())
        return 0
    if args.dry_run:
        for k, v in env_add.items():
            print(f"export {k}={v}")
        for name, argv in cmds:
            print(f"# {name}\n" + " ".join(_quote(a) for a in argv))
        return 0
    env = dict(os.environ)
    env.update(env_add)
    env.setdefault("PYTHONUNBUFFERED", "1")
    procs: list[tuple[str, subprocess.Popen]] = []
    stopping = threading.Event()

    def forward(signum, _frame):
        if stopping.is_set():
            return
        stopping.set()
        print(f"traceany up: {signal.Signals(signum).name}, stopping {len(procs)} node(s)", file=sys.stderr)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    pumps = []
    try:
        for name, argv in cmds:
            # own process group: a terminal Ctrl-C reaches us once, and we decide the order
            p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True)
            procs.append((name, p))
            t = threading.Thread(target=_pump, args=(name, p.stdout, sys.stdout), daemon=True)
            t.start()
            pumps.append(t)
            print(f"traceany up: started {name} (pid {p.pid})", file=sys.stderr)
        rc = 0
        while not stopping.is_set():
            alive = [(n, p) for n, p in procs if p.poll() is None]
            for n, p in procs:
                if p.poll() is not None and not getattr(p, "_reported", False):
                    p._reported = True
                    print(f"traceany up: {n} exited with code {p.returncode}", file=sys.stderr)
                    rc = max(rc, abs(p.returncode))
                    if args.exit_on_any:
                        stopping.set()
            if not alive:
                break
            time.sleep(0.1)
    finally:
        stop_processes(procs, args.grace)
        for t in pumps:
            t.join(timeout=1.0)
        for s, h in old.items():
            signal.signal(s, h)
    return rc


def stop_processes(procs: list[tuple[str, subprocess.Popen]], grace: float, label: str = "traceany up") -> None:
    """Stop ``(name, process)`` pairs started with ``start_new_session=True``: SIGINT to each process group,
    then SIGKILL to those still running ``grace`` seconds later (reported on stderr as ``label: ...``)."""
    for _, p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for name, p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"{label}: {name} ignored SIGINT for {grace:.0f} s; killing it", file=sys.stderr)
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=5)


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)
