"""The Runs dock: every run of the window and the CLI from the run store (``engine.runs``),
overlaid, compared, restored, swept; and the learning-rate finder."""
