"""Malformed graph files, one regression per class: each ends in one FormatError line naming the
JSON path, never a traceback (RecursionError, ValueError, TypeError...) or a runaway read."""
import json
import os

import pytest

from layerloom.engine.block_types import STRUCTURAL
from layerloom.engine.graph_check import MAX_NODES
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import FormatError, graph_to_dict, load_project
from layerloom.engine.spec import INT_LIMIT, Attr

from .block_cases import model_with_blocks
from .test_graph import mlp


def graph(**extra) -> dict:
    return {**graph_to_dict(mlp()), **extra}


def refused(tmp_path, content) -> str:
    """Load ``content`` (a dict, or raw text) as a file; the one-line message without the name."""
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(FormatError) as err:
        load_project(path)
    text = str(err.value)
    assert "\n" not in text and len(text) < 300, text
    assert text.startswith("bad.json: "), text
    return text[len("bad.json: "):]


def with_node(i: int, **changes) -> dict:
    data = graph()
    data["nodes"][i].update(changes)
    return data


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_100000_deep_is_refused_before_parsing(tmp_path, opening):
    text = opening * 100_000 + "1" + ("]" if opening == "[" else "}") * 100_000
    assert "nested 100,000 levels deep; at most 64 are allowed" in refused(tmp_path, text)


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    data = graph(comment="[" * 1000 + '\\" {' * 100)  # a key this build does not read
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(data))
    assert graph_to_dict(load_project(path).graph) == graph_to_dict(mlp())


@pytest.mark.parametrize("where", ["attrs", "pos", "version"])
def test_an_integer_literal_of_5000_digits_is_refused_without_converting_it(tmp_path, where):
    text = json.dumps(with_node(2, attrs={"out_features": 7}, pos=[1, 2]))
    big = "9" * 5000
    text = {"attrs": text.replace('"out_features": 7', f'"out_features": {big}'),
            "pos": text.replace('"pos": [1, 2]', f'"pos": [1, {big}]'),
            "version": text.replace('"version": 1', f'"version": {big}')}[where]
    assert "an integer of 5,000 digits" in refused(tmp_path, text)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_numbers(tmp_path, constant):
    text = json.dumps(with_node(2, pos=[1, 2])).replace('"pos": [1, 2]', f'"pos": [1, {constant}]')
    assert f"{constant} at line 1" in refused(tmp_path, text)


def test_a_key_given_twice_is_named_with_its_path(tmp_path):
    text = json.dumps(with_node(2, attrs={"out_features": 7}))
    text = text.replace('"out_features": 7', '"out_features": 7, "out_features": 9')
    assert refused(tmp_path, text) == "nodes[2].attrs: the key 'out_features' appears twice"


@pytest.mark.parametrize("entry,message", [
    (2**63, "nodes[0].attrs.shape[0]: must be <= 2147483647"),
    (10**30, "nodes[0].attrs.shape[0]: must be <= 2147483647"),
    (INT_LIMIT + 1, "nodes[0].attrs.shape[0]: must be <= 2147483647"),
    (-5, "nodes[0].attrs.shape[0]: must be >= 1, got -5"),
    (0, "nodes[0].attrs.shape[0]: must be >= 1, got 0"),
    (1.5, "nodes[0].attrs.shape[0]: must be an integer, got 1.5"),
    (True, "nodes[0].attrs.shape[0]: must be an integer, got True"),
    ("4", "nodes[0].attrs.shape[0]: must be an integer, got '4'"),
])
def test_shape_entries_out_of_range_or_of_the_wrong_type(tmp_path, entry, message):
    assert refused(tmp_path, with_node(0, attrs={"shape": [entry]})).startswith(message)


def test_a_shape_with_too_many_entries(tmp_path):
    assert "must have at most 16 entries" in refused(tmp_path, with_node(0, attrs={"shape": [1] * 10**5}))


def _bad_values(attr: Attr) -> list:
    """A value of the wrong type and values out of range, from the descriptor alone."""
    wrong = {"int": "x", "float": "x", "bool": 1, "choice": ["a list"], "ints": "x", "name": 3}
    out = [wrong.get(attr.kind, object())]
    low, high = getattr(attr, "min", None), getattr(attr, "max", None)
    if attr.kind == "int":
        out += [INT_LIMIT + 1 if high is None else high + 1] + ([low - 1] if low is not None else [])
    elif attr.kind == "float":
        out += [h + 1 for h in [high] if h is not None] + [lo - 1 for lo in [low] if lo is not None]
    elif attr.kind == "ints":
        out += [[INT_LIMIT + 1] * (attr.length or 1)]
        out += [[low - 1] * (attr.length or 1)] if low is not None else []
    return out


ATTR_CASES = [(t, name, value) for t, cls in sorted({**LAYERS, **STRUCTURAL}.items())
              for name, attr in cls.attrs.items() for value in _bad_values(attr)]


@pytest.mark.parametrize("type_id,name,value", ATTR_CASES, ids=lambda v: str(v)[:20])
def test_every_attribute_of_every_layer_is_checked_against_its_descriptor(tmp_path, type_id,
                                                                           name, value):
    data = graph()
    data["nodes"].append({"id": "probe", "type": type_id, "attrs": {name: value}})
    assert refused(tmp_path, data).startswith(f"nodes[6].attrs.{name}")


