"""``short``: a bounded ``repr`` for error messages about values read from files.

Its own module, importing nothing of Layerloom, so the attribute descriptors (``engine.spec``) and
every reader can use it without importing each other.
"""
from __future__ import annotations

import reprlib
from typing import Any


class _ShortRepr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        # repr() itself refuses ints of over 4300 digits; say how big instead
        return repr(x) if abs(x) < 10**30 else f"<{'-' if x < 0 else ''}{x.bit_length()}-bit integer>"


_SHORT = _ShortRepr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 30, 30


def short(value: Any, limit: int = 40) -> str:
    """A bounded ``repr(value)``: an error message stays one short line whatever a file put in
    the value (a megabyte string, a deep list, a 5,000-digit integer)."""
    text = _SHORT.repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"
