"""A node whose output ports follow an attribute (Chunk: one per piece) redraws them when the
inspector changes it, keeps edges on the ports that stay, and refuses to drop a wired one."""
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from .conftest import build


def set_chunks(window, value: int) -> None:
    spin = window.inspector.editors["chunks"]
    spin.setFocus()
    spin.selectAll()
    QTest.keyClicks(spin, str(value))
    QTest.keyClick(spin, Qt.Key_Return)


def test_chunk_draws_one_output_port_per_piece_and_keeps_a_wired_one(window):
    doc = window.document
    build(doc, [("x", "Input", {"shape": [6]}, (0, 0)), ("cut", "Chunk", {}, (250, 0)),
                ("act", "ReLU", {}, (500, 0))],
          [(("x", "y"), ("cut", "x")), (("cut", "y0"), ("act", "x"))])
    scene = window.view.graph_scene
    scene.select_only(["cut"])
    item = scene.items_by_id["cut"]
    assert list(item.outputs) == ["y0", "y1"]
    set_chunks(window, 3)
    assert list(item.outputs) == ["y0", "y1", "y2"]
    assert window.inspector.shape_label.text().startswith("Output y0: 2, y1: 2, y2: 2\n")
    assert all(p.scene() is scene for p in item.outputs.values())
    assert doc.connect(("cut", "y2"), ("act", "x")) is False  # act's input is taken
    assert doc.remove(edges=[e for e in doc.graph.edges if e.dst == ("act", "x")])
    assert doc.connect(("cut", "y2"), ("act", "x"))
    assert doc.report.shapes[("cut", "y2")] == (None, 2)
    messages = []
    doc.message.connect(messages.append)
    set_chunks(window, 2)
    assert doc.graph.nodes["cut"].attrs["chunks"] == 3 and len(item.outputs) == 3
    assert messages[-1] == ("Chunk 'cut': output 'y2' would go, and it is connected; "
                            "disconnect it first")
    doc.undo()  # the edge from y2
    set_chunks(window, 2)
    assert list(item.outputs) == ["y0", "y1"]
    doc.undo()
    assert list(scene.items_by_id["cut"].outputs) == ["y0", "y1", "y2"]
