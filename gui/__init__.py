"""Layerloom's desktop GUI (PySide6 + pyqtgraph) over the headless engine."""
