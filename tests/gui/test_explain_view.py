"""The Explain tab through the real window: select a node, see its formula, shapes and costs;
compute its numbers on a batch; check its gradient."""
from pathlib import Path

from tests.gui.test_window_training import click_node

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_explain_a_dense_node_with_its_numbers_and_gradient_check(window):
    assert window.open_path(SAMPLES / "mlp_spirals.json", ask=False)
    assert window.explain_dock in window.tabifiedDockWidgets(window.inspector_dock)
    click_node(window, "fc2")
    view = window.explain
    assert view.node_id == "fc2"
    text = view.text.toPlainText()
    assert "y = x·WT + b, with W of 64 rows" in text and "in 64 → out 64" in text
    view.compute_button.click()
    text = view.text.toPlainText()
    assert "dL/dweight" in text and "dL/dy" in text and "y[0] of the first sample" in text
    assert view.numbers.tensors["weight"].shape == (64, 64)
    view.unit.setValue(5)
    assert "y[5] of the first sample" in view.text.toPlainText()
    view.check_button.click()
    assert "fc2 (Dense) d/dweight" in view.text.toPlainText()
    assert "gradient check passed" in window.statusBar().currentMessage()
    click_node(window, "tanh1")
    assert view.node_id == "tanh1" and view.numbers is None



def test_the_formulas_show_the_nodes_own_attribute_values(window):
    assert window.open_path(SAMPLES / "seq_classifier.json", ask=False)
    click_node(window, "enc_attn")
    text = window.explain.text.toPlainText()
    assert "split into 4 heads of dh = 32/4" in text and "dropout 0.0 on A" in text
    assert "causal = False; if True, no position sees a later one" in text
    assert "dL/dWout = (dL/dy)T·O" in text  # the backward, its <sub> and <sup> rendered
    click_node(window, "tokens")
    text = window.explain.text.toPlainText()
    assert "each of shape (8,) (int64)" in text and "the gradient dL/dy stops here" in text


def test_large_tensors_get_heat_maps_and_histograms_made_off_the_ui_thread(qtbot, window):
    import pytest

    from layerloom.engine.explain import stats

    assert window.open_path(SAMPLES / "lenet5.json", ask=False)
    click_node(window, "conv1")
    view = window.explain
    with qtbot.waitSignal(view.pictures_ready, timeout=60_000):
        view.compute_button.click()
        # the click returned with the pictures still being made on the worker's thread
        assert view.jobs.busy and "y 8×6×28×28: statistics, heat map and histogram on their way" \
            in view.text.toPlainText()
    text = view.text.toPlainText()
    assert "heat map, first sample: 6 maps of 28×28" in text and "heat map, 6 maps of 5×5" in text
    y = view.numbers.tensors["y"]
    s = stats(y)
    got = view.pictures["y"].stats  # the explained numbers are the network's
    assert (got.min, got.max, got.mean, got.std) == (s.min, s.max, s.mean, s.std)
    assert got.norm == pytest.approx(s.norm, rel=1e-12)  # BLAS sums in its own order
    assert f"max {s.max:.4g}, mean {s.mean:.4g}" in text
    assert f"histogram of all {y.size:,} values" in text
    image = view.text.images["heat/y"]
    assert not image.isNull() and max(image.width(), image.height()) <= 256
    bias = view.numbers.tensors["bias"]  # 6 numbers: still a table
    assert "[" + ", ".join(f"{v:.4g}" for v in bias) + "]" in text
    # another node: the old pictures go, the new node's come from a new request
    click_node(window, "fc1")
    assert view.pictures == {} and view.numbers is None


def test_a_convolutions_output_element_shows_its_receptive_field_on_the_input(qtbot, window):
    assert window.open_path(SAMPLES / "lenet5.json", ask=False)
    click_node(window, "conv1")
    view = window.explain
    assert view.field.isHidden()  # until there are numbers to take apart
    with qtbot.waitSignal(view.pictures_ready, timeout=60_000):
        view.compute_button.click()
    assert not view.field.isHidden() and view.field.filter.maximum() == 5
    assert view.field.row.maximum() == 27 and view.field.col.maximum() == 27
    scroll = view.text.verticalScrollBar()
    scroll.setValue(scroll.maximum() // 2)
    kept = scroll.value()
    view.field.filter.setValue(3)
    view.field.row.setValue(14)
    view.field.col.setValue(9)
    assert scroll.value() == kept  # a new element: the text stays where it was read
    text = view.text.toPlainText()
    y = float(view.numbers.tensors["y"][0, 3, 14, 9])
    # conv1: 5×5 taps, padding 2: rows 12…16, columns 7…11
    assert "Receptive field of y[3, 14, 9] (first sample): input rows 12…16, columns 7…11" in text
    assert f"= {y:.4g}; the network computed {y:.4g}" in text
    image = view.text.images["field/y"]
    assert image.width() == image.height() >= 28
    click_node(window, "fc1")  # no sliding window: no chooser
    assert view.field.isHidden()
