"""Character-level language-model data from any UTF-8 text file.

The vocabulary is the set of characters in the text (sorted, so it is the same every time the same
text is read); ``class_names`` holds it, one character per class id. The text is cut into windows
of ``seq_len + 1`` characters that overlap by one; each gives a sample ``x`` = the first
``seq_len`` ids and targets ``y`` = the next character at every position (x shifted by one). The
windows, whose targets never overlap, are dealt into train / validation / test with the seed.

``text`` (no path) reads the bundled default corpus in ``resources/text/``: docstrings of Python's
standard library (PSF licence, see the README there). Rebuild it with
``python -m engine.data.text`` (from the stdlib sources, without importing any of them).
"""
from __future__ import annotations

import sys
from os import PathLike
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset, holdout
from layerloom.engine.files import read_regular
from layerloom.engine.paths import RESOURCES

DEFAULT_TEXT = RESOURCES / "text" / "python_docstrings.txt"
MIN_WINDOWS = 10
MAX_BYTES = 32 << 20  # ids, windows and splits take ~40 bytes a character: ~1.3 GB at the cap


def read_text(path: str | PathLike) -> str:
    """A file's UTF-8 text with newlines normalised to ``\\n``; DataError on any problem."""
    path = Path(path)
    raw = read_regular(path, DataError, MAX_BYTES)  # a device or FIFO is refused, not read
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path.name}: not UTF-8 text (byte {err.start} cannot be decoded)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def vocabulary(text: str) -> list[str]:
    """The distinct characters of ``text``, sorted by code point."""
    return sorted(set(text))


def encode(text: str, vocab: list[str]) -> np.ndarray:
    """Characters -> int64 ids; DataError naming the first character not in ``vocab``."""
    index = {ch: i for i, ch in enumerate(vocab)}
    missing = next((ch for ch in text if ch not in index), None)
    if missing is not None:
        raise DataError(f"character {missing!r} is not in the vocabulary of {len(vocab)} characters")
    return np.fromiter((index[ch] for ch in text), dtype=np.int64, count=len(text))


def decode(ids, vocab: list[str]) -> str:
    return "".join(vocab[int(i)] for i in ids)


def windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of shape (W, seq_len): consecutive windows whose y is x shifted by one character."""
    count = (len(ids) - 1) // seq_len
    starts = np.arange(count) * seq_len
    x = ids[starts[:, None] + np.arange(seq_len)]
    return x, ids[starts[:, None] + np.arange(1, seq_len + 1)]


def text_dataset(text: str, name: str, val_fraction: float, seed: int, seq_len: int,
                 description: str = "") -> Dataset:
    """A next-character Dataset from a string (see the module docstring)."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not 1 <= seq_len <= 100_000:
        raise DataError(f"{name}: seq_len must be an integer from 1 to 100,000, got {seq_len!r}")
    if (len(text) - 1) // seq_len < MIN_WINDOWS:
        raise DataError(f"{name}: {len(text):,} characters make fewer than {MIN_WINDOWS} windows "
                        f"of {seq_len}: use a longer text or a shorter seq_len")
    vocab = vocabulary(text)
    x, y = windows(encode(text, vocab), seq_len)
    train, val, test = holdout(x, y, val_fraction, seed, test_fraction=0.1)
    return Dataset(name, train, val, test, task="classification", class_names=vocab,
                   description=description or f"next character of {name} ({len(text):,} "
                                              f"characters, {len(vocab)} distinct)")


def load_text_file(path: str, val_fraction: float = 0.1, seed: int = 0, *,
                   seq_len: int = 64) -> Dataset:
    """``text:FILE``: a character language model over any UTF-8 text file."""
    return text_dataset(read_text(path), f"text:{Path(path).name}", val_fraction, seed, seq_len)


def load_default_text(val_fraction: float = 0.1, seed: int = 0, *, seq_len: int = 64) -> Dataset:
    """``text``: the bundled corpus of Python standard-library docstrings."""
    if not DEFAULT_TEXT.is_file():
        raise DataError(f"{DEFAULT_TEXT}: the bundled text is missing from this installation")
    return text_dataset(read_text(DEFAULT_TEXT), "text", val_fraction, seed, seq_len,
                        "next character of Python standard-library docstrings (PSF licence)")


# ------------------------------------------------------------------- rebuilding the corpus
CORPUS_MODULES = ("heapq", "bisect", "textwrap", "random", "sched", "queue", "functools",
                  "contextlib", "string", "fnmatch", "argparse", "copy", "json/__init__",
                  "collections/__init__")


def docstring_corpus(stdlib: Path, modules=CORPUS_MODULES) -> str:
    """The module docstring, then every public class's and function's, of each module's source.

    Sources are parsed with ``ast`` and never imported; characters outside printable ASCII are
    dropped so the vocabulary stays small.
    """
    import ast

    parts = []
    for name in modules:
        tree = ast.parse((stdlib / f"{name}.py").read_text(encoding="utf-8"))
        docs = [ast.get_docstring(tree, clean=True)]
        docs += [ast.get_docstring(node, clean=True) for node in ast.walk(tree)
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 and not node.name.startswith("_")]
        parts.extend(d.strip() for d in docs if d and d.strip())
    text = "\n\n".join(parts) + "\n"
    return "".join(ch for ch in text if ch == "\n" or " " <= ch <= "~")


if __name__ == "__main__":
    import sysconfig

    corpus = docstring_corpus(Path(sysconfig.get_paths()["stdlib"]))
    DEFAULT_TEXT.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_TEXT.write_text(corpus, encoding="utf-8")
    print(f"{DEFAULT_TEXT}: {len(corpus):,} characters, {len(set(corpus))} distinct, "
          f"from Python {sys.version.split()[0]}")
