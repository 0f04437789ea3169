"""Every data source the engine reads, as the Data panel offers it: read from the engine's own
reader tables (``engine.data.NAMED_READERS`` / ``PATH_READERS``), so a new reader appears here
without an edit, and each source's options are its reader's keyword-only parameters.

``Source.key`` is what the panel's combo box holds: the reader's kind ("bundled", "idx",
"spirals"), or "text:" for the text *file* beside "text" (the bundled corpus), the one kind both
tables name; "pairs" (a built-in task) and "pairs:" (a .tsv file) are the two faces of one reader. ``build_spec`` and ``read_spec`` turn the widgets' values into an engine spec string
and back; options the widgets do not show ride along unchanged.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from urllib.parse import urlencode

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

from layerloom.engine.data import NAMED_READERS, PATH_READERS, parse_spec
from layerloom.gui.plots.boundary import colours
from layerloom.gui.plots.style import legend_label_html

# the file dialog's filter for each source kind that reads a file
FILE_FILTERS = {"npz": "NumPy archives (*.npz)", "csv": "CSV files (*.csv *.txt)",
                "text": "Text files (*.txt *.md);;All files (*)",
                "pairs": "Source<TAB>target lines (*.tsv *.txt);;All files (*)"}

LABELS = {"bundled": "Fashion-MNIST subset", "idx": "MNIST-format folder",
          "folder": "Image folder", "npz": "NumPy .npz file", "csv": "CSV file",
          "text:": "Text file", "seq": "Sequence task", "text": "Text: bundled corpus",
          "shapes": "Coloured shapes", "colour_shapes": "Coloured shapes (in memory)",
          "pairs": "Paired sequences: task", "pairs:": "Paired sequences: .tsv file"}
SYNTHETIC_PREFIX = "Synthetic: "  # named readers in engine.data.synthetic
PATH_NOUN = {"idx": "folder", "folder": "folder", "seq": "task", "pairs": "task"}  # what a path reader's argument names (else "file")
OPTION_LABELS = {"n": "Samples", "noise": "Noise", "seq_len": "Sequence length",
                 "length": "Length", "vocab": "Vocabulary", "delay": "Delay", "classes": "Classes",
                 "factor": "Factor", "test_fraction": "Test fraction", "task": "Task",
                 "name": "Name", "symbols": "Symbols", "digits": "Digits", "shift": "Shift",
                 "tokens": "Tokens (char/word)"}
PAIR_FILE_OPTIONS = ("tokens",)  # what a pairs .tsv file takes; the tasks take the others


@dataclass(frozen=True)
class Source:
    key: str  # the combo box's data
    kind: str  # the spec's kind
    label: str
    needs: str | None  # "folder", "file" or "task" for path readers; None for named ones
    options: dict  # option name -> default, from the reader's keyword-only parameters

    @property
    def synthetic(self) -> bool:
        return self.label.startswith(SYNTHETIC_PREFIX)


def _reader(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def reader_options(reader) -> dict:
    """{name: default} of a reader's keyword-only parameters: the options its spec takes."""
    return {p.name: p.default for p in inspect.signature(reader).parameters.values()
            if p.kind is p.KEYWORD_ONLY}


def _source(key: str, kind: str, target: str, needs: str | None) -> Source:
    label = LABELS.get(key)
    if label is None:
        synthetic = target.startswith("layerloom.engine.data.synthetic:")
        label = f"{SYNTHETIC_PREFIX}{kind}" if synthetic else kind
    return Source(key, kind, label, needs, reader_options(_reader(target)))


def sources() -> list[Source]:
    """The bundled images first, then every path reader, then the other named readers."""
    named = list(NAMED_READERS)
    out = [_source(named[0], named[0], NAMED_READERS[named[0]], None)]
    for kind, target in PATH_READERS.items():
        key = f"{kind}:" if kind in NAMED_READERS else kind
        out.append(_source(key, kind, target, PATH_NOUN.get(kind, "file")))
    out += [_source(k, k, NAMED_READERS[k], None) for k in named[1:]]
    return _pair_sources(out)


def _pair_sources(out: list[Source]) -> list[Source]:
    """The pairs reader as a task (with the task options) and, after it, a .tsv file (tokens)."""
    at = next((i for i, s in enumerate(out) if s.kind == "pairs"), None)
    if at is None:
        return out
    both = out[at]
    task = Source("pairs", "pairs", LABELS["pairs"], "task",
                  {k: v for k, v in both.options.items() if k not in PAIR_FILE_OPTIONS})
    tsv = Source("pairs:", "pairs", LABELS["pairs:"], "file",
                 {k: v for k, v in both.options.items() if k in PAIR_FILE_OPTIONS})
    return out[:at] + [task, tsv] + out[at + 1:]


def tasks(source: Source) -> tuple:
    """The choices of a "task" path argument (the sequence tasks)."""
    module, _, _ = PATH_READERS[source.kind].partition(":")
    return tuple(getattr(importlib.import_module(module), "TASKS", ()))