@pytest.mark.parametrize("changes,message", [
    ({"id": 3}, "nodes[2].id: must be a string, got 3"),
    ({"id": "fc 1"}, "nodes[2].id: node id 'fc 1' must be a Python identifier"),
    ({"id": "class"}, "nodes[2].id: node id 'class' must be a Python identifier"),
    ({"id": "a" * 101}, "nodes[2].id: at most 100 characters"),
    ({"id": "x"}, "nodes[2].id: 'x' is the id of an earlier node"),
    ({"type": "Teleporter" * 100}, "nodes[2].type: unknown layer type 'TeleporterTe...terTeleporter'"),
    ({"attrs": {"units": 3}}, "nodes[2].attrs.units: Dense has no attribute 'units'"),
    ({"attrs": []}, "nodes[2].attrs: must be an object"),
    ({"pos": [1e300, 0]}, "nodes[2].pos: each coordinate must be within"),
    ({"pos": [True, 0]}, "nodes[2].pos: must be [x, y]"),
    ({"pos": [1, 2, 3]}, "nodes[2].pos: must be [x, y]"),
    ({"frozen": "yes"}, "nodes[2].frozen: must be true or false"),
])
def test_ids_types_attributes_and_positions(tmp_path, changes, message):
    assert refused(tmp_path, with_node(2, **changes)).startswith(message)


def test_a_number_literal_too_large_for_a_float_is_an_infinite_position(tmp_path):
    text = json.dumps(with_node(2, pos=[1, 2])).replace('"pos": [1, 2]', '"pos": [1e999, 2]')
    assert refused(tmp_path, text).startswith("nodes[2].pos: each coordinate must be within")


def _edges(*edges) -> dict:
    data = graph()
    data["edges"] = data["edges"] + list(edges)
    return data


@pytest.mark.parametrize("data,message", [
    (_edges({"from": ["nobody", "y"], "to": ["fc1", "x"]}), "edges[5].from: no node named 'nobody'"),
    (_edges({"from": ["x", "out"], "to": ["act", "x"]}),
     "edges[5].from: Input 'x' has no output port 'out' (it has y)"),
    (_edges({"from": ["x", "y"], "to": ["fc1", "x"]}),
     "edges[5].to: input 'x' of 'fc1' is already fed by edges[0]"),
    (_edges({"from": ["fc1", "y"], "to": ["fc1", "x"]}), "edges[5]: connects 'fc1' to itself"),
    (_edges("x.y"), "edges[5]: must be an object"),
    (_edges({"from": "x", "to": ["fc1", "x"]}), "edges[5].from: must be [node_id, port]"),
])
def test_edges_must_join_existing_ports_once(tmp_path, data, message):
    assert refused(tmp_path, data).startswith(message)


def test_a_cycle_is_refused_before_anything_is_built(tmp_path):
    data = graph()
    data["edges"] = [{"from": ["act", "y"], "to": ["fc2", "x"]},
                     {"from": ["fc2", "y"], "to": ["act", "x"]}]
    assert refused(tmp_path, data).startswith("edges: the graph has a cycle through")


def test_a_file_with_more_nodes_than_any_graph_is_refused_by_count(tmp_path):
    data = graph()
    data["nodes"] = [{"id": f"n{i}", "type": "ReLU"} for i in range(MAX_NODES + 1)]
    data["edges"] = []
    assert refused(tmp_path, data) == f"nodes: a file holds at most {MAX_NODES:,} nodes, got 2,001"


def test_a_long_chain_listed_backwards_loads_with_its_edge_order_kept(tmp_path):
    n = 1500  # with the file's own order, connect's cycle check walked the chain per edge
    nodes = [{"id": "x", "type": "Input", "attrs": {"shape": [4]}}]
    nodes += [{"id": f"r{i}", "type": "ReLU"} for i in range(n)]
    ids = [node["id"] for node in nodes]
    edges = [{"from": [ids[i], "y"], "to": [ids[i + 1], "x"]} for i in range(n)][::-1]
    path = tmp_path / "chain.json"
    path.write_text(json.dumps({"format": "layerloom-graph", "version": 1, "nodes": nodes,
                                "edges": edges}))
    graph_ = load_project(path).graph
    assert [[list(e.src), list(e.dst)] for e in graph_.edges] == [[e["from"], e["to"]] for e in edges]


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["nodes"][3]["attrs"].update(block="missing"),
     "nodes[3].attrs.block: no block definition named 'missing'"),
    (lambda d: d["nodes"][3]["attrs"].update(repeat=10**6), "nodes[3].attrs.repeat: must be <= 1000"),
    (lambda d: d["edges"].append({"from": ["enc", "nope"], "to": ["loss", "input"]}),
     "edges[5].from: Block 'enc' has no output port 'nope' (it has out)"),
    (lambda d: d["blocks"]["res"]["nodes"][1]["attrs"].update(out_features="5"),
     "blocks.res.nodes[1].attrs.out_features: must be an integer"),
    (lambda d: d.update(version=1), "blocks: block definitions need version 2"),
    (lambda d: d["blocks"].update({"bad name": {"nodes": []}}), 'blocks["bad name"]: a block name'),
])
def test_block_definitions_and_instances_are_checked_too(tmp_path, mutate, message):
    data = model_with_blocks()
    mutate(data)
    assert refused(tmp_path, data).startswith(message)


def test_a_device_a_fifo_a_folder_and_a_huge_file_are_never_read(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # reading it would block for ever
    for path, message in [("/dev/zero", "not a regular file"), (fifo, "not a regular file"),
                          (tmp_path, "not a regular file"), (tmp_path / "none.json", "no such file")]:
        with pytest.raises(FormatError, match=message):
            load_project(path)
    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(17 * 2**20)  # sparse: nothing is written, the size is enough
    with pytest.raises(FormatError, match="larger than 16 MB"):
        load_project(big)
    bad = tmp_path / "latin.json"
    bad.write_bytes(b'{"format": "caf\xe9"}')
    with pytest.raises(FormatError, match=r"not UTF-8 text \(byte 15\)"):
        load_project(bad)
