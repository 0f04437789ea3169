"""PyTorch oracles per layer type: ``ORACLES[type_id](attrs, params, inputs, training) -> output(s)``.

Each module in this package defines an ``ORACLES`` dict; they are merged here. ``params`` and
``inputs`` are torch tensors (float64, with ``requires_grad`` where they are differentiable); an
oracle returns a tensor or a tuple of tensors in the layer's output-port order. Buffers (running
statistics) are passed as plain tensors the oracle may update in place.
"""
import importlib
import pkgutil

ORACLES: dict = {}
for _mod in pkgutil.iter_modules(__path__):
    ORACLES.update(importlib.import_module(f"{__name__}.{_mod.name}").ORACLES)
