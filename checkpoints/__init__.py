"""The shipped model checkpoints (installed as traceany_ros.checkpoints; see MODEL.md)."""
