"""Open the real window the way `layerloom` does, on the default graph (LeNet-5 on the bundled
data), press Train with "Stop after" 3 mini-batches, and exit 0 once the run finished.

Not a pytest module: `.ci/run` runs it with a wheel installed into a fresh venv, under Xvfb with
Qt's xcb platform, to prove an installed app opens a real window and trains. Exit codes: 0 trained,
1 the run failed, 2 the window did not open the default graph, 3 timed out.
"""
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from layerloom.engine.paths import DEFAULT_GRAPH
from layerloom.gui import main as entry


def drive(app: QApplication) -> None:
    window = next(w for w in app.topLevelWidgets() if type(w).__name__ == "MainWindow")
    print(f"platform {app.platformName()}, opened {window.document.path}", flush=True)
    if window.document.path != DEFAULT_GRAPH or not window.document.graph.nodes:
        app.exit(2)
        return
    session = window.training
    controller = session.controller
    controller.finished.connect(lambda r: (print(f"trained {r.steps} steps", flush=True),
                                           app.exit(0)))
    controller.failed.connect(lambda text: (print(f"failed: {text}", flush=True), app.exit(1)))
    controller.diverged.connect(lambda r: (print("diverged", flush=True), app.exit(1)))
    session.training_panel.max_steps.setValue(3)
    session.training_panel.train_button.click()


if __name__ == "__main__":
    app = QApplication([sys.argv[0]])
    QTimer.singleShot(1000, lambda: drive(app))
    QTimer.singleShot(15 * 60 * 1000, lambda: app.exit(3))
    sys.exit(entry.main([]))
