"""Heat maps and histograms of the Explain tab's large tensors, made on a worker thread.

A convolution's activations on a batch are hundreds of thousands of numbers: their statistics,
heat maps and histograms (``engine.tensor_pictures``) are computed by a ``PictureWorker`` on its
own ``QThread`` while the tab stays responsive, then shown through ``PictureText``, a text
browser that serves those pixel arrays as the images its HTML names. Each request carries a
generation number: the answer to an older request (another node was chosen meanwhile) is dropped.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QThread, Qt, QUrl, Signal, Slot
from PySide6.QtGui import QImage, QTextDocument
from PySide6.QtWidgets import QTextBrowser

from layerloom.engine.tensor_pictures import pictures


def to_image(pixels: np.ndarray) -> QImage:
    """An RGBA uint8 array as a QImage that owns its pixels."""
    h, w = pixels.shape[:2]
    data = np.ascontiguousarray(pixels)
    return QImage(data.data, w, h, 4 * w, QImage.Format_RGBA8888).copy()


class PictureText(QTextBrowser):
    """A text browser whose ``<img src="...">`` may name an image held in ``images``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.images: dict[str, QImage] = {}

    def loadResource(self, kind: int, url: QUrl):  # noqa: N802 (Qt override)
        image = self.images.get(url.toString())
        if kind == QTextDocument.ImageResource and image is not None:
            return image
        return super().loadResource(kind, url)


class PictureWorker(QObject):
    """Computes ``engine.tensor_pictures.pictures`` of one set of tensors, once."""

    done = Signal(int, object)  # generation, {name: TensorPicture} or the error's text

    def __init__(self, generation: int, tensors: dict, batched: frozenset):
        super().__init__()
        self.generation, self.tensors, self.batched = generation, tensors, batched

    @Slot()
    def run(self) -> None:
        try:
            result = pictures(self.tensors, self.batched)
        except Exception as err:  # noqa: BLE001 (the tab says it; the thread must still end)
            result = f"{type(err).__name__}: {err}"
        self.done.emit(self.generation, result)


class PictureJobs(QObject):
    """Starts a worker thread per request and delivers only the newest request's answer."""

    ready = Signal(object)  # {name: TensorPicture} of the newest request
    failed = Signal(str)

    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.generation = 0
        self._running: list[tuple[QThread, PictureWorker]] = []

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def request(self, tensors: dict, batched: frozenset) -> None:
        self.generation += 1
        thread = QThread(self)
        worker = PictureWorker(self.generation, tensors, batched)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # quit from the worker's own thread: a queued quit could wait on a busy UI thread
        worker.done.connect(thread.quit, Qt.DirectConnection)
        worker.done.connect(self._deliver)
        pair = (thread, worker)
        thread.finished.connect(lambda: self._finished(pair))
        self._running.append(pair)
        thread.start()

    def cancel(self) -> None:
        """Whatever is still being computed is of no use any more."""
        self.generation += 1

    def _deliver(self, generation: int, result) -> None:
        if generation != self.generation:
            return
        if isinstance(result, str):
            self.failed.emit(result)
        else:
            self.ready.emit(result)

    def _finished(self, pair) -> None:
        if pair in self._running:
            self._running.remove(pair)
            pair[0].deleteLater()

    def shutdown(self) -> None:
        """The window closes: join every thread (a collected running QThread aborts)."""
        self.cancel()
        for thread, _worker in list(self._running):
            thread.quit()
            thread.wait()
        self._running.clear()
