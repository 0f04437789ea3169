"""The inference view: a sample (or a drawing) in, prediction, probabilities, activations out."""
import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt

from layerloom.engine.data import load_data
from layerloom.engine.network import Network
from layerloom.engine.project import fit_graph_to_data
from layerloom.gui.inference_view import InferenceView, softmax
from layerloom.gui.training.controller import TrainingController
from tests.gui.test_training_harness import (make_harness, sample_project,  # noqa: F401
                                             train_and_wait)


def select_node(view: InferenceView, node_id: str) -> None:
    for i in range(view.nodes.count()):
        if view.nodes.item(i).data(Qt.UserRole) == node_id:
            view.nodes.setCurrentRow(i)
            return
    raise AssertionError(f"{node_id} not listed")


@pytest.fixture
def lenet_view(qtbot):
    project = sample_project("lenet5.json")
    data = load_data("bundled")
    fit_graph_to_data(project.graph, data)
    view = InferenceView()
    qtbot.addWidget(view)
    view.resize(1100, 420)
    view.show()
    view.set_network(Network(project.graph, seed=0), data)
    return view


def test_after_training_a_test_sample_shows_its_prediction_and_probabilities(qtbot,
                                                                           make_harness):
    h = make_harness(sample_project("mlp_spirals.json", max_steps=200, epochs=30))
    view = h.inference
    assert not view.index.isEnabled()
    train_and_wait(qtbot, h)
    assert view.net is h.controller.trained_network() and view.index.isEnabled()
    assert not view.use_pad.isEnabled()  # points, not images: nothing to draw
    view.index.setValue(7)
    probs = view.probabilities
    assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0)
    names = h.controller.dataset.class_names
    truth = names[int(h.controller.dataset.test.y[7])]
    assert f"Prediction: {names[int(np.argmax(probs))]}" in view.prediction.text()
    assert f"true: {truth}" in view.prediction.text()
    assert "sample: (" in view.sample_image.text()
    select_node(view, "tanh1")
    assert view.activation_stack.currentWidget() is view.bars  # 64 values: still bars
    select_node(view, "fc3")
    assert view.activation_stack.currentWidget() is view.bars
    assert "fc3: output 3" in view.activation_caption.text()
    assert len(view.bars.getPlotItem().items[0].opts["height"]) == 3


def test_convolution_outputs_show_as_feature_map_grids(lenet_view):
    view = lenet_view
    names = [view.nodes.item(i).data(Qt.UserRole) for i in range(view.nodes.count())]
    assert names[0] == "conv1" and "loss" not in names and "image" not in names
    select_node(view, "conv1")
    assert view.activation_stack.currentWidget() is view.maps
    assert view.activation_caption.text() == "conv1: 6 feature maps of 28×28"
    assert not view.maps.pixmap().isNull()
    select_node(view, "pool2")
    assert "16 feature maps of 5×5" in view.activation_caption.text()
    select_node(view, "fc1")  # 120 values: too many bars, a heat map
    assert view.activation_stack.currentWidget() is view.maps
    assert view.activation_caption.text() == "fc1: output 120"
    assert view.sample_image.pixmap() is not None and not view.sample_image.pixmap().isNull()


def test_a_digit_drawn_on_the_pad_is_classified(qtbot, lenet_view):
    view = lenet_view
    assert view.use_pad.isEnabled()
    view.use_pad.setChecked(True)
    assert view.input_stack.currentWidget() is view.pad and view.clear_button.isEnabled()
    pad = view.pad
    cell = pad._cell()
    qtbot.mousePress(pad, Qt.LeftButton, pos=QPoint(int(14 * cell), int(4 * cell)))
    for row in range(5, 24):
        qtbot.mouseMove(pad, QPoint(int(14 * cell), int(row * cell)))
    qtbot.mouseRelease(pad, Qt.LeftButton, pos=QPoint(int(14 * cell), int(24 * cell)))
    assert (pad.pixels.max(axis=1)[4:23] > 0.9).all()  # an unbroken vertical stroke
    assert pad.pixels[:, :10].max() == 0
    x, y = view.current_input()
    assert x.shape == (1, 1, 28, 28) and y is None
    assert view.probabilities.sum() == pytest.approx(1.0)
    assert "true:" not in view.prediction.text() and "Prediction:" in view.prediction.text()
    with qtbot.waitSignal(pad.changed):
        qtbot.mouseClick(view.clear_button, Qt.LeftButton)
    assert pad.pixels.max() == 0


def test_the_view_follows_the_controller_s_weights(qtbot):
    project = sample_project("mlp_spirals.json")
    controller = TrainingController(lambda: project)
    view = InferenceView(controller)
    qtbot.addWidget(view)
    data = controller.load_dataset()
    fit_graph_to_data(project.graph, data)
    controller.load_weights(Network(project.graph, seed=3).params)
    assert view.net is controller.trained_network() and view.nodes.count() == 5
    with qtbot.waitSignal(controller.weights_changed):
        controller.drop_weights()
    assert view.net is None and "Train the network" in view.message.text()


def test_softmax_gives_probabilities_even_for_huge_scores():
    p = softmax(np.array([1000.0, 999.0, -1000.0]))
    assert p.sum() == pytest.approx(1.0) and p[0] > p[1] > p[2] >= 0
