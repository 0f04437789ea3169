"""Exported PyTorch code computes what Layerloom computes, loads its weights files, and trains.

Every registered layer (each of its examples, as a one-node graph), every sample graph and a
graph whose node ids clash with names the code uses are exported, imported and run in float64
against ``Network.forward``; the exported command line trains LeNet-5 in a subprocess and its
weights come back into Layerloom. Frozen nodes stay fixed there too.
"""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.export.outputs import ExportError
from layerloom.engine.export.torch_code import MODULE_ATTRIBUTES, torch_source
from layerloom.engine.export.weights import save_weights
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.registry import LAYERS
from layerloom.engine.serialize import load_project

from .graph_cases import SAMPLES, one_node_graph, perturbed, sample_feeds

torch = pytest.importorskip("torch")

COMPUTE = sorted(t for t, c in LAYERS.items() if not c.is_source)
CASES = [(t, i) for t in COMPUTE for i in range(len(LAYERS[t].examples))]


def exported(g: Graph, tmp_path: Path, name="model", training=None):
    path = tmp_path / f"{name}.py"
    path.write_text(torch_source(g, training, title=name))
    spec = importlib.util.spec_from_file_location(f"exported_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


def torch_model(module, net: Network, tmp_path: Path, suffix=".npz"):
    """The exported Net, double precision, with the network's weights through a weights file."""
    model = module.Net().double()
    weights = tmp_path / f"weights{suffix}"
    save_weights(net.params, weights)
    module.load_weights(model, weights)
    return model.eval()


def as_tensor(x: np.ndarray):
    return torch.from_numpy(np.asarray(x, dtype=np.int64 if x.dtype.kind == "i" else np.float64))


@pytest.mark.parametrize("type_id,case", CASES)
def test_every_layer_exports_to_code_that_computes_the_same(type_id, case, tmp_path):
    g, feeds = one_node_graph(type_id, case)
    net = perturbed(Network(g, dtype=np.float64, seed=0))
    out = net.forward(feeds)
    module, _ = exported(g, tmp_path)
    model = torch_model(module, net, tmp_path)
    cls = LAYERS[type_id]
    inputs = [as_tensor(feeds[s]) for s in feeds if g.nodes[s].type == "Input"]
    with torch.no_grad():
        got = model(*inputs)
        if cls.is_loss:
            labels = [as_tensor(feeds[s]) for s in feeds if g.nodes[s].type == "Label"]
            got, want = module.compute_loss(got, *labels), [out["node"]]
        else:
            ports = g.output_ports("node")
            want = [out["node"]] + [out[f"node.{p}"] for p in ports[1:]]
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(want)
    for g_, w in zip(got, want):
        np.testing.assert_allclose(g_.numpy(), w, rtol=1e-7, atol=1e-9, err_msg=type_id)


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_every_sample_exports_and_its_loss_matches(sample, tmp_path):
    project = load_project(SAMPLES / sample)
    g = project.graph
    net = perturbed(Network(g, dtype=np.float64, seed=0))
    feeds = sample_feeds(g, net, spec=project.data.get("spec"))
    net.forward(feeds)
    module, _ = exported(g, tmp_path, Path(sample).stem, project.training)
    model = torch_model(module, net, tmp_path, ".safetensors")
    inputs = [as_tensor(feeds[n.id]) for n in g.nodes.values() if n.type == "Input"]
    labels = [as_tensor(feeds[n.id]) for n in g.nodes.values() if n.type == "Label"]
    with torch.no_grad():
        loss = module.compute_loss(model(*inputs), *labels)
    assert float(loss) == pytest.approx(net.loss(), rel=1e-7)


def test_names_the_code_uses_are_kept_apart_from_node_ids(tmp_path):
    g = Graph()
    for node_id, type_id, attrs in [("x", "Input", {"shape": [4]}),
                                    ("F", "Dense", {"out_features": 3}), ("torch", "ReLU", {}),
                                    ("len", "Dense", {"out_features": 2}), ("outputs", "Tanh", {})]:
        g.add_node(Node(node_id, type_id, attrs))
    for a, b in [("x", "F"), ("F", "torch"), ("torch", "len"), ("len", "outputs")]:
        g.connect((a, "y"), (b, "x"))
    net = perturbed(Network(g, dtype=np.float64))
    x = np.random.default_rng(2).standard_normal((5, 4))
    module, _ = exported(g, tmp_path)
    model = torch_model(module, net, tmp_path)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, net.forward({"x": x})["outputs"], rtol=1e-7)
    g.add_node(Node("train", "Dense", {"out_features": 2}))
    g.connect(("outputs", "y"), ("train", "x"))
    with pytest.raises(ExportError, match=r"^node 'train': PyTorch modules use that name"):
        torch_source(g)


