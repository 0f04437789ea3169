"""The memory budget: graphs are sized from declared shapes (never by calling init), and a graph
that would not fit is a node error naming the node and the size, before anything is allocated."""
import tracemalloc

import numpy as np
import pytest

from layerloom.engine import budget as mem
from layerloom.engine.cli import main
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.plan import PlanError
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import graph_from_dict, load_project, save_project, Project
from layerloom.engine.shapes import infer_shapes, param_counts
from layerloom.engine.spec import INT_LIMIT

from .block_cases import model_with_blocks
from .test_graph import mlp

GB = 10**9


def wide(inputs: int = 2000, outputs: int = 1_000_000, **dense) -> Graph:
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [inputs]}))
    g.add_node(Node("fc", "Dense", {"out_features": outputs, **dense}))
    g.connect(("x", "y"), ("fc", "x"))
    return g


@pytest.fixture(autouse=True)
def no_setting():
    mem.set_budget(None)
    yield
    mem.set_budget(None)


@pytest.fixture
def no_init(monkeypatch):
    """Every layer's own init raises: sizing must come from the declared shapes alone."""
    from layerloom.engine.spec import Layer

    for cls in LAYERS.values():
        if any("init" in vars(k) for k in cls.__mro__ if k is not Layer):
            monkeypatch.setattr(cls, "init", staticmethod(lambda *a: pytest.fail("init was called")))


def test_a_huge_dense_layer_is_a_node_error_naming_it_and_its_size(no_init):
    report = infer_shapes(wide(), budget=4 * GB)
    assert report.errors == {"fc": "Dense 'fc': weight 1,000,000×2,000 = 8.0 GB; training needs "
                                   "about 40.5 GB, over the memory budget of 4.0 GB"}
    assert param_counts(wide(), report)["fc"] == 2000 * 1_000_000 + 1_000_000


def test_network_refuses_it_before_allocating_anything():
    mem.set_budget("4G")  # as on an 8 GB machine, whatever this one has
    tracemalloc.start()
    try:
        with pytest.raises(PlanError, match="Dense 'fc': weight 1,000,000×2,000"):
            Network(wide())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


@pytest.mark.skipif(mem.physical_memory() >= 80 * GB, reason="the default budget fits 40 GB here")
def test_the_default_budget_is_a_fraction_of_physical_memory(monkeypatch):
    monkeypatch.delenv(mem.ENV, raising=False)
    assert mem.memory_budget() == int(mem.physical_memory() * mem.DEFAULT_FRACTION)
    assert not infer_shapes(wide()).ok


def test_the_environment_and_the_setting_move_the_budget(monkeypatch):
    monkeypatch.setenv(mem.ENV, "64G")
    assert mem.memory_budget() == 64 * 2**30 and infer_shapes(wide()).ok
    monkeypatch.setenv(mem.ENV, "1%")
    assert mem.memory_budget() == int(mem.physical_memory() / 100)
    mem.set_budget("2G")  # the window's setting wins over the environment
    assert mem.memory_budget() == 2 * 2**30 and not infer_shapes(wide()).ok


@pytest.mark.parametrize("text,message", [("lots", "expected bytes"), ("12", "at least 1M"),
                                          ("0%", "must be in"), ("150%", "must be in")])
def test_a_budget_that_cannot_be_read_is_one_line(text, message):
    with pytest.raises(mem.BudgetError, match=message):
        mem.parse_budget(text)


def test_the_cli_says_a_bad_budget_variable_at_once(monkeypatch, capsys):
    monkeypatch.setenv(mem.ENV, "lots")
    assert main(["check", "samples/mlp_spirals.json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: LAYERLOOM_MEMORY_BUDGET: memory budget: expected bytes") and err.count("\n") == 1


def test_the_batch_size_in_the_file_sizes_the_activations(tmp_path, monkeypatch, capsys):
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [3, 512, 512]}))
    g.add_node(Node("conv", "Conv2D", {"out_channels": 64, "padding": [1, 1]}))
    g.connect(("x", "y"), ("conv", "x"))
    path = tmp_path / "conv.json"
    save_project(Project(g, {"batch_size": 4096}), path)
    monkeypatch.setenv(mem.ENV, "8G")
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error: Conv2D 'conv': output 64×512×512 at batch 4,096 = 274.9 GB; training needs about 575.5 GB" in err
    save_project(Project(g, {"batch_size": 8}), path)
    assert main(["check", str(path)]) == 0
    assert "memory: about 1.1 GB to train at batch 8 (budget 8.6 GB)" in capsys.readouterr().out


@pytest.mark.parametrize("attrs,message", [
    ({"padding": [1_000_000, 1_000_000]}, "output 8×2,000,026×2,000,026 at batch 64 = 8.2 PB"),
    ({"kernel_size": [1_000_000, 1_000_000]}, "kernel 1000000 does not fit the input height 28"),
    ({"kernel_size": [28, 28], "out_channels": 1024}, None),  # as large as the image: fine
])
def test_padding_or_kernels_of_a_million_allocate_nothing(no_init, attrs, message):
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [3, 28, 28]}))
    g.add_node(Node("conv", "Conv2D", attrs))
    g.connect(("x", "y"), ("conv", "x"))
    error = infer_shapes(g, budget=GB).errors.get("conv")
    assert (message in error) if message else error is None


