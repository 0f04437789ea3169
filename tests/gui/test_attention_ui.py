"""Cross-attention from the palette: dropped on the canvas, wired by mouse (one source edge into
both key and value), its padding-mask port optional, shapes live on its two outputs."""
from PySide6.QtCore import QPoint

from layerloom.engine.graph import Edge
from layerloom.engine.registry import LAYERS
from layerloom.gui.quick_add import accepts
from tests.gui.canvas_driver import drag_port_to_port, drop_palette_entry, port
from tests.gui.conftest import build


def test_the_palette_offers_multi_head_attention_and_it_wires_by_mouse(window):
    assert "MultiHeadAttention" in window.palette_panel.entries()["Attention"]
    assert window.palette_panel.item("MultiHeadAttention").toolTip(0) == \
        LAYERS["MultiHeadAttention"].description()
    doc, view = window.document, window.view
    build(doc, [("tgt", "Input", {"shape": (4, 8)}, (0, 0)),
                ("src", "Input", {"shape": (6, 5)}, (0, 200)),
                ("pad", "Input", {"shape": (6,)}, (0, 400))], [])
    view.zoom_to_fit()
    assert drop_palette_entry(window, "MultiHeadAttention", QPoint(600, 300))
    (cross,) = [n for n, node in doc.graph.nodes.items() if node.type == "MultiHeadAttention"]
    doc.set_attr(cross, "embed_dim", 8)
    doc.set_attr(cross, "kdim", 5)
    doc.set_attr(cross, "vdim", 5)
    for src, dst in (("tgt", "query"), ("src", "key"), ("src", "value")):
        drag_port_to_port(view, port(view, src, "y", True), port(view, cross, dst, False))
    assert {e.dst[1]: e.src for e in doc.graph.edges_into(cross)} == {
        "query": ("tgt", "y"), "key": ("src", "y"), "value": ("src", "y")}
    scene = view.graph_scene
    item = scene.items_by_id[cross]
    assert item.error is None  # the mask port may stay empty
    assert scene.edge_items[Edge(("src", "y"), (cross, "value"))].text == "6×5"
    drag_port_to_port(view, port(view, "pad", "y", True),
                      port(view, cross, "key_padding_mask", False))
    assert doc.graph.edge_into((cross, "key_padding_mask")) is not None
    assert item.error is None
    doc.set_attr("pad", "shape", (5,))  # one flag per key, or a red node naming the rule
    assert "key_padding_mask must be (N, 6)" in item.error
    doc.undo()
    assert item.error is None
    assert set(item.outputs) == {"y", "weights"}


def test_quick_add_offers_attention_for_sequences_of_its_width_without_a_mask():
    assert accepts("MultiHeadAttention", (None, 7, 64))  # the default embed_dim
    assert not accepts("MultiHeadAttention", (None, 7, 32))
    assert not accepts("MultiHeadAttention", (None, 64))
