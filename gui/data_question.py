"""The question the window asks before it reads data that a graph file names outside its folder.

A graph file from the internet must not make Layerloom read ``/etc/passwd`` or ``/dev/zero`` just
by being opened; the engine refuses such paths (``OutsideDataError``) and the window asks the
person instead: Load (read it, this once for this graph), Choose another (the Data panel's file
chooser), or Cancel (read nothing; the graph stays as it is).
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QMessageBox, QWidget

from layerloom.engine.data.location import OutsideDataError

LOAD, CHOOSE, CANCEL = "load", "choose", "cancel"


def outside_data_box(parent: QWidget | None, err: OutsideDataError) -> tuple[QMessageBox, dict]:
    """The message box and its buttons by answer (built apart from ``exec`` so tests can read it)."""
    box = QMessageBox(QMessageBox.Warning, "Data outside the graph's folder",
                      f"This graph wants to read data from {err.path}", parent=parent)
    box.setInformativeText("It is outside the graph file's folder. Load it only if you trust "
                           "where this graph came from.")
    buttons = {LOAD: box.addButton("Load", QMessageBox.AcceptRole),
               CHOOSE: box.addButton("Choose another…", QMessageBox.ActionRole),
               CANCEL: box.addButton(QMessageBox.Cancel)}
    box.setDefaultButton(buttons[CANCEL])
    box.setEscapeButton(buttons[CANCEL])
    return box, buttons


def ask_outside_data(parent: QWidget | None, err: OutsideDataError) -> str:
    """LOAD, CHOOSE or CANCEL."""
    box, buttons = outside_data_box(parent, err)
    box.exec()
    clicked = box.clickedButton()
    return next((answer for answer, button in buttons.items() if button is clicked), CANCEL)


def confirmer(parent: QWidget, access, choose: Callable[[], object],
              say: Callable[..., None]) -> Callable[[OutsideDataError], bool]:
    """The ``DataAccess.confirm`` of a window: Load approves the path; Choose another runs
    ``choose()`` (the Data panel's chooser, None when cancelled); Cancel says so in the status
    bar (``say``). True when the data section should be read again."""
    def confirm(err: OutsideDataError) -> bool:
        answer = ask_outside_data(parent, err)
        if answer == LOAD:
            access.approved.add(err.path)
            return True
        if answer == CHOOSE:
            return choose() is not None
        say(f"Data not loaded: {err.path} is outside the graph file's folder", 0)
        return False
    return confirm
