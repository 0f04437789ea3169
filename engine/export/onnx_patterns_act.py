"""Activations that ONNX spells out in several operators, matched back to their one layer so an
imported model reads as it was written: GELU (through erf), Softplus with beta (and Layerloom's
threshold), SiLU, Mish, Hardswish (opsets before 14), LogSigmoid, Softmin, Softsign, GLU.

Each matcher starts at the sequence's last node and walks back through producers whose outputs
nothing else reads; it returns the matched nodes and the one node replacing them (an ONNX
operator, or a "ll.<Layer>" node the activation handlers read).
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.export.onnx_match import View, make_node, scalar


def _is(view: View, name: str, value: float) -> bool:
    c = scalar(view, name)
    return c is not None and bool(np.isclose(c, value, rtol=1e-6, atol=0))


def _operands(node) -> list:
    """Both orders of a commutative node's two inputs."""
    return [tuple(node.input), tuple(node.input[::-1])] if len(node.input) == 2 else []


def _gate(end, view: View, gate_op: str):
    """Mul(x, gate(x)): (x, gate node) when the gate's output is read only here."""
    if end.op_type != "Mul":
        return None
    for x, g in _operands(end):
        gate = view.made_by(g, gate_op)
        if gate is not None and gate.input[0] == x:
            return x, gate
    return None


def _erf_core(erf, view: View):
    """Erf(x / √2), x / √2 written as Div or as Mul by 1/√2: (x, nodes)."""
    scaled = view.made_by(erf.input[0], "Div") or view.made_by(erf.input[0], "Mul")
    for x, c in _operands(scaled) if scaled is not None else []:
        if (scaled.op_type == "Div" and c == scaled.input[1] and _is(view, c, np.sqrt(2))
                or scaled.op_type == "Mul" and _is(view, c, 1 / np.sqrt(2))):
            return x, [scaled, erf]
    return None


def _tanh_core(tanh, view: View):
    """Tanh(√(2/π)·(x + 0.044715·x³)) with x³ as x·(x·x) or (x·x)·x: (x, nodes)."""
    outer = view.made_by(tanh.input[0], "Mul")
    for s, c in _operands(outer) if outer is not None else []:
        add = view.made_by(s, "Add") if _is(view, c, np.sqrt(2 / np.pi)) else None
        for x, t in _operands(add) if add is not None else []:
            scaled = view.made_by(t, "Mul")
            for cube_name, k in _operands(scaled) if scaled is not None else []:
                cube = view.made_by(cube_name, "Mul") if _is(view, k, 0.044715) else None
                for a, b in _operands(cube) if cube is not None else []:
                    square = view.made_by(b, "Mul")
                    if a == x and square is not None and list(square.input) == [x, x]:
                        return x, [square, cube, scaled, add, outer, tanh]
    return None


def _gelu_branch(name: str, view: View):
    """1 + erf(x/√2), or 1 + tanh(…) for the tanh approximation: (x, nodes, approximate)."""
    add = view.made_by(name, "Add")
    for e, one in _operands(add) if add is not None else []:
        for op, core, approximate in (("Erf", _erf_core, "none"), ("Tanh", _tanh_core, "tanh")):
            inner = view.made_by(e, op) if _is(view, one, 1.0) else None
            found = inner and core(inner, view)
            if found:
                return found[0], [*found[1], add], approximate
    return None


def _gelu(end, view: View):
    """x·½·(1 + core) in PyTorch's order ((x·(…))·½) or Layerloom's ((x·½)·(…))."""
    if end.op_type != "Mul":
        return None
    for p, q in _operands(end):
        inner = view.made_by(p, "Mul") if _is(view, q, 0.5) else None
        for x, b in _operands(inner) if inner is not None else []:  # PyTorch
            found = _gelu_branch(b, view)
            if found is not None and found[0] == x:
                return [*found[1], inner, end], make_node(
                    "Gelu", [x], end.output[0], end.name, approximate=found[2])
        found, half = _gelu_branch(q, view), view.made_by(p, "Mul")
        if found is not None and half is not None and any(  # Layerloom
                x == found[0] and _is(view, h, 0.5) for x, h in _operands(half)):
            return [*found[1], half, end], make_node(
                "Gelu", [found[0]], end.output[0], end.name, approximate=found[2])
    return None


def _softplus(end, view: View):
    """Softplus(x·β)/β, and Layerloom's Where(x·β > threshold, x, Softplus(x·β)/β)."""
    threshold, tail, where = 20.0, end, []
    if end.op_type == "Where":
        greater = view.made_by(end.input[0], "Greater")
        if greater is None or scalar(view, greater.input[1]) is None:
            return None
        threshold, tail, where = scalar(view, greater.input[1]), view.made_by(end.input[2],
                                                                              "Div"), [greater]
    if tail is None or tail.op_type != "Div" or scalar(view, tail.input[1]) is None:
        return None
    beta = scalar(view, tail.input[1])
    soft = view.made_by(tail.input[0], "Softplus")
    scaled = soft and view.made_by(soft.input[0], "Mul", uses=2 if where else 1)
    if scaled is None:
        return None
    for x, b in _operands(scaled):
        if _is(view, b, beta) and (not where or (where[0].input[0] == scaled.output[0]
                                                 and end.input[1] == x)):
            return ([scaled, soft, tail, *where, *([end] if where else [])],
                    make_node("Softplus", [x], end.output[0], end.name, beta=beta,
                              threshold=threshold))
    return None


def _silu(end, view: View):
    found = _gate(end, view, "Sigmoid")
    return found and ([found[1], end], make_node("ll.SiLU", [found[0]], end.output[0], end.name))


