"""Colours and sizes of the canvas, derived from the application palette (light or dark).

The canvas paints with these instead of fixed colours so it follows the system palette; the
light/dark palettes here exist for View > Theme and for screenshots under Xvfb, where no desktop
supplies one. Category hues are keyed by the registry's category names, never by layer type.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from layerloom.engine.block_types import CATEGORY as BLOCK_CATEGORY

# Hue (degrees) per palette category; a category not listed gets a stable hashed hue.
CATEGORY_HUES = {
    "Input/Output": 140, "Dense": 215, "Convolution": 265, "Pooling": 190, "Padding": 305,
    "Activation": 35, "Normalisation": 170, "Recurrent": 320, "Attention": 290,
    "Merge/Split": 55, "Math": 118, "Shape": 95, "Regularisation": 240, "Loss": 0,
}
BLOCK = BLOCK_CATEGORY  # drawn slate: a container, not a hue of its own among the layers

GRID = 20.0  # canvas dot-grid spacing in scene units (a guide: positions do not snap)


def category_hue(category: str) -> int:
    if category in CATEGORY_HUES:
        return CATEGORY_HUES[category]
    return int(hashlib.md5(category.encode()).hexdigest()[:4], 16) % 360


FLOW = QColor("#e8590c")  # the gradient-flow overlay: edges carrying gradient, both themes


@dataclass
class Theme:
    """Every colour the canvas uses, for one palette."""

    dark: bool
    canvas: QColor
    grid: QColor
    node_body: QColor
    node_border: QColor
    text: QColor
    text_muted: QColor
    selection: QColor
    error: QColor
    error_fill: QColor
    frozen: QColor
    warning: QColor
    edge: QColor
    edge_label_bg: QColor
    port_data: QColor
    port_scalar: QColor
    port_unknown: QColor
    port_ok: QColor
    port_bad: QColor
    headers: dict = field(default_factory=dict)

    def header(self, category: str) -> QColor:
        """The node header colour of a category: soft in light mode, deep in dark mode."""
        if category == BLOCK and category not in self.headers:  # a container, quieter
            self.headers[category] = (QColor.fromHsl(222, 45, 88) if self.dark
                                      else QColor.fromHsl(222, 48, 200))
        if category not in self.headers:
            hue = category_hue(category)
            self.headers[category] = (QColor.fromHsl(hue, 120, 70) if self.dark
                                      else QColor.fromHsl(hue, 150, 212))
        return self.headers[category]

    def header_text(self, category: str) -> QColor:
        return QColor("#f4f4f4") if self.dark else QColor("#1d1d1f")


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.Window).lightness() < 128


def theme_for(palette: QPalette) -> Theme:
    """The canvas colours that go with ``palette``."""
    dark = is_dark(palette)
    base = palette.color(QPalette.Base)
    text = palette.color(QPalette.Text)
    muted = QColor(text)
    muted.setAlphaF(0.62)
    canvas = palette.color(QPalette.Window).darker(118) if dark else QColor("#eef0f3")
    body = base.lighter(130) if dark else QColor("#ffffff")
    return Theme(
        dark=dark,
        canvas=canvas,
        grid=canvas.lighter(135) if dark else canvas.darker(112),
        node_body=body,
        node_border=QColor("#5b5f66") if dark else QColor("#a7adb6"),
        text=text,
        text_muted=muted,
        selection=palette.color(QPalette.Highlight),
        error=QColor("#ff6b5e") if dark else QColor("#d0302a"),
        error_fill=QColor("#5a2522") if dark else QColor("#fde3e1"),
        frozen=QColor("#8fb8de") if dark else QColor("#5b87b5"),
        warning=QColor("#f2b233") if dark else QColor("#eaa416"),
        edge=QColor("#8d939c") if dark else QColor("#6f7782"),
        edge_label_bg=QColor("#2d3036") if dark else QColor("#ffffff"),
        port_data=QColor("#e2c044") if dark else QColor("#c9931b"),
        port_scalar=QColor("#ef8a62") if dark else QColor("#d6602e"),
        port_unknown=QColor("#8d939c"),
        port_ok=QColor("#4cc36a") if dark else QColor("#23a047"),
        port_bad=QColor("#ff6b5e") if dark else QColor("#d0302a"),
    )


def current() -> Theme:
    return theme_for(QGuiApplication.palette())


def node_fonts() -> tuple[QFont, QFont]:
    """(title, detail) fonts for node faces, sized from the application font."""
    base = QGuiApplication.font()
    title = QFont(base)
    title.setBold(True)
    detail = QFont(base)
    size = base.pointSizeF()
    if size > 0:
        detail.setPointSizeF(size * 0.92)
    return title, detail


# ------------------------------------------------------------------------ application palettes
def light_palette() -> QPalette:
    return QStyleFactory.create("Fusion").standardPalette()


def dark_palette() -> QPalette:
    """A neutral dark palette (Fusion's roles), readable at any scaling."""
    p = QPalette()
    window, base, text = QColor("#2b2d31"), QColor("#1f2023"), QColor("#e6e6e6")
    for role, colour in (
        (QPalette.Window, window), (QPalette.WindowText, text), (QPalette.Base, base),
        (QPalette.AlternateBase, QColor("#26282c")), (QPalette.ToolTipBase, QColor("#34373c")),
        (QPalette.ToolTipText, text), (QPalette.PlaceholderText, QColor("#8b8f96")),
        (QPalette.Text, text), (QPalette.Button, QColor("#34373c")), (QPalette.ButtonText, text),
        (QPalette.BrightText, QColor("#ff6b5e")), (QPalette.Light, QColor("#45484e")),
        (QPalette.Midlight, QColor("#3a3d42")), (QPalette.Mid, QColor("#2f3135")),
        (QPalette.Dark, QColor("#18191b")), (QPalette.Shadow, QColor("#0d0d0e")),
        (QPalette.Highlight, QColor("#3d7fd6")), (QPalette.HighlightedText, QColor("#ffffff")),
        (QPalette.Link, QColor("#6ea8ff")),
    ):
        p.setColor(role, colour)
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor("#7b7f86"))
    return p


_system_palette: QPalette | None = None


def apply_theme(mode: str) -> None:
    """``"system"``, ``"light"`` or ``"dark"``: set the application palette (Fusion style for the
    explicit modes, so the palette is honoured on every platform)."""
    global _system_palette
    app = QApplication.instance()
    if _system_palette is None:
        _system_palette = QPalette(app.palette())
    if mode == "dark":
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    elif mode == "light":
        app.setStyle("Fusion")
        app.setPalette(light_palette())
    else:
        app.setPalette(_system_palette)
