"""Decoding models trained on paired sequences: greedy, beam search, the exact-match metric, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest

from layerloom.engine.cli import main
from layerloom.engine.data import load_data
from layerloom.engine.data.pairs import PairFormat
from layerloom.engine.decode import (DecodeError, Seq2SeqModel, beam_search, decode_text, greedy,
                                     greedy_ids)
from layerloom.engine.network import Network
from layerloom.engine.serialize import graph_from_dict
from layerloom.engine.training import DoneReport, EpochReport, TrainConfig, train

from .pair_models import prefix_lm

SPEC = "pairs:reverse?n=600&length=4&symbols=4"


@pytest.fixture(scope="module")
def trained():
    """A prefix model trained for a few epochs on short reversals, with its data and reports."""
    data = load_data(SPEC)
    fmt = PairFormat.of(data)
    net = Network(graph_from_dict(prefix_lm(fmt.source_len, fmt.target_len, len(fmt.vocab), 24)))
    config = TrainConfig.from_dict({"optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 4})
    reports = [r for r in train(net, data, config) if isinstance(r, (EpochReport, DoneReport))]
    return net, data, fmt, reports


def test_training_reports_exact_match_equal_to_greedy_decoding(trained):
    net, data, fmt, reports = trained
    done = reports[-1]
    assert all(r.val_exact is not None for r in reports[:-1])
    model = Seq2SeqModel.of(net, fmt)
    ids = greedy_ids(model, data.test.x[:, :fmt.steps])
    right = [fmt.decode(got) == fmt.decode(y[y >= 0]) for got, y in zip(ids, data.test.y)]
    assert done.test_exact == pytest.approx(np.mean(right))
    assert 0.3 < done.test_exact  # it learnt something: chance is far below


def test_token_accuracy_counts_only_the_positions_that_are_not_padding(trained):
    net, data, fmt, reports = trained
    from layerloom.engine.training import evaluate

    _, acc, preds = evaluate(net, data.test)
    valid = data.test.y >= 0
    assert acc == pytest.approx(float((preds == data.test.y)[valid].mean()))


def test_beam_of_one_chooses_as_greedy_does(trained):
    net, data, fmt, _ = trained
    model = Seq2SeqModel.of(net, fmt)
    for source in data.test.x[:12, :fmt.steps]:
        g, b = greedy(model, source), beam_search(model, source, 1)
        assert (g.ids, g.ended) == (b.ids, b.ended)
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-9)


def test_greedy_one_at_a_time_equals_greedy_for_a_batch(trained):
    net, data, fmt, _ = trained
    model = Seq2SeqModel.of(net, fmt)
    sources = data.test.x[:10, :fmt.steps]
    batch = greedy_ids(model, sources)
    for source, row in zip(sources, batch):
        assert fmt.decode(row) == greedy(model, source).text


def test_wider_beams_return_the_likeliest_hypothesis_they_keep(trained):
    net, data, fmt, _ = trained
    model = Seq2SeqModel.of(net, fmt)
    source = fmt.encode_source("abcd")
    wide = beam_search(model, source, 4)
    assert wide.ended
    # its log-probability is the model's for that target, scored with teacher forcing
    x = model.packed(source[None])
    ids = list(wide.ids) + [2]
    x[0, fmt.steps + 1:fmt.steps + len(ids)] = ids[:-1]
    z = model.scores(x)[0].astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    assert wide.log_prob == pytest.approx(sum(logp[i, k] for i, k in enumerate(ids)), abs=1e-6)


def test_sources_that_do_not_fit_are_refused_in_one_line(trained):
    net, _, fmt, _ = trained
    model = Seq2SeqModel.of(net, fmt)
    with pytest.raises(DecodeError, match="source: 'z' is not in the vocabulary"):
        decode_text(model, "abz")
    with pytest.raises(DecodeError, match="reads at most 4"):
        decode_text(model, "abcda")
    with pytest.raises(DecodeError, match="beam width must be a whole number >= 1"):
        beam_search(model, fmt.encode_source("ab"), 0)


def test_a_model_for_other_data_cannot_be_decoded(trained):
    net, _, fmt, _ = trained
    other = PairFormat(fmt.vocab, fmt.source_len + 1, fmt.target_len + 1)
    with pytest.raises(DecodeError, match="must take int64 ids of shape \\(18,\\)"):
        Seq2SeqModel.of(net, other)


def test_cli_generate_decodes_a_source_greedily_and_with_a_beam(trained, tmp_path, capsys):
    net, data, fmt, _ = trained
    graph = prefix_lm(fmt.source_len, fmt.target_len, len(fmt.vocab), 24)
    graph["data"] = {"spec": SPEC}
    path = tmp_path / "rev.json"
    path.write_text(json.dumps(graph), encoding="utf-8")
    weights = tmp_path / "w.npz"
    net.save_weights(weights)
    model = Seq2SeqModel.of(net, fmt)
    for beam in (1, 3):
        capsys.readouterr()
        assert main(["generate", str(path), "--weights", str(weights), "--source", "abcd",
                     "--beam", str(beam)]) == 0
        assert capsys.readouterr().out == decode_text(model, "abcd", beam).text + "\n"
    assert main(["generate", str(path), "--weights", str(weights), "--source", "abq"]) == 1
    err = capsys.readouterr().err
    assert "'q' is not in the vocabulary" in err and err.count("\n") == 1


def test_cli_train_reports_exact_match_for_paired_sequences(tmp_path, capsys):
    data = load_data("pairs:sort?n=200&length=3&symbols=3")
    fmt = PairFormat.of(data)
    graph = prefix_lm(fmt.source_len, fmt.target_len, len(fmt.vocab), 8)
    graph["data"] = {"spec": "pairs:sort?n=200&length=3&symbols=3"}
    path = tmp_path / "sort.json"
    path.write_text(json.dumps(graph), encoding="utf-8")
    metrics = tmp_path / "m.json"
    assert main(["train", str(path), "--epochs", "2", "--metrics-json", str(metrics)]) == 0
    out = capsys.readouterr().out
    assert out.count(", exact match ") == 3  # two epochs and the test line
    saved = json.loads(metrics.read_text())
    assert 0 <= saved["test_exact"] <= 1 and saved["epochs"][1]["val_exact"] is not None
    assert f"exact match {100 * saved['test_exact']:.2f}%" in out.splitlines()[-1]
