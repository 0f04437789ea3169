"""The memory budget: how many bytes a graph may ask for, checked on shapes before anything exists.

Shape inference knows every parameter's and every output's shape, so it can say what training a
graph would take before ``init`` allocates a byte: a Dense layer of 2,000 inputs and 10⁶ outputs
is refused as a node error while it is being edited, instead of freezing the window. The budget
is a fraction of physical memory unless a setting (the window's Memory Budget, ``set_budget``) or
the environment variable ``LAYERLOOM_MEMORY_BUDGET`` ("8G", "512M", "25%", bytes) says otherwise.
"""
from __future__ import annotations

import math
import os
import re

from layerloom.engine.spec import LayerloomError

ENV = "LAYERLOOM_MEMORY_BUDGET"
DEFAULT_FRACTION = 0.5  # of physical memory: the rest is for the OS, Qt and the data set
FALLBACK_BYTES = 4 * 10**9  # when the machine does not say how much memory it has
# Training holds each parameter as weights, gradient, two optimiser moments (Adam) and the last
# good copy kept for a divergence; each output as its value and its gradient.
PARAM_COPIES = 5
ACTIVATION_COPIES = 2
# Per sample and port: beyond this, numpy's int64 products over shapes could overflow.
MAX_ELEMENTS = 2**48

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_setting: int | None = None


class BudgetError(LayerloomError):
    """A memory budget setting that cannot be read."""


def physical_memory() -> int:
    """Bytes of RAM, or a modest guess where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return FALLBACK_BYTES


def parse_budget(text: str) -> int:
    """``"8G"`` (binary units K, M, G, T; an optional trailing B), ``"25%"`` of physical memory,
    or a plain number of bytes; raises BudgetError in one line."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|[KMGT]?)i?B?\s*", str(text)[:40], re.IGNORECASE)
    if m is None:
        raise BudgetError(f"memory budget: expected bytes with an optional K/M/G/T unit or a "
                          f"percentage (8G, 50%), got {str(text)[:40]!r}")
    number, unit = float(m.group(1)), m.group(2).upper()
    if unit == "%":
        if not 0 < number <= 100:
            raise BudgetError(f"memory budget: a percentage must be in (0, 100], got {number:g}%")
        return int(physical_memory() * number / 100)
    value = int(number * _UNITS[unit])
    if value < 2**20:
        raise BudgetError(f"memory budget: at least 1M, got {text.strip()!r}")
    return value


def set_budget(value: str | int | None) -> None:
    """The window's setting (or a tool's): bytes or a budget text; None returns to the
    environment or the default. Raises BudgetError for a text that cannot be read."""
    global _setting
    _setting = None if value is None else (value if isinstance(value, int) else parse_budget(value))


def memory_budget(strict: bool = False) -> int:
    """The budget in bytes: the setting, else the environment, else a fraction of the RAM. A bad
    environment value raises BudgetError when ``strict`` (the CLI says so at start) and is passed
    over otherwise (shape inference runs on every edit and never raises)."""
    if _setting is not None:
        return _setting
    text = os.environ.get(ENV, "").strip()
    if text:
        try:
            return parse_budget(text)
        except BudgetError as err:
            if strict:
                raise BudgetError(f"{ENV}: {err}") from None
    return int(physical_memory() * DEFAULT_FRACTION)


def fmt_bytes(n: int | float) -> str:
    """Decimal units, as a person reads a size: 8.0 GB, 512.0 kB."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n)} B"


def fmt_dims(dims) -> str:
    return "×".join(f"{d:,}" for d in dims) if dims else "scalar"


def count(dims) -> int:
    """Elements of a shape in Python integers (numpy's int64 would overflow silently)."""
    return math.prod(int(d) for d in dims)


def valid_dims(dims) -> bool:
    """Every entry a non-negative integer (the batch, or an unknown length, may be None) and the
    whole within MAX_ELEMENTS."""
    if not isinstance(dims, tuple):
        return False
    known = []
    for d in dims:
        if d is None:
            continue
        if isinstance(d, bool) or not hasattr(d, "__index__") or int(d) < 0:
            return False
        known.append(int(d))
    return count(known) <= MAX_ELEMENTS


# ------------------------------------------------------------------------------ block expansion
MAX_LAYERS = 100_000  # layer nodes a model may expand to (its blocks' copies included)
MAX_NESTING = 32  # blocks inside blocks
_CAP = 10**15  # sizes saturate here: nesting ×1000 repeats must not build astronomical integers


def block_sizes(graph) -> dict:
    """Per block definition of ``graph``'s model: (layers it expands to with its repeats, nodes
    shape inference walks for it (each instance once), nesting depth), without expanding
    anything: definitions are sized from the ones they use, children first, iteratively."""
    from layerloom.engine.block_types import BLOCK, BLOCK_INPUT, BLOCK_OUTPUT

    blocks, sizes, visiting = graph.blocks, {}, set()
    for root in blocks:
        stack = [(root, False)]
        while stack:
            name, ready = stack.pop()
            if name in sizes or (not ready and name in visiting):
                continue  # done, or a cycle (the Graph refuses those): counted as empty
            nodes = list(blocks[name].nodes.values())
            subs = [n.attrs["block"] for n in nodes if n.type == BLOCK and n.attrs["block"] in blocks]
            if not ready:
                visiting.add(name)
                stack.append((name, True))
                stack.extend((s, False) for s in subs if s not in sizes)
                continue
            layers = walks = 0
            depth = 1
            for n in nodes:
                if n.type == BLOCK:
                    sub = sizes.get(n.attrs["block"], (0, 0, 0))
                    layers = min(_CAP, layers + n.attrs["repeat"] * sub[0])
                    walks, depth = min(_CAP, walks + 1 + sub[1]), max(depth, sub[2] + 1)
                else:
                    layers += n.type not in (BLOCK_INPUT, BLOCK_OUTPUT)
                    walks += 1
            sizes[name] = (layers, walks, depth)
            visiting.discard(name)
    return sizes


def oversized_blocks(graph) -> dict:
    """{node id: one line} for the model's block instances that expand beyond MAX_LAYERS (alone
    or, for the largest, all together) or nest deeper than MAX_NESTING; {} for most graphs."""
    from layerloom.engine.block_types import BLOCK

    instances = [n for n in graph.nodes.values() if n.type == BLOCK]
    if not instances:
        return {}
    sizes = block_sizes(graph)
    out, total = {}, {}
    for n in instances:
        layers, walks, depth = sizes.get(n.attrs["block"], (0, 0, 0))
        layers = min(_CAP, layers * n.attrs["repeat"])
        total[n.id] = max(layers, walks)
        if depth > MAX_NESTING:
            out[n.id] = f"blocks nest {depth} deep inside it; at most {MAX_NESTING}"
        elif total[n.id] > MAX_LAYERS:
            out[n.id] = (f"block {n.attrs['block']!r} ×{n.attrs['repeat']} expands to "
                         f"{_count_text(total[n.id])} layers; a model holds at most {MAX_LAYERS:,}")
    if not out and sum(total.values()) > MAX_LAYERS:
        big = max(total, key=total.get)
        out[big] = (f"the model's blocks expand to {_count_text(sum(total.values()))} layers in "
                    f"all; at most {MAX_LAYERS:,}")
    return out


def _count_text(n: int) -> str:
    return f"over {_CAP:,}" if n >= _CAP else f"{n:,}"
