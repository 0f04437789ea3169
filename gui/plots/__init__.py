"""Live training plots: numpy buffers redrawn by a ~10 Hz timer, never once per step."""
