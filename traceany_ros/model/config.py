"""The network's configuration and presets: one frozen dataclass, stored by value in every checkpoint."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`TraceModel`.

    stride: output cell size in pixels; features live at 1/stride (4 or 8).
    channels: encoder widths at 1/2, 1/4 (and 1/8) resolution; feat_dim: correlation feature width.
    dim, heads, layers: token width, attention heads, time-attention blocks per pass.
    iterations: refinement passes (shared weights); radius, levels: local correlation window
        (cells, each side) and pyramid levels.
    num_control_points: K = 3m + 1.
    fit_ridge: weight of the second-difference penalty of the least-squares spline fit (keeps the fit
        defined when a window has fewer frames than control points).
    hard_gate: at inference, offsets of cells whose motion probability is below 0.5 are exactly zero.
    cell_attention: each block also attends across the query cells of a (query frame, frame) pair
        (``CellBlock``); off only in checkpoints made before it existed.
    global_argmax: one more candidate move, the 3D point of the frame's best-correlated level-0 cell (a hard
        global match); off only in checkpoints made before it existed.
    """

    name: str = "tiny"
    stride: int = 8
    channels: tuple[int, ...] = (24, 48, 64)
    feat_dim: int = 64
    dim: int = 64
    heads: int = 4
    layers: int = 2
    iterations: int = 2
    radius: int = 3
    levels: int = 3
    num_control_points: int = 10
    fit_ridge: float = 1e-3
    hard_gate: bool = True
    cell_attention: bool = False
    global_argmax: bool = False

    def __post_init__(self):
        from traceany_ros.field import num_segments

        num_segments(self.num_control_points)
        if self.stride not in (4, 8):
            raise ValueError(f"stride must be 4 or 8, got {self.stride}")
        if len(self.channels) != int(math.log2(self.stride)):
            raise ValueError(f"stride {self.stride} needs {int(math.log2(self.stride))} encoder widths, "
                             f"got channels={self.channels}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")

    @staticmethod
    def preset(name: str, **overrides) -> "ModelConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        return ModelConfig(**{**asdict(PRESETS[name]), **overrides})

    @staticmethod
    def from_dict(d: dict) -> "ModelConfig":
        known = {f.name for f in fields(ModelConfig)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"model config has unknown fields {unknown}")
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return ModelConfig(**d)


PRESETS = {
    "tiny": ModelConfig(name="tiny", cell_attention=True, global_argmax=True),
    "base": ModelConfig(name="base", stride=4, channels=(48, 96), feat_dim=128, dim=128, layers=4,
                           iterations=3, radius=4, levels=4, cell_attention=True, global_argmax=True),
}
