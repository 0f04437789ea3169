"""Grouping, ungrouping, "make unique" and the block library, headless: each keeps the model
computing exactly what it computed, and a refused edit says why in one line."""
import numpy as np
import pytest

from layerloom.engine.block_library import (TEMPLATES, LibraryError, bundle_definitions,
                                            bundle_of, read_block_file, save_user_block,
                                            user_blocks)
from layerloom.engine.blocks import (apply_edits, definition_copy, group_edits, plan_group,
                                     plan_ungroup, ungroup_edits)
from layerloom.engine.graph import Graph, GraphError, Node
from layerloom.engine.network import Network
from layerloom.engine.serialize import graph_from_dict
from layerloom.engine.shapes import infer_shapes

from .block_cases import hand_wired, model_with_blocks


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((5, 4)), "t": rng.integers(0, 3, 5)}


def loss_of(graph: Graph, params: dict) -> float:
    net = Network(graph, dtype=np.float64)
    net.load_params(params)
    return float(net.forward(batch())["loss"])


def test_grouping_makes_a_block_with_ports_where_edges_crossed():
    g = graph_from_dict(hand_wired(1))
    before = Network(g, dtype=np.float64, seed=4)
    want = float(before.forward(batch())["loss"])
    plan = plan_group(g, ["enc0_fc1", "enc0_act", "enc0_fc2", "enc0_add"])
    apply_edits(g, group_edits(plan))
    (inst,) = [n for n in g.nodes.values() if n.type == "Block"]
    assert g.input_ports(inst.id) == ("x",) and g.output_ports(inst.id) == ("y",)
    assert g.blocks[plan.name].port_nodes("BlockInput") == ("x",)
    params = {k.replace("enc0_", f"{inst.id}.enc0_"): v for k, v in before.params.items()}
    assert loss_of(g, params) == pytest.approx(want, rel=1e-12)


def test_a_value_read_in_two_places_becomes_one_port_and_two_outputs_two_ports():
    g = graph_from_dict(hand_wired(1))
    plan = plan_group(g, ["enc0_fc1", "enc0_act"])  # fc1 reads stem; act feeds fc2
    assert [n["id"] for n in plan.level["nodes"] if n["type"] == "BlockInput"] == ["x"]
    plan = plan_group(g, ["stem", "enc0_fc1"])  # stem also feeds add; fc1 feeds act
    outs = [n["id"] for n in plan.level["nodes"] if n["type"] == "BlockOutput"]
    assert outs == ["y1", "y2"]


@pytest.mark.parametrize("ids,message", [
    ([], "select the nodes to group first"),
    (["x", "stem"], "Input 'x' cannot go inside a block"),
    (["stem", "enc0_add"], "the selection leaves and re-enters through 'enc0_fc1'"),
])
def test_grouping_what_cannot_be_a_block_is_refused(ids, message):
    g = graph_from_dict(hand_wired(1))
    with pytest.raises(GraphError, match=message):
        plan_group(g, ids)


@pytest.mark.parametrize("repeat", [1, 3])
def test_ungrouping_puts_every_copy_back_and_computes_the_same(repeat):
    g = graph_from_dict(model_with_blocks(repeat))
    net = Network(g, dtype=np.float64, seed=1)
    want = float(net.forward(batch())["loss"])
    plan = plan_ungroup(g, "enc")
    apply_edits(g, ungroup_edits(plan))
    assert not g.blocks and len(g.nodes) == 5 + 4 * repeat
    names = {f"enc.{k}." if repeat > 1 else "enc.": "" for k in range(repeat)}
    ids = [n.id for n in plan.nodes]  # fc1, act, fc2, add, fc1_2, ...
    params = {}
    for key, value in net.params.items():
        if key.startswith("enc."):
            k, rest = (int(key.split(".")[1]), key.split(".", 2)[2]) if repeat > 1 else \
                (0, key.split(".", 1)[1])
            node, param = rest.split(".", 1)
            key = f"{ids[4 * k + ['fc1', 'act', 'fc2', 'add'].index(node)]}.{param}"
        params[key] = value
    assert names and loss_of(g, params) == pytest.approx(want, rel=1e-12)


