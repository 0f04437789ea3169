"""Analyze: what will go wrong is said before training, as errors (Train refuses) or warnings."""
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.analyze import ERROR, WARNING, analyze
from layerloom.engine.data import DataError, Dataset, Split, load_data
from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.project import check_fit
from layerloom.engine.serialize import load_project
from layerloom.engine.training import DoneReport, TrainConfig, train

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def spirals_mlp(width: int = 3) -> Graph:
    graph = load_project(SAMPLES / "mlp_spirals.json").graph
    graph.set_attr("fc3", "out_features", width)
    return graph


def by_node(analysis) -> dict:
    return {(f.node_id, f.severity): f.message for f in analysis.findings}


def test_the_samples_with_their_own_data_and_settings_have_nothing_to_say():
    for name in ("mlp_spirals", "lenet5", "seq_classifier"):
        project = load_project(SAMPLES / f"{name}.json")
        data = load_data(project.data["spec"])
        result = analyze(project.graph, dataset=data, training=project.training)
        assert result.findings == [], (name, result.findings)


@pytest.mark.parametrize("width", [2, 64])
def test_a_classifier_head_that_is_not_the_class_count_is_an_error_on_that_node(width):
    data = load_data("spirals?n=90")
    result = analyze(spirals_mlp(width), dataset=data)
    assert not result.ok
    message = by_node(result)[("fc3", ERROR)]
    assert f"gives {width} class scores" in message and "3 classes" in message
    assert "out_features to 3" in message
    with pytest.raises(DataError, match="3 classes"):
        check_fit(spirals_mlp(width), data)  # the CLI and Train refuse it too


def test_training_a_too_wide_head_does_not_crash_at_the_confusion_matrix():
    """Predictions outside the class range count as wrong; the matrix keeps the valid ones."""
    data = load_data("spirals?n=90")
    net = Network(spirals_mlp(64), seed=0)
    reports = list(train(net, data, TrainConfig(max_steps=3, batch_size=16)))
    done = reports[-1]
    assert isinstance(done, DoneReport) and done.confusion.shape == (3, 3)
    assert done.confusion.sum() <= len(data.test)
    assert done.test_accuracy * len(data.test) == pytest.approx(np.trace(done.confusion))


def test_a_label_of_the_wrong_kind_for_its_loss_is_an_error():
    graph = spirals_mlp()
    graph.set_attr("label", "kind", "values")
    message = by_node(analyze(graph))[("loss", ERROR)]
    assert "'class index'" in message and "'values'" in message


def test_a_softmax_before_cross_entropy_is_a_warning_on_the_softmax():
    graph = spirals_mlp()
    graph.disconnect(graph.edge_into(("loss", "input")))
    graph.add_node(Node("probs", "Softmax", {}, (0, 0)))
    graph.connect(("fc3", "y"), ("probs", "x"))
    graph.connect(("probs", "y"), ("loss", "input"))
    result = analyze(graph)
    assert result.ok and "applies softmax itself" in by_node(result)[("probs", WARNING)]


def test_a_dangling_node_is_a_warning_and_trains_without_its_gradient():
    graph = spirals_mlp()
    graph.add_node(Node("extra", "Dense", {"out_features": 5}, (0, 0)))
    graph.connect(("tanh2", "y"), ("extra", "x"))
    result = analyze(graph)
    found = by_node(result)
    assert result.ok and result.dangling == {"extra"}
    assert "leads to no loss" in found[("extra", WARNING)] and "325 parameters" in found[("extra", WARNING)]
    net = Network(graph)
    assert "extra.weight" not in net.trainable_keys
    reports = list(train(net, load_data("spirals?n=90"), TrainConfig(max_steps=2)))
    assert isinstance(reports[-1], DoneReport)
    graph.add_node(Node("lonely", "ReLU", {}, (0, 0)))  # unconnected input: a shape error only
    assert [f.kind for f in analyze(graph).findings if f.node_id == "lonely"] == ["shape"]


def test_no_loss_no_input_or_everything_frozen_are_errors():
    graph = spirals_mlp()
    for n in ("fc1", "fc2", "fc3"):
        graph.set_frozen(n, True)
    assert "frozen" in analyze(graph).errors[0].message
    graph.remove_node("loss")
    messages = [f.message for f in analyze(graph).errors]
    assert any("no loss node" in m for m in messages)
    assert analyze(Graph()).errors[0].message.startswith("the graph is empty")


@pytest.mark.parametrize("optimizer, lr, word", [("sgd", 1e6, "above"), ("adam", 0.5, "above"),
                                                 ("adam", 1e-8, "below")])
def test_a_learning_rate_far_outside_the_usual_range_is_a_warning(optimizer, lr, word):
    result = analyze(spirals_mlp(), training={"optimizer": optimizer, "lr": lr})
    assert result.ok and len(result.warnings) == 1
    assert f"far {word}" in result.warnings[0].message
    assert analyze(spirals_mlp(), training={"optimizer": optimizer, "lr": 3e-3}).findings == []


def test_data_the_input_does_not_match_yet_is_a_warning_train_fixes():
    images = Dataset("pics", Split(np.zeros((4, 1, 3, 3), np.float32), np.zeros(4, np.int64)),
                     Split(np.zeros((0, 1, 3, 3), np.float32), np.zeros(0, np.int64)),
                     Split(np.zeros((0, 1, 3, 3), np.float32), np.zeros(0, np.int64)),
                     class_names=["a", "b", "c"])
    result = analyze(spirals_mlp(), dataset=images)
    found = by_node(result)
    assert "needs shape 1×3×3" in found[("points", WARNING)]
    assert "with data 'pics'" in found[("fc1", ERROR)]  # a Dense fed an image once fitted


def test_a_graph_broken_on_its_own_is_not_blamed_on_the_data():
    graph = spirals_mlp()
    graph.disconnect(graph.edge_into(("fc2", "x")))
    with pytest.raises(DataError, match="problem of its own"):
        check_fit(graph, load_data("spirals?n=90"))
