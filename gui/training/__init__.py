"""Training from the window: the controller, its worker thread, the settings panel, export."""
