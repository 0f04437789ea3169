"""Known operator sequences put back together before import, so each comes in as the one layer it
was in PyTorch: LayerNorm as opsets before 17 spell it out (mean, centre, power, mean, add eps,
sqrt, divide, scale, shift), GroupNorm as PyTorch always exports it (reshape to groups, instance
norm, reshape back, scale, shift), GELU through erf.

A match needs every intermediate value to be read only inside the sequence; the sequence is then
replaced by one synthetic node (a LayerNormalization, or a GroupNormalization with one gain per
channel) that the ordinary handlers read.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.export.onnx_match import View, axes_of, make_node, scalar, synthetic
from layerloom.engine.export.onnx_patterns_act import ACTIVATIONS
from layerloom.engine.export.onnx_reader import Reader


def _layer_norm(start, view: View):
    """ReduceMean → Sub → Pow 2 → ReduceMean → Add eps → Sqrt → Div [→ Mul w → Add b]."""
    if start.op_type != "ReduceMean":
        return None
    x, dims = start.input[0], view.r.onnx_shapes.get(start.input[0])
    if dims is None or axes_of(start, view) not in ([-1], [len(dims) - 1]):
        return None
    sub = view.only_reader(start.output[0], "Sub")
    if sub is None or sub.input != [x, start.output[0]]:
        return None
    readers = view.readers.get(sub.output[0], [])
    pow_ = next((n for n in readers if n.op_type == "Pow"), None)
    div = next((n for n in readers if n.op_type == "Div"), None)
    if len(readers) != 2 or pow_ is None or div is None or scalar(view, pow_.input[1]) != 2.0:
        return None
    var = view.only_reader(pow_.output[0], "ReduceMean")
    add = var and view.only_reader(var.output[0], "Add")
    sqrt = add and view.only_reader(add.output[0], "Sqrt")
    if sqrt is None or axes_of(var, view) != axes_of(start, view) or div.input[1] != sqrt.output[0]:
        return None
    eps = scalar(view, view.other(add, var.output[0]))
    if eps is None or div.input[0] != sub.output[0]:
        return None
    last, scale, shift, tail = view.affine_tail(div)
    d = dims[-1]
    scale = scale or synthetic(view, np.ones(d, np.float32), f"{last.output[0]}/ones")
    inputs = [x, scale] + ([shift] if shift else [])
    if view.const(scale).size != d or (shift and view.const(shift).size != d):
        return None
    node = make_node("LayerNormalization", inputs, last.output[0], start.name, axis=-1, epsilon=eps)
    return [start, sub, pow_, var, add, sqrt, div, *tail], node


def _group_norm(start, view: View):
    """Reshape to (N, groups, -1) → InstanceNormalization (ones, zeros) → Reshape to the input's
    shape [→ Mul w → Add b], as PyTorch exports GroupNorm."""
    if start.op_type != "Reshape":
        return None
    x, target = start.input[0], view.r.consts.get(start.input[1])
    dims = view.r.onnx_shapes.get(x)
    if target is None or dims is None or len(target.one) != 3 or len(dims) < 3:
        return None
    if not (target.batch_entries()[0] or target.one[0] == 0) or target.one[2] != -1:
        return None
    norm = view.only_reader(start.output[0], "InstanceNormalization")
    back = norm and view.only_reader(norm.output[0], "Reshape")
    if back is None:
        return None
    ones, zeros = view.const(norm.input[1]), view.const(norm.input[2])
    shape = view.r.consts.get(back.input[1])
    full = [d for d in dims[1:]]
    if (ones is None or zeros is None or not np.all(ones == 1) or not np.all(zeros == 0)
            or shape is None or list(shape.one[1:]) != full or list(shape.two[1:]) != full
            or not (shape.batch_entries()[0] or shape.one[0] == 0)):
        return None
    last, scale, shift, tail = view.affine_tail(back)
    channels = dims[1]
    eps = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
    values = []
    for name, fill in ((scale, 1.0), (shift, 0.0)):
        c = view.const(name) if name else np.full(channels, fill, np.float32)
        if c.size != channels or (c.ndim > 1 and c.shape[0] != channels):
            return None
        values.append(synthetic(view, c.reshape(-1), f"{last.output[0]}/{fill}",
                                 parameter=name is not None))
    node = make_node("GroupNormalization", [x, *values], last.output[0], start.name,
                 num_groups=int(target.one[1]), epsilon=eps)
    return [start, norm, back, *tail], node


PATTERNS = (_layer_norm, _group_norm, *ACTIVATIONS)


def rewrite(nodes: list, r: Reader) -> list:
    """``nodes`` with every matched sequence replaced by its one node, placed where the
    sequence's last operator was (its inputs come earlier, its readers later)."""
    for pattern in PATTERNS:
        view, dropped, replacements = View(nodes, r), set(), {}
        place = {id(n): i for i, n in enumerate(nodes)}
        for node in nodes:
            found = None if id(node) in dropped else pattern(node, view)
            if found is None or any(id(n) in dropped for n in found[0]):
                continue
            matched, replacement = found
            dropped.update(id(n) for n in matched)
            replacements[max(place[id(n)] for n in matched)] = replacement
        nodes = [replacements.get(i, n) for i, n in enumerate(nodes)
                 if i in replacements or id(n) not in dropped]
    return nodes
