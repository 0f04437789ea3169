"""Blocks through the real canvas: Ctrl+G groups the selection, double-click or Enter opens a
block in place under a breadcrumb and Esc backs out, edits inside are ordinary undo steps that
change every instance, Ctrl+Shift+G ungroups, the inspector sets ×N — and undo always restores
the exact file."""
import json

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from layerloom.engine.paths import SAMPLES
from layerloom.engine.serialize import graph_to_dict
from layerloom.gui.canvas.block_item import BlockNodeItem


def snapshot(doc) -> str:
    return json.dumps(graph_to_dict(doc.model))


def click(view, node_id: str, modifiers=Qt.NoModifier, double: bool = False) -> None:
    """A real click (or double-click) on a node's body, scrolled into view first."""
    item = view.graph_scene.items_by_id[node_id]
    view.ensure_visible(item.sceneBoundingRect())
    at = view.mapFromScene(item.sceneBoundingRect().center())
    if double:
        QTest.mouseDClick(view.viewport(), Qt.LeftButton, modifiers, at)
    else:
        QTest.mouseClick(view.viewport(), Qt.LeftButton, modifiers, at)


def open_sample(window, name: str) -> str:
    assert window.open_path(SAMPLES / name, ask=False)
    window.document.stack.clear()
    return snapshot(window.document)


def test_ctrl_g_groups_the_selection_into_one_block_with_ports_where_edges_crossed(window):
    doc, view = window.document, window.view
    before = open_sample(window, "mlp_spirals.json")
    click(view, "fc2")
    click(view, "tanh2", Qt.ControlModifier)
    assert sorted(view.graph_scene.selected_node_ids()) == ["fc2", "tanh2"]
    QTest.keyClick(view, Qt.Key_G, Qt.ControlModifier)
    (block,) = [n for n in doc.graph.nodes if doc.graph.definition(n) is not None]
    item = view.graph_scene.items_by_id[block]
    assert isinstance(item, BlockNodeItem) and (tuple(item.inputs), tuple(item.outputs)) == (
        ("x",), ("y",))
    assert "fc2" not in doc.graph.nodes and doc.stack.count() == 1
    assert doc.model_report.ok and item.param_count == doc.params[block] > 0
    assert view.graph_scene.edge_items[doc.graph.edge_into((block, "x"))].text
    assert view.graph_scene.selected_node_ids() == [block]
    grouped = snapshot(doc)
    doc.undo()
    assert snapshot(doc) == before
    doc.redo()
    assert snapshot(doc) == grouped


def test_double_click_opens_a_block_in_place_and_esc_goes_back(window):
    doc, view = window.document, window.view
    open_sample(window, "resnet_cifar.json")
    assert not view.breadcrumb.isVisible()
    click(view, "stage1", double=True)
    assert doc.graph is doc.model.blocks["res16"]
    assert view.breadcrumb.isVisible() and view.breadcrumb.text() == "model › stage1 (res16)"
    assert set(view.graph_scene.items_by_id) == set(doc.model.blocks["res16"].nodes)
    edge = doc.graph.edge_into(("conv1", "x"))
    assert view.graph_scene.edge_items[edge].text == "16×16×16"  # this instance's shapes
    QTest.keyClick(view, Qt.Key_Escape)
    assert doc.graph is doc.model and not view.breadcrumb.isVisible()
    click(view, "down")
    QTest.keyClick(view, Qt.Key_Return)
    assert view.breadcrumb.text() == "model › down (res16to32)"
    view.breadcrumb.parts[0].click()
    assert doc.graph is doc.model


