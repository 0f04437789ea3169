"""The graph model and its file format refuse bad edits and bad files with one clear line."""
import json
import os

import pytest

from layerloom.engine.graph import Edge, Graph, GraphError, Node
from layerloom.engine.serialize import FormatError, Project, graph_to_dict, load_project, save_project
from layerloom.engine.shapes import infer_shapes


def mlp() -> Graph:
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [4]}))
    g.add_node(Node("t", "Label", {}))
    g.add_node(Node("fc1", "Dense", {"out_features": 8}))
    g.add_node(Node("act", "ReLU"))
    g.add_node(Node("fc2", "Dense", {"out_features": 3}))
    g.add_node(Node("loss", "CrossEntropyLoss"))
    g.connect(("x", "y"), ("fc1", "x"))
    g.connect(("fc1", "y"), ("act", "x"))
    g.connect(("act", "y"), ("fc2", "x"))
    g.connect(("fc2", "y"), ("loss", "input"))
    g.connect(("t", "y"), ("loss", "target"))
    return g


def test_topological_order_puts_producers_first():
    order = mlp().topological_order()
    assert order.index("x") < order.index("fc1") < order.index("act") < order.index("fc2")
    assert order.index("loss") == len(order) - 1


@pytest.mark.parametrize("edit,message", [
    (lambda g: g.connect(("fc2", "y"), ("fc1", "x")), "already connected"),
    (lambda g: g.connect(("act", "y"), ("act", "x")), "itself"),
    (lambda g: g.add_node(Node("fc1", "Dense")), "already exists"),
    (lambda g: g.add_node(Node("z", "Teleporter")), "unknown layer type 'Teleporter'"),
    (lambda g: g.add_node(Node("z", "Dense", {"out_features": 0})), "out_features: must be >= 1"),
    (lambda g: g.add_node(Node("z", "Dense", {"units": 3})), "unknown attribute 'units'"),
    (lambda g: g.add_node(Node("2x", "Dense")), "Python identifier"),
    (lambda g: g.set_attr("fc1", "bias", "yes"), "bias: must be true or false"),
    (lambda g: g.connect(("fc1", "nope"), ("act", "x")), "no output port 'nope'"),
    (lambda g: g.rename("fc1", "act"), "already exists"),
    (lambda g: g.rename("fc1", "class"), "Python identifier"),
    # the same rules asked without editing (the GUI asks before it pushes an undo command)
    (lambda g: g.check_node(Node("fc1", "Dense")), "already exists"),
    (lambda g: g.new_node("Teleporter"), "unknown layer type 'Teleporter'"),
    (lambda g: g.new_node("Dense", attrs={"out_features": 0}), "out_features: must be >= 1"),
    (lambda g: g.new_node("Dense", node_id="2x"), "Python identifier"),
    (lambda g: g.check_attr("fc1", "bias", "yes"), "Dense 'fc1': bias: must be true or false"),
    (lambda g: g.check_attr("nobody", "bias", True), "no node named 'nobody'"),
    (lambda g: g.check_rename("fc1", "act"), "already exists"),
])
def test_bad_edits_are_refused_and_change_nothing(edit, message):
    g = mlp()
    before = graph_to_dict(g)
    with pytest.raises(GraphError, match=message):
        edit(g)
    assert graph_to_dict(g) == before


def test_the_checks_return_what_the_edit_would_store():
    g = mlp()
    node = g.new_node("Dense", (1, 2), {"out_features": 5})
    assert (node.id, node.pos, node.attrs["out_features"]) == ("dense1", (1.0, 2.0), 5)
    assert set(node.attrs) == set(g.check_node(Node("z", "Dense")).attrs)  # defaults filled
    assert "dense1" not in g.nodes  # asked, not added
    assert g.check_attr("fc1", "out_features", 9) == {**g.nodes["fc1"].attrs, "out_features": 9}
    assert g.nodes["fc1"].attrs["out_features"] == 8
    g.check_rename("fc1", "fc1")  # keeping the id is fine


