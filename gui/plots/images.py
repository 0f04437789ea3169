"""Arrays as pictures: sample grids for the dataset panel, feature-map grids for the inference
view, and a 28×28 drawing pad. Pixels are made with numpy and handed to Qt in one QImage.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget


def to_unit(a: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] for display (constant arrays become mid-grey); NaN shows as 0."""
    a = np.nan_to_num(np.asarray(a, dtype=np.float32))
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if hi - lo < 1e-12:
        return np.full(a.shape, 0.5, dtype=np.float32)
    return (a - lo) / (hi - lo)


def qimage_from_array(a: np.ndarray) -> QImage:
    """(H, W) grey or (H, W, 3) colour values in [0, 1] -> an owned QImage."""
    pixels = np.clip(np.asarray(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    h, w = pixels.shape[:2]
    if pixels.ndim == 2:
        buf = np.ascontiguousarray(pixels)
        return QImage(buf.data, w, h, buf.strides[0], QImage.Format_Grayscale8).copy()
    buf = np.ascontiguousarray(pixels[..., :3])
    return QImage(buf.data, w, h, buf.strides[0], QImage.Format_RGB888).copy()


def displayable(sample: np.ndarray) -> np.ndarray | None:
    """One sample as (H, W) or (H, W, 3) when it looks like an image (C×H×W, C in 1 or 3)."""
    s = np.asarray(sample)
    if s.ndim == 3 and s.shape[0] in (1, 3) and min(s.shape[1:]) >= 4:
        return s[0] if s.shape[0] == 1 else np.moveaxis(s, 0, -1)
    if s.ndim == 2 and min(s.shape) >= 4:
        return s
    return None


def tile(images: list, cols: int, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Same-sized (H, W[, 3]) images in rows of ``cols``, ``pad`` pixels apart."""
    h, w = images[0].shape[:2]
    rows = -(-len(images) // cols)
    shape = (rows * (h + pad) + pad, cols * (w + pad) + pad) + images[0].shape[2:]
    out = np.full(shape, fill, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = img
    return out


def feature_map_grid(maps: np.ndarray, max_maps: int = 64) -> tuple[np.ndarray, int]:
    """C×H×W feature maps, each scaled on its own, tiled near-square; returns (image, shown)."""
    maps = np.asarray(maps)[:max_maps]
    cols = int(np.ceil(np.sqrt(len(maps))))
    return tile([to_unit(m) for m in maps], cols, pad=1, fill=1.0), len(maps)


def class_grid_pixmap(x: np.ndarray, y: np.ndarray, class_names: list, per_class: int = 8,
                      max_classes: int = 10, scale: int = 2) -> QPixmap:
    """A row of example images per class, the class name at the left of each row."""
    classes = list(range(min(len(class_names), max_classes))) or sorted(set(y.tolist()))[:max_classes]
    rows = []
    for c in classes:
        idx = np.flatnonzero(y == c)[:per_class]
        rows.append([to_unit(displayable(x[i])) for i in idx])
    h, w = displayable(x[0]).shape[:2]
    label_w, pad = 110, 2
    cell_h, cell_w = h * scale + pad, w * scale + pad
    pix = QPixmap(label_w + per_class * cell_w, len(rows) * cell_h)
    pix.fill(Qt.white)
    painter = QPainter(pix)
    for r, (c, images) in enumerate(zip(classes, rows)):
        top = r * cell_h
        name = str(class_names[c]) if c < len(class_names) else str(c)
        painter.setPen(Qt.black)
        painter.drawText(QRect(2, top, label_w - 6, cell_h), Qt.AlignVCenter | Qt.AlignRight, name)
        for k, img in enumerate(images):
            target = QRect(label_w + k * cell_w, top + pad // 2, w * scale, h * scale)
            painter.drawImage(target, qimage_from_array(img))
    painter.end()
    return pix


class ImageLabel(QLabel):
    """Shows an image scaled to fit, pixel-sharp, and re-fits it when resized."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.image: QImage | None = None
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(64, 64)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)

    def set_array(self, a: np.ndarray) -> None:
        self.set_image(qimage_from_array(a))

    def set_image(self, image: QImage) -> None:
        self.image = image
        self._fit()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self.image is None:
            return
        w, h = max(16, self.width() - 4), max(16, self.height() - 4)
        scaled = self.image.scaled(w, h, Qt.KeepAspectRatio, Qt.FastTransformation)
        self.setPixmap(QPixmap.fromImage(scaled))


def pad_prompt(class_names: list) -> str:
    """What the drawing pad asks for, in the data's own words: "Draw a digit (0–9)" for
    MNIST's classes, "Draw one of: T-shirt/top, Trouser, Pullover, …" for clothing."""
    names = [str(n) for n in class_names or []]
    if names and all(n.isdigit() and len(n) == 1 for n in names):
        return f"Draw a digit ({names[0]}–{names[-1]})"
    if not names:
        return "Draw here"
    shown = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
    return f"Draw one of: {shown}"


class DrawPad(QWidget):
    """A square grid (28×28 by default) to draw on with the mouse: white strokes on black, a
    soft brush, values in [0, 1] like the bundled images."""

    changed = Signal()

    def __init__(self, size: tuple = (28, 28), parent: QWidget | None = None):
        super().__init__(parent)
        self.pixels = np.zeros(size, dtype=np.float32)
        self.prompt = ""  # shown on the empty pad: what to draw (``pad_prompt``)
        self._last: tuple | None = None  # the grid point under the pressed mouse
        self._erasing = False
        self.setMinimumSize(4 * size[1], 4 * size[0])
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setCursor(Qt.CrossCursor)
        self.setToolTip("Draw with the left mouse button; the right button erases")

    def clear(self) -> None:
        self.pixels[:] = 0
        self.update()
        self.changed.emit()

    def _cell(self) -> float:
        h, w = self.pixels.shape
        return min(self.width() / w, self.height() / h)

    def stroke(self, row: float, col: float, value: float = 1.0) -> None:
        """Ink a soft dot centred on (row, col), in pixel units of the grid."""
        h, w = self.pixels.shape
        rr, cc = np.mgrid[0:h, 0:w]
        dot = np.clip(1.5 - np.hypot(rr - row, cc - col), 0, 1)
        if value > 0:
            np.maximum(self.pixels, dot * value, out=self.pixels)
        else:
            self.pixels *= 1 - dot
        self.update()

    def _grid_point(self, pos: QPoint) -> tuple[float, float]:
        cell = self._cell()
        return pos.y() / cell - 0.5, pos.x() / cell - 0.5  # pixel centres at whole numbers

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._erasing = event.button() == Qt.RightButton
        self._last = self._grid_point(event.position().toPoint())
        self.stroke(*self._last, 0.0 if self._erasing else 1.0)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._last is None:
            return
        # ink every half pixel along the way: a fast stroke arrives as far-apart move events
        (r0, c0), (r1, c1) = self._last, self._grid_point(event.position().toPoint())
        n = max(1, int(np.ceil(2 * np.hypot(r1 - r0, c1 - c0))))
        for t in np.linspace(1 / n, 1, n):
            self.stroke(r0 + t * (r1 - r0), c0 + t * (c1 - c0), 0.0 if self._erasing else 1.0)
        self._last = (r1, c1)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self._last = None
        self.changed.emit()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        cell = self._cell()
        h, w = self.pixels.shape
        target = QRect(0, 0, int(w * cell), int(h * cell))
        painter.drawImage(target, qimage_from_array(self.pixels))
        painter.setPen(QColor(90, 90, 90))
        painter.drawRect(target.adjusted(0, 0, -1, -1))
        if self.prompt and not self.pixels.any():  # what to draw, until the first stroke
            painter.setPen(QColor(150, 150, 150))
            painter.drawText(target.adjusted(8, 8, -8, -8), Qt.AlignCenter | Qt.TextWordWrap,
                             self.prompt)
        painter.end()
