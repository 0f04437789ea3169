"""A text-classification task on the bundled Bible: which Testament is a stretch of text from?

It is what a pretrained masked-LM encoder is fine-tuned on (``samples/bert_finetune.json``): the
input is characters from the same vocabulary the encoder was pretrained on, the answer (Old or New
Testament) hangs on words, names and style (*LORD*, *Israel*, *thee* against *Jesus*, *disciples*,
*church*), which a character model has to have learnt to read. The two classes are balanced: all
windows of the New Testament and as many evenly spaced ones of the (three times longer) Old.
"""
from __future__ import annotations

import numpy as np

from layerloom.engine.data import DataError, Dataset, holdout

NEW_TESTAMENT_VERSE = 23_145  # 0-based line of Matthew 1:1 in kjv.txt.gz (one verse a line)
CLASS_NAMES = ["Old Testament", "New Testament"]


def testament_split(text: str) -> int:
    """The character offset where the New Testament starts (checked, not assumed)."""
    start = 0
    for _ in range(NEW_TESTAMENT_VERSE):
        start = text.index("\n", start) + 1
    if not text.startswith("The book of the generation of Jesus Christ", start):
        raise DataError("text: the bundled Bible's New Testament is not where it should be")
    return start


def testament_dataset(ids: np.ndarray, split: int, seq_len: int, chars: int,
                      val_fraction: float, seed: int, description: str) -> Dataset:
    """Windows of ``seq_len`` ids labelled 0 (Old) or 1 (New); ``chars`` (0: all) caps the
    characters used, half from each Testament."""
    per_class = (len(ids) - split) // seq_len
    if chars:
        per_class = min(per_class, chars // (2 * seq_len))
    if per_class < 5:
        raise DataError(f"text: {chars:,} characters make fewer than 5 windows of {seq_len} a "
                        f"Testament: use more characters or a shorter seq_len")
    old_starts = np.linspace(0, split - seq_len, per_class).astype(np.int64)
    new_starts = split + np.arange(per_class, dtype=np.int64) * seq_len
    starts = np.concatenate([old_starts, new_starts])
    x = ids[starts[:, None] + np.arange(seq_len)]
    y = np.repeat(np.arange(2, dtype=np.int64), per_class)
    train, val, test = holdout(x, y, val_fraction, seed, test_fraction=0.1)
    return Dataset("text", train, val, test, task="classification", class_names=list(CLASS_NAMES),
                   description=f"Old or New Testament? {2 * per_class:,} windows of {seq_len} "
                               f"characters of {description}")
