"""``layerloom predict``: a person's image files and CSV rows, prepared as the training data was,
with the graph file's stored preprocessing, one line per sample; bad files reported, not fatal."""
import shutil

import numpy as np
import pytest

from layerloom.engine.cli import main
from layerloom.engine.data import load_data
from layerloom.engine.data.images import ImagePrep
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.serialize import Project, load_project, save_project
from tests.engine.image_folders import COLOURS, class_folder, picture


def classifier_file(tmp_path, spec: str, out_features: int = 3, data=None) -> str:
    g = Graph()
    for node in [Node("image", "Input", {"shape": (3, 8, 8)}), Node("flat", "Flatten", {}),
                 Node("fc", "Dense", {"out_features": out_features}), Node("label", "Label", {}),
                 Node("loss", "CrossEntropyLoss", {})]:
        g.add_node(node)
    for src, dst in [(("image", "y"), ("flat", "x")), (("flat", "y"), ("fc", "x")),
                     (("fc", "y"), ("loss", "input")), (("label", "y"), ("loss", "target"))]:
        g.connect(src, dst)
    path = tmp_path / "g.json"
    save_project(Project(g, {"lr": 0.05, "epochs": 5, "batch_size": 8}, {"spec": spec, **(data or {})}),
                 path)
    return str(path)


def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.fixture
def trained(tmp_path, capsys):
    root = class_folder(tmp_path / "photos", per_class=8)
    spec = f"folder:{root}?size=8"
    graph = classifier_file(tmp_path, spec)
    weights = str(tmp_path / "w.npz")
    assert main(["train", graph, "--save-weights", weights]) == 0
    capsys.readouterr()
    return root, spec, graph, weights


