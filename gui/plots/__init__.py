"""Live training plots: numpy buffers redrawn by a ~30 Hz timer, never once per step."""
