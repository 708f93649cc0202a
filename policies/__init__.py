"""Planners on trajectory fields (imported as traceany_ros.policies)."""
