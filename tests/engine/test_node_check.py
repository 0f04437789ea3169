"""Per-node gradient checks and where gradient flows: every layer type passes its own check, a
wrong backward fails it, and the flow follows the frozen subset exactly."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from layerloom.engine.cli import main
from layerloom.engine.grad_flow import gradient_flow
from layerloom.engine.graph import Graph, Node
from layerloom.engine.layers.activations import ReLU
from layerloom.engine.network import Network
from layerloom.engine.node_check import check_nodes, check_step
from layerloom.engine.serialize import load_project

from .test_layer_registry import CASES, setup

ROOT = Path(__file__).resolve().parents[2]


def as_step(cls, attrs):
    return SimpleNamespace(layer=cls, attrs=attrs, outputs=tuple(cls.outputs_for(attrs)), node_id="n")


@pytest.mark.parametrize("type_id,case", CASES)
def test_every_layer_type_passes_its_own_check(type_id, case):
    cls, a, xs, _shapes, params, _needs = setup(type_id, case)
    check = check_step(as_step(cls, a), params, xs)
    assert check.passed, "\n".join(check.lines())


class WrongReLU(ReLU):
    """A ReLU whose backward doubles the gradient (test only, never registered)."""

    @staticmethod
    def backward(attrs, params, ctx, dy):
        grads, pgrads = ReLU.backward(attrs, params, ctx, dy)
        return tuple(2 * g if g is not None else None for g in grads), pgrads


def test_a_wrong_backward_fails_and_says_where():
    WrongReLU.type_id = "WrongReLU"
    x = np.random.default_rng(0).standard_normal((3, 5)) + 0.05
    check = check_step(as_step(WrongReLU, ReLU.validate_attrs({})), {}, [x])
    assert not check.passed and check.results[0].name == "d/dx"
    assert check.results[0].worst > 0.3 and "FAIL" in check.lines()[0]
    assert check_step(as_step(ReLU, ReLU.validate_attrs({})), {}, [x]).passed


def test_checks_run_at_the_real_inputs_and_current_weights_of_a_sample():
    project = load_project(ROOT / "samples" / "mlp_spirals.json")
    rng = np.random.default_rng(1)
    feeds = {"points": rng.standard_normal((4, 2)), "label": np.array([0, 1, 2, 1])}
    trained = {k: v + 0.3 for k, v in Network(project.graph).params.items()}
    checks = check_nodes(project.graph, feeds, trained)
    assert [c.node_id for c in checks] == ["fc1", "tanh1", "fc2", "tanh2", "fc3", "loss"]
    assert all(c.passed for c in checks)
    assert [r.name for r in checks[0].results] == ["d/dx", "d/dweight", "d/dbias"]
    with pytest.raises(Exception, match="no node 'nope'"):
        check_nodes(project.graph, feeds, node_ids=["nope"])


def test_the_gradcheck_command(capsys):
    assert main(["gradcheck", str(ROOT / "samples" / "lenet5.json"), "--node", "conv1",
                 "--node", "pool1", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "conv1 (Conv2D) d/dweight" in out and "2 of 2 nodes pass" in out


@pytest.mark.parametrize("frozen,edges,starved", [
    ((), {"a>b", "b>c", "c>loss", "s>loss2"}, {"d"}),  # d reaches no loss
    (("a",), {"b>c", "c>loss", "s>loss2"}, {"a", "d"}),
    (("a", "b"), {"c>loss", "s>loss2"}, {"a", "b", "d"}),
    (("a", "b", "c"), {"s>loss2"}, {"a", "b", "c", "d"}),
    (("a", "b", "c", "s"), set(), {"a", "b", "c", "d", "s"}),
])
def test_the_flow_marks_exactly_the_edges_upstream_of_trainable_parameters(frozen, edges, starved):
    graph = _chain(frozen)
    flow = gradient_flow(graph)
    got = {f"{e.src[0]}>{e.dst[0]}" for e in flow.edges}
    assert got == edges and flow.starved == frozenset(starved)


def _chain(frozen) -> Graph:
    """x -> a -> b -> c -> loss, a side branch x -> s -> loss2, and d after b reaching no loss."""
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [3]}))
    g.add_node(Node("t", "Label", {"kind": "values", "shape": [2]}))
    for n in ("a", "b", "c", "s", "d"):
        g.add_node(Node(n, "Dense", {"out_features": 2 if n in "cs" else 4}, frozen=n in frozen))
    for n in ("loss", "loss2"):
        g.add_node(Node(n, "MSELoss", {}))
    for u, v in (("x", "a"), ("a", "b"), ("b", "c"), ("x", "s"), ("b", "d")):
        g.connect((u, "y"), (v, "x"))
    g.connect(("c", "y"), ("loss", "input"))
    g.connect(("s", "y"), ("loss2", "input"))
    g.connect(("t", "y"), ("loss", "target"))
    g.connect(("t", "y"), ("loss2", "target"))
    return g
