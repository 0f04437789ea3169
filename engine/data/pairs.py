"""Paired sequences for encoder-decoder models (``pairs:TASK`` or ``pairs:FILE.tsv``).

A sample is a source and a target token sequence. The graph takes them through its one Input
node, packed side by side so every reader, batcher and exporter that handles one int64 array
handles these too. ``x`` holds three parts of ``steps`` ids each (``steps`` = the longer of the
longest source and the longest target plus its end token): the source ids padded with
``<pad>``; the decoder input, ``<s>`` followed by the target (the target shifted right: teacher
forcing), padded; and the source's key-padding mask, 1 at a padded source position (what
``MultiHeadAttention``'s ``key_padding_mask`` takes). Three equal parts, so a graph cuts them
apart with one Chunk node (``chunks=3``) whatever the lengths: the same graph trains on a
shorter or longer version of a task. ``y`` = the target followed by ``</s>``, with ``-100``
(the cross-entropy's ``ignore_index``) at the padded positions, so padding adds nothing to the
loss.

Built-in tasks (``engine.data.pair_tasks``) have a fixed vocabulary and fixed lengths, so a
graph made for one keeps its shapes whatever the sample count. A ``.tsv`` file holds a person's
own pairs, ``source<TAB>target`` a line, read as characters or, with ``tokens=word``, as words
split at spaces; its vocabulary is every token of the file, sorted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from layerloom.engine.data import DataError, Dataset, holdout
from layerloom.engine.data.pair_tasks import LETTERS, MONTHS, TASKS
from layerloom.engine.data.text import read_text
from layerloom.engine.layers.losses import IGNORE_INDEX

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<s>", "</s>")
MAX_SAMPLES = 1_000_000
MAX_TOKENS = 1000  # per side of a pair: longer lines are not what this is for


@dataclass(frozen=True)
class PairFormat:
    """How text becomes the packed ids and back: what decoding and the Inference tab need."""

    vocab: tuple  # id -> token; the first three are SPECIALS
    source_len: int
    target_len: int  # decoder steps: the longest target plus its end token
    words: bool = False  # tokens are words split at spaces, not characters

    @property
    def steps(self) -> int:
        """The length of each of the three parts of a packed sample."""
        return max(self.source_len, self.target_len)

    def to_dict(self) -> dict:
        return {"kind": "pairs", "source_len": self.source_len, "target_len": self.target_len,
                "tokens": "word" if self.words else "char"}

    @classmethod
    def of(cls, dataset: Dataset) -> "PairFormat":
        """The format of a ``pairs:`` data set; DataError for any other data."""
        prep = dataset.preprocessing or {}
        if prep.get("kind") != "pairs":
            raise DataError(f"data {dataset.name!r} is not paired sequences: choose a pairs: "
                            f"data set (pairs:addition, pairs:FILE.tsv, ...)")
        return cls(tuple(dataset.class_names), prep["source_len"], prep["target_len"],
                   prep["tokens"] == "word")

    def split(self, text: str) -> list[str]:
        return text.split() if self.words else list(text)

    def join(self, tokens: list[str]) -> str:
        return (" " if self.words else "").join(tokens)

    def encode_source(self, text: str) -> np.ndarray:
        """A typed source as ``source_len`` ids; DataError naming an unknown token or the length."""
        tokens = self.split(text)
        if not tokens:
            raise DataError("the source is empty: type something to translate")
        if len(tokens) > self.source_len:
            raise DataError(f"the source has {len(tokens)} tokens; this model reads at most "
                            f"{self.source_len}")
        index = {t: i for i, t in enumerate(self.vocab)}
        unknown = next((t for t in tokens if t not in index or index[t] < len(SPECIALS)), None)
        if unknown is not None:
            raise DataError(f"{unknown!r} is not in the vocabulary of the training data "
                            f"({self.join(list(self.vocab[len(SPECIALS):]))[:60]})")
        ids = np.full(self.steps, PAD, np.int64)
        ids[:len(tokens)] = [index[t] for t in tokens]
        return ids

    def decode(self, ids) -> str:
        """Target ids up to the first end token, as text (special tokens left out)."""
        out = []
        for i in ids:
            if int(i) == EOS:
                break
            if int(i) >= len(SPECIALS):
                out.append(self.vocab[int(i)])
        return self.join(out)


def packed_inputs(fmt: PairFormat, sources: np.ndarray) -> np.ndarray:
    """Source ids (N, steps) packed with their padding masks and a decoder input of ``<s>``
    and padding: the ``x`` decoding starts from."""
    n = fmt.steps
    x = np.full((len(sources), 3 * n), PAD, np.int64)
    x[:, :n] = sources
    x[:, n] = BOS
    x[:, 2 * n:] = sources == PAD
    return x


def pack(fmt: PairFormat, pairs: list[tuple[list[str], list[str]]]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of shapes (N, 3 steps) and (N, steps); see the module docstring."""
    index = {t: i for i, t in enumerate(fmt.vocab)}
    n = fmt.steps
    x = np.full((len(pairs), 3 * n), PAD, np.int64)
    y = np.full((len(pairs), n), IGNORE_INDEX, np.int64)
    for row, (src, tgt) in enumerate(pairs):
        x[row, :len(src)] = [index[k] for k in src]
        x[row, 2 * n + len(src):] = 1  # the source's padded positions
        ids = [index[k] for k in tgt]
        x[row, n] = BOS
        x[row, n + 1:n + 1 + len(ids)] = ids  # the target shifted right by one
        y[row, :len(ids)] = ids
        y[row, len(ids)] = EOS
    return x, y


