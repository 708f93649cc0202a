"""Helpers shared by the frozen config dataclasses (no ROS).

A config field may carry ``metadata`` with ``help`` (description), ``range``
((lo, hi), inclusive, for numbers) and ``choices`` (allowed values). The ROS
nodes turn that metadata into parameter descriptors
(:mod:`traceany_ros.nodes.params`); :func:`validate_fields` enforces the same
rules when a config is built in Python, so they live in one place::

    @dataclass(frozen=True)
    class MyConfig:
        rate: float = field(default=1.0, metadata={"range": (0.0, 10.0), "help": "..."})

        def __post_init__(self):
            validate_fields(self)
            ...  # rules that involve several fields
"""
from __future__ import annotations

import dataclasses


def validate_fields(cfg) -> None:
    """Raise ValueError when a field of dataclass instance ``cfg`` is outside its metadata ``range`` or ``choices``."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        lo_hi = f.metadata.get("range")
        if lo_hi and not (lo_hi[0] <= v <= lo_hi[1]):
            raise ValueError(f"{f.name} must be in [{lo_hi[0]}, {lo_hi[1]}], got {v}")
        choices = f.metadata.get("choices")
        if choices and v not in choices:
            raise ValueError(f"{f.name} must be one of {list(choices)}, got {v!r}")