def test_an_edit_inside_a_block_is_one_undo_step_and_changes_every_copy(window):
    doc, view = window.document, window.view
    before = open_sample(window, "resnet_cifar.json")
    params = doc.total_params
    doc.levels.enter("stage1")  # res16, repeated twice
    click(view, "conv1")
    assert window.inspector.node_id == "conv1"
    window.inspector.editors["bias"].click()  # conv1 gains 16 biases, in both copies
    assert doc.stack.count() == 1 and doc.total_params == params + 2 * 16
    QTest.keyClick(view, Qt.Key_Escape)
    assert view.graph_scene.items_by_id["stage1"].param_count == doc.params["stage1"]
    doc.undo()
    assert snapshot(doc) == before and doc.total_params == params


def test_ctrl_shift_g_ungroups_every_copy_and_undo_puts_the_block_back(window):
    doc, view = window.document, window.view
    before = open_sample(window, "resnet_cifar.json")
    click(view, "stage1")
    QTest.keyClick(view, Qt.Key_G, Qt.ControlModifier | Qt.ShiftModifier)
    assert "stage1" not in doc.graph.nodes and "res16" not in doc.model.blocks
    assert {"conv1", "conv1_2", "add", "add_2"} <= set(view.graph_scene.items_by_id)
    assert doc.model_report.ok and doc.stack.count() == 1
    doc.undo()
    assert snapshot(doc) == before


def test_repeat_set_in_the_inspector_shows_xn_or_says_why_it_cannot(window):
    doc, view = window.document, window.view
    before = open_sample(window, "resnet_cifar.json")
    one = doc.params["stage2"]
    click(view, "stage2")
    window.inspector.editors["repeat"].setValue(3)
    item = view.graph_scene.items_by_id["stage2"]
    assert item.title == "res32 ×3" and item.param_count == 3 * one
    click(view, "down")
    window.inspector.editors["repeat"].setValue(2)  # 16 channels in, 32 out: cannot chain
    assert "must give what it takes" in view.graph_scene.items_by_id["down"].error
    assert "must give what it takes" in window.inspector.error_label.text()
    doc.undo()
    doc.undo()
    assert snapshot(doc) == before


def test_make_unique_detaches_one_instance_from_its_siblings(window):
    doc, view = window.document, window.view
    open_sample(window, "resnet_cifar.json")
    assert doc.blocks.insert("model", "res32", (0, 600)) == "res321"
    before = snapshot(doc)
    click(view, "res321")
    [b for b in window.inspector.findChildren(type(window.inspector.fix_button))
     if b.text() == "Make unique"][0].click()
    assert doc.model.nodes["res321"].attrs["block"] == "res32_2"
    doc.levels.enter("res321")
    doc.set_attr("conv1", "bias", True)
    assert doc.model.blocks["res32"].nodes["conv1"].attrs["bias"] is False
    doc.undo()
    doc.undo()
    assert snapshot(doc) == before and doc.graph is doc.model  # the block it showed is gone


def test_undo_of_a_block_s_making_while_inside_it_returns_to_the_model(window):
    doc, view = window.document, window.view
    before = open_sample(window, "mlp_spirals.json")
    block = doc.blocks.group(["fc1", "tanh1"])
    QTest.keyClick(view, Qt.Key_Return)
    assert doc.graph is doc.model.blocks[doc.model.nodes[block].attrs["block"]]
    QTest.keyClick(view, Qt.Key_Z, Qt.ControlModifier)
    assert doc.graph is doc.model and not view.breadcrumb.isVisible()
    assert snapshot(doc) == before and set(view.graph_scene.items_by_id) == set(doc.model.nodes)


def test_a_training_mark_inside_a_block_goes_on_the_node_holding_it(window):
    doc, scene = window.document, window.view.graph_scene
    open_sample(window, "resnet_cifar.json")
    scene.overlays.set_alert("stage1.1.conv2", "non-finite gradient")
    assert scene.items_by_id["stage1"].alert and not scene.items_by_id["down"].alert
    scene.overlays.set_warning("down.proj", "gradient", "vanishing")
    assert "gradient" in scene.items_by_id["down"].warnings
    doc.levels.enter("stage1")
    scene.overlays.set_alert("stage1.1.conv2", "non-finite gradient")
    assert scene.items_by_id["conv2"].alert
    assert scene.overlays.local("down.conv1") is None


