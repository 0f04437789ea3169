"""Small models with blocks, written as graph files (dicts), for the engine and export tests."""
from __future__ import annotations


def node(node_id: str, type_id: str, attrs: dict | None = None, frozen: bool = False) -> dict:
    return {"id": node_id, "type": type_id, "attrs": attrs or {}, "pos": [0, 0], "frozen": frozen}


def edge(src: str, dst: str) -> dict:
    """``"fc1.y"`` -> ``"act.x"``: node and port joined by the last dot."""
    return {"from": src.rsplit(".", 1), "to": dst.rsplit(".", 1)}


def residual_mlp(width: int = 6) -> dict:
    """x -> Dense -> Tanh -> Dense, plus x: keeps its input's shape, so it can repeat."""
    return {"nodes": [node("x", "BlockInput"), node("fc1", "Dense", {"out_features": 5}),
                      node("act", "Tanh"), node("fc2", "Dense", {"out_features": width}),
                      node("add", "Add"), node("out", "BlockOutput")],
            "edges": [edge("x.y", "fc1.x"), edge("fc1.y", "act.x"), edge("act.y", "fc2.x"),
                      edge("x.y", "add.a"), edge("fc2.y", "add.b"), edge("add.y", "out.x")]}


def model_with_blocks(repeat: int = 3, width: int = 6, classes: int = 3, frozen_enc=False) -> dict:
    """Input -> stem Dense -> Block "res" x repeat -> head Dense -> cross-entropy."""
    return {"format": "layerloom-graph", "version": 2,
            "nodes": [node("x", "Input", {"shape": [4]}), node("t", "Label"),
                      node("stem", "Dense", {"out_features": width}),
                      node("enc", "Block", {"block": "res", "repeat": repeat}, frozen=frozen_enc),
                      node("head", "Dense", {"out_features": classes}),
                      node("loss", "CrossEntropyLoss")],
            "edges": [edge("x.y", "stem.x"), edge("stem.y", "enc.x"), edge("enc.out", "head.x"),
                      edge("head.y", "loss.input"), edge("t.y", "loss.target")],
            "blocks": {"res": residual_mlp(width)}}


def hand_wired(repeat: int = 3, width: int = 6, classes: int = 3) -> dict:
    """The same model as ``model_with_blocks``, every copy wired by hand (ids ``enc<k>_fc1``)."""
    nodes = [node("x", "Input", {"shape": [4]}), node("t", "Label"),
             node("stem", "Dense", {"out_features": width})]
    edges, prev = [edge("x.y", "stem.x")], "stem.y"
    for k in range(repeat):
        p = f"enc{k}_"
        nodes += [node(p + "fc1", "Dense", {"out_features": 5}), node(p + "act", "Tanh"),
                  node(p + "fc2", "Dense", {"out_features": width}), node(p + "add", "Add")]
        edges += [edge(prev, p + "fc1.x"), edge(p + "fc1.y", p + "act.x"),
                  edge(p + "act.y", p + "fc2.x"), edge(prev, p + "add.a"),
                  edge(p + "fc2.y", p + "add.b")]
        prev = p + "add.y"
    nodes += [node("head", "Dense", {"out_features": classes}), node("loss", "CrossEntropyLoss")]
    edges += [edge(prev, "head.x"), edge("head.y", "loss.input"), edge("t.y", "loss.target")]
    return {"format": "layerloom-graph", "version": 1, "nodes": nodes, "edges": edges}


def flat_key(key: str, repeat: int) -> str:
    """``enc.2.fc1.weight`` (block model) -> ``enc2_fc1.weight`` (hand-wired model)."""
    parts = key.split(".")
    if parts[0] != "enc":
        return key
    k, rest = (parts[1], parts[2:]) if repeat > 1 else ("0", parts[1:])
    return f"enc{k}_{rest[0]}." + ".".join(rest[1:])
