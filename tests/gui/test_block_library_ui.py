"""The block library in the palette: a stock block asks its settings and lands as one undo step,
a saved block comes back in another model, a copied block brings its definition along."""
import json

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from layerloom.engine.paths import SAMPLES
from layerloom.engine.serialize import graph_to_dict
from layerloom.gui.block_edits import library_dir
from layerloom.gui.block_palette import BLOCK_ROLE
from tests.gui.canvas_driver import _drag_event


def snapshot(doc) -> str:
    return json.dumps(graph_to_dict(doc.model))


def shelf_leaf(window, text: str):
    top = window.palette_panel.blocks.top()
    return next(top.child(i) for i in range(top.childCount()) if top.child(i).text(0) == text)


def drop_block(window, text: str, at: QPoint = QPoint(420, 300)) -> bool:
    """Drag a Blocks leaf onto the canvas: the palette's own mime data, real drop events."""
    data = window.palette_panel.tree.mimeData([shelf_leaf(window, text)])
    viewport = window.view.viewport()
    enter = _drag_event(QDragEnterEvent, at, data)
    QApplication.sendEvent(viewport, enter)
    drop = QDropEvent(QPointF(at), Qt.CopyAction, data, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(viewport, drop)
    return enter.isAccepted() and drop.isAccepted()


def test_the_palette_lists_stock_blocks_ports_and_the_model_s_own(window):
    entries = window.palette_panel.blocks.entries()
    assert {"BlockInput", "BlockOutput", "template\tResidual", "template\tBottleneck",
            "template\tTransformer encoder", "template\tTransformer decoder", "template\tMLP",
            "template\tDepthwise-separable"} <= set(entries)
    assert window.open_path(SAMPLES / "resnet_cifar.json", ask=False)
    assert {"model\tres16", "model\tres32"} <= set(window.palette_panel.blocks.entries())
    window.palette_panel.filter.setText("bottle")
    assert window.palette_panel.blocks.entries() == ["template\tBottleneck"]


def test_a_stock_block_asks_its_settings_then_lands_where_dropped(window, qtbot):
    doc = window.document
    before = snapshot(doc)
    assert drop_block(window, "Residual")
    dialog = window.view.adding.dialog
    assert dialog.isVisible() and not doc.graph.nodes  # nothing until the settings are chosen
    dialog.editors["in_channels"].setValue(8)
    dialog.editors["out_channels"].setValue(16)
    dialog.editors["stride"].setValue(2)
    dialog.accept()
    (block,) = doc.graph.nodes
    definition = doc.graph.definition(block)
    assert "proj" in definition.nodes and definition.nodes["conv1"].attrs["stride"] == (2, 2)
    item = window.view.graph_scene.items_by_id[block]
    assert item.sceneBoundingRect().contains(window.view.mapToScene(QPoint(420, 300)))
    assert doc.stack.count() == 1
    doc.undo()
    assert snapshot(doc) == before and not doc.model.blocks


def test_the_decoder_block_lands_with_memory_and_mask_ports_that_pass_through(window):
    doc = window.document
    assert drop_block(window, "Transformer decoder")
    dialog = window.view.adding.dialog
    dialog.editors["embed_dim"].setValue(32)
    dialog.accept()
    (block,) = doc.graph.nodes
    assert doc.graph.input_ports(block) == ("x", "memory", "mask")
    assert doc.graph.output_ports(block) == ("out", "memory_out", "mask_out")
    item = window.view.graph_scene.items_by_id[block]
    assert list(item.inputs) == ["x", "memory", "mask"]
    assert doc.graph.definition(block).nodes["cross"].attrs["embed_dim"] == 32


def test_a_dropped_block_is_refused_where_it_would_contain_itself(window):
    doc = window.document
    assert window.open_path(SAMPLES / "resnet_cifar.json", ask=False)
    doc.levels.enter("stage2")
    before = snapshot(doc)
    assert drop_block(window, "res32  (this model)")
    assert snapshot(doc) == before
    assert "cannot contain itself" in window.statusBar().currentMessage()


def test_a_block_saved_to_the_library_drops_into_another_model(window):
    doc, view = window.document, window.view
    assert window.open_path(SAMPLES / "resnet_cifar.json", ask=False)
    view.graph_scene.select_only(["down"])
    window.actions_by_name["save_block"].trigger()
    saved = library_dir() / "res16to32.json"
    assert saved.is_file()
    leaf = shelf_leaf(window, "res16to32  (saved)")
    assert leaf.data(0, BLOCK_ROLE) == f"saved\t{saved}"
    assert window.document.new()
    assert drop_block(window, "res16to32  (saved)")
    (block,) = doc.graph.nodes
    assert doc.graph.nodes[block].attrs["block"] == "res16to32"
    assert "proj" in doc.model.blocks["res16to32"].nodes


def test_copy_and_paste_of_a_block_bring_its_definition_along(window):
    doc, view = window.document, window.view
    assert window.open_path(SAMPLES / "resnet_cifar.json", ask=False)
    view.graph_scene.select_only(["stage2", "avgpool"])
    assert window.clipboard.copy()
    assert window.document.new()
    pasted = window.clipboard.paste()
    assert sorted(pasted) == ["avgpool", "stage2"] and list(doc.model.blocks) == ["res32"]
    again = window.clipboard.paste()  # the same definition: shared, not copied again
    assert list(doc.model.blocks) == ["res32"] and len(again) == 2
    doc.undo()
    doc.undo()
    assert not doc.model.blocks and not doc.model.nodes
