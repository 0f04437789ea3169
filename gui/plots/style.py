"""Plot colours and axes that follow the application palette (light or dark), and node colours.

pyqtgraph draws white on black by default; a desktop panel should look like the rest of the
window, so every plot here takes its background and text colours from the QPalette.
"""
from __future__ import annotations

import hashlib

import pyqtgraph as pg
from PySide6.QtGui import QColor, QGuiApplication, QPalette

SERIES = {"train": "#4c72b0", "smooth": "#1f4e9c", "val": "#dd8452", "acc": "#55a868",
          "val_acc": "#c44e52", "alarm": "#d62728"}


def palette_colors() -> tuple[QColor, QColor, QColor]:
    """(background, text, grid) from the application palette."""
    pal = QGuiApplication.palette()
    bg, fg = pal.color(QPalette.Base), pal.color(QPalette.Text)
    grid = QColor(fg)
    grid.setAlpha(40)
    return bg, fg, grid


def is_dark() -> bool:
    return palette_colors()[0].lightness() < 128


def style_plot(plot: pg.PlotItem, title: str = "", left: str = "", bottom: str = "") -> None:
    """Palette colours, light grid, labelled axes, no auto-range fights with downsampling."""
    _bg, fg, _grid = palette_colors()
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(fg))
        axis.setTextPen(pg.mkPen(fg))
        axis.enableAutoSIPrefix(False)  # else the label's HTML is relaid out on every range change
    # no grid: pyqtgraph draws it with the axes, and then every curve update repaints the axes
    # (text and all) over the whole plot, which cost ~3 ms per axis per frame here
    if title:
        plot.setTitle(title, color=fg.name(), size="10pt")
    if left:
        plot.setLabel("left", left, color=fg.name())
    if bottom:
        plot.setLabel("bottom", bottom, color=fg.name())
    plot.setDownsampling(auto=True, mode="peak")
    plot.setClipToView(True)


def legend_style() -> dict:
    """Legend keywords: small palette-coloured text on a veil of the background, so a legend
    over the curves stays readable."""
    bg, fg, _grid = palette_colors()
    veil = QColor(bg)
    veil.setAlpha(215)
    return {"labelTextSize": "8pt", "labelTextColor": fg, "brush": pg.mkBrush(veil)}


def legend_label(entries: list[tuple[str, str, str]]):
    """A legend outside the data: a wrapping line of coloured marks and names, as a QLabel
    (text in the palette's colour, so it follows the theme). ``entries``: (colour, mark, name),
    the mark "line", "dot" (a line with points) or "square" (a class colour)."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel, QSizePolicy

    label = QLabel(legend_label_html(entries))
    label.setWordWrap(True)
    label.setTextFormat(Qt.RichText)
    label.setContentsMargins(6, 2, 6, 0)
    label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # wraps, never widens
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.9)
    label.setFont(font)
    return label


def legend_label_html(entries: list[tuple[str, str, str]]) -> str:
    """The rich text of ``legend_label``: one coloured mark and name per entry."""
    from html import escape

    marks = {"line": "━━", "dot": "━●━", "square": "■"}
    return "&nbsp;&nbsp; ".join(
        f'<span style="color:{colour}; font-weight:bold;">{marks[mark]}</span>&nbsp;'
        f'{escape(name)}' for colour, mark, name in entries)


def make_view(widget_cls=pg.GraphicsLayoutWidget, **kwargs):
    """A pyqtgraph widget with the palette's background."""
    w = widget_cls(**kwargs)
    w.setBackground(palette_colors()[0])
    return w


def heatmap_view(left: str, bottom: str) -> tuple:
    """(PlotWidget, its PlotItem, its ImageItem) for a matrix read row by row from the top: the
    axes labelled, no mouse panning or zoom (a fixed grid of cells, not a chart to explore)."""
    view = make_view(pg.PlotWidget)
    plot = view.getPlotItem()
    style_plot(plot, left=left, bottom=bottom)
    plot.invertY(True)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()
    image = pg.ImageItem()
    plot.addItem(image)
    return view, plot, image


def heatmap_colors(image: pg.ImageItem) -> None:
    """From the panel's background to a blue, taken from the palette at each draw (the theme may
    have changed since the view was built)."""
    low, high = palette_colors()[0], pg.mkColor("#08306b" if not is_dark() else "#6baed6")
    image.setLookupTable(pg.ColorMap([0.0, 1.0], [low, high]).getLookupTable(nPts=256))


def node_color(node_id: str, index: int | None = None, count: int | None = None) -> QColor:
    """A stable, distinct colour per node: evenly spaced hues when the index is known."""
    if index is not None and count:
        hue = int(360 * (index * 0.618033988749895 % 1.0))
    else:
        hue = int(hashlib.md5(node_id.encode()).hexdigest()[:4], 16) % 360
    return QColor.fromHsl(hue, 170, 110 if not is_dark() else 160)


def restyle(root) -> None:
    """Re-colour every plot under the widget ``root`` from the current palette (View > Theme):
    backgrounds, axes, axis labels and titles."""
    bg, fg, _grid = palette_colors()
    for view in root.findChildren(pg.GraphicsView):
        view.setBackground(bg)
    for plot_widget in root.findChildren(pg.PlotWidget):
        _restyle_plot(plot_widget.getPlotItem(), fg)
    for layout_widget in root.findChildren(pg.GraphicsLayoutWidget):
        for item in layout_widget.ci.items:
            if isinstance(item, pg.PlotItem):
                _restyle_plot(item, fg)


def _restyle_plot(plot: pg.PlotItem, fg: QColor) -> None:
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(fg))
        axis.setTextPen(pg.mkPen(fg))
        if axis.labelText:
            axis.setLabel(axis.labelText, axis.labelUnits or None, color=fg.name())
    if plot.titleLabel.text:
        plot.setTitle(plot.titleLabel.text, color=fg.name(), size="10pt")
    if plot.legend is not None:
        style = legend_style()
        plot.legend.setBrush(style["brush"])
        plot.legend.setLabelTextColor(style["labelTextColor"])
        for _sample, label in plot.legend.items:  # setLabelTextColor only stores the colour:
            label.setText(label.text)              # a label draws it when its text is set
