"""Graph descriptions (config/graphs) and parameter files agree with the nodes' config dataclasses."""
import dataclasses

import pytest
import yaml

from traceany_ros.nodes.graph import config_dir, graph_names, load_graph, param_text, parse_value, resolve
from traceany_ros.stream import StreamConfig

NODE_CONFIGS = {
    "traceany_ros.nodes.tracer": ("TracerConfig", "traceany_ros.stream:StreamConfig"),
    "traceany_ros.nodes.sim_camera": ("SimCameraConfig", "traceany_ros.nodes.camera:CameraTopicsConfig"),
    "traceany_ros.nodes.realsense": ("RealSenseNodeConfig", "traceany_ros.sources.realsense:RealSenseConfig",
                                     "traceany_ros.nodes.camera:CameraTopicsConfig"),
}


def _fields(module: str) -> dict:
    import importlib

    out = {}
    for ref in NODE_CONFIGS[module]:
        mod, name = ref.split(":") if ":" in ref else (module, ref)
        cls = getattr(importlib.import_module(mod), name)
        out.update({f.name: getattr(cls(), f.name) for f in dataclasses.fields(cls)})
    return out


def test_tracer_yaml_mirrors_the_config_defaults():
    from traceany_ros.nodes.tracer import TracerConfig

    params = yaml.safe_load((config_dir() / "tracer.yaml").read_text())["/**"]["ros__parameters"]
    want = {f.name: getattr(TracerConfig(), f.name) for f in dataclasses.fields(TracerConfig)}
    want.update({f.name: getattr(StreamConfig(), f.name) for f in dataclasses.fields(StreamConfig)})
    want = {k: list(v) if isinstance(v, tuple) else v for k, v in want.items()}
    assert params == want


@pytest.mark.parametrize("name", ["tracer", "playback", "sim"])
def test_graph_nodes_only_set_declared_parameters(name):
    assert name in graph_names()
    nodes, env = resolve(load_graph(name))
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"].endswith("fastdds_shm.xml")
    for n in nodes:
        declared = _fields(n.module)
        for k, v in n.parameters.items():
            assert k in declared, f"{name}: node {n.name} sets undeclared parameter {k}"
            # same type as the dataclass default, so `-p k:=v` is accepted by the node
            d = declared[k]
            assert isinstance(v, type(d)) or (isinstance(d, float) and isinstance(v, int)) or \
                (isinstance(d, tuple) and isinstance(v, list)), (name, n.name, k, v, d)


def test_overrides_are_typed_and_conditions_apply():
    nodes, env = resolve(load_graph("tracer"), {"camera": "false", "window": "12", "use_shm": "false",
                                                "camera_position": "[1.0, 2.0, 3.0]"})
    assert [n.name for n in nodes] == ["traceany_tracer"]
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in env
    p = nodes[0].parameters
    assert p["window"] == 12 and p["camera_position"] == [1.0, 2.0, 3.0]
    args = nodes[0].ros_args()
    assert "window:=12" in args and 'checkpoint:=""' in args and "camera_position:=[1.0, 2.0, 3.0]" in args
    with pytest.raises(KeyError, match="unknown argument"):
        resolve(load_graph("tracer"), {"windw": "3"})


def test_param_text_round_trips_types():
    for v in ["flow", "", "8", "true", 8, 0.5, True, [0.0, 1.0]]:
        text = param_text(v)
        back = parse_value(text.strip('"')) if isinstance(v, str) and text.startswith('"') else parse_value(text)
        assert back == v if not isinstance(v, str) or not text.startswith('"') else text.strip('"') == v


def test_argument_table_lists_every_argument():
    g = load_graph("sim")
    table = g.argument_table()
    for k in g.arguments:
        assert f"| `{k}` |" in table


@pytest.mark.parametrize("name", ["tracer", "playback", "sim"])
def test_launch_files_use_their_graph(name):
    import ast

    from traceany_ros.nodes.graph import config_dir

    src = (config_dir().parent / "launch" / f"{name}.launch.py").read_text()
    tree = ast.parse(src)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "launch_description"]
    assert len(calls) == 1 and calls[0].args[0].value == name
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
