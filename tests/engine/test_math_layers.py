"""The element-wise and tensor layers in graphs: broadcasting shown on the edges and refused in
one line naming both shapes, PyTorch's dims with the batch kept whole, and Chunk's ports."""
import numpy as np
import pytest

from layerloom.engine.graph import Graph, GraphError, Node
from layerloom.engine.network import Network
from layerloom.engine.serialize import Project, load_project, save_project
from layerloom.engine.shapes import infer_shapes


def two_inputs(a: list, b: list, type_id: str, attrs=None) -> Graph:
    g = Graph()
    g.add_node(Node("a", "Input", {"shape": a}))
    g.add_node(Node("b", "Input", {"shape": b}))
    g.add_node(Node("op", type_id, attrs or {}))
    g.connect(("a", "y"), ("op", "a"))
    g.connect(("b", "y"), ("op", "b"))
    return g


@pytest.mark.parametrize("type_id", ["Add", "Multiply", "Subtract", "Divide", "Maximum"])
def test_two_inputs_broadcast_as_numpy_and_a_mismatch_names_both_shapes(type_id):
    report = infer_shapes(two_inputs([3, 1, 5], [1, 4, 1], type_id))
    assert report.shapes[("op", "y")] == (None, 3, 4, 5)
    report = infer_shapes(two_inputs([3, 4], [5, 4], type_id))
    assert report.errors["op"].startswith(f"{type_id} 'op': cannot ")
    assert report.errors["op"].endswith("3×4 and 5×4: sizes 3 and 5 differ at dim 1 and "
                                        "neither is 1")


def test_a_broadcast_input_gets_its_gradient_summed_over_the_broadcast_axes():
    g = two_inputs([3, 4], [3, 1], "Multiply")
    g.add_node(Node("t", "Label", {"kind": "values", "shape": [3, 4]}))
    g.add_node(Node("loss", "MSELoss", {}))
    g.connect(("op", "y"), ("loss", "input"))
    g.connect(("t", "y"), ("loss", "target"))
    g.add_node(Node("scale", "Dense", {"out_features": 1}))  # a parameter upstream of b
    g.disconnect(next(e for e in g.edges if e.dst == ("op", "b")))
    g.connect(("b", "y"), ("scale", "x"))
    g.connect(("scale", "y"), ("op", "b"))
    net = Network(g, dtype=np.float64)
    rng = np.random.default_rng(0)
    feeds = {"a": rng.standard_normal((2, 3, 4)), "b": rng.standard_normal((2, 3, 1)),
             "t": rng.standard_normal((2, 3, 4))}
    net.forward(feeds, training=True)
    grads = net.backward()
    w, bias = net.params["scale.weight"], net.params["scale.bias"]
    s = feeds["b"] @ w.T + bias  # (2, 3, 1), broadcast over the last axis
    d_out = 2 * (feeds["a"] * s - feeds["t"]) / feeds["t"].size
    d_s = (d_out * feeds["a"]).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(grads["scale.bias"], d_s.sum(axis=(0, 1)), rtol=1e-10)


@pytest.mark.parametrize("type_id,attrs", [("Sum", {"dim": [0]}), ("Squeeze", {"dim": 0}),
                                           ("Transpose", {"dim0": 0, "dim1": 1}),
                                           ("Permute", {"dims": [1, 0, 2]}),
                                           ("Unsqueeze", {"dim": 0})])
def test_the_batch_axis_stays_where_it_is(type_id, attrs):
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [3, 4]}))
    g.add_node(Node("op", type_id, attrs))
    g.connect(("x", "y"), ("op", "x"))
    error = infer_shapes(g).errors["op"]
    assert "batch" in error and "\n" not in error


def test_chunk_has_a_port_per_piece_and_a_file_keeps_edges_from_any_of_them(tmp_path):
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [7]}))
    g.add_node(Node("cut", "Chunk", {"chunks": 3}))
    g.add_node(Node("act", "ReLU", {}))
    g.connect(("x", "y"), ("cut", "x"))
    g.connect(("cut", "y2"), ("act", "x"))
    assert g.output_ports("cut") == ("y0", "y1", "y2")
    assert infer_shapes(g).shapes[("act", "y")] == (None, 1)  # pieces of 3, 3 and 1
    with pytest.raises(GraphError, match=r"^Chunk 'cut': output 'y2' would go"):
        g.set_attr("cut", "chunks", 2)
    save_project(Project(g), tmp_path / "chunk.json")
    back = load_project(tmp_path / "chunk.json").graph
    assert [(e.src, e.dst) for e in back.edges] == [(e.src, e.dst) for e in g.edges]
    g.set_attr("cut", "chunks", 4)  # 7 in pieces of 2 is 4 pieces: fine
    g.set_attr("cut", "chunks", 5)  # pieces of 2 again: 4, not 5, as torch.chunk
    assert "make 4, not 5" in infer_shapes(g).errors["cut"]
