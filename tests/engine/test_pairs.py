"""Paired sequence data (``pairs:``) and the cross-entropy's ignore_index that its padding needs."""
from __future__ import annotations

import datetime
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerloom.engine.data import DataError, load_data
from layerloom.engine.data.pairs import BOS, EOS, PAD, PairFormat
from layerloom.engine.layers.losses import CrossEntropyLoss
from layerloom.engine.spec import AttrValues, Ctx


def pairs_of(spec: str) -> list[tuple[str, str]]:
    """Every (source, target) text of a data set, from its packed arrays."""
    d = load_data(spec)
    fmt = PairFormat.of(d)
    out = []
    for split in (d.train, d.val, d.test):
        for x, y in zip(split.x, split.y):
            out.append((fmt.decode(x[:fmt.source_len]), fmt.decode(y[y >= 0])))
    return out


def test_addition_targets_are_the_sums_written_out():
    pairs = pairs_of("pairs:addition?n=300&digits=3")
    assert len(pairs) == 300
    for source, target in pairs:
        a, b = source.rstrip("=").split("+")
        assert source.endswith("=") and int(target) == int(a) + int(b)
    assert max(len(s) for s, _ in pairs) == 8  # "999+999=": every width is drawn


def test_date_targets_are_the_same_days_in_iso_form():
    for source, target in pairs_of("pairs:date?n=200"):
        day = datetime.datetime.strptime(source, "%d %b %Y").date()
        assert target == day.isoformat()


@pytest.mark.parametrize("task,rule", [("reverse", lambda w: w[::-1]),
                                       ("sort", lambda w: "".join(sorted(w))),
                                       ("copy", lambda w: "".join(chr((ord(c) - 97 + 3) % 6 + 97)
                                                                  for c in w))])
def test_letter_tasks_have_their_known_answers(task, rule):
    pairs = pairs_of(f"pairs:{task}?n=100&length=5&symbols=6&shift=3")
    assert all(rule(s) == t for s, t in pairs)
    assert {len(s) for s, _ in pairs} == {1, 2, 3, 4, 5}


def test_a_task_is_the_same_for_a_seed_and_differs_for_another():
    a, b = load_data("pairs:addition?n=50"), load_data("pairs:addition?n=50")
    c = load_data("pairs:addition?n=50&seed=1")
    assert np.array_equal(a.train.x, b.train.x) and not np.array_equal(a.train.x, c.train.x)


def test_decoder_input_is_the_target_shifted_right_and_padding_is_ignored():
    d = load_data("pairs:reverse?n=40&length=4&symbols=3")
    fmt = PairFormat.of(d)
    n = fmt.steps  # each of the three parts: source, decoder input, source mask
    assert (fmt.source_len, fmt.target_len, n) == (4, 5, 5)
    assert d.sample_shape == (3 * n,) and d.target_shape == (n,)
    for x, y in zip(d.train.x, d.train.y):
        source, decoder, mask = x[:n], x[n:2 * n], x[2 * n:]
        assert np.array_equal(mask, source == PAD)  # the source's key-padding mask
        k = int((y >= 0).sum())  # the target and its end token
        assert y[k - 1] == EOS and np.all(y[k:] == -100)
        assert decoder[0] == BOS and np.array_equal(decoder[1:k], y[:k - 1])
        assert np.all(decoder[k:] == PAD)
        real = int((source != PAD).sum())
        assert np.all(source[:real] >= 3) and np.all(source[real:] == PAD)


def test_a_tsv_file_gives_its_own_pairs_in_characters_or_words(tmp_path):
    path = tmp_path / "greet.tsv"
    lines = [f"hello {i % 3}\tbonjour {i % 3}" for i in range(20)]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    chars = load_data(f"pairs:{path}")
    assert PairFormat.of(chars).vocab[3:] == tuple(sorted(set("".join(lines).replace("\t", ""))))
    words = load_data(f"pairs:{path}?tokens=word")
    fmt = PairFormat.of(words)
    assert fmt.vocab[3:] == ("0", "1", "2", "bonjour", "hello") and fmt.source_len == 2
    assert sorted(pairs_of(f"pairs:{path}?tokens=word")) == sorted(
        tuple(line.split("\t")) for line in lines)
    assert fmt.decode(fmt.encode_source("hello 2")) == "hello 2"


@pytest.mark.parametrize("text,message", [
    ("a\tb\nno tab here\n", "bad.tsv line 2: expected source<TAB>target, found no tab"),
    ("a\tb\tc\n", "bad.tsv line 1: expected source<TAB>target, found 2 tabs"),
    ("a\tb\nx\t\n", "bad.tsv line 2: the target is empty"),
    ("\n", "bad.tsv: no source<TAB>target lines"),
    ("<s>\tb\n", "bad.tsv line 1: '<s>' is reserved"),
])
def test_a_bad_tsv_file_is_refused_in_one_line_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=re.escape(message)) as err:
        load_data(f"pairs:{path}?tokens=word" if "<s>" in text else f"pairs:{path}")
    assert "\n" not in str(err.value)


def test_an_unknown_task_or_option_is_refused():
    with pytest.raises(DataError, match="unknown pairs task 'nope'.*addition"):
        load_data("pairs:nope")
    with pytest.raises(DataError, match="digits must be an integer from 1"):
        load_data("pairs:addition?digits=0")


def test_a_typed_source_is_checked_against_the_vocabulary_and_length():
    fmt = PairFormat.of(load_data("pairs:addition?n=20&digits=2"))
    assert fmt.decode(fmt.encode_source("12+34=")) == "12+34="
    with pytest.raises(DataError, match="'x' is not in the vocabulary"):
        fmt.encode_source("12x3")
    with pytest.raises(DataError, match="reads at most 6"):
        fmt.encode_source("123+456=")


# ------------------------------------------------------------------------ ignore_index
def _loss(z, t, ignore=-100):
    a = AttrValues({"ignore_index": ignore})
    ctx = Ctx(True, None, (True, False))
    loss = CrossEntropyLoss.forward(a, {}, ctx, z, t)
    (dz, _), _ = CrossEntropyLoss.backward(a, {}, ctx, np.float64(1.0))
    return float(loss), dz


@pytest.mark.parametrize("ignore", [-100, 0])
def test_ignored_labels_are_left_out_as_pytorch_does(ignore):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 5, 4))
    t = rng.integers(0, 4, (3, 5))
    t[0, 3:] = t[2, 1:] = ignore
    loss, dz = _loss(z, t, ignore)
    tz = torch.tensor(z, requires_grad=True)
    want = F.cross_entropy(tz.reshape(-1, 4), torch.tensor(t).reshape(-1), ignore_index=ignore)
    want.backward()
    assert loss == pytest.approx(float(want.detach()), rel=1e-12)
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert np.all(dz[t == ignore] == 0)


def test_logits_at_ignored_positions_change_nothing():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4, 6))
    t = np.array([1, -100, 2, -100])
    moved = z.copy()
    moved[[1, 3]] += rng.standard_normal((2, 6)) * 10
    assert _loss(z, t)[0] == _loss(moved, t)[0]
    assert _loss(z, t)[0] == pytest.approx(_loss(z[[0, 2]], t[[0, 2]])[0], rel=1e-12)


def test_every_label_ignored_gives_nan_as_pytorch():
    assert np.isnan(_loss(np.zeros((2, 3)), np.array([-100, -100]))[0])
    assert np.isnan(float(F.cross_entropy(torch.zeros(2, 3), torch.tensor([-100, -100]))))