def build_spec(source: Source, path: str, values: dict, extra: dict | None = None) -> str:
    """The spec string: kind, ``:path`` for path readers, and the options that differ from the
    reader's defaults (plus ``extra``: options the widgets do not show)."""
    base = source.kind if source.needs is None else f"{source.kind}:{path.strip()}"
    options = {k: v for k, v in values.items() if k in source.options
               and v != source.options[k]}
    options.update(extra or {})
    text = {k: (f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool)
                else str(v)) for k, v in options.items()}
    return f"{base}?{urlencode(text)}" if text else base


def read_spec(spec: str, all_sources: list[Source]) -> tuple[Source, str, dict, dict]:
    """(source, path or task, option values shown by widgets, other options) of a spec string;
    raises DataError for a spec the engine does not read."""
    kind, path, options = parse_spec(spec)
    key = kind if path is None or f"{kind}:" not in {s.key for s in all_sources} else f"{kind}:"
    if kind == "pairs" and path in tasks(next(s for s in all_sources if s.key == "pairs")):
        key = "pairs"
    source = next(s for s in all_sources if s.key == key)
    shown = {k: v for k, v in options.items() if k in source.options}
    extra = {k: v for k, v in options.items() if k not in source.options}
    return source, path or "", shown, extra


# ------------------------------------------------------------------- option widgets
def option_widget(default) -> QWidget:
    """A widget for one reader option, by its default's type (None: text, empty = default)."""
    if isinstance(default, bool):
        return QCheckBox()
    if isinstance(default, int):
        box = QSpinBox()
        box.setRange(0, 10_000_000)
        box.setSingleStep(max(1, default // 10))
        return box
    if isinstance(default, float):
        box = QDoubleSpinBox()
        box.setRange(0.0, 1e6)
        box.setDecimals(3)
        box.setSingleStep(0.05)
        return box
    edit = QLineEdit()
    edit.setPlaceholderText("automatic")
    return edit


def set_option(widget: QWidget, value) -> None:
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QSpinBox):
        widget.setValue(int(value))
    elif isinstance(widget, QDoubleSpinBox):
        widget.setValue(float(value))
    else:
        widget.setText("" if value is None else str(value))


def option_value(widget: QWidget):
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.value()
    return widget.text().strip() or None


# ------------------------------------------------------------------- previews
def draw_waves(plot, legend, d, per_class: int) -> None:
    """Signals (channels × length): the first channel of a few samples of each class, one
    band per class from the top."""
    plot.clear()
    plot.setAspectLocked(False)
    x, y = d.train.x, np.asarray(d.train.y)
    classes = sorted(set(y.ravel().tolist()))
    palette, entries = colours(max(classes) + 1), []
    for i, c in enumerate(classes):
        color = pg.mkColor(*palette[c])
        entries.append((color.name(), "line", str(d.class_names[c]) if c < d.num_classes
                        else str(c)))
        for k, row in enumerate(np.flatnonzero(y == c)[:per_class]):
            wave = np.asarray(x[row][0], dtype=np.float64) - 3.0 * i
            plot.addItem(pg.PlotDataItem(wave, pen=pg.mkPen(color, width=1.2)))
    legend.setText(legend_label_html(entries))  # above the plot, not on it
    plot.autoRange()


def draw_scatter(plot, legend, d, most: int) -> None:
    """One colour per class, the same as the Regions map's (``plots.boundary.colours``)."""
    plot.clear()
    plot.setAspectLocked(True)
    x, y = d.train.x[:most], d.train.y[:most]
    classes = sorted(set(np.asarray(y).ravel().tolist())) if d.task == "classification" else [None]
    palette = colours(max([c + 1 for c in classes if c is not None] + [1]))
    entries = []
    for c in classes:
        pts = x if c is None else x[y == c]
        rgb = palette[0 if c is None else c]
        name = str(d.class_names[c]) if c is not None and c < d.num_classes else "samples"
        plot.addItem(pg.ScatterPlotItem(pts[:, 0], pts[:, 1], size=5, pen=None,
                                        brush=pg.mkBrush(*rgb), name=name))
        entries.append(("#%02x%02x%02x" % tuple(int(v) for v in rgb), "square", name))
    legend.setText(legend_label_html(entries))
    plot.autoRange()


def text_preview(d, most: int = 8) -> str | None:
    """A few source → target lines of paired sequences; None for any other data."""
    from layerloom.engine.data import DataError
    from layerloom.engine.data.pairs import PairFormat

    try:
        fmt = PairFormat.of(d)
    except DataError:
        return None
    lines = [f"{fmt.decode(x[:fmt.source_len])}  →  {fmt.decode(y[y >= 0])}"
             for x, y in zip(d.train.x[:most], d.train.y[:most])]
    return "Training pairs (source → target):\n" + "\n".join(lines)
