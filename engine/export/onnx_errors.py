"""The ONNX importer's one error and its wording, shared by ``onnx_import`` and the operator
modules it joins (``onnx_import_conv``), so neither has to import the other for it."""
from __future__ import annotations

from layerloom.engine.spec import LayerloomError


class OnnxImportError(LayerloomError):
    """The file is not an ONNX model Layerloom can read; the message says why in one line."""


def refused(node, why: str) -> OnnxImportError:
    """One line: the operator, its node, and why Layerloom cannot take it."""
    return OnnxImportError(f"cannot read ONNX operator {node.op_type} (node "
                           f"{node.name or node.output[0]!r}): {why}")
