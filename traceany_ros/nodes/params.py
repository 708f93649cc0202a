"""Frozen config dataclasses mirrored as ROS 2 parameters (one list of defaults).

A config dataclass field may carry ``metadata`` with ``help`` (description),
``range`` ((lo, hi) for numbers) and ``choices`` (for strings); those become the
parameter's descriptor. Values are validated by constructing the dataclass, so
the rules live in one place (its ``__post_init__``, which checks ``range`` and
``choices`` with :func:`traceany_ros.config_utils.validate_fields`).
"""
from __future__ import annotations

import dataclasses

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, \
    SetParametersResult

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def _ptype(value) -> int:
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, bool) for v in value):
            return ParameterType.PARAMETER_BOOL_ARRAY
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ParameterType.PARAMETER_INTEGER_ARRAY
        if all(isinstance(v, (int, float)) for v in value):
            return ParameterType.PARAMETER_DOUBLE_ARRAY
        return ParameterType.PARAMETER_STRING_ARRAY
    return _TYPES[type(value)]


def descriptor(f: dataclasses.Field, default, read_only: bool = False) -> ParameterDescriptor:
    """ParameterDescriptor of one dataclass field (type, description, range).

    ``read_only``: a field without ``dynamic`` metadata becomes a read-only parameter (set at
    start-up only; ROS rejects a later set) instead of one that applies at the next configure.
    """
    md = f.metadata
    text = md.get("help", "")
    if md.get("choices"):
        text += f" (one of: {', '.join(map(str, md['choices']))})"
    fixed = md.get("configure_only", True) and not md.get("dynamic", False)
    if fixed:
        text += " [read-only: set at start-up]" if read_only else " [applies at the next configure]"
    d = ParameterDescriptor(name=f.name, type=_ptype(default), description=text.strip(),
                            read_only=bool(read_only and fixed))
    lo_hi = md.get("range")
    if lo_hi is not None:
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            d.integer_range = [IntegerRange(from_value=int(lo_hi[0]), to_value=int(lo_hi[1]), step=1)]
        elif isinstance(default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(lo_hi[0]), to_value=float(lo_hi[1]),
                                                         step=0.0)]
    if md.get("choices"):
        d.additional_constraints = "one of: " + ", ".join(map(str, md["choices"]))
    return d


def declare_config(node, cls, defaults=None, read_only: bool = False) -> None:
    """Declare every field of dataclass ``cls`` as a parameter of ``node`` (default: the dataclass default).

    ``read_only``: fields not marked ``dynamic`` are read-only parameters (see :func:`descriptor`).
    """
    base = defaults if defaults is not None else cls()
    for f in dataclasses.fields(cls):
        value = getattr(base, f.name)
        if isinstance(value, tuple):
            value = list(value)
        node.declare_parameter(f.name, value, descriptor(f, value, read_only))


def _coerce(f: dataclasses.Field, template, value):
    if isinstance(template, tuple):
        return tuple(value)
    if isinstance(template, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def config_from_node(node, cls):
    """Read the declared parameters back into a (validated) ``cls`` instance."""
    base = cls()
    kw = {}
    for f in dataclasses.fields(cls):
        kw[f.name] = _coerce(f, getattr(base, f.name), node.get_parameter(f.name).value)
    return cls(**kw)


def validate_update(node, cls, params) -> SetParametersResult:
    """``add_on_set_parameters_callback`` body: accept ``params`` only if ``cls`` accepts the new values."""
    base = cls()
    names = {f.name: f for f in dataclasses.fields(cls)}
    kw = {}
    for name, f in names.items():
        try:
            kw[name] = _coerce(f, getattr(base, name), node.get_parameter(name).value)
        except Exception:  # noqa: BLE001 - not declared yet (during declaration): use the default
            kw[name] = getattr(base, name)
    for p in params:
        if p.name in names:
            kw[p.name] = _coerce(names[p.name], getattr(base, p.name), p.value)
    try:
        cls(**kw)
    except (ValueError, TypeError) as e:
        return SetParametersResult(successful=False, reason=str(e))
    return SetParametersResult(successful=True)


def validate_updates(node, classes, params) -> SetParametersResult:
    """:func:`validate_update` for a node configured by several dataclasses: the first rejection, else success."""
    for cls in classes:
        res = validate_update(node, cls, params)
        if not res.successful:
            return res
    return SetParametersResult(successful=True)


def ros_args_from_overrides(overrides: dict) -> list[str]:
    """{name: value} -> ['--ros-args', '-p', 'name:=value', ...] (YAML values)."""
    import yaml

    out = []
    for k, v in overrides.items():
        if isinstance(v, str):
            text = v
        else:
            text = yaml.safe_dump(v, default_flow_style=True).strip()
            if text.endswith("\n..."):
                text = text[:-4].strip()
        out += ["-p", f"{k}:={text}"]
    return ["--ros-args", *out] if out else []
