"""The trajectory-field network: configuration and presets, inputs, the network, checkpoints."""
from traceany_ros.model.checkpoint import default_checkpoint, load_checkpoint, save_model
from traceany_ros.model.config import PRESETS, ModelConfig
from traceany_ros.model.inputs import WindowTensors, window_tensors
from traceany_ros.model.network import TraceModel, predict_field

__all__ = ["ModelConfig", "PRESETS", "TraceModel", "WindowTensors", "default_checkpoint", "load_checkpoint",
           "predict_field", "save_model", "window_tensors"]
