"""samples/t5_tiny.json: an encoder-decoder (2 + 2 Transformer blocks, cross-attention) that
learns written-out addition, decodes greedily as its exported PyTorch code does, and shows where
its decoder looked.

The CI-sized run trains the sample's own graph and settings on one-digit sums (``digits=1``;
the sample's own data is three-digit): the packed pairs layout keeps the graph's shapes
following the data, so only the task size changes.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from layerloom.engine.data import load_data
from layerloom.engine.data.pairs import PairFormat, packed_inputs
from layerloom.engine.decode import (Seq2SeqModel, attention_map, beam_search,
                                     cross_attention_nodes, greedy, greedy_ids)
from layerloom.engine.export.torch_code import torch_source
from layerloom.engine.export.weights import save_weights
from layerloom.engine.network import Network
from layerloom.engine.project import fit_graph_to_data
from layerloom.engine.serialize import load_project
from layerloom.engine.threads import get_threads, set_threads
from layerloom.engine.training import DoneReport, TrainConfig, train

from .graph_cases import SAMPLES

torch = pytest.importorskip("torch")

CI_SPEC = "pairs:addition?n=1500&digits=1"
CI_EPOCHS = 10


@pytest.fixture(scope="module")
def trained():
    """The sample trained at its own settings (but CI_EPOCHS) on one-digit sums. One core: numba's
    parallel kernels on these small tensors only wait for each other on a loaded machine."""
    project = load_project(SAMPLES / "t5_tiny.json")
    data = load_data(CI_SPEC)
    fit_graph_to_data(project.graph, data)
    config = TrainConfig.from_dict({**project.training, "epochs": CI_EPOCHS})
    net = Network(project.graph, seed=config.seed, batch_size=config.batch_size)
    threads = get_threads()
    set_threads(1)
    try:
        done = [r for r in train(net, data, config) if isinstance(r, DoneReport)][-1]
    finally:
        set_threads(threads)
    return project, net, data, done


def test_the_sample_is_an_encoder_decoder_of_two_plus_two_blocks():
    project = load_project(SAMPLES / "t5_tiny.json")
    blocks = {n.attrs["block"]: n.attrs["repeat"] for n in project.graph.nodes.values()
              if n.type == "Block"}
    assert blocks == {"encoder": 2, "decoder": 2}
    assert project.data["spec"].startswith("pairs:addition")
    net = Network(project.graph)
    assert cross_attention_nodes(net) == ["decoder.0.cross", "decoder.1.cross"]


def test_the_sample_reaches_95_percent_exact_match_in_a_ci_sized_run(trained):
    _, _, data, done = trained
    assert done.test_exact >= 0.95, f"exact match {done.test_exact:.1%} on {CI_SPEC}"


def test_greedy_decoding_equals_pytorch_running_the_exported_code(trained, tmp_path):
    project, net, data, _ = trained
    fmt = PairFormat.of(data)
    path = tmp_path / "t5.py"
    path.write_text(torch_source(project.graph, project.training, title="t5"))
    spec = importlib.util.spec_from_file_location("exported_t5", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Net()
    save_weights(net.params, tmp_path / "w.npz")  # float32, as trained
    module.load_weights(model, tmp_path / "w.npz")
    model = model.double().eval()
    sources = data.test.x[:40, :fmt.steps]
    ours = greedy_ids(Seq2SeqModel.of(net, fmt), sources)
    x = torch.from_numpy(packed_inputs(fmt, sources))
    theirs = np.zeros_like(ours)
    with torch.no_grad():
        for i in range(fmt.target_len):
            theirs[:, i] = model(x)[:, i].argmax(-1).numpy()
            if i + 1 < fmt.target_len:
                x[:, fmt.steps + i + 1] = torch.from_numpy(theirs[:, i])
    for a, b in zip(ours, theirs):
        assert fmt.decode(a) == fmt.decode(b)


def test_beam_of_one_is_greedy_and_the_answers_are_sums(trained):
    _, net, data, _ = trained
    fmt = PairFormat.of(data)
    model = Seq2SeqModel.of(net, fmt)
    right = 0
    for a, b in [(3, 4), (9, 9), (0, 7), (5, 8), (6, 1)]:
        source = fmt.encode_source(f"{a}+{b}=")
        g, one = greedy(model, source), beam_search(model, source, 1)
        assert (g.ids, g.ended) == (one.ids, one.ended)
        right += g.text == str(a + b)
        assert beam_search(model, source, 3).ended
    assert right >= 4


def test_the_cross_attention_map_is_a_distribution_over_the_real_source(trained):
    _, net, data, _ = trained
    fmt = PairFormat.of(data)
    model = Seq2SeqModel.of(net, fmt)
    source = fmt.encode_source("7+5=")
    decoded = greedy(model, source)
    for node in cross_attention_nodes(net):
        weights = attention_map(model, source, decoded, node)
        assert weights.shape == (len(decoded.ids) + 1, 4)  # target tokens and </s>, "7+5="
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)  # padding gets none
