"""The ``layerloom`` entry point: subcommands go to the headless CLI before Qt is imported."""
from __future__ import annotations

import argparse
import sys

from layerloom.engine.cli import COMMANDS


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        from layerloom.engine.cli import main as cli_main

        return cli_main(argv)
    parser = argparse.ArgumentParser(
        prog="layerloom", description="Open the Layerloom window on a graph file "
        f"(default: the LeNet-5 sample). Headless commands: {', '.join(COMMANDS)}.")
    parser.add_argument("file", nargs="?", help="a layerloom-graph .json file to open")
    args, qt_args = parser.parse_known_args(argv)
    return run_gui(args.file, qt_args)


def run_gui(path: str | None, qt_args: list[str] | None = None) -> int:
    """Start Qt (only now: the CLI above never imports it) and show the window."""
    from layerloom.gui.preflight import display_problem

    problem = display_problem()
    if problem is not None:  # Qt would abort with advice that does not apply
        print(f"layerloom: {problem}", file=sys.stderr)
        return 2
    from layerloom.engine import paths
    from layerloom.engine.parallel_compile import start_early

    # the graph's kernels start compiling now, in helper processes, while Qt and the window load
    start_early(path if path is not None else paths.DEFAULT_GRAPH)
    from PySide6.QtWidgets import QApplication

    from layerloom.gui import gc_guard
    from layerloom.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *(qt_args or [])])
    app.setApplicationName("Layerloom")
    app.setOrganizationName("Layerloom")
    # garbage collected on this thread for the app's whole life (gui.gc_guard says why)
    with gc_guard.hold():
        window = MainWindow()
        window.show()
        if not window.offer_recovery():  # a graph a crash left unsaved wins over the one asked
            if path is not None:
                window.open_path(path, ask=False)
            elif paths.DEFAULT_GRAPH.exists():
                window.open_path(paths.DEFAULT_GRAPH, ask=False)
        code = app.exec()
        end(window)
    return code


def end(window) -> None:
    """The window's end on this thread, before the interpreter's: the loop can end without the
    window's close (``app.exit``, as the installed app's smoke test does), and a window left to
    the interpreter's teardown is destroyed in whatever order it frees things, its threads
    still running (the smoke test once ended in a segfault there, after training had ended)."""
    import shiboken6

    if shiboken6.isValid(window):
        if window.isVisible():  # not closed: join its threads; a recovery file stays
            window.shutdown()
        shiboken6.delete(window)


if __name__ == "__main__":
    sys.exit(main())