def test_a_cycle_is_refused():
    g = mlp()
    g.disconnect(g.edge_into(("fc1", "x")))
    with pytest.raises(GraphError, match="cycle"):
        g.connect(("fc2", "y"), ("fc1", "x"))


def test_signals_follow_every_edit():
    g, seen = Graph(), []
    for name in ("node_added", "node_removed", "edge_added", "edge_removed", "attr_changed",
                 "node_renamed", "frozen_changed"):
        getattr(g, name).connect(lambda *a, name=name: seen.append(name))
    g.add_node(Node("a", "Input", {"shape": [2]}))
    g.add_node(Node("b", "Dense"))
    g.connect(("a", "y"), ("b", "x"))
    g.set_attr("b", "out_features", 5)
    g.set_frozen("b", True)
    g.rename("b", "head")
    node, edges = g.remove_node("head")
    assert seen == ["node_added", "node_added", "edge_added", "attr_changed", "frozen_changed",
                    "node_renamed", "edge_removed", "node_removed"]
    assert edges == [Edge(("a", "y"), ("head", "x"))] and node.frozen


def test_shape_errors_name_the_node_and_the_fix():
    g = Graph()
    g.add_node(Node("img", "Input", {"shape": [1, 28, 28]}))
    g.add_node(Node("fc1", "Dense", {"out_features": 10}))
    g.connect(("img", "y"), ("fc1", "x"))
    report = infer_shapes(g)
    assert report.errors["fc1"] == "Dense 'fc1': expects a vector, got 1×28×28 — add Flatten"
    assert report.fixes["fc1"] == "Flatten"
    g.add_node(Node("orphan", "ReLU"))
    assert "input 'x' is not connected" in infer_shapes(g).errors["orphan"]


def test_round_trip_through_a_file(tmp_path):
    g = mlp()
    g.set_frozen("fc1", True)
    g.move("fc2", (120.5, -3))
    path = tmp_path / "m.json"
    save_project(Project(g, {"lr": 0.1}, {"spec": "spirals"}), path)
    p = load_project(path)
    assert graph_to_dict(p.graph) == graph_to_dict(g)
    assert p.training == {"lr": 0.1} and p.data == {"spec": "spirals"}
    assert [f for f in os.listdir(tmp_path)] == ["m.json"]  # no temporary file left behind


BAD_FILES = [
    ("{not json", "not valid JSON (line 1"),
    ("[]", "top level: must be a JSON object"),
    ('{"format": "other", "version": 1, "nodes": []}', "format: must be 'layerloom-graph'"),
    ('{"format": "layerloom-graph", "version": 9, "nodes": []}', "version 9 is not supported"),
    ('{"format": "layerloom-graph", "version": 1, "nodes": [{"id": "a"}]}', "nodes[0].type: must be a string"),
    ('{"format": "layerloom-graph", "version": 1, "nodes": [{"id": "a", "type": "Dense", "attrs": {"out_features": -1}}]}',
     "nodes[0].attrs.out_features: must be >= 1, got -1"),
    ('{"format": "layerloom-graph", "version": 1, "nodes": [{"id": "a", "type": "Dense"}], '
     '"edges": [{"from": ["a", "y"], "to": ["zz", "x"]}]}', "edges[0].to: no node named 'zz'"),
    ('{"format": "layerloom-graph", "version": 1, "nodes": [], "edges": [{"from": "a"}]}',
     "edges[0].from: must be [node_id, port]"),
]


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_malformed_files_give_one_line_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(FormatError) as err:
        load_project(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    save_project(Project(mlp()), path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    g = mlp()
    g.remove_node("act")
    with pytest.raises(OSError):
        save_project(Project(g), path)
    assert path.read_bytes() == before
    assert json.loads(before)["format"] == "layerloom-graph"
    assert os.listdir(tmp_path) == ["m.json"]
