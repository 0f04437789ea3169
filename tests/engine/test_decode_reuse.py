"""Decoding runs the encoder once per source and only the decoder part at each step
(``engine.seq2seq_parts``), and chooses exactly as rerunning the whole graph did: the same ids
and, in float64, the same log-probabilities bit for bit, for greedy decoding (one source and a
batch) and beam search of several widths.
"""
from __future__ import annotations

import numpy as np
import pytest

from layerloom.engine.data import load_data
from layerloom.engine.data.pairs import PairFormat
from layerloom.engine.decode import Seq2SeqModel, beam_search, greedy, greedy_ids
from layerloom.engine.network import Network
from layerloom.engine.project import fit_graph_to_data
from layerloom.engine.seq2seq_parts import NotEncoderDecoder, partition
from layerloom.engine.serialize import graph_from_dict, load_project

from .graph_cases import SAMPLES
from .pair_models import prefix_lm


@pytest.fixture(scope="module", params=[np.float64, np.float32], ids=["float64", "float32"])
def models(request):
    """The T5 sample, seeded and untrained, on two-digit sums: (reusing, rerunning, sources)."""
    project = load_project(SAMPLES / "t5_tiny.json")
    data = load_data("pairs:addition?n=200&digits=2")
    fit_graph_to_data(project.graph, data)
    net = Network(project.graph, seed=5, dtype=request.param)
    fmt = PairFormat.of(data)
    return (Seq2SeqModel.of(net, fmt), Seq2SeqModel.of(net, fmt, reuse_encoder=False),
            data.test.x[:12, :fmt.steps])


def test_the_t5_sample_splits_into_encoder_and_decoder(models):
    reusing, rerunning, _ = models
    assert rerunning.parts is None
    encoder, decoder, memory, dec_slice = reusing.parts
    assert memory == (("enc_norm", "y"), ("parts", "y2"))
    assert dec_slice == ("parts", "y1")
    assert {s.node_id for s in encoder} >= {"parts", "src_embed", "enc_norm"}
    assert not {s.node_id for s in encoder} & {s.node_id for s in decoder}
    assert [s.node_id for s in decoder][-1] == "logits"


def test_greedy_ids_are_the_same(models):
    reusing, rerunning, sources = models
    np.testing.assert_array_equal(greedy_ids(reusing, sources), greedy_ids(rerunning, sources))


def test_step_scores_equal_a_whole_forward_bit_for_bit(models):
    reusing, _, sources = models
    x = reusing.packed(sources)
    x[:, reusing.fmt.steps + 1:2 * reusing.fmt.steps] = 5  # some decoder input beyond <s>
    memory = reusing.encode(x)
    np.testing.assert_array_equal(reusing.step_scores(memory, x), reusing.scores(x))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_greedy_and_beam_search_are_the_same(models, k):
    reusing, rerunning, sources = models
    for source in sources[:6]:
        if k == 1:
            assert greedy(reusing, source) == greedy(rerunning, source)  # log_prob included
        assert beam_search(reusing, source, k) == beam_search(rerunning, source, k)


def test_a_graph_without_an_encoder_reruns_whole():
    data = load_data("pairs:reverse?n=100&length=4&symbols=4")
    fmt = PairFormat.of(data)
    net = Network(graph_from_dict(prefix_lm(fmt.source_len, fmt.target_len, len(fmt.vocab))))
    with pytest.raises(NotEncoderDecoder):
        partition(net.plan)
    model = Seq2SeqModel.of(net, fmt)
    assert model.parts is None and model.encode(data.test.x[:2]) is None
    assert greedy(model, data.test.x[0, :fmt.steps]).ids is not None