def test_the_reserved_module_names_are_torch_s_own():
    torch_names = {n for n in set(dir(torch.nn.Module)) | set(vars(torch.nn.Module()))
                   if not n.startswith("_")}
    assert MODULE_ATTRIBUTES == torch_names


def test_the_exported_command_line_trains_lenet_and_its_weights_come_back(tmp_path):
    """1 epoch on 128 random images in a fresh interpreter: frozen conv1 stays, the rest moves,
    and Layerloom loads the result."""
    project = load_project(SAMPLES / "lenet5.json")
    g = project.graph
    g.set_frozen("conv1", True)
    start = Network(g, seed=0)
    start.save_weights(tmp_path / "start.safetensors")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (168, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "data.npz", x_train=images[:128], y_train=rng.integers(0, 10, 128),
             x_test=images[128:], y_test=np.arange(40) % 10)
    _, script = exported(g, tmp_path, "lenet5", dict(project.training, lr=0.01, batch_size=32,
                                                     schedule="cosine"))
    done = subprocess.run([sys.executable, str(script), "--data", str(tmp_path / "data.npz"),
                           "--weights", str(tmp_path / "start.safetensors"), "--epochs", "1",
                           "--save", str(tmp_path / "trained.npz")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(r"epoch 1/1: train loss \d+\.\d{4}, test loss \d+\.\d{4}, test accuracy "
                     r"\d+\.\d%", done.stdout), done.stdout
    back = Network(g, seed=5)
    back.load_weights(tmp_path / "trained.npz")
    np.testing.assert_array_equal(back.params["conv1.weight"], start.params["conv1.weight"])
    assert not np.allclose(back.params["fc1.weight"], start.params["fc1.weight"])
    bad = subprocess.run([sys.executable, str(script), "--data",
                          str(tmp_path / "start.safetensors")], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 1 and "needs arrays x and y" in bad.stderr


def test_layerloom_export_writes_the_file_or_says_in_one_line_why_not(tmp_path, capsys):
    from layerloom.engine.cli import main

    out = tmp_path / "lenet.py"
    assert main(["export", str(SAMPLES / "lenet5.json"), str(out)]) == 0
    assert "class Net(nn.Module)" in out.read_text() and "python" in capsys.readouterr().err
    assert main(["export", str(SAMPLES / "lenet5.json"), str(tmp_path / "lenet.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: lenet.pt: cannot tell the format; name a .py file (PyTorch code) or "
                   "an .onnx file")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "layerloom-graph", "version": 1, "nodes": [{"id": "d", '
                      '"type": "Dense", "attrs": {}}], "edges": []}')
    assert main(["export", str(broken), str(out)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_the_exported_training_follows_the_graph_s_schedule(tmp_path):
    from layerloom.engine.optim import SCHEDULES, lr_factor

    module, path = exported(load_project(SAMPLES / "lenet5.json").graph, tmp_path, "lenet",
                            {"schedule": "step", "lr": 0.02})
    assert module.TRAINING["schedule"] == "step" and module.TRAINING["lr"] == 0.02
    for schedule in SCHEDULES:
        for progress in (0.0, 0.3, 0.5, 0.74, 0.75, 0.99):
            assert module.lr_factor(schedule, progress) == lr_factor(schedule, progress)
    assert "scheduler.step()" in path.read_text()
