"""Blocks in the engine: the file format, the rules that span levels, shape inference through
blocks, and a repeated block computing exactly what the same layers wired by hand compute."""
import copy
import json

import numpy as np
import pytest

from layerloom.engine.graph import GraphError
from layerloom.engine.network import Network
from layerloom.engine.serialize import FormatError, Project, graph_from_dict, graph_to_dict, load_project, save_project
from layerloom.engine.shapes import infer_shapes, param_counts

from .block_cases import edge, flat_key, hand_wired, model_with_blocks, node


def batch(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 4)), "t": rng.integers(0, 3, n)}


# ------------------------------------------------------------------------------ the file format
def test_a_model_with_blocks_round_trips_through_a_version_2_file(tmp_path):
    data = model_with_blocks()
    save_project(Project(graph_from_dict(data)), tmp_path / "m.json")
    text = json.loads((tmp_path / "m.json").read_text())
    assert text["version"] == 2 and list(text["blocks"]) == ["res"]
    assert graph_to_dict(graph_from_dict(text)) == graph_to_dict(graph_from_dict(data))


def test_a_file_without_blocks_stays_version_1_and_loads_unchanged(tmp_path):
    data = hand_wired(2)
    assert graph_to_dict(graph_from_dict(data)) == {**data, "nodes": graph_to_dict(graph_from_dict(data))["nodes"]}
    assert "blocks" not in graph_to_dict(graph_from_dict(data))
    assert graph_to_dict(graph_from_dict(data))["version"] == 1


