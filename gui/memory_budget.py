"""Edit > Memory Budget…: how much memory training a graph may need before the graph is refused.

The engine checks every graph against the budget on each edit (``engine.budget``); this is the
window's setting for it, kept in QSettings. Empty means the environment variable
``LAYERLOOM_MEMORY_BUDGET`` or, without it, half the physical memory.
"""
from __future__ import annotations

from PySide6.QtWidgets import QInputDialog, QMainWindow, QMessageBox

from layerloom.engine.budget import BudgetError, fmt_bytes, memory_budget, set_budget

KEY = "memory_budget"


def apply_saved(window: QMainWindow) -> None:
    """Use the stored setting (a stored value that no longer reads means the default)."""
    text = str(window.settings.value(KEY, "") or "").strip()
    try:
        set_budget(text or None)
    except BudgetError:
        set_budget(None)
    window.document.recompute()


def ask(window: QMainWindow) -> bool:
    """Ask for a new budget; a value that cannot be read is refused in one line."""
    current = str(window.settings.value(KEY, "") or "")
    text, ok = QInputDialog.getText(
        window, "Memory budget",
        f"Largest memory training a graph may need, e.g. 8G or 50% (now "
        f"{fmt_bytes(memory_budget())}).\nLeave empty for the default.", text=current)
    if not ok:
        return False
    try:
        set_budget(text.strip() or None)
    except BudgetError as err:
        QMessageBox.critical(window, "Memory budget", str(err))
        return False
    window.settings.setValue(KEY, text.strip())
    window.document.recompute()
    window.statusBar().showMessage(f"Memory budget: {fmt_bytes(memory_budget())}", 4000)
    return True