def _mish(end, view: View):
    for x, t in _operands(end) if end.op_type == "Mul" else []:
        tanh = view.made_by(t, "Tanh")
        soft = tanh and view.made_by(tanh.input[0], "Softplus")
        if soft is not None and soft.input[0] == x:
            return [soft, tanh, end], make_node("ll.Mish", [x], end.output[0], end.name)
    return None


def _hardswish(end, view: View):
    found = _gate(end, view, "HardSigmoid")
    if found is None:
        return None
    attrs = {a.name: a.f for a in found[1].attribute}
    if not (np.isclose(attrs.get("alpha", 0.2), 1 / 6) and attrs.get("beta", 0.5) == 0.5):
        return None
    return [found[1], end], make_node("HardSwish", [found[0]], end.output[0], end.name)


def _log_sigmoid(end, view: View):
    """Log(Sigmoid(x)) as PyTorch writes it, −Softplus(−x) as Layerloom does."""
    if end.op_type == "Log":
        sig = view.made_by(end.input[0], "Sigmoid")
        return sig and ([sig, end], make_node("ll.LogSigmoid", [sig.input[0]], end.output[0],
                                              end.name))
    soft = view.made_by(end.input[0], "Softplus") if end.op_type == "Neg" else None
    neg = soft and view.made_by(soft.input[0], "Neg")
    return neg and ([neg, soft, end], make_node("ll.LogSigmoid", [neg.input[0]], end.output[0],
                                                end.name))


def _softmin(end, view: View):
    neg = view.made_by(end.input[0], "Neg") if end.op_type == "Softmax" else None
    if neg is None:
        return None
    axis = next((a.i for a in end.attribute if a.name == "axis"), -1)
    return [neg, end], make_node("ll.Softmin", [neg.input[0]], end.output[0], end.name, dim=axis)


def _softsign(end, view: View):
    add = view.made_by(end.input[1], "Add") if end.op_type == "Div" else None
    for a, one in _operands(add) if add is not None else []:
        abs_ = view.made_by(a, "Abs")
        if abs_ is not None and abs_.input[0] == end.input[0] and _is(view, one, 1.0):
            return [abs_, add, end], make_node("Softsign", [end.input[0]], end.output[0],
                                               end.name)
    return None


def _glu(end, view: View):
    """Mul(first half, Sigmoid(second half)) of a two-way even Split."""
    found = None
    for a, s in _operands(end) if end.op_type == "Mul" else []:
        sig = view.made_by(s, "Sigmoid")
        split = sig and view.made_by(sig.input[0], "Split")
        if split is not None and list(split.output) == [a, sig.input[0]] and view.r.uses[a] == 1:
            found = split, sig
    if found is None:
        return None
    split, sig = found
    sizes = view.const(split.input[1]) if len(split.input) > 1 else None
    if sizes is not None and (len(sizes) != 2 or sizes[0] != sizes[1]):
        return None
    axis = next((a.i for a in split.attribute if a.name == "axis"), 0)
    return [split, sig, end], make_node("ll.GLU", [split.input[0]], end.output[0], end.name,
                                        dim=axis)


def _compare(view: View, name: str, op: str):
    """(x, bound, its nodes) of ``op``(x, bound) producing ``name``, through a Cast or not."""
    node, taken = view.made_by(name, "Cast"), []
    if node is not None:
        taken, name = [node], node.input[0]
    node = view.made_by(name, op)
    if node is None or scalar(view, node.input[1]) is None:
        return None
    return node.input[0], scalar(view, node.input[1]), [node, *taken]


def _hardshrink(end, view: View):
    """Where(Greater(x, λ) or Less(x, −λ), x, 0), as PyTorch exports Hardshrink."""
    either = view.made_by(end.input[0], "Or") if end.op_type == "Where" else None
    if either is None or scalar(view, end.input[2]) != 0.0:
        return None
    high, low = _compare(view, either.input[0], "Greater"), _compare(view, either.input[1], "Less")
    if high is None or low is None or high[0] != low[0] or end.input[1] != high[0]:
        return None
    if not np.isclose(low[1], -high[1]):
        return None
    return [*high[2], *low[2], either, end], make_node("Shrink", [high[0]], end.output[0],
                                                      end.name, lambd=high[1], bias=0.0)


def _softshrink(end, view: View):
    """Where(x > λ, x − λ, 0) + Where(x < −λ, x + λ, 0), as PyTorch exports Softshrink."""
    if end.op_type != "Add":
        return None
    parts = [view.made_by(name, "Where") for name in end.input]
    if any(p is None or scalar(view, p.input[2]) != 0.0 for p in parts):
        return None
    high, low = _compare(view, parts[0].input[0], "Greater"), _compare(view, parts[1].input[0],
                                                                       "Less")
    sub, add = view.made_by(parts[0].input[1], "Sub"), view.made_by(parts[1].input[1], "Add")
    if None in (high, low, sub, add) or high[0] != low[0] or not np.isclose(low[1], -high[1]):
        return None
    x, lambd = high[0], high[1]
    if list(sub.input[:1]) != [x] or add.input[0] != x or scalar(view, sub.input[1]) != lambd \
            or scalar(view, add.input[1]) != lambd:
        return None
    return ([*high[2], *low[2], sub, add, *parts, end],
            make_node("Shrink", [x], end.output[0], end.name, lambd=lambd, bias=lambd))


ACTIVATIONS = (_gelu, _softplus, _silu, _mish, _hardswish, _log_sigmoid, _softmin, _softsign,
               _glu, _hardshrink, _softshrink)
