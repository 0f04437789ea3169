"""Filling in masked characters in the inference view: a masked-LM (samples/bert_mlm.json) trained
from the window gets a "Fill in masked characters" section instead of text generation."""
import pytest
from PySide6.QtCore import Qt

from layerloom.engine.network import Network
from layerloom.engine.sampling import fill
from tests.gui.test_window_training import open_sample, press_train

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture
def trained_mlm(qtbot, window):
    open_sample(window, "bert_mlm.json", max_steps=3, batch_size=8)
    press_train(qtbot, window, timeout=180_000)
    window.training.inference_dock.raise_()
    return window


def test_typed_masks_are_filled_in_with_their_likeliest_characters(qtbot, trained_mlm):
    view = trained_mlm.training.inference
    filler, net = view.filler, trained_mlm.training.controller.trained_network()
    assert filler.isVisible() and filler.net is net and not view.generator.isVisibleTo(view)
    assert "[MASK]" in view.sample_image.text()  # the test sample reads as masked text
    assert "_" in filler.text.text()  # a ready example from the test data
    filler.text.clear()
    qtbot.keyClicks(filler.text, "And God said, Let there be l[MASK]ght: and there was _ight.")
    qtbot.mouseClick(filler.button, Qt.LeftButton)
    copy = Network(net.graph, dtype=net.dtype, params=net.params)
    expected = fill(copy, trained_mlm.training.controller.dataset.class_names,
                    filler.text.text(), 5)  # what `layerloom generate --fill` prints
    assert filler.result == expected and [p for p, _ in expected.guesses] == [28, 48]  # in the filled text
    shown = filler.output.toPlainText()
    assert expected.text in shown and shown.count("%") == 10
    assert not filler.error.isVisible()


def test_a_text_without_masks_or_with_unknown_characters_gets_a_one_line_error(qtbot, trained_mlm):
    filler = trained_mlm.training.inference.filler
    qtbot.mouseClick(filler.button, Qt.LeftButton)
    shown = filler.output.toPlainText()
    filler.text.setText("no masks at all")
    qtbot.keyClick(filler.text, Qt.Key_Return)
    assert filler.error.isVisible() and "nothing to fill in" in filler.error.text()
    filler.text.setText("naïve _")
    qtbot.mouseClick(filler.button, Qt.LeftButton)
    assert "'ï'" in filler.error.text() and "\n" not in filler.error.text()
    assert filler.output.toPlainText() == shown  # the last good result stays


def test_language_models_and_classifiers_get_no_fill_in(qtbot, window):
    open_sample(window, "char_lstm.json", max_steps=1, batch_size=8)
    press_train(qtbot, window, timeout=120_000)
    view = window.training.inference
    assert view.generator.isVisibleTo(view) and not view.filler.isVisibleTo(view)