def test_predict_prints_the_likeliest_classes_of_each_image_file(trained, tmp_path, capsys):
    root, spec, graph, weights = trained
    new = tmp_path / "mine"
    new.mkdir()
    picture(COLOURS["green"], size=(30, 40), seed=99).save(new / "leaf.jpg")
    picture(COLOURS["red"], size=(16, 16), seed=98, mode="RGBA").save(new / "apple.png")
    assert main(["predict", graph, "--weights", weights, "--top", "2",
                 str(new / "leaf.jpg"), str(new / "apple.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["leaf.jpg", "apple.png"]
    assert lines[0].split(": ")[1].startswith("green ") and lines[1].split(": ")[1].startswith("red ")
    # the oracle: the same file through ImagePrep and the network, by hand
    data = load_data(spec)
    project = load_project(graph)
    project.graph.set_attr("image", "shape", (3, 8, 8))
    net = Network(project.graph)
    net.load_weights(weights)
    x = ImagePrep.from_dict(data.preprocessing).load(new / "leaf.jpg")
    net.forward({"image": x, "label": np.zeros(1, np.int64)})
    probs = softmax(np.asarray(net.executor.values[("fc", "y")][0], np.float64))
    order = np.argsort(-probs)[:2]
    want = ", ".join(f"{data.class_names[i]} {100 * probs[i]:.2f}%" for i in order)
    assert lines[0] == f"leaf.jpg: {want}"


def test_the_stored_preprocessing_predicts_without_the_training_data(trained, tmp_path, capsys):
    root, spec, graph, weights = trained
    data = load_data(spec)
    project = load_project(graph)
    project.data.update(preprocessing=data.preprocessing, classes=data.class_names)
    save_project(project, graph)
    photo = tmp_path / "blue.png"
    picture(COLOURS["blue"], seed=5).save(photo)
    assert main(["predict", graph, "--weights", weights, str(photo)]) == 0
    before = capsys.readouterr().out
    shutil.rmtree(root)  # the photos are gone; the graph file still knows how to prepare one
    assert main(["predict", graph, "--weights", weights, str(photo)]) == 0
    assert capsys.readouterr().out == before and before.startswith("blue.png: blue ")


def test_an_unreadable_file_is_reported_and_the_others_still_predicted(trained, tmp_path, capsys):
    _root, _spec, graph, weights = trained
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    good = tmp_path / "ok.png"
    picture(COLOURS["red"], seed=1).save(good)
    assert main(["predict", graph, "--weights", weights, str(tmp_path / "broken.jpg"),
                 str(good), str(tmp_path / "absent.png")]) == 1
    out = capsys.readouterr()
    assert out.out.startswith("ok.png: red ") and len(out.out.splitlines()) == 1
    errors = out.err.strip().splitlines()
    assert len(errors) == 2 and "broken.jpg" in errors[0] and "absent.png: no such file" in errors[1]


def test_csv_rows_are_predicted_by_column_name(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, kind = rng.normal(size=120), rng.choice(["x", "y"], 120)
    label = np.where((a > 0) ^ (kind == "y"), "yes", "no")
    table = tmp_path / "t.csv"
    table.write_text("a,kind,label\n" + "".join(f"{p:.3f},{k},{c}\n" for p, k, c in zip(a, kind, label)))
    g = Graph()
    for node in [Node("x", "Input", {}), Node("h", "Dense", {"out_features": 16}), Node("r", "ReLU", {}),
                 Node("fc", "Dense", {"out_features": 2}), Node("label", "Label", {}),
                 Node("loss", "CrossEntropyLoss", {})]:
        g.add_node(node)
    for src, dst in [(("x", "y"), ("h", "x")), (("h", "y"), ("r", "x")), (("r", "y"), ("fc", "x")),
                     (("fc", "y"), ("loss", "input")), (("label", "y"), ("loss", "target"))]:
        g.connect(src, dst)
    graph = tmp_path / "t.json"
    save_project(Project(g, {"lr": 0.03, "epochs": 40, "batch_size": 16},
                         {"spec": f"csv:{table}?target=label"}), graph)
    assert main(["train", str(graph), "--save-weights", str(tmp_path / "w.npz")]) == 0
    rows = tmp_path / "rows.csv"
    rows.write_text("kind,a\nx,2.0\ny,2.0\nx,-2.0\n")  # other column order, no label column
    capsys.readouterr()
    assert main(["predict", str(graph), "--weights", str(tmp_path / "w.npz"), "--top", "1",
                 str(rows)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["rows.csv line 2", "rows.csv line 3",
                                                   "rows.csv line 4"]
    assert [ln.split(": ")[1].split()[0] for ln in lines] == ["yes", "no", "no"]


def test_data_without_file_preprocessing_is_a_one_line_error(tmp_path, capsys):
    graph = classifier_file(tmp_path, "spirals")
    g = load_project(graph)
    w = tmp_path / "w.npz"
    from layerloom.engine.export.weights import save_weights

    save_weights(Network(g.graph).params, w)
    assert main(["predict", graph, "--weights", str(w), str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: g.json: its data (spirals) keeps no preprocessing for files")
    assert "\n" not in err


def test_lenet_on_the_bundled_images_predicts_a_picture_file_as_grey_28x28(tmp_path, capsys):
    from layerloom.engine.export.weights import save_weights
    from layerloom.engine.paths import SAMPLES

    project = load_project(SAMPLES / "lenet5.json")
    weights = tmp_path / "w.npz"
    save_weights(Network(project.graph, seed=3).params, weights)
    photo = tmp_path / "shirt.jpg"
    picture((200, 200, 200), size=(60, 50), seed=2).save(photo)
    assert main(["predict", str(SAMPLES / "lenet5.json"), "--weights", str(weights),
                 str(photo)]) == 0
    line = capsys.readouterr().out.strip()
    names = line.split(": ", 1)[1].split(", ")
    assert line.startswith("shirt.jpg: ") and len(names) == 3
    assert all(n.rsplit(" ", 1)[0] in load_data("bundled").class_names for n in names)
    prep = ImagePrep.from_dict(load_data("bundled").preprocessing)
    assert (prep.size, prep.channels, prep.fit) == ((28, 28), 1, "stretch")


def test_data_outside_the_graphs_folder_is_read_only_when_allowed(trained, tmp_path, capsys):
    root, spec, graph, weights = trained
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = elsewhere / "g.json"
    shutil.move(graph, moved)  # its data now lies outside its folder; no preprocessing stored
    photo = tmp_path / "red.png"
    picture(COLOURS["red"], seed=3).save(photo)
    assert main(["predict", str(moved), "--weights", weights, str(photo)]) == 1
    err = capsys.readouterr().err
    assert "outside" in err and "--allow-outside-data" in err
    assert main(["predict", str(moved), "--weights", weights, "--allow-outside-data",
                 str(photo)]) == 0
    assert capsys.readouterr().out.startswith("red.png: red ")


def test_an_onnx_export_carries_the_preprocessing_and_predicts_the_same(trained, tmp_path, capsys):
    import json

    import onnx
    import onnxruntime as ort

    root, spec, graph, weights = trained
    data = load_data(spec)
    project = load_project(graph)
    project.data.update(preprocessing=data.preprocessing, classes=data.class_names)
    save_project(project, graph)
    out = tmp_path / "model.onnx"
    assert main(["export", graph, str(out), "--weights", weights]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    prep = ImagePrep.from_dict(json.loads(props["layerloom.preprocessing"]))
    assert json.loads(props["layerloom.classes"]) == ["blue", "green", "red"]
    photo = tmp_path / "g.png"
    picture(COLOURS["green"], seed=8).save(photo)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    scores = session.run(None, {"image": prep.load(photo)})[0][0]
    probs = softmax(scores.astype(np.float64))
    capsys.readouterr()
    assert main(["predict", graph, "--weights", weights, "--top", "1", str(photo)]) == 0
    assert capsys.readouterr().out.strip() == f"g.png: green {100 * probs[1]:.2f}%"
