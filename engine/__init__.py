"""Layerloom's embedded engine: graph model, layers, executor and training (numpy + numba, no Qt)."""
from layerloom.engine.heap import keep_freed_memory

keep_freed_memory()  # freed activations stay in the heap for the next step (engine/heap.py)