def _task_vocab(task: str, symbols: int) -> list[str]:
    if task == "addition":
        return list("0123456789+=")
    if task == "date":
        return sorted(set("0123456789 -" + "".join(MONTHS)))
    return list(LETTERS[:symbols])


def _int(name: str, value, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DataError(f"{where}: {name} must be an integer from {low} to {high:,}, got {value!r}")
    return value


def task_pairs(task: str, seed: int, n: int, length: int, symbols: int, digits: int,
               shift: int) -> tuple[PairFormat, list]:
    """The format and the (source, target) token lists of a built-in task."""
    where = f"pairs:{task}"
    n = _int("n", n, 10, MAX_SAMPLES, where)
    length = _int("length", length, 1, MAX_TOKENS, where)
    symbols = _int("symbols", symbols, 2, len(LETTERS), where)
    digits = _int("digits", digits, 1, 18, where)
    shift = _int("shift", shift, 0, len(LETTERS), where)
    rng = np.random.default_rng(seed)
    pairs = TASKS[task](rng, n, length=length, symbols=symbols, digits=digits, shift=shift)
    lengths = {"addition": (2 * digits + 2, digits + 2), "date": (11, 11)}
    s, t = lengths.get(task, (length, length + 1))
    fmt = PairFormat(SPECIALS + tuple(_task_vocab(task, symbols)), s, t)
    return fmt, [(list(a), list(b)) for a, b in pairs]


def file_pairs(path: str, words: bool) -> tuple[PairFormat, list]:
    """The format and token lists of a ``source<TAB>target`` file; blank lines are skipped."""
    name = Path(path).name
    pairs = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        if line.count("\t") != 1:
            found = "no tab" if "\t" not in line else f"{line.count(chr(9))} tabs"
            raise DataError(f"{name} line {number}: expected source<TAB>target, found {found}")
        src, tgt = line.split("\t")
        src, tgt = (src.split(), tgt.split()) if words else (list(src), list(tgt))
        if not src or not tgt:
            raise DataError(f"{name} line {number}: the {'source' if not src else 'target'} "
                            f"is empty")
        if max(len(src), len(tgt)) > MAX_TOKENS:
            raise DataError(f"{name} line {number}: more than {MAX_TOKENS} tokens on one side")
        clash = next((k for k in src + tgt if k in SPECIALS), None)
        if clash is not None:
            raise DataError(f"{name} line {number}: {clash!r} is reserved for padding, start "
                            f"and end")
        pairs.append((src, tgt))
    if not pairs:
        raise DataError(f"{name}: no source<TAB>target lines")
    vocab = sorted({k for src, tgt in pairs for k in src + tgt})
    fmt = PairFormat(SPECIALS + tuple(vocab), max(len(s) for s, _ in pairs),
                     max(len(t) for _, t in pairs) + 1, words)
    return fmt, pairs


def load_pairs(arg: str, val_fraction: float = 0.1, seed: int = 0, *, n: int = 4000,
               length: int = 8, symbols: int = 10, digits: int = 3, shift: int = 2,
               tokens: str = "char") -> Dataset:
    """``pairs:TASK?n=4000`` (``length``/``symbols`` for reverse, sort and copy, ``shift`` for
    copy, ``digits`` for addition) or ``pairs:FILE.tsv?tokens=word``."""
    if arg in TASKS:
        fmt, pairs = task_pairs(arg, seed, n, length, symbols, digits, shift)
        name, what = f"pairs:{arg}", f"{arg} task"
    else:
        if tokens not in ("char", "word"):
            raise DataError(f"pairs:{arg}: tokens must be char or word, got {tokens!r}")
        if not arg.lower().endswith(".tsv") and not Path(arg).is_file():
            raise DataError(f"unknown pairs task {arg!r}: use one of {', '.join(TASKS)}, "
                            f"or a .tsv file of source<TAB>target lines")
        fmt, pairs = file_pairs(arg, tokens == "word")
        name, what = f"pairs:{Path(arg).name}", f"{len(pairs):,} pairs of {Path(arg).name}"
    x, y = pack(fmt, pairs)
    train, val, test = holdout(x, y, val_fraction, seed)
    description = (f"{what}: {len(pairs):,} source/target pairs, sources up to {fmt.source_len} "
                   f"and targets up to {fmt.target_len - 1} {'words' if fmt.words else 'characters'}"
                   f", {len(fmt.vocab) - len(SPECIALS)} distinct")
    return Dataset(name, train, val, test, task="classification", class_names=list(fmt.vocab),
                   description=description, preprocessing=fmt.to_dict())
