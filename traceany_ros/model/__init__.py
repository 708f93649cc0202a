"""The trajectory-field network: config/presets, preprocessing, network, checkpoints."""
from traceany_ros.model.checkpoint import default_checkpoint, load_checkpoint
from traceany_ros.model.config import PRESETS, ModelConfig
from traceany_ros.model.inputs import WindowInputs, prepare_window
from traceany_ros.model.network import TraceModel

__all__ = ["ModelConfig", "PRESETS", "TraceModel", "WindowInputs", "default_checkpoint", "load_checkpoint",
           "prepare_window"]
