"""Models with blocks export as Layerloom runs them: ONNX flat (paths in the names) and equal in
onnxruntime; PyTorch code with one module class per definition and an ``nn.ModuleList`` per
repeat, whose state_dict keys are the weights file's keys."""
import numpy as np
import pytest

from layerloom.engine.export.onnx import onnx_bytes
from layerloom.engine.export.torch_code import torch_source
from layerloom.engine.network import Network
from layerloom.engine.serialize import graph_from_dict

from .block_cases import edge, model_with_blocks, node
from .test_export_torch import as_tensor, exported, torch_model

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")


def feeds(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 4)), "t": rng.integers(0, 3, n)}


def nested() -> dict:
    """Block "stage" = one "res" ×2 then a Dense; the model uses stage ×2 and res once more."""
    data = model_with_blocks(repeat=1)
    data["blocks"]["stage"] = {
        "nodes": [node("inp", "BlockInput"), node("body", "Block", {"block": "res", "repeat": 2}),
                  node("mix", "Dense", {"out_features": 6}), node("o", "BlockOutput")],
        "edges": [edge("inp.y", "body.x"), edge("body.out", "mix.x"), edge("mix.y", "o.x")]}
    data["nodes"].append(node("stages", "Block", {"block": "stage", "repeat": 2}))
    data["edges"] = [e for e in data["edges"] if e != edge("enc.out", "head.x")]
    data["edges"] += [edge("enc.out", "stages.inp"), edge("stages.o", "head.x")]
    return data


@pytest.mark.parametrize("data", [model_with_blocks(3), nested()], ids=["repeat", "nested"])
def test_onnx_of_repeated_blocks_runs_in_onnxruntime_as_layerloom_runs_it(data):
    import onnx

    net = Network(graph_from_dict(data), seed=1)
    want = net.forward({k: v.astype(np.float32) if v.dtype.kind == "f" else v
                        for k, v in feeds().items()})
    blob = onnx_bytes(net)
    names = {i.name for i in onnx.load_from_string(blob).graph.initializer}
    assert set(net.params) <= names and names & {"enc.fc1.weight", "enc.0.fc1.weight"}
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": feeds()["x"].astype(np.float32)})
    assert [o.name for o in session.get_outputs()] == ["head"]
    np.testing.assert_allclose(got, want["head"], rtol=1e-4, atol=2e-5)


def test_onnx_names_what_leaves_a_block_after_the_instance():
    data = model_with_blocks(2)
    data["nodes"] = [n for n in data["nodes"] if n["id"] in ("x", "stem", "enc")]
    data["edges"] = data["edges"][:2]
    net = Network(graph_from_dict(data), seed=0)
    session = ort.InferenceSession(onnx_bytes(net), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"x": feeds()["x"].astype(np.float32)})
    assert [o.name for o in session.get_outputs()] == ["enc"]
    np.testing.assert_allclose(got, net.forward({"x": feeds()["x"]})["enc"], rtol=1e-5)


def test_pytorch_code_has_a_class_per_definition_and_a_module_list_per_repeat(tmp_path):
    source = torch_source(graph_from_dict(nested()))
    assert source.count("class Res(nn.Module):") == 1
    assert source.count("class Stage(nn.Module):") == 1
    assert "self.enc = Res()" in source
    assert "self.stages = nn.ModuleList([Stage() for _ in range(2)])" in source
    assert "self.body = nn.ModuleList([Res() for _ in range(2)])" in source
    assert "for block in self.stages:" in source
    assert source.index("class Res(") < source.index("class Stage(") < source.index("class Net(")


@pytest.mark.parametrize("data", [model_with_blocks(3), model_with_blocks(1), nested()],
                         ids=["repeat", "once", "nested"])
def test_a_weights_file_is_the_exported_module_s_state_dict(data, tmp_path):
    g = graph_from_dict(data)
    net = Network(g, dtype=np.float64, seed=2)
    module, _ = exported(g, tmp_path)
    assert set(module.Net().state_dict()) == set(net.params)
    model = torch_model(module, net, tmp_path)
    net.forward(feeds())
    with torch.no_grad():
        loss = module.compute_loss(model(as_tensor(feeds()["x"])), as_tensor(feeds()["t"]))
    assert float(loss) == pytest.approx(net.loss(), rel=1e-9)


