"""Graph descriptions: one YAML per graph, read by the launch files AND ``traceany up``.

``config/graphs/<name>.yaml``::

    description: one line
    arguments:                     # launch arguments, in table order
      backend: {default: flow, description: "predictor: flow | model | static"}
    env:                           # environment of every node ($(config) = the config directory)
      FASTRTPS_DEFAULT_PROFILES_FILE: {value: "$(config)/fastdds_shm.xml", if: "$(use_shm)"}
    nodes:
      - name: tracer               # node name (and process label)
        executable: tracer_node    # ROS executable (launch_ros, install/lib/traceany_ros/)
        module: traceany_ros.nodes.tracer   # python -m entry point (traceany up)
        if: "$(camera)"            # optional condition (``unless:`` the opposite)
        param_files: [tracer.yaml] # relative to config/
        parameters: {backend: "$(backend)", window: "$(window)"}

``$(arg)`` is replaced by the argument's value; a string that is exactly one
``$(arg)`` takes the value's type (YAML-parsed, so ``window:=8`` is an int).
Arguments given as ``name:=value`` strings are YAML-parsed the same way by
both runners. No ROS import here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_SUB = re.compile(r"\$\((\w+)\)")


def config_dir() -> Path:
    """The package's config/ directory (source checkout, else the ament share directory)."""
    here = Path(__file__).resolve().parents[2] / "config"
    if (here / "graphs").is_dir():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("traceany_ros")) / "config"
    except Exception as e:  # noqa: BLE001 - not installed through ament either
        raise FileNotFoundError(f"cannot find traceany_ros config/ (looked in {here} and the ament index): {e}")


def graph_names() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "graphs").glob("*.yaml"))


@dataclass
class NodeSpec:
    """One resolved node of a graph."""

    name: str
    executable: str
    module: str
    parameters: dict = field(default_factory=dict)
    param_files: list[str] = field(default_factory=list)   # absolute paths

    def ros_args(self) -> list[str]:
        """``--ros-args -r __node:=NAME --params-file F -p k:=v ...`` for this node."""
        out = ["--ros-args", "-r", f"__node:={self.name}"]
        for f in self.param_files:
            out += ["--params-file", f]
        for k, v in self.parameters.items():
            out += ["-p", f"{k}:={param_text(v)}"]
        return out


@dataclass
class Graph:
    name: str
    description: str
    arguments: dict            # name -> {default, description}
    env: dict                  # raw env spec
    nodes: list                # raw node specs

    def argument_table(self) -> str:
        """A markdown table of the launch arguments (README, like realsense-ros)."""
        rows = ["| argument | default | description |", "|---|---|---|"]
        for k, a in self.arguments.items():
            default = format_value(a.get("default", ""))
            text = str(a.get("description", "")).replace("|", "\\|")
            rows.append(f"| `{k}` | {'`' + default + '`' if default != '' else '(empty)'} | {text} |")
        return "\n".join(rows)


def format_value(v) -> str:
    """A value as ROS parameter text (YAML flow style; strings as they are)."""
    if isinstance(v, str):
        return v
    text = yaml.safe_dump(v, default_flow_style=True).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def param_text(v) -> str:
    """A value as ``-p name:=TEXT`` text that ROS parses back to the same type (strings quoted when needed)."""
    if isinstance(v, str) and (v == "" or not isinstance(parse_value(v), str)):
        return '"' + v.replace('"', '\\"') + '"'
    return format_value(v)


def parse_value(text: str):
    """``name:=value`` text -> typed value (YAML); text that YAML cannot parse stays a string."""
    if not isinstance(text, str):
        return text
    try:
        return yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        return text


def load_graph(name_or_path: str | os.PathLike) -> Graph:
    p = Path(name_or_path)
    if not p.suffix:
        p = config_dir() / "graphs" / f"{name_or_path}.yaml"
    if not p.exists():
        raise FileNotFoundError(f"no graph {name_or_path!r}: choose one of {graph_names()}")
    d = yaml.safe_load(p.read_text()) or {}
    return Graph(name=p.stem, description=d.get("description", ""), arguments=d.get("arguments") or {},
                 env=d.get("env") or {}, nodes=d.get("nodes") or [])


def _subst(value, args: dict):
    if isinstance(value, str):
        m = _SUB.fullmatch(value.strip())
        if m:
            return _lookup(m.group(1), args)
        return _SUB.sub(lambda mm: format_value(_lookup(mm.group(1), args)), value)
    if isinstance(value, list):
        return [_subst(v, args) for v in value]
    if isinstance(value, dict):
        return {k: _subst(v, args) for k, v in value.items()}
    return value


def _lookup(name: str, args: dict):
    if name not in args:
        raise KeyError(f"graph refers to unknown argument $({name}); declare it under 'arguments'")
    return args[name]


def _truthy(v) -> bool:
    if isinstance(v, str):
        return v.strip().lower() not in ("", "false", "0", "no", "off")
    return bool(v)


def resolve(graph: Graph, overrides: dict | None = None) -> tuple[list[NodeSpec], dict]:
    """Nodes and environment of ``graph`` with ``overrides`` ({name: value or text}).

    Raises KeyError for an argument the graph does not declare (with the list).
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(graph.arguments))
    if unknown:
        raise KeyError(f"unknown argument(s) {unknown} for graph {graph.name!r}; it takes: "
                       f"{', '.join(graph.arguments)}")
    args = {k: a.get("default") for k, a in graph.arguments.items()}
    args.update({k: parse_value(v) for k, v in overrides.items()})
    args["config"] = str(config_dir())
    env = {}
    for k, spec in graph.env.items():
        spec = spec if isinstance(spec, dict) else {"value": spec}
        if "if" in spec and not _truthy(_subst(spec["if"], args)):
            continue
        env[k] = format_value(_subst(spec["value"], args))
    nodes = []
    for n in graph.nodes:
        if "if" in n and not _truthy(_subst(n["if"], args)):
            continue
        if "unless" in n and _truthy(_subst(n["unless"], args)):
            continue
        params = {k: v for k, v in _subst(n.get("parameters") or {}, args).items() if v is not None and v != "__unset__"}
        files = [str(Path(args["config"]) / f) for f in n.get("param_files") or []]
        nodes.append(NodeSpec(name=n["name"], executable=n["executable"], module=n["module"], parameters=params,
                              param_files=files))
    return nodes, env


def parse_overrides(items: list[str]) -> dict:
    """['name:=value', ...] -> {name: 'value'} (the launch argument syntax)."""
    out = {}
    for it in items:
        if ":=" not in it:
            raise ValueError(f"argument {it!r} must look like name:=value")
        k, v = it.split(":=", 1)
        out[k.strip()] = v
    return out
