"""Layerloom's embedded engine: graph model, layers, executor and training (numpy + numba, no Qt)."""
