"""Constant folding for ONNX import: every tensor computable without the model's input, including
the shape arithmetic PyTorch's exporter writes (Shape → Gather → Unsqueeze → Concat → Reshape).

A shape computation may depend on the batch size, which a model leaves open. Each folded tensor
is therefore computed twice, for two different batch sizes: an entry equal in both runs is a fixed
number, an entry that follows the batch is the batch (a Reshape's target ``[batch, -1]``). The
operators themselves run in ``onnx.reference``, so every operator ONNX defines folds the same
way without a line of code here per operator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPSET = 17  # the opset models are upgraded to before import (what Layerloom itself writes)
BATCHES = (5, 7)  # the two batch sizes a batch-dependent constant is computed for
RANDOM = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                    "Multinomial", "Bernoulli"})


@dataclass(frozen=True)
class Folded:
    """A constant tensor as computed for each of ``BATCHES`` (the same array when fixed)."""

    one: np.ndarray
    two: np.ndarray

    @staticmethod
    def fixed_value(value) -> "Folded":
        array = np.asarray(value)
        return Folded(array, array)

    @property
    def fixed(self) -> bool:
        return self.one is self.two or (self.one.shape == self.two.shape
                                         and np.array_equal(self.one, self.two))

    def per_sample(self) -> np.ndarray | None:
        """For a tensor with a batch axis whose rows are all alike (a zero initial state made by
        ConstantOfShape(Shape(x))): its one row, with a batch axis of 1; None otherwise."""
        one, two = self.one, self.two
        if (one.ndim == 0 or one.shape[0] != BATCHES[0] or two.shape[0] != BATCHES[1]
                or one.shape[1:] != two.shape[1:]):
            return None
        row = one[:1]
        return row if (one == row).all() and (two == row).all() else None

    def batch_entries(self) -> np.ndarray:
        """For an integer vector (a shape): True where the entry is the batch size itself."""
        return (self.one == BATCHES[0]) & (self.two == BATCHES[1])


class FoldError(Exception):
    """The operator could not be evaluated on its constant inputs (the message says why)."""


def shape_of(shape: tuple) -> Folded:
    """``Shape`` of a value whose shape is known but for the batch (``None`` in front)."""
    if any(d is None for d in shape[1:]):
        raise FoldError("a size other than the batch is unknown")
    return Folded(*(np.array([b, *shape[1:]], np.int64) for b in BATCHES))


def evaluate(node, inputs: list, opset: int = OPSET) -> list:
    """The outputs of ``node`` (a NodeProto) from its inputs (each a Folded, or None for an
    omitted optional input), as Folded values."""
    from onnx.reference import ReferenceEvaluator

    if node.op_type in RANDOM:
        raise FoldError("it draws random numbers")
    if node.domain not in ("", "ai.onnx"):
        raise FoldError(f"operators of domain {node.domain!r} are not standard ONNX")
    try:
        evaluator = ReferenceEvaluator(node, opsets={"": opset})
    except Exception as err:  # noqa: BLE001 (onnx raises many kinds for an unknown operator)
        raise FoldError(f"{type(err).__name__}: {err}") from None
    present = [(name, f) for name, f in zip(node.input, inputs) if name]

    def run(k: int) -> list:
        feeds = {name: (f.one if k == 0 else f.two) for name, f in present}
        try:
            return [np.asarray(v) for v in evaluator.run(None, feeds)]
        except Exception as err:  # noqa: BLE001
            raise FoldError(f"{type(err).__name__}: {str(err).splitlines()[0][:120]}") from None

    one = run(0)
    if all(f.fixed for _, f in present):
        return [Folded(v, v) for v in one]
    return [Folded(a, b) for a, b in zip(one, run(1))]


def upgrade(model, onnx) -> tuple:
    """(the model, its opset): converted to ``OPSET`` by onnx's version converter, instead of
    parsing every operator's older forms. A newer model the converter cannot take back (it has
    no way down for GroupNormalization-21, say) is read as written: the handlers take the few
    forms that changed after 17 (axes as an input, Split's num_outputs, per-channel group norm)."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if version == OPSET:
        return model, OPSET
    # IR versions below 4 demand every initializer among the inputs; the converter checks that.
    model.ir_version = max(model.ir_version, 8)
    try:
        return onnx.version_converter.convert_version(model, OPSET), OPSET
    except Exception:  # noqa: BLE001 (the converter raises RuntimeError and others)
        if version < OPSET:
            raise
        return model, version