def test_ungrouping_one_of_two_instances_keeps_the_definition():
    g = graph_from_dict(model_with_blocks(1))
    g.add_node(Node("spare", "Block", {"block": "res"}))
    assert plan_ungroup(g, "enc").unused is None
    apply_edits(g, ungroup_edits(plan_ungroup(g, "spare")))
    assert "res" in g.blocks


def test_make_unique_detaches_one_instance_from_its_definition():
    g = graph_from_dict(model_with_blocks(1))
    g.add_node(Node("spare", "Block", {"block": "res"}))
    name, level = definition_copy(g, "spare")
    apply_edits(g, [("add_block", name, level), ("set_attr", "spare", "block", name)])
    g.blocks[name].set_attr("fc1", "out_features", 9)
    assert g.blocks["res"].nodes["fc1"].attrs["out_features"] == 5
    assert name == "res_2" and g.nodes["spare"].attrs["block"] == name


# ------------------------------------------------------------------------------ the library
@pytest.mark.parametrize("title,settings,shape", [
    ("Residual", {}, (16, 8, 8)),
    ("Residual", {"in_channels": 8, "out_channels": 16, "stride": 2}, (8, 8, 8)),
    ("Bottleneck", {}, (64, 6, 6)),
    ("Bottleneck", {"in_channels": 32, "stride": 2}, (32, 6, 6)),
    ("Depthwise-separable", {"in_channels": 6, "out_channels": 10, "stride": 2}, (6, 7, 7)),
    ("Transformer encoder", {"embed_dim": 16, "num_heads": 2, "ff_dim": 32}, (5, 16)),
    ("MLP", {"hidden": 8, "out_features": 6, "residual": True}, (6,)),
])
def test_every_stock_block_builds_a_model_that_trains(title, settings, shape):
    bundle = TEMPLATES[title].bundle(settings)
    g = Graph()
    adds, name = bundle_definitions(g, bundle)
    apply_edits(g, [("add_block", n, level) for n, level in adds] + [
        ("add_node", Node("x", "Input", {"shape": list(shape)})),
        ("add_node", Node("blk", "Block", {"block": name})),
        ("add_node", Node("loss", "MSELoss")), ("add_node", Node("t", "Label", {"kind": "values"})),
        ("connect", ("x", "y"), ("blk", "x")), ("connect", ("blk", "out"), ("loss", "input"))])
    report = infer_shapes(g)
    out = report.shapes[("blk", "out")]
    g.set_attr("t", "shape", list(out[1:]))
    g.connect(("t", "y"), ("loss", "target"))
    net = Network(g, seed=0)
    rng = np.random.default_rng(0)
    net.forward({"x": rng.standard_normal((2, *shape)), "t": rng.standard_normal((2, *out[1:]))},
                training=True)
    grads = net.backward()
    assert grads and all(np.isfinite(v).all() for v in grads.values())
    projected = any(n["id"] == "proj" for n in bundle["nodes"])
    changes = settings.get("stride", 1) != 1 or "in_channels" in settings
    assert projected == (title in ("Residual", "Bottleneck") and changes)


def test_the_same_stock_block_twice_is_one_definition_and_a_different_one_is_renamed():
    g = Graph()
    for settings, expect in (({}, "residual"), ({}, "residual"), ({"out_channels": 8},
                                                                   "residual_2")):
        adds, name = bundle_definitions(g, TEMPLATES["Residual"].bundle(settings))
        apply_edits(g, [("add_block", n, level) for n, level in adds])
        assert name == expect
    assert list(g.blocks) == ["residual", "residual_2"]


def test_a_saved_block_comes_back_with_the_blocks_it_uses(tmp_path):
    g = graph_from_dict(model_with_blocks(2))
    outer = {"nodes": [{"id": "i", "type": "BlockInput"},
                       {"id": "r", "type": "Block", "attrs": {"block": "res", "repeat": 2}},
                       {"id": "o", "type": "BlockOutput"}],
             "edges": [{"from": ["i", "y"], "to": ["r", "x"]}, {"from": ["r", "out"], "to": ["o", "x"]}]}
    apply_edits(g, [("add_block", "stack", outer)])
    path = save_user_block(tmp_path / "blocks", g, "stack")
    assert [b.name for b in user_blocks(tmp_path / "blocks")] == ["stack"]
    bundle = read_block_file(path)
    assert bundle == bundle_of(g, "stack") and list(bundle["blocks"]) == ["res"]
    other = Graph()
    adds, name = bundle_definitions(other, bundle)
    assert [n for n, _ in adds] == ["res", "stack"] and name == "stack"