def test_shapes_beyond_any_memory_are_refused_without_numpy_overflowing(no_init):
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [INT_LIMIT] * 3}))
    g.add_node(Node("flat", "Flatten"))
    g.connect(("x", "y"), ("flat", "x"))
    report = infer_shapes(g)
    assert "beyond what any memory holds" in report.errors["x"]


def test_counts_from_shapes_are_what_init_makes_for_every_sample():
    for name in ("lenet5", "mlp_spirals", "tiny_gpt", "char_lstm", "seq_classifier"):
        graph = load_project(f"samples/{name}.json").graph
        report = infer_shapes(graph)
        net = Network(graph)
        assert sum(report.param_counts.values()) == sum(v.size for v in net.params.values())
        assert sum(report.param_bytes.values()) == sum(v.nbytes for v in net.params.values())


def test_a_block_counts_every_copy_and_is_sized_as_one_node(no_init):
    report = infer_shapes(graph_from_dict(model_with_blocks(repeat=3, width=6)))
    per_copy = (6 * 5 + 5) + (5 * 6 + 6)
    assert report.param_counts["enc"] == 3 * per_copy
    big = model_with_blocks(repeat=1000, width=6)
    big["blocks"]["res"]["nodes"][1]["attrs"]["out_features"] = 100_000
    report = infer_shapes(graph_from_dict(big), budget=GB)
    assert report.errors["enc"].startswith("Block 'enc': block 'res' ×1000: parameters 5.2 GB")  # 1,300,006 × 1000 × 4 bytes


def test_blocks_nested_beyond_any_expansion_are_refused_before_they_are_walked():
    data = model_with_blocks(repeat=1000)
    blocks = data["blocks"]
    for k in range(1, 6):  # five levels of ×1000: 10**15 layers if it were expanded
        blocks[f"l{k}"] = {"nodes": [{"id": "x", "type": "BlockInput"},
                                     {"id": "b", "type": "Block",
                                      "attrs": {"block": f"l{k - 1}" if k > 1 else "res",
                                                "repeat": 1000}},
                                     {"id": "out", "type": "BlockOutput"}],
                           "edges": [{"from": ["x", "y"], "to": ["b", "x"]},
                                     {"from": ["b", "out"], "to": ["out", "x"]}]}
    data["nodes"][3]["attrs"]["block"] = "l5"
    report = infer_shapes(graph_from_dict(data))
    assert report.errors["enc"] == ("Block 'enc': block 'l5' ×1000 expands to over "
                                    "1,000,000,000,000,000 layers; a model holds at most 100,000")


def test_an_mlp_is_small():
    report = infer_shapes(mlp())
    assert report.ok and 0 < report.training_bytes < 2**20
    assert np.isclose(report.param_bytes["fc1"], 4 * (4 * 8 + 8))


def test_evaluation_batches_stay_within_the_budget_too():
    from layerloom.engine.training import evaluate

    from .test_training import blobs

    net = Network(mlp())
    per_sample = net.plan.sample_bytes
    assert 96 <= per_sample <= 100  # 4 + 1 + 8 + 8 + 3 values of 4 bytes (and a share of the loss)
    mem.set_budget(2**20)  # the smallest budget: 1M
    seen, forward = [], net.forward
    net.forward = lambda feeds, **k: seen.append(len(feeds["x"])) or forward(feeds, **k)
    evaluate(net, blobs().train)
    assert max(seen) == min(256, 2**20 // per_sample)
    mem.set_budget(100 * per_sample)
    seen.clear()
    evaluate(net, blobs().train)
    assert max(seen) == 100
    assert sum(seen) == len(blobs().train)


def test_a_layer_that_does_not_declare_its_parameters_is_refused_not_allocated(monkeypatch):
    from layerloom.engine.spec import Layer

    class Undeclared(Layer):
        """A layer with parameters but no param_shapes (a bug this catches)."""

        @staticmethod
        def infer(a, x):
            return x

        @staticmethod
        def init(a, in_shapes, rng):
            pytest.fail("init was called")

    Undeclared.type_id = "Undeclared"
    monkeypatch.setitem(LAYERS, "Undeclared", Undeclared)
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [4]}))
    g.add_node(Node("u", "Undeclared"))
    g.connect(("x", "y"), ("u", "x"))
    assert "does not declare its parameter shapes" in infer_shapes(g).errors["u"]
    assert Dense_declares() and not Undeclared.declares_params()


def Dense_declares() -> bool:  # noqa: N802 (reads as the sentence it checks)
    return LAYERS["Dense"].declares_params() and LAYERS["ReLU"].declares_params()
