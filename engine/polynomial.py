"""f and ∇f as formulas, for a graph that is a polynomial in scalar Parameters.

The founding text writes the gradient of ``f(x, y, z) = 2x² + y³ + z`` as ``(4x, 3y², 1)``: symbols
first, numbers second. The Explain tab shows both. A graph built only from scalar Parameter nodes
and Scale, Bias, Pow (whole exponents), Add, Subtract, Multiply, Sum, Mean and an Objective is a
polynomial in those variables; it is read here into ``{exponents: coefficient}`` form, so f and
every ∂f/∂v come out exactly and simplified (``2·(2x)`` is ``4x``). Any other node (a Dense, a
non-scalar tensor, a fractional power) means no formula — the numbers alone are still shown.
"""
from __future__ import annotations

from layerloom.engine.graph import Graph

Poly = dict  # tuple of exponents (one per variable) -> coefficient
MAX_POWER = 8  # a larger whole exponent would make an unreadable expansion
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
PASS_THROUGH = ("Sum", "Mean", "Objective")  # of one scalar per sample: the value itself


def _const(c: float, n: int) -> Poly:
    return {(0,) * n: float(c)} if c else {}


def _add(a: Poly, b: Poly, sign: float = 1.0) -> Poly:
    out = dict(a)
    for m, c in b.items():
        out[m] = out.get(m, 0.0) + sign * c
    return {m: c for m, c in out.items() if c != 0}


def _mul(a: Poly, b: Poly) -> Poly:
    out: Poly = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            m = tuple(i + j for i, j in zip(ma, mb))
            out[m] = out.get(m, 0.0) + ca * cb
    return {m: c for m, c in out.items() if c != 0}


def _scale(a: Poly, k: float) -> Poly:
    return {m: c * k for m, c in a.items() if c * k != 0}


def _power(a: Poly, k: int, n: int) -> Poly:
    out = _const(1.0, n)
    for _ in range(k):
        out = _mul(out, a)
    return out


def derivative(p: Poly, i: int) -> Poly:
    """∂p/∂(variable i)."""
    out: Poly = {}
    for m, c in p.items():
        if m[i]:
            d = m[:i] + (m[i] - 1,) + m[i + 1:]
            out[d] = out.get(d, 0.0) + c * m[i]
    return {m: c for m, c in out.items() if c != 0}


def _is_scalar_parameter(node) -> bool:
    shape = node.attrs.get("shape", (1,))
    return all(int(d) == 1 for d in shape)


def _node_poly(graph: Graph, node_id: str, polys: dict, names: list) -> Poly | None:
    node, n = graph.nodes[node_id], len(names)
    ins = [polys.get(e.src[0]) for e in sorted(graph.edges_into(node_id),
                                                key=lambda e: graph.layer(node_id).inputs.index(e.dst[1]))]
    if any(p is None for p in ins) or len(ins) != len(graph.layer(node_id).inputs):
        return None
    t, a = node.type, node.attrs
    if t in PASS_THROUGH:
        return ins[0]
    if t == "Scale":
        return _scale(ins[0], float(a.get("factor", 2.0)))
    if t == "Bias":
        return _add(ins[0], _const(float(a.get("value", 0.0)), n))
    if t == "Pow":
        k = float(a.get("exponent", 2.0))
        return _power(ins[0], int(k), n) if k.is_integer() and 0 <= k <= MAX_POWER else None
    if t in ("Add", "Subtract"):
        return _add(ins[0], ins[1], -1.0 if t == "Subtract" else 1.0)
    if t == "Multiply":
        return _mul(ins[0], ins[1])
    return None


def polynomial(graph: Graph) -> tuple[list, Poly] | None:
    """(variable node ids, f) of a data-free graph that is a polynomial in scalar Parameters;
    None for any other graph."""
    losses = [n for n in graph.nodes if graph.layer(n).is_loss]
    if len(losses) != 1:
        return None
    order = graph.topological_order()
    names = [n for n in order if graph.nodes[n].type == "Parameter"]
    if not names or not all(_is_scalar_parameter(graph.nodes[n]) for n in names):
        return None
    polys: dict = {}
    for i, node_id in enumerate(names):
        polys[node_id] = {tuple(int(j == i) for j in range(len(names))): 1.0}
    for node_id in order:
        if node_id not in polys:
            polys[node_id] = _node_poly(graph, node_id, polys, names)
    f = polys.get(losses[0])
    return (names, f) if f is not None else None


def _number(c: float) -> str:
    return str(int(c)) if float(c).is_integer() else f"{c:g}"


def _monomial(m: tuple, names: list) -> str:
    parts = [names[i] + (str(e).translate(SUPERSCRIPTS) if e > 1 else "")
             for i, e in enumerate(m) if e]
    return "·".join(parts)


def _order(m: tuple) -> tuple:
    """Terms by their first variable (x before y), then highest degree: ``2x² + y³ + z``, with
    the constant last."""
    first = next((i for i, e in enumerate(m) if e), len(m))
    return first, -sum(m), [-e for e in m]


def text(p: Poly, names: list) -> str:
    """``2x² + y³ + z``: by variable, highest degree first; a coefficient joins a one-letter
    name directly (``4x``), a longer one with a dot (``4·rate``)."""
    if not p:
        return "0"
    terms = sorted(p.items(), key=lambda mc: _order(mc[0]))
    out = ""
    for k, (m, c) in enumerate(terms):
        sign = ("−" if c < 0 else "") if k == 0 else (" − " if c < 0 else " + ")
        body, size = _monomial(m, names), abs(c)
        if not body:
            term = _number(size)
        elif size == 1:
            term = body
        else:
            joint = "" if len(names[next(i for i, e in enumerate(m) if e)]) == 1 else "·"
            term = _number(size) + joint + body
        out += sign + term
    return out


def gradient_text(graph: Graph, wrt: list) -> tuple[str, list] | None:
    """(f, [∂f/∂v for v in wrt]) as formulas over the variables' node ids, or None when the
    graph is not a polynomial in scalar Parameters (or ``wrt`` names another node)."""
    found = polynomial(graph)
    if found is None or not all(v in found[0] for v in wrt):
        return None
    names, f = found
    return text(f, names), [text(derivative(f, names.index(v)), names) for v in wrt]
