"""A note over a plot that has nothing to show yet.

Before the first run every plot showed bare 0–1 axes, which told a first-time user neither what
would appear there nor how to make it appear. The note covers the plot in the plot's own
background (the palette's Base, so a theme change follows) until there is data, and comes back
when a run's data is cleared. It never takes the mouse: the plot under it still pans and zooms.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QLabel, QWidget


class EmptyHint(QLabel):
    def __init__(self, over: QWidget, text: str):
        super().__init__(text, over)
        self.setAlignment(Qt.AlignCenter)
        self.setWordWrap(True)
        self.setMargin(16)
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setEnabled(False)  # the palette's muted text, as the inspector's own hint
        self._over = over
        over.installEventFilter(self)
        self.setGeometry(over.rect())
        self.raise_()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if obj is self._over and event.type() == QEvent.Resize:
            self.setGeometry(self._over.rect())
        return False

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt override)
        # the active Base, the plots' background: a disabled label would fill with the grey
        # of the disabled group
        QPainter(self).fillRect(self.rect(), self.palette().color(QPalette.Active, QPalette.Base))
        super().paintEvent(event)

    def show_when(self, empty: bool, text: str | None = None) -> None:
        """Shown while ``empty``; ``text`` replaces the note (e.g. why there will be none)."""
        if text is not None:
            self.setText(text)
        self.setVisible(empty)
        if empty:
            self.raise_()
