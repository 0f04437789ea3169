"""The table of layer types: ``LAYERS[type_id] -> Layer subclass``, filled by ``@register``."""
from __future__ import annotations

import importlib
import pkgutil

from layerloom.engine.block_types import STRUCTURAL
from layerloom.engine.graph_data import GraphError
from layerloom.engine.spec import Layer

LAYERS: dict[str, type[Layer]] = {}

# Palette order; a layer in a category not listed here goes at the end.
CATEGORIES = ("Input/Output", "Dense", "Convolution", "Pooling", "Padding", "Activation",
              "Normalisation", "Recurrent", "Attention", "Merge/Split", "Math", "Shape",
              "Regularisation", "Loss")


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: the class name is the type id used in graph files."""
    cls.type_id = cls.__name__
    if cls.type_id in LAYERS:
        raise RuntimeError(f"layer type {cls.type_id} registered twice")
    LAYERS[cls.type_id] = cls
    return cls


def by_category() -> dict[str, list[type[Layer]]]:
    """Categories in palette order, each with its layer types sorted by name."""
    out: dict[str, list[type[Layer]]] = {}
    order = {c: i for i, c in enumerate(CATEGORIES)}
    for cls in sorted(LAYERS.values(), key=lambda c: (order.get(c.category, 99), c.type_id)):
        out.setdefault(cls.category, []).append(cls)
    return out


def get(type_id: str) -> type[Layer]:
    """A layer type, or one of the block node types (``engine.block_types``)."""
    cls = LAYERS.get(type_id) or STRUCTURAL.get(type_id)
    if cls is None:
        raise GraphError(f"unknown layer type {type_id!r}")
    return cls


def _import_all() -> None:
    import layerloom.engine.layers as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"layerloom.engine.layers.{mod.name}")


_import_all()
