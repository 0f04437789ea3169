"""The three node types that make blocks: ``Block`` (an instance of a definition) and the
``BlockInput`` / ``BlockOutput`` nodes that declare a definition's ports.

They are declared like layers (ports, attributes, a doc line) so the loader, the inspector and
the canvas read them the same way, but they compute nothing: shape inference looks through them
and the plan flattens every instance into the layers inside it (``engine.flatten``). They live in
``STRUCTURAL``, not in ``LAYERS``, so the palette, the quick-add list and the registry-wide layer
tests only ever see real layers.
"""
from __future__ import annotations

import keyword
from dataclasses import dataclass
from typing import Any, ClassVar

from layerloom.engine.spec import Attr, AttrError, Int, Layer

MAX_REPEAT = 1000
CATEGORY = "Block"  # of all three: the window draws them (and the library) in its own colour


@dataclass(frozen=True)
class Name(Attr):
    """An identifier naming something in the graph file (a block definition)."""

    kind: ClassVar[str] = "name"

    def validate(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.isidentifier() or keyword.iskeyword(value):
            raise AttrError(f"{name}: must be a Python identifier (letters, digits, _), "
                            f"got {value!r}")
        return value


class BlockInput(Layer):
    """One input port of a block: what the block is given arrives here."""

    formula = "y = what the block is given at this port, unchanged"
    backward_formula = "dL/dx = dL/dy, handed on to whatever feeds the block"
    category = CATEGORY
    inputs = ()
    outputs = ("y",)


class BlockOutput(Layer):
    """One output port of a block: what reaches here leaves the block."""

    formula = "y = x: what reaches this port leaves the block unchanged"
    backward_formula = "dL/dx = the gradient arriving from the block's consumers, unchanged"
    category = CATEGORY
    inputs = ("x",)
    outputs = ()


class Block(Layer):
    """A block: one node standing for a named subgraph, its copies (repeat) chained in series."""

    formula = ("y = the layers of block {block} applied {repeat} time(s) in series, each copy with"
               " its own parameters")
    backward_formula = ("dL/dx = dL/dy passed back through the copies, last first, each through "
                        "the layers inside it")
    category = CATEGORY
    inputs = outputs = ()  # a block's ports are its definition's BlockInput / BlockOutput nodes
    attrs = {
        "block": Name("block", "the block definition this node is an instance of"),
        "repeat": Int(1, "copies in series, each with its own parameters (output to input)",
                      min=1, max=MAX_REPEAT),
    }

    @classmethod
    def label(cls, a) -> str:
        return f"{a['block']} ×{a['repeat']}" if a["repeat"] > 1 else a["block"]


STRUCTURAL: dict[str, type[Layer]] = {}
for _cls in (Block, BlockInput, BlockOutput):
    _cls.type_id = _cls.__name__
    STRUCTURAL[_cls.type_id] = _cls

BLOCK, BLOCK_INPUT, BLOCK_OUTPUT = Block.type_id, BlockInput.type_id, BlockOutput.type_id