def test_renaming_or_deleting_a_wired_port_inside_moves_or_drops_its_wires_outside(window):
    doc = window.document
    before = open_sample(window, "mlp_spirals.json")
    block = doc.blocks.group(["fc2", "tanh2"])
    grouped = snapshot(doc)
    doc.levels.enter(block)
    assert doc.rename("x", "features")  # the instance's port follows, wired as it was
    assert doc.model.edge_into((block, "features")).src == ("tanh1", "y")
    assert doc.remove(["y"])  # the output port goes, and the wire into fc3 with it
    assert doc.model.edge_into(("fc3", "x")) is None and doc.model_report.errors
    doc.undo()
    doc.undo()
    assert snapshot(doc) == grouped
    doc.levels.go_up()
    doc.undo()
    assert snapshot(doc) == before


def test_gradient_flow_inside_an_open_block_follows_what_is_frozen_outside(window):
    doc, scene = window.document, window.view.graph_scene
    open_sample(window, "resnet_cifar.json")
    doc.set_frozen("stem", True)
    doc.set_frozen("stem_bn", True)  # nothing before stage1 trains: its input needs no gradient
    window.actions_by_name["gradient_flow"].trigger()
    doc.levels.enter("stage1")
    flowing = {f"{e.src[0]}>{e.dst[0]}" for e, item in scene.edge_items.items() if item.flow}
    assert {"conv1>bn1", "add>relu", "relu>out"} <= flowing  # relu>out: copy 1 trains on it
    assert "x>conv1" not in flowing and "x>add" not in flowing
    doc.levels.go_up()
    flowing = {f"{e.src[0]}>{e.dst[0]}" for e, item in scene.edge_items.items() if item.flow}
    assert "pool>stage1" not in flowing and "stage1>down" in flowing


def test_explain_inside_an_open_block_shows_that_copy_s_numbers(window):
    doc, view = window.document, window.view
    open_sample(window, "tiny_gpt.json")
    click(view, "blocks")
    assert not window.explain.compute_button.isEnabled()  # a block is many nodes: open it
    QTest.keyClick(view, Qt.Key_Return)
    click(view, "ff2")
    explain = window.explain
    assert explain.node_id == "ff2" and explain.compute_button.isEnabled()
    explain.compute_button.click()
    block = json.loads((SAMPLES / "tiny_gpt.json").read_text())["blocks"]["transformer"]
    units = {n["id"]: n["attrs"]["out_features"] for n in block["nodes"] if n["id"] in ("ff1", "ff2")}
    assert explain.numbers is not None
    assert explain.numbers.tensors["weight"].shape == (units["ff2"], units["ff1"])
    assert "dL/dweight" in explain.text.toPlainText()


def test_an_undo_inside_a_block_while_the_model_shows_updates_the_instance_s_ports(window):
    doc, scene = window.document, window.view.graph_scene
    open_sample(window, "resnet_cifar.json")
    doc.levels.enter("stage2")
    doc.add_node("BlockInput", (0, 300))  # a second input: every res32 instance gains a port
    doc.levels.go_up()
    assert tuple(scene.items_by_id["stage2"].inputs) == ("x", "blockinput1")
    assert "input 'blockinput1' is not connected" in scene.items_by_id["stage2"].error
    QTest.keyClick(window.view, Qt.Key_Z, Qt.ControlModifier)  # the undo reaches inside
    assert tuple(scene.items_by_id["stage2"].inputs) == ("x",)
    assert not scene.items_by_id["stage2"].error
    edge = doc.graph.edge_into(("stage2", "x"))
    end = scene.edge_items[edge].path.pointAtPercent(1.0)  # still drawn to the port
    assert (end - scene.port_item(("stage2", "x"), False).scenePos()).manhattanLength() < 1
