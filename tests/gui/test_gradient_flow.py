"""View > Show Gradient Flow through the real window: the coloured edges are exactly the engine's,
and freezing a node changes them at once."""
from pathlib import Path

import pytest

from layerloom.engine.grad_flow import gradient_flow
from layerloom.gui.canvas.flow_overlay import FADED

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def marks(window):
    scene = window.view.graph_scene
    return ({f"{e.src[0]}>{e.dst[0]}" for e, item in scene.edge_items.items() if item.flow},
            {n for n, item in scene.items_by_id.items() if item.opacity() == pytest.approx(FADED)})


def test_the_overlay_marks_the_flow_and_follows_freezing(window):
    assert window.open_path(SAMPLES / "mlp_spirals.json", ask=False)
    action = window.actions_by_name["gradient_flow"]
    action.trigger()
    assert action.isChecked() and "orange edges" in window.statusBar().currentMessage()
    edges, faded = marks(window)
    assert edges == {"fc1>tanh1", "tanh1>fc2", "fc2>tanh2", "tanh2>fc3", "fc3>loss"} and not faded
    assert all(item.flow is False for e, item in window.view.graph_scene.edge_items.items()
               if e.src[0] in ("points", "label"))
    assert window.document.set_frozen("fc1", True) and window.document.set_frozen("fc2", True)
    edges, faded = marks(window)
    assert edges == {"fc3>loss"}  # only fc3 still trains: gradient stops at its input
    assert faded == {"fc1", "fc2"}
    engine = gradient_flow(window.document.graph)
    assert edges == {f"{e.src[0]}>{e.dst[0]}" for e in engine.edges}
    window.document.stack.undo()  # fc2 trains again
    assert marks(window) == ({"fc2>tanh2", "tanh2>fc3", "fc3>loss"}, {"fc1"})
    action.trigger()
    assert marks(window) == (set(), set())
    assert all(item.flow is None for item in window.view.graph_scene.edge_items.values())