def test_frozen_instances_and_inner_nodes_stay_frozen_in_pytorch(tmp_path):
    data = model_with_blocks(2, frozen_enc=True)
    module, _ = exported(graph_from_dict(data), tmp_path, "frozen_all")
    frozen = {k for k, p in module.Net().named_parameters() if not p.requires_grad}
    assert frozen == {k for k in Network(graph_from_dict(data)).params if k.startswith("enc.")}
    data = model_with_blocks(2)
    data["blocks"]["res"]["nodes"][1]["frozen"] = True
    module, _ = exported(graph_from_dict(data), tmp_path, "frozen_fc1")
    frozen = {k for k, p in module.Net().named_parameters() if not p.requires_grad}
    assert frozen == {f"enc.{k}.fc1.{p}" for k in (0, 1) for p in ("weight", "bias")}


def test_a_definition_used_at_two_widths_gets_a_class_for_each(tmp_path):
    """Block "flex" (one Dense) sees 8 features in one place and 64 in the next: its Linear
    layers differ, so each use gets its own class."""
    data = model_with_blocks(1)
    data["blocks"]["flex"] = {"nodes": [node("x", "BlockInput"), node("fc", "Dense"),
                                        node("out", "BlockOutput")],
                              "edges": [edge("x.y", "fc.x"), edge("fc.y", "out.x")]}
    data["nodes"] += [node("wide", "Dense", {"out_features": 8}),
                      node("flex8", "Block", {"block": "flex"}),
                      node("flex64", "Block", {"block": "flex"})]
    data["edges"] = [e for e in data["edges"] if e != edge("enc.out", "head.x")]
    data["edges"] += [edge("enc.out", "wide.x"), edge("wide.y", "flex8.x"),
                      edge("flex8.out", "flex64.x"), edge("flex64.out", "head.x")]
    g = graph_from_dict(data)
    source = torch_source(g)
    assert "class Flex(nn.Module):" in source and "class Flex2(nn.Module):" in source
    net = Network(g, dtype=np.float64)
    module, _ = exported(g, tmp_path, "two_widths")
    assert set(module.Net().state_dict()) == set(net.params)
    model = torch_model(module, net, tmp_path)
    net.forward(feeds())
    with torch.no_grad():
        loss = module.compute_loss(model(as_tensor(feeds()["x"])), as_tensor(feeds()["t"]))
    assert float(loss) == pytest.approx(net.loss(), rel=1e-9)


def test_a_block_returns_its_outputs_in_port_order_when_one_passes_an_input_through(tmp_path):
    """An encoder block hands its padding mask on unchanged (BlockInput straight to its second
    BlockOutput): that value exists before the first output's, yet comes second."""
    data = model_with_blocks(2)
    res = data["blocks"]["res"]
    res["nodes"] += [node("side", "BlockInput"), node("side_out", "BlockOutput")]
    res["edges"].append(edge("side.y", "side_out.x"))
    data["nodes"] += [node("aside", "Dense", {"out_features": 2}), node("mix", "Dense",
                                                                      {"out_features": 6})]
    data["edges"] = [e for e in data["edges"] if e != edge("enc.out", "head.x")]
    data["edges"] += [edge("x.y", "aside.x"), edge("aside.y", "enc.side"),
                      edge("enc.out", "mix.x"), edge("mix.y", "head.x")]
    g = graph_from_dict(data)
    net = Network(g, dtype=np.float64, seed=3)
    module, _ = exported(g, tmp_path)
    model = torch_model(module, net, tmp_path)
    net.forward(feeds())
    with torch.no_grad():
        loss = module.compute_loss(model(as_tensor(feeds()["x"])), as_tensor(feeds()["t"]))
    assert float(loss) == pytest.approx(net.loss(), rel=1e-9)
