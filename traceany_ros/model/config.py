"""Model configuration and presets."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from traceany_ros.tracker.flow import TRACKERS as FLOW_TRACKERS


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`~traceany_ros.model.network.TraceModel`.

    patch_size: encoder patch size p (image H, W are padded up to a multiple of it).
    dim, heads, mlp_ratio: transformer width, attention heads, MLP expansion.
    encoder_layers: per-frame self-attention layers (tokens of one frame).
    decoder_layers: global self-attention layers over all frames' tokens, with time embedding.
    out_stride: the dense head predicts one curve per ``out_stride`` x ``out_stride`` pixel cell.
    head_channels: channels of the dense head (token features fused with a pixel stem).
    num_control_points: K = 3m + 1 of each curve.
    use_depth: feed the unprojected points (depth + pose) to the network; when False it sees RGB
        only (the ablation), while curves are still anchored at each pixel's unprojection.
    flow_prior: also feed the ``flow`` baseline's curves (OpenCV DIS flow chained and lifted with depth,
        ``traceany_ros.tracker.flow``) and predict a residual over them; the network learns where to trust,
        correct or silence them (its motion gate zeroes static points exactly).
    flow_method: OpenCV flow preset of the prior.
    flow_tracker: how the prior's tracks are made, a tracker preset of ``traceany_ros.tracker.flow.TRACKERS``
        ("prior-train": the tiny/base presets; "prior": the shipped checkpoint's; ``RENAMED_TRACKERS`` maps the
        names older checkpoints store).
    prior_anchor: how the prior's curves are made to pass through each cell's own point at its own
        frame's time: "constant" shifts the whole curve by the fit's miss there, "local" shifts only the control points whose basis is non-zero at that time, by
        the least change that does it (:func:`traceany_ros.model.inputs.flow_prior`).
    """

    name: str = "tiny"
    patch_size: int = 16
    dim: int = 96
    heads: int = 4
    mlp_ratio: float = 2.0
    encoder_layers: int = 2
    decoder_layers: int = 2
    out_stride: int = 4
    head_channels: int = 32
    num_control_points: int = 10
    use_depth: bool = True
    flow_prior: bool = False
    flow_method: str = "dis_medium"
    flow_tracker: str = "plain"
    prior_anchor: str = "constant"

    def __post_init__(self):
        from traceany_ros.field import num_segments

        num_segments(self.num_control_points)
        if self.flow_tracker not in FLOW_TRACKERS:
            raise ValueError(f"flow_tracker must be one of {sorted(FLOW_TRACKERS)}, got {self.flow_tracker!r}")
        if self.prior_anchor not in PRIOR_ANCHORS:
            raise ValueError(f"prior_anchor must be one of {PRIOR_ANCHORS}, got {self.prior_anchor!r}")
        if self.patch_size % self.out_stride:
            raise ValueError(f"patch_size {self.patch_size} must be a multiple of out_stride {self.out_stride}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")

    @property
    def image_channels(self) -> int:
        """The per-pixel input channels: RGB (3) + camera-0 points (3) + valid-depth mask (1) with depth, else RGB."""
        return 7 if self.use_depth else 3

    @property
    def in_channels(self) -> int:
        """The input convolutions' channels: ``image_channels`` + with a flow prior its per-cell channels (its
        curve offsets at s = 0, 1/3, 2/3, 1 (12) + its confidence (1)), seen as upsampled to the cell's pixels."""
        return self.image_channels + (PRIOR_CHANNELS if self.flow_prior else 0)

    @staticmethod
    def preset(name: str, **overrides) -> "ModelConfig":
        """``tiny`` (CPU real time, flow-rigid prior), ``tiny-pure`` (no flow prior) or ``base`` (GPU),
        with optional field overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        return ModelConfig(**{**asdict(PRESETS[name]), **overrides})

    @staticmethod
    def from_dict(d: dict) -> "ModelConfig":
        known = {f.name for f in fields(ModelConfig)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"model config has unknown fields {unknown}; the checkpoint is from a different "
                             f"version of traceany_ros")
        if d.get("flow_tracker") in RENAMED_TRACKERS:
            d = {**d, "flow_tracker": RENAMED_TRACKERS[d["flow_tracker"]]}
        return ModelConfig(**d)


PRIOR_CHANNELS = 13
PRIOR_ANCHORS = ("constant", "local")
# how the flow prior is made: the weights do not depend on these (a run may fine-tune onto another prior,
# a backend may run a checkpoint with another)
PRIOR_FIELDS = ("flow_tracker", "flow_method", "prior_anchor")
PRIOR_TIMES = (0.0, 1 / 3, 2 / 3, 1.0)
# tracker names stored in older checkpoints -> the preset with the same options
RENAMED_TRACKERS = {"rigid-rgbd-learned-icp-stitch-join-neighbours-depth4": "prior",
                    "rigid-learned-stitch-join": "prior-fast", "rigid-learned": "prior-train"}

PRESETS = {
    "tiny": ModelConfig(name="tiny", flow_prior=True, flow_tracker="prior-train", prior_anchor="local"),
    "tiny-pure": ModelConfig(name="tiny-pure"),
    "base": ModelConfig(name="base", flow_prior=True, flow_tracker="prior-train", prior_anchor="local", dim=384, heads=6, mlp_ratio=4.0, encoder_layers=4, decoder_layers=8,
                        head_channels=64),
}
