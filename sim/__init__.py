"""PyBullet simulation: scenes, cameras, ground-truth trajectories, episodes, tasks (imported as traceany_ros.sim)."""