@pytest.mark.parametrize("text,message", [
    ("{", "cannot read (not valid JSON (line 1"),
    ("[" * 100_000, "cannot read (nested 100,000 levels deep"),
    ('{"name": ' + "9" * 5000 + "}", "cannot read (an integer of 5,000 digits"),
    ('{"format": "layerloom-graph"}', "not a Layerloom block file"),
    ('{"format": "layerloom-block", "version": 1, "name": "a", "nodes": '
     '[{"id": "b", "type": "Block", "attrs": {"block": "a"}}]}', "block 'a' cannot contain itself"),
])
def test_a_broken_saved_block_is_refused_in_one_line(tmp_path, text, message):
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(LibraryError) as err:
        read_block_file(path)
    assert message in str(err.value)
    assert str(err.value).startswith("a.json: ") and "\n" not in str(err.value)


def test_saving_a_different_block_under_a_taken_name_keeps_both(tmp_path):
    g = graph_from_dict(model_with_blocks(1))
    first = save_user_block(tmp_path, g, "res")
    assert save_user_block(tmp_path, g, "res") == first  # the same block: saved over itself
    g.blocks["res"].set_attr("fc1", "out_features", 9)
    second = save_user_block(tmp_path, g, "res")
    assert second.name == "res_2.json" and read_block_file(second)["name"] == "res_2"
    assert read_block_file(first)["nodes"][1]["attrs"]["out_features"] == 5


@pytest.mark.parametrize("repeat", [1, 2])
def test_the_stock_decoder_block_repeats_and_ignores_padded_memory(repeat):
    """The T5 decoder block: memory and mask pass through, so ×N gives every copy the same
    encoder output; a padded memory position changes nothing downstream."""
    bundle = TEMPLATES["Transformer decoder"].bundle({"embed_dim": 8, "num_heads": 2,
                                                      "ff_dim": 16})
    g = Graph()
    adds, name = bundle_definitions(g, bundle)
    apply_edits(g, [("add_block", n, level) for n, level in adds] + [
        ("add_node", Node("x", "Input", {"shape": [4, 8]})),
        ("add_node", Node("mem", "Input", {"shape": [5, 8]})),
        ("add_node", Node("pad", "Input", {"shape": [5]})),
        ("add_node", Node("dec", "Block", {"block": name, "repeat": repeat})),
        ("add_node", Node("loss", "MSELoss")),
        ("add_node", Node("t", "Label", {"kind": "values", "shape": [4, 8]})),
        ("connect", ("x", "y"), ("dec", "x")), ("connect", ("mem", "y"), ("dec", "memory")),
        ("connect", ("pad", "y"), ("dec", "mask")), ("connect", ("dec", "out"), ("loss", "input")),
        ("connect", ("t", "y"), ("loss", "target"))])
    assert infer_shapes(g).shapes[("dec", "out")][1:] == (4, 8)
    net = Network(g, seed=0)
    rng = np.random.default_rng(0)
    pad = np.array([[0, 0, 0, 1, 1]] * 2, np.float64)
    feed = {"x": rng.standard_normal((2, 4, 8)), "mem": rng.standard_normal((2, 5, 8)),
            "pad": pad, "t": rng.standard_normal((2, 4, 8))}
    first = net.forward(feed, training=True)
    grads = net.backward()
    assert grads and all(np.isfinite(v).all() for v in grads.values())
    assert sum(".cross." in k for k in grads) == repeat * 4  # in_proj, out_proj: each copy's own
    feed["mem"] = feed["mem"].copy()
    feed["mem"][:, 3:] += 100.0  # the padded positions
    again = net.forward(feed, training=True)
    key = next(k for k in first if k.startswith("dec") and k.endswith(".out"))
    assert first[key].shape == (2, 4, 8), key  # the block's output, not memory passing through
    np.testing.assert_allclose(again[key], first[key], rtol=1e-12, atol=1e-12)
