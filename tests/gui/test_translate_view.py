"""The Inference tab decodes a typed source with an encoder-decoder of paired sequences."""
from PySide6.QtCore import Qt

from layerloom.engine.data import load_data
from layerloom.engine.data.pairs import PairFormat
from layerloom.engine.decode import Seq2SeqModel, decode_text
from layerloom.engine.network import Network
from layerloom.engine.serialize import graph_from_dict
from layerloom.gui.inference_view import InferenceView
from layerloom.gui.translate_view import NO_MAP
from tests.engine.pair_models import prefix_lm


def make_view(qtbot) -> InferenceView:
    view = InferenceView()
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    return view


def test_a_typed_source_is_decoded_greedily_or_with_a_beam(qtbot):
    data = load_data("pairs:sort?n=60&length=4&symbols=5")
    fmt = PairFormat.of(data)
    net = Network(graph_from_dict(prefix_lm(fmt.source_len, fmt.target_len, len(fmt.vocab))))
    view = make_view(qtbot)
    translator = view.translator
    assert not translator.isVisible()
    view.set_network(net, data)
    assert translator.isVisible() and not view.generator.isVisible()
    assert not view.filler.isVisible()
    assert translator.source.text()  # a test sample's source to start from
    # no MultiHeadAttention between decoder and source: no map, and it says why
    assert translator.map_caption.text() == NO_MAP and not translator.view.isVisible()
    model = Seq2SeqModel.of(net, fmt)
    translator.source.clear()
    qtbot.keyClicks(translator.source, "dca")
    with qtbot.waitSignal(translator.decoded) as blocker:
        qtbot.mouseClick(translator.button, Qt.LeftButton)
    assert blocker.args[0] == decode_text(model, "dca").text
    assert translator.target.text().startswith(blocker.args[0] or "(empty)")
    translator.beam.setValue(3)
    with qtbot.waitSignal(translator.decoded) as blocker:
        qtbot.keyClick(translator.source, Qt.Key_Return)
    assert blocker.args[0] == decode_text(model, "dca", 3).text


def test_a_source_outside_the_vocabulary_says_so_in_one_line(qtbot):
    data = load_data("pairs:reverse?n=40&length=3&symbols=3")
    fmt = PairFormat.of(data)
    net = Network(graph_from_dict(prefix_lm(fmt.source_len, fmt.target_len, len(fmt.vocab))))
    view = make_view(qtbot)
    view.set_network(net, data)
    translator = view.translator
    translator.source.setText("abz")
    with qtbot.waitSignal(translator.failed) as blocker:
        qtbot.mouseClick(translator.button, Qt.LeftButton)
    assert "'z' is not in the vocabulary" in blocker.args[0]
    assert translator.error.isVisible() and translator.result is None


def test_other_models_get_no_decoding_section(qtbot):
    data = load_data("seq:reverse?n=40&length=4&vocab=3")
    view = make_view(qtbot)
    fmt = PairFormat(("<pad>", "<s>", "</s>", "a"), 2, 2)
    net = Network(graph_from_dict(prefix_lm(fmt.source_len, fmt.target_len, len(fmt.vocab))))
    view.set_network(net, data)
    assert not view.translator.isVisible()


def test_the_t5_sample_shows_its_cross_attention_as_a_target_by_source_map(qtbot):
    from layerloom.engine.decode import attention_map, greedy
    from layerloom.engine.project import fit_graph_to_data
    from layerloom.engine.serialize import load_project
    from tests.engine.graph_cases import SAMPLES

    project = load_project(SAMPLES / "t5_tiny.json")
    data = load_data("pairs:addition?n=60")
    fit_graph_to_data(project.graph, data)
    net = Network(project.graph, seed=4)
    view = make_view(qtbot)
    view.set_network(net, data)
    translator = view.translator
    layers = [translator.layer.itemText(i) for i in range(translator.layer.count())]
    assert layers == ["decoder.0.cross", "decoder.1.cross"]
    assert translator.layer.currentText() == "decoder.1.cross" and translator.view.isVisible()
    translator.source.setText("12+345=")
    with qtbot.waitSignal(translator.decoded):
        qtbot.mouseClick(translator.button, Qt.LeftButton)
    fmt = PairFormat.of(data)
    model = Seq2SeqModel.of(net, fmt)
    decoded = greedy(model, fmt.encode_source("12+345="))
    want = attention_map(model, fmt.encode_source("12+345="), decoded, "decoder.1.cross")
    assert translator.weights.shape == (len(decoded.ids) + decoded.ended, 7)
    assert (translator.image.image == want.T).all()  # drawn x first: source across
    bottom = translator.plot.getAxis("bottom")._tickLevels[0]
    assert [label for _, label in bottom] == list("12+345=")
    translator.layer.setCurrentIndex(0)
    first = attention_map(model, fmt.encode_source("12+345="), decoded, "decoder.0.cross")
    assert (translator.image.image == first.T).all()
