"""The Inference tab of an encoder-decoder (paired sequences) shows what applies to one: the
decode section first, its cross-attention map, a test sample as its source and decoded target,
and the activations; not the classifier's class probabilities, drawing pad or image file, which
come back with the next sample that is not paired sequences. The real window, driven as a person
does: open the sample, train it a step, open another."""
from tests.gui.test_window_training import open_sample, press_train


def pane(view) -> tuple:
    """The classifier's parts of the Inference tab."""
    return (view.prob_view, view.use_pad, view.clear_button, view.file_input.choice,
            view.file_input.open_button, view.input_stack)


def test_paired_sequences_hide_the_classifier_pane_and_a_classifier_brings_it_back(qtbot,
                                                                                    window):
    view = window.training.inference
    open_sample(window, "t5_tiny.json", max_steps=1, batch_size=8)
    window.training.inference_dock.raise_()
    assert not any(w.isVisible() for w in pane(view))  # the data's spec says: before any run
    assert view.nodes.isVisible()
    press_train(qtbot, window, timeout=180_000)
    assert view.net is not None and view.translator.isVisible()
    assert not any(w.isVisible() for w in pane(view))
    assert view.outer.widget(0) is view.text_side  # the decode section at the top of the dock
    text = view.prediction.text()
    assert text.startswith("Source: '") and "Decoded: '" in text and "true: '" in text
    view.index.setValue(3)
    fmt = view.translator.model.fmt
    source = fmt.decode(view.dataset.test.x[3, :fmt.source_len])
    assert view.prediction.text().startswith(f"Source: {source!r} → ")
    assert view.translator.decode() is not None and view.translator.weights is not None

    open_sample(window, "lenet5.json")
    window.training.inference_dock.raise_()
    assert all(w.isVisible() for w in pane(view))
    assert not view.translator.isVisible()
    assert view.outer.widget(1) is view.text_side
