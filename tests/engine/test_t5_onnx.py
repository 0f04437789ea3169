"""The encoder-decoder sample (t5_tiny) as ONNX: the whole model, and the split for deployment
(an encoder model run once per source and a decoder-step model run per token), each run in
onnxruntime and equal to ``Network.forward``; greedy decoding driven through onnxruntime chooses
what ``engine.decode.greedy_ids`` chooses.

A seeded, untrained model on one-digit sums, in float32 (onnxruntime has no float64 Erf, which
GELU exports to): its scores are far enough from ties that the same computation in another
runtime makes the same choices (the test checks the margins), and the check costs no training
(``test_t5_sample`` trains one and compares with PyTorch).
"""
from __future__ import annotations

import numpy as np
import pytest

from layerloom.engine.data import load_data
from layerloom.engine.data.pairs import PairFormat, packed_inputs
from layerloom.engine.decode import Seq2SeqModel, greedy_ids
from layerloom.engine.export.onnx import onnx_bytes
from layerloom.engine.export.onnx_split import split_onnx
from layerloom.engine.export.outputs import ExportError
from layerloom.engine.network import Network
from layerloom.engine.project import fit_graph_to_data
from layerloom.engine.serialize import load_project

from .graph_cases import SAMPLES

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def seeded():
    project = load_project(SAMPLES / "t5_tiny.json")
    data = load_data("pairs:addition?n=200&digits=1")
    fit_graph_to_data(project.graph, data)
    net = Network(project.graph, seed=3)
    fmt = PairFormat.of(data)
    return net, fmt, Seq2SeqModel.of(net, fmt), data.test.x[:16, :fmt.steps]


def _session(payload: bytes):
    return ort.InferenceSession(payload, providers=["CPUExecutionProvider"])


def _teacher_forced(fmt, sources, rng):
    """Packed inputs whose decoder input holds random target tokens (not just <s>)."""
    x = packed_inputs(fmt, sources)
    x[:, fmt.steps + 1:2 * fmt.steps] = rng.integers(3, len(fmt.vocab), (len(x), fmt.steps - 1))
    return x


def test_the_whole_model_in_onnxruntime_equals_network_forward(seeded):
    net, fmt, model, sources = seeded
    session = _session(onnx_bytes(net, "t5"))
    x = _teacher_forced(fmt, sources, np.random.default_rng(0))
    (theirs,) = session.run(None, {model.input_id: x})
    np.testing.assert_allclose(theirs, model.scores(x), rtol=1e-4, atol=1e-5)


def _split_scores(encoder, decoder, fmt, x):
    """Next-token scores of packed ``x`` through the two models, memory passed by name."""
    n = fmt.steps
    memory = dict(zip([o.name for o in encoder.get_outputs()],
                      encoder.run(None, {"source": x[:, :n], "source_mask": x[:, 2 * n:]})))
    feeds = {**memory, "source_mask": x[:, 2 * n:], "decoder_input": x[:, n:2 * n]}
    (scores,) = decoder.run(None, {i.name: feeds[i.name] for i in decoder.get_inputs()})
    return scores


def test_encoder_then_decoder_step_equal_the_whole_model(seeded):
    net, fmt, model, sources = seeded
    encoder, decoder = (_session(b) for b in split_onnx(net, "t5"))
    assert [i.name for i in encoder.get_inputs()] == ["source", "source_mask"]
    assert [o.name for o in encoder.get_outputs()] == ["enc_norm"]
    assert [i.name for i in decoder.get_inputs()] == ["enc_norm", "source_mask", "decoder_input"]
    assert [o.name for o in decoder.get_outputs()] == ["logits"]
    x = _teacher_forced(fmt, sources, np.random.default_rng(1))
    np.testing.assert_allclose(_split_scores(encoder, decoder, fmt, x), model.scores(x),
                               rtol=1e-4, atol=1e-5)


def test_greedy_decoding_through_onnxruntime_equals_greedy_ids(seeded):
    net, fmt, model, sources = seeded
    whole = _session(onnx_bytes(net, "t5"))
    encoder, decoder = (_session(b) for b in split_onnx(net, "t5"))
    ours = greedy_ids(model, sources)
    n = fmt.steps
    for run in ("whole", "split"):
        x = packed_inputs(fmt, sources)
        theirs = np.zeros_like(ours)
        for i in range(fmt.target_len):
            z = (whole.run(None, {model.input_id: x})[0] if run == "whole"
                 else _split_scores(encoder, decoder, fmt, x))
            theirs[:, i] = z[:, i].argmax(-1)
            top = np.sort(z[:, i], axis=-1)
            assert (top[:, -1] - top[:, -2]).min() > 1e-4  # no near-tie that rounding could flip
            if i + 1 < fmt.target_len:
                x[:, n + i + 1] = theirs[:, i]
        np.testing.assert_array_equal(theirs, ours, err_msg=run)
    assert len({tuple(row) for row in ours}) > 1  # the sources are decoded differently


def test_a_graph_that_is_not_an_encoder_decoder_cannot_be_split():
    for sample in ("lenet5", "tiny_gpt"):
        net = Network(load_project(SAMPLES / f"{sample}.json").graph)
        with pytest.raises(ExportError, match="not an encoder-decoder graph") as err:
            split_onnx(net)
        assert "\n" not in str(err.value)


def test_the_cli_writes_both_models(tmp_path, capsys):
    from layerloom.engine.cli import main

    assert main(["export", str(SAMPLES / "t5_tiny.json"), str(tmp_path / "t5.onnx"),
                 "--split"]) == 0
    for part in ("encoder", "decoder"):
        _session((tmp_path / f"t5.{part}.onnx").read_bytes())
    assert main(["export", str(SAMPLES / "lenet5.json"), str(tmp_path / "l.onnx"),
                 "--split"]) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot split the model: not an encoder-decoder graph" in err
    assert not (tmp_path / "l.encoder.onnx").exists()
