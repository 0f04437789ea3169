"""Character-level language-model data from any UTF-8 text file.

The vocabulary is the set of characters in the text (sorted, so it is the same every time the same
text is read); ``class_names`` holds it, one character per class id. The text is cut into windows
of ``seq_len + 1`` characters that overlap by one; each gives a sample ``x`` = the first
``seq_len`` ids and targets ``y`` = the next character at every position (x shifted by one). The
windows, whose targets never overlap, are dealt into train / validation / test with the seed.

``text`` (no path) reads a bundled corpus from ``resources/text/`` (sources and licences in the
README there): by default ``corpus=kjv``, the King James Bible (4.1 million characters, 63
distinct: big and regular enough that a small model writes recognisable words within minutes);
``corpus=docstrings``, the docstrings of Python's standard library (58 k characters), rebuilt with
``python -m engine.data.text`` (from the stdlib sources, without importing any of them).
"""
from __future__ import annotations

import gzip
import sys
from os import PathLike
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset, holdout
from layerloom.engine.data.masking import MASK_TOKEN, check_rate, masked_windows
from layerloom.engine.files import read_regular
from layerloom.engine.paths import RESOURCES

DEFAULT_TEXT = RESOURCES / "text" / "python_docstrings.txt"
CORPORA = {  # name -> (file, description); gzip keeps the wheel small (4.1 MB -> 1.2 MB)
    "kjv": (RESOURCES / "text" / "kjv.txt.gz", "the King James Bible (public domain)"),
    "docstrings": (DEFAULT_TEXT, "Python standard-library docstrings (PSF licence)"),
}
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
    # code points looked up in the sorted vocabulary: vectorised, a 4 MB corpus in ~0.1 s
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = np.array([ord(ch) for ch in vocab], dtype=np.uint32)
    order = np.argsort(table)
    pos = np.minimum(np.searchsorted(table[order], points), max(len(table) - 1, 0))
    found = table[order][pos] == points if len(table) else np.zeros(len(points), bool)
    if not found.all():
        missing = text[int(np.argmin(found))]
        raise DataError(f"character {missing!r} is not in the vocabulary of {len(vocab)} characters")
    return order[pos].astype(np.int64)


def decode(ids, vocab: list[str]) -> str:
    return "".join(vocab[int(i)] for i in ids)


def windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of shape (W, seq_len): consecutive windows whose y is x shifted by one character."""
    count = (len(ids) - 1) // seq_len
    starts = np.arange(count) * seq_len
    x = ids[starts[:, None] + np.arange(seq_len)]
    return x, ids[starts[:, None] + np.arange(1, seq_len + 1)]


def _first_chars(text: str, name: str, chars: int) -> str:
    """The first ``chars`` characters (0: all): a quicker epoch over a big corpus."""
    if isinstance(chars, bool) or not isinstance(chars, int) or chars < 0:
        raise DataError(f"{name}: chars must be a whole number >= 0 (0: all), got {chars!r}")
    return text[:chars] if chars else text


def _check_seq_len(seq_len: int, name: str) -> None:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or not 1 <= seq_len <= 100_000:
        raise DataError(f"{name}: seq_len must be an integer from 1 to 100,000, got {seq_len!r}")


def text_dataset(text: str, name: str, val_fraction: float, seed: int, seq_len: int,
                 description: str = "", chars: int = 0, mask: float = 0.0) -> Dataset:
    """A next-character Dataset from a string (see the module docstring). With ``chars`` only
    the text's first characters are cut into windows; the vocabulary stays the whole text's, so
    a model's width does not depend on how much of the text it saw. With ``mask`` > 0 it is a
    masked-LM set instead (``engine.data.masking``): windows of ``seq_len`` with that share of
    characters hidden, the targets the hidden characters, and ``[MASK]`` as one more class."""
    mask = check_rate(mask, name)
    _check_seq_len(seq_len, name)
    vocab = vocabulary(text)
    text = _first_chars(text, name, chars)
    if (len(text) - 1) // seq_len < MIN_WINDOWS:
        raise DataError(f"{name}: {len(text):,} characters make fewer than {MIN_WINDOWS} windows "
                        f"of {seq_len}: use a longer text or a shorter seq_len")
    distinct = len(vocab)
    ids = encode(text, vocab)
    if mask:
        x, y = masked_windows(ids, seq_len, len(vocab), mask, seed)
        about = f"masked characters ({mask:.0%} hidden) of {description or name}"
        vocab = vocab + [MASK_TOKEN]
    else:
        x, y = windows(ids, seq_len)
        about = f"next character of {description or name}"
    train, val, test = holdout(x, y, val_fraction, seed, test_fraction=0.1)
    return Dataset(name, train, val, test, task="classification", class_names=vocab,
                   description=f"{about} ({len(text):,} characters, {distinct} distinct)")


def load_text_file(path: str, val_fraction: float = 0.1, seed: int = 0, *,
                   seq_len: int = 64, chars: int = 0, mask: float = 0.0) -> Dataset:
    """``text:FILE``: a character language model over any UTF-8 text file."""
    return text_dataset(read_text(path), f"text:{Path(path).name}", val_fraction, seed, seq_len,
                        chars=chars, mask=mask)


def read_corpus(corpus: str) -> str:
    """The text of a bundled corpus by name (see ``CORPORA``)."""
    if corpus not in CORPORA:
        raise DataError(f"text: unknown corpus {corpus!r} (bundled: {', '.join(CORPORA)})")
    path, _ = CORPORA[corpus]
    if not path.is_file():
        raise DataError(f"{path}: the bundled text is missing from this installation")
    if path.suffix != ".gz":
        return read_text(path)
    with gzip.open(path, "rb") as f:  # our own package data, but still bounded
        raw = f.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise DataError(f"{path.name}: more than {MAX_BYTES >> 20} MB once decompressed")
    return raw.decode("utf-8").replace("\r\n", "\n")


def load_default_text(val_fraction: float = 0.1, seed: int = 0, *, seq_len: int = 64,
                      corpus: str = "kjv", chars: int = 0, mask: float = 0.0,
                      label: str = "next") -> Dataset:
    """``text``: a bundled corpus (``corpus=kjv``, the default, or ``corpus=docstrings``).
    ``label=testament`` (the Bible only) classifies windows as Old or New Testament instead of
    predicting characters: the fine-tuning task of a masked-LM encoder."""
    _, about = CORPORA.get(corpus, (None, ""))
    text = read_corpus(corpus)
    if label == "next":
        return text_dataset(text, "text", val_fraction, seed, seq_len, about, chars, mask)
    if label != "testament" or corpus != "kjv":
        raise DataError(f"text: label must be 'next' or (for corpus kjv) 'testament', got {label!r}")
    from layerloom.engine.data.testament import testament_dataset, testament_split

    _check_seq_len(seq_len, "text")
    _first_chars(text, "text", chars)  # checks chars
    ids = encode(text, vocabulary(text))
    return testament_dataset(ids, testament_split(text), seq_len, chars, val_fraction, seed, about)


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
