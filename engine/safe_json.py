"""JSON parsing with limits: any file Layerloom reads as JSON parses to plain data or one error line.

Python's ``json`` raises RecursionError for deep nesting, ValueError for an integer literal of
over 4,300 digits, keeps the last of two equal keys silently and accepts NaN and Infinity. Here
nesting is measured before parsing, integer literals are refused above a few dozen digits by a
``parse_int`` hook (Python would otherwise spend quadratic time on them), NaN/Infinity are
refused, and a duplicated key is reported with its path.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from layerloom.engine.spec import LayerloomError

MAX_DEPTH = 64  # a graph file needs about 5 (top level, nodes, a node, attrs, a shape list)
MAX_INT_DIGITS = 40  # int64 has 19; anything longer is refused, never converted


class JSONLimitError(LayerloomError):
    """Text that is not JSON, or JSON beyond the limits; the message is one line."""


class _Object(dict):
    """An object that had a key twice: ``duplicate`` names it (the walk reports its path)."""

    duplicate: str = ""


def _pairs_hook(found: list):
    def pairs(pairs: list) -> dict:
        out = dict(pairs)
        if len(out) == len(pairs):
            return out
        seen, obj = set(), _Object(out)
        obj.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        found.append(obj)
        return obj
    return pairs


class _Literal(Exception):
    def __init__(self, text: str):
        self.text = text


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Literal(text)
    return int(text)


def _constant(name: str) -> Any:
    raise _Literal(name)


def nesting_depth(text: str) -> int:
    """The deepest level of ``[``/``{`` in JSON text, strings ignored; linear time, no recursion.

    Exact on every valid prefix (the only part the parser descends into): with escaped
    backslashes and then escaped quotes removed, every other ``"`` opens or closes a string."""
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    bare = "".join(unescaped.split('"')[::2]).encode("utf-8", "replace")
    codes = np.frombuffer(bare, dtype=np.uint8)
    if not codes.size:
        return 0
    step = (np.isin(codes, (0x5B, 0x7B)).astype(np.int32)
            - np.isin(codes, (0x5D, 0x7D)).astype(np.int32))
    return int(np.cumsum(step).max(initial=0))


def _where(text: str, literal: str) -> str:
    pos = text.find(literal)
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - text.rfind(chr(10), 0, pos)}"


def loads(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text``; raises JSONLimitError (one line, with a line and column where it helps)."""
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JSONLimitError(f"nested {depth:,} levels deep; at most {max_depth} are allowed")
    found: list = []
    try:
        data = json.loads(text, parse_int=_int, parse_constant=_constant,
                          object_pairs_hook=_pairs_hook(found))
    except _Literal as lit:
        if lit.text.lstrip("-").isdigit():
            raise JSONLimitError(f"an integer of {len(lit.text.lstrip('-')):,} digits at "
                                 f"{_where(text, lit.text)}: at most {MAX_INT_DIGITS} are "
                                 f"allowed") from None
        raise JSONLimitError(f"{lit.text} at {_where(text, lit.text)} is not a JSON number") from None
    except json.JSONDecodeError as err:
        raise JSONLimitError(f"not valid JSON (line {err.lineno}, column {err.colno}: "
                             f"{err.msg})") from None
    except RecursionError:  # cannot happen below MAX_DEPTH; kept so no limit change can crash
        raise JSONLimitError("nested too deeply") from None
    if found:
        raise JSONLimitError(_first_duplicate(data))
    return data


def _first_duplicate(data: Any) -> str:
    """'nodes[2].attrs: the key "units" appears twice', for the first such object, or None."""
    todo = [("", data)]
    while todo:
        path, value = todo.pop()
        if isinstance(value, dict):
            if isinstance(value, _Object):
                return f"{path or 'top level'}: the key {value.duplicate!r} appears twice"
            todo.extend((join(path, k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            todo.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return "a key appears twice in one object"


def join(path: str, key: str) -> str:
    """``nodes[3].attrs`` + ``units``: a plain key reads as ``.units``, any other as ``["..."]``."""
    part = f".{key}" if key.isidentifier() and len(key) <= 40 else f"[{json.dumps(key[:40])}]"
    return (path + part).lstrip(".")
