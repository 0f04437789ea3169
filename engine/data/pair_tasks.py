"""Built-in sequence-to-sequence tasks with known answers, each drawn from a seeded generator.

Every task returns a list of (source, target) strings; ``engine.data.pairs`` turns them into
token ids. They are small enough to learn in minutes and exact enough that a wrong answer is
plainly wrong: ``reverse`` ("abc" -> "cba"), ``sort`` ("cab" -> "abc"), ``copy`` (each letter
moved ``shift`` places on in the alphabet: "abc" -> "cde" for shift 2, a plain copy for 0),
``addition`` written out ("12+345=" -> "357") and ``date`` ("5 Mar 2024" -> "2024-03-05").
"""
from __future__ import annotations

import numpy as np

LETTERS = "abcdefghijklmnopqrstuvwxyz"
# English in any locale (calendar.month_abbr follows the locale)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _words(rng: np.random.Generator, n: int, length: int, symbols: int) -> list[str]:
    """``n`` random strings of 1..``length`` letters from the first ``symbols`` letters."""
    sizes = rng.integers(1, length + 1, size=n)
    return ["".join(LETTERS[i] for i in rng.integers(0, symbols, size=k)) for k in sizes]


def reverse_pairs(rng, n: int, length: int, symbols: int, **_) -> list[tuple[str, str]]:
    return [(w, w[::-1]) for w in _words(rng, n, length, symbols)]


def sort_pairs(rng, n: int, length: int, symbols: int, **_) -> list[tuple[str, str]]:
    return [(w, "".join(sorted(w))) for w in _words(rng, n, length, symbols)]


def copy_pairs(rng, n: int, length: int, symbols: int, shift: int = 0, **_) -> list[tuple[str, str]]:
    """Each letter moved ``shift`` places on, wrapping within the letters in use."""
    def moved(w: str) -> str:
        return "".join(LETTERS[(LETTERS.index(c) + shift) % symbols] for c in w)
    return [(w, moved(w)) for w in _words(rng, n, length, symbols)]


def addition_pairs(rng, n: int, digits: int = 3, **_) -> list[tuple[str, str]]:
    """Two numbers of 1..``digits`` digits each (every width equally likely, so short sums are
    not rare) and their sum, written out."""
    def number() -> int:
        width = int(rng.integers(1, digits + 1))
        return int(rng.integers(0 if width == 1 else 10 ** (width - 1), 10 ** width))
    out = []
    for _ in range(n):
        a, b = number(), number()
        out.append((f"{a}+{b}=", str(a + b)))
    return out


def date_pairs(rng, n: int, **_) -> list[tuple[str, str]]:
    """A day of 1900-2099 written "5 Mar 2024", to its ISO form "2024-03-05"."""
    start = np.datetime64("1900-01-01")
    days = rng.integers(0, 200 * 365 + 49, size=n)  # 1900-01-01 .. 2099-12-31
    out = []
    for d in days:
        year, month, day = (int(v) for v in str(start + int(d)).split("-"))
        out.append((f"{day} {MONTHS[month - 1]} {year}", f"{year:04d}-{month:02d}-{day:02d}"))
    return out


TASKS = {"reverse": reverse_pairs, "sort": sort_pairs, "copy": copy_pairs,
         "addition": addition_pairs, "date": date_pairs}