@pytest.mark.parametrize("uses,message", [
    ({"res": "res"}, "blocks.res.nodes[6]: block 'res' cannot contain itself"),
    ({"res": "inner", "inner": "res"}, "block 'inner' cannot contain itself through 'res'"),
])
def test_a_block_that_contains_itself_is_a_one_line_load_error(tmp_path, uses, message):
    data = model_with_blocks()
    data["blocks"]["inner"] = copy.deepcopy(data["blocks"]["res"])
    for name, used in uses.items():
        data["blocks"][name]["nodes"].append(node("again", "Block", {"block": used}))
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError) as err:
        load_project(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("loop.json: blocks.")


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d.update(version=1), "blocks: block definitions need version 2"),
    (lambda d: d.update(version=3), "version 3 is not supported"),
    (lambda d: d["nodes"][3]["attrs"].update(block="nope"), "no block definition named 'nope'"),
    (lambda d: d["blocks"]["res"]["nodes"].append(node("img", "Input")),
     "blocks.res.nodes[6]: Input 'img' cannot go inside block 'res'"),
    (lambda d: d["nodes"].append(node("p", "BlockInput")),
     "nodes[6]: BlockInput 'p': block ports only go inside a block definition"),
    (lambda d: d["edges"].append(edge("enc.nope", "t.x")), "'enc' has no output port 'nope'"),
    (lambda d: d.update(blocks={"two words": {"nodes": []}}), "must be a Python identifier"),
    (lambda d: d.update(blocks=[]), "blocks: must be an object"),
])
def test_bad_block_files_are_refused_in_one_line(mutate, message):
    data = model_with_blocks()
    mutate(data)
    with pytest.raises(FormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        graph_from_dict(data)


# ------------------------------------------------------------------------------ rules across levels
def test_a_port_wired_on_an_instance_cannot_be_removed_or_renamed_inside():
    g = graph_from_dict(model_with_blocks())
    res = g.blocks["res"]
    for edit in (lambda: res.remove_node("x"), lambda: res.rename("out", "y")):
        with pytest.raises(GraphError, match="connected on 'enc'; disconnect it there first"):
            edit()
    g.disconnect(g.edge_into(("enc", "x")))
    res.rename("x", "inp")
    assert g.input_ports("enc") == ("inp",)


def test_a_used_definition_cannot_be_removed_and_an_unused_one_can():
    g = graph_from_dict(model_with_blocks())
    with pytest.raises(GraphError, match="still used by 'enc'"):
        g.remove_block("res")
    g.remove_node("enc")
    definition, index = g.remove_block("res")
    assert index == 0 and not g.blocks
    g.add_block(definition, index)
    assert g.blocks["res"] is definition


def test_switching_an_instance_keeps_its_wires_or_is_refused():
    data = model_with_blocks()
    data["blocks"]["other"] = {"nodes": [node("x", "BlockInput"), node("o", "BlockOutput")],
                               "edges": [edge("x.y", "o.x")]}
    g = graph_from_dict(data)
    with pytest.raises(GraphError, match="block 'other' has no port 'out'"):
        g.set_attr("enc", "block", "other")
    assert g.nodes["enc"].attrs["block"] == "res"


def test_an_edit_inside_a_definition_reaches_the_model_and_every_instance():
    data = model_with_blocks(repeat=1)
    data["nodes"].append(node("enc2", "Block", {"block": "res"}))
    data["edges"][2] = edge("enc.out", "enc2.x")
    data["edges"].append(edge("enc2.out", "head.x"))
    data["edges"] = [e for e in data["edges"] if e != edge("enc.out", "head.x")]
    g = graph_from_dict(data)
    seen = []
    g.block_changed.connect(seen.append)
    g.changed.connect(lambda: seen.append("model"))
    before = param_counts(g)
    g.blocks["res"].set_attr("fc1", "out_features", 9)
    assert seen == ["res", "model"]
    after = param_counts(g)
    assert after["enc"] == after["enc2"] > before["enc"] == before["enc2"]
    net = Network(g)
    assert net.params["enc.fc1.weight"].shape == net.params["enc2.fc1.weight"].shape == (9, 6)


# ------------------------------------------------------------------------------ shapes
def test_shape_errors_inside_a_block_name_the_path():
    data = model_with_blocks(repeat=4)
    data["blocks"]["res"]["nodes"][3]["attrs"]["out_features"] = 7  # fc2 no longer fits the Add
    report = infer_shapes(graph_from_dict(data))
    assert report.errors["enc"].startswith("enc.0.add: cannot add 6 and 7")
    assert report.inner["enc"].errors["add"] == report.errors["enc"]


def test_a_repeated_block_must_give_what_it_takes():
    data = model_with_blocks(repeat=1)
    res = data["blocks"]["res"]
    res["nodes"][4] = node("add", "Concat")  # 6 + 6 features out, 6 in
    assert infer_shapes(graph_from_dict(data)).ok
    data["nodes"][3]["attrs"]["repeat"] = 2
    error = infer_shapes(graph_from_dict(data)).errors["enc"]
    assert error.startswith("Block 'enc': repeat 2 feeds each copy's outputs into the next")
    assert "takes 6 and gives 12" in error


def test_parameter_counts_multiply_by_the_repeat():
    one = param_counts(graph_from_dict(model_with_blocks(repeat=1)))["enc"]
    assert param_counts(graph_from_dict(model_with_blocks(repeat=4)))["enc"] == 4 * one
    assert one == (6 * 5 + 5) + (5 * 6 + 6)


# ------------------------------------------------------------------------------ running blocks
@pytest.mark.parametrize("repeat", [1, 3])
def test_a_repeated_block_computes_what_the_hand_wired_graph_computes(repeat):
    net = Network(graph_from_dict(model_with_blocks(repeat)), dtype=np.float64, seed=3)
    flat = Network(graph_from_dict(hand_wired(repeat)), dtype=np.float64)
    flat.load_params({flat_key(k, repeat): v for k, v in net.params.items()})
    out, ref = net.forward(batch(), training=True), flat.forward(batch(), training=True)
    net.backward()
    flat.backward()
    assert out["loss"] == pytest.approx(ref["loss"], rel=1e-12)
    assert np.allclose(out["enc"], ref[f"enc{repeat - 1}_add"], rtol=1e-12)
    assert set(net.grads) == set(net.params)
    for key, grad in net.grads.items():
        np.testing.assert_allclose(grad, flat.grads[flat_key(key, repeat)], rtol=1e-10)


def test_parameter_keys_are_module_paths():
    assert sorted(Network(graph_from_dict(model_with_blocks(1))).params) == [
        "enc.fc1.bias", "enc.fc1.weight", "enc.fc2.bias", "enc.fc2.weight",
        "head.bias", "head.weight", "stem.bias", "stem.weight"]
    keys = Network(graph_from_dict(model_with_blocks(2))).params
    assert {"enc.0.fc1.weight", "enc.1.fc2.bias"} <= set(keys)


def test_weights_files_keep_the_dotted_keys(tmp_path):
    net = Network(graph_from_dict(model_with_blocks(2)), seed=1)
    net.save_weights(tmp_path / "w.safetensors")
    other = Network(graph_from_dict(model_with_blocks(2)), seed=2)
    other.load_weights(tmp_path / "w.safetensors")
    assert all(np.array_equal(net.params[k], other.params[k]) for k in net.params)


def test_frozen_instance_or_inner_node_trains_nothing_there():
    frozen_all = Network(graph_from_dict(model_with_blocks(2, frozen_enc=True)))
    assert not any(k.startswith("enc.") for k in frozen_all.trainable_keys)
    data = model_with_blocks(2)
    data["blocks"]["res"]["nodes"][1]["frozen"] = True  # fc1, in every copy
    keys = Network(graph_from_dict(data)).trainable_keys
    assert not any(".fc1." in k for k in keys) and {"enc.0.fc2.weight", "enc.1.fc2.weight"} <= set(keys)


def test_a_block_inside_a_block_flattens_to_nested_paths():
    data = model_with_blocks(repeat=2)
    data["blocks"]["outer"] = {
        "nodes": [node("x", "BlockInput"), node("inner", "Block", {"block": "res", "repeat": 2}),
                  node("o", "BlockOutput")],
        "edges": [edge("x.y", "inner.x"), edge("inner.out", "o.x")]}
    data["nodes"][3]["attrs"]["block"] = "outer"
    data["edges"] = [edge("enc.o", "head.x") if e == edge("enc.out", "head.x") else e
                     for e in data["edges"]]
    net = Network(graph_from_dict(data))
    assert "enc.1.inner.0.fc2.weight" in net.params and len(net.params) == 4 + 4 * 4
    out = net.forward(batch(), training=True)
    assert out["enc"].shape == (5, 6) and np.array_equal(out["enc"], out["enc.1.inner"])


def test_a_six_block_gpt_built_with_repeat_trains_through_layerloom_train(tmp_path, capsys):
    from layerloom.engine import cli
    from layerloom.engine.export.weights import load_weights
    from layerloom.engine.paths import SAMPLES

    data = json.loads((SAMPLES / "tiny_gpt.json").read_text())
    (blocks,) = [n for n in data["nodes"] if n["type"] == "Block"]
    blocks["attrs"]["repeat"] = 6
    path, weights, metrics = tmp_path / "gpt6.json", tmp_path / "w.npz", tmp_path / "m.json"
    path.write_text(json.dumps(data))
    argv = ["train", str(path), "--max-steps", "2", "--save-weights", str(weights),
            "--metrics-json", str(metrics)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    losses = json.loads(metrics.read_text())["step_losses"]
    assert len(losses) == 2 and all(np.isfinite(losses))
    keys = load_weights(weights)
    per_block = {k.split(".", 2)[2] for k in keys if k.startswith("blocks.0.")}
    assert {"attn.in_proj_weight", "ff1.weight", "ln2.bias"} <= per_block
    assert {k for k in keys if k.startswith("blocks.")} == {
        f"blocks.{i}.{name}" for i in range(6) for name in per_block}


def test_a_graph_diff_names_the_block_whose_structure_changed_not_its_layout():
    from layerloom.engine.graph_diff import diff_graphs

    a, b = model_with_blocks(2), model_with_blocks(2)
    b["blocks"]["res"]["nodes"][2]["pos"] = [300, 40]  # layout only
    assert diff_graphs(a, b).empty
    b["blocks"]["res"]["nodes"][1]["attrs"]["out_features"] = 7
    assert diff_graphs(a, b).lines() == ["block res differ"]


def test_fusion_applies_inside_and_across_blocks_and_what_leaves_one_is_still_given():
    from layerloom.engine.paths import SAMPLES

    net = Network(load_project(SAMPLES / "tiny_gpt.json").graph)
    fused = {s.node_id: [m.node_id for m in s.members] for s in net.executor.schedule if s.members}
    assert fused["blocks.0.ff2"] == ["blocks.0.ff1", "blocks.0.gelu", "blocks.0.ff2"]
    assert fused["blocks.1.ff2"] == ["blocks.1.ff1", "blocks.1.gelu", "blocks.1.ff2"]
    data = model_with_blocks(2)  # without its Add: stem, then two copies of Dense-Tanh-Dense
    res = data["blocks"]["res"]
    res["nodes"] = [n for n in res["nodes"] if n["id"] != "add"]
    res["edges"] = [e for e in res["edges"] if "add" not in (e["from"][0], e["to"][0])]
    res["edges"].append(edge("fc2.y", "out.x"))
    net = Network(graph_from_dict(data), dtype=np.float64)
    chains = [[m.node_id for m in s.members] for s in net.executor.schedule if s.members]
    assert chains == [["stem", "enc.0.fc1", "enc.0.act", "enc.0.fc2", "enc.1.fc1", "enc.1.act",
                       "enc.1.fc2"]]  # one Dense chain through both copies
    reference = Network(graph_from_dict(data), dtype=np.float64, fuse=False)
    reference.load_params(net.params)
    out, want = net.forward(batch()), reference.forward(batch())
    np.testing.assert_allclose(out["enc"], want["enc"], rtol=1e-12)
    np.testing.assert_allclose(out["enc.0.fc2"], want["enc.0.fc2"], rtol=1e-12)
