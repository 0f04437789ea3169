"""Text generation in the inference view: a character language model trained from the window
continues a prompt; image models get no such section."""
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont

from layerloom.engine.data import load_data
from layerloom.engine.network import Network
from layerloom.engine.project import fit_graph_to_data
from layerloom.engine.sampling import generate
from layerloom.gui.generate_view import language_vocab
from tests.gui.test_training_harness import sample_project
from tests.gui.test_window_training import open_sample, press_train

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def press_generate(qtbot, gen) -> str:
    with qtbot.waitSignal(gen.finished, timeout=30_000) as blocker:
        qtbot.mouseClick(gen.button, Qt.LeftButton)
    return blocker.args[0]


@pytest.fixture
def trained_lm(qtbot, window):
    """The window after a few training steps of samples/char_lstm.json, Inference in front."""
    open_sample(window, "char_lstm.json", max_steps=3, batch_size=8)
    press_train(qtbot, window)
    window.training.inference_dock.raise_()
    return window


def test_a_trained_char_lstm_continues_a_prompt_reproducibly(qtbot, trained_lm):
    t = trained_lm.training
    gen, net = t.inference.generator, t.controller.trained_network()
    assert gen.isVisible() and gen.net is net
    view = t.inference  # the sample reads as text, the prediction is its next character
    assert view.probabilities.shape == (63,) and "Prediction: '" in view.prediction.text()
    assert view.sample_image.text().startswith("sample: '")
    assert len(view.prob_view.getPlotItem().items[0].opts["width"]) == 10  # the likeliest
    gen.prompt.clear()
    qtbot.keyClicks(gen.prompt, "The ")
    gen.length.setValue(300)
    gen.temperature.setValue(1.0)
    gen.seed.setValue(7)
    text = press_generate(qtbot, gen)
    assert text.startswith("The ") and len(text) == 4 + 300 and gen.text() == text
    vocab = t.controller.dataset.class_names
    copy = Network(net.graph, dtype=net.dtype, params=net.params)
    assert text[4:] == generate(copy, vocab, "The ", 300, 1.0, 7)  # what the CLI prints
    cursor = gen.output.textCursor()
    cursor.setPosition(1)
    assert cursor.charFormat().fontWeight() == QFont.Bold  # the prompt stands out
    cursor.setPosition(len(text))
    assert cursor.charFormat().fontWeight() != QFont.Bold
    assert press_generate(qtbot, gen) == text  # same seed, same text
    gen.seed.setValue(8)
    assert press_generate(qtbot, gen) != text
    assert gen.button.text() == "Generate" and gen.thread is None and not gen.error.isVisible()


def test_a_prompt_outside_the_vocabulary_shows_a_one_line_error(qtbot, trained_lm):
    gen = trained_lm.training.inference.generator
    shown = gen.text()
    gen.prompt.setText("naïve")
    with qtbot.waitSignal(gen.failed, timeout=1000) as blocker:
        qtbot.mouseClick(gen.button, Qt.LeftButton)
    message = gen.error.text()
    assert gen.error.isVisible() and blocker.args[0] == message
    assert "'ï'" in message and "vocabulary" in message
    assert "\n" not in message and "Traceback" not in message
    assert gen.thread is None and gen.text() == shown
    gen.prompt.setText("")
    qtbot.mouseClick(gen.button, Qt.LeftButton)
    assert "empty" in gen.error.text()
    gen.prompt.setText("a")
    gen.length.setValue(5)
    assert len(press_generate(qtbot, gen)) == 6 and not gen.error.isVisible()


def test_stop_train_and_close_each_end_a_long_generation(qtbot, trained_lm):
    gen = trained_lm.training.inference.generator
    gen.length.setValue(gen.length.maximum())
    with qtbot.waitSignal(gen.progress.valueChanged, timeout=10_000):
        qtbot.mouseClick(gen.button, Qt.LeftButton)
    assert gen.button.text() == "Stop" and not gen.prompt.isEnabled()
    thread = gen.thread
    with qtbot.waitSignal(thread.finished, timeout=10_000):
        qtbot.mouseClick(gen.button, Qt.LeftButton)
    assert gen.thread is None and gen.button.text() == "Generate" and gen.prompt.isEnabled()
    assert gen.text() == gen.prompt.text()  # stopped: no continuation shown
    qtbot.mouseClick(gen.button, Qt.LeftButton)
    assert gen.thread is not None
    press_train(qtbot, trained_lm)  # Train ends the generation first: one engine job at a time
    assert gen.thread is None and gen.button.text() == "Generate" and gen.isVisible()
    qtbot.mouseClick(gen.button, Qt.LeftButton)
    assert gen.thread is not None
    trained_lm.close()
    assert gen.thread is None


def test_the_section_is_hidden_for_lenet5(qtbot, window):
    open_sample(window, "lenet5.json", max_steps=1, batch_size=8)
    press_train(qtbot, window, timeout=120_000)
    view = window.training.inference
    assert view.net is window.training.controller.trained_network()
    assert not view.generator.isVisibleTo(view) and view.generator.net is None
    assert view.use_pad.isEnabled() and "Prediction:" in view.prediction.text()


@pytest.mark.parametrize("name, is_lm", [("char_lstm.json", True), ("tiny_gpt.json", True),
                                         ("seq_classifier.json", False),
                                         ("mlp_spirals.json", False), ("lenet5.json", False)])
def test_only_character_language_models_get_the_section(name, is_lm):
    project = sample_project(name)
    data = load_data(project.data.get("spec", "bundled"))
    fit_graph_to_data(project.graph, data)
    vocab = language_vocab(Network(project.graph), data)
    assert (vocab == data.class_names) if is_lm else vocab is None
