"""Where the window reads and writes graph files: the bundled samples are templates, saves go to
the person's documents folder, and temporaries a killed write left behind are swept at start.

A sample opened from the installed package (File > New from Sample, Open, the start-up default)
is never written back: Save acts as Save As, starting in the documents folder, and a save into
the samples folder is refused. Otherwise the next start would open the person's experiment as
"the LeNet-5 sample" (and an installed package may not even be writable).
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QStandardPaths

from layerloom.engine import paths
from layerloom.engine.serialize import sweep_temporaries


def is_template(path: str | Path | None) -> bool:
    """True for a file in the installed samples folder."""
    if path is None:
        return False
    try:
        return Path(path).resolve().parent == paths.SAMPLES.resolve()
    except OSError:
        return False


def documents_dir() -> Path:
    """The person's documents folder (the home folder when the desktop names none)."""
    found = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
    folder = Path(found) if found else Path.home()
    return folder if folder.is_dir() else Path.home()


def save_as_start(path: Path | None) -> Path:
    """Where Save As starts: beside the file, except for a template or an untitled graph, which
    start in the documents folder under the same name."""
    if path is None:
        return documents_dir() / "untitled.json"
    return documents_dir() / path.name if is_template(path) else path


def sweep_on_start(folders) -> list[Path]:
    """Remove stale temporaries (``.NAME.xxxxxxxx.tmp``) from the folders a previous session wrote
    in: those of the recent files, the documents folder and the recovery folder."""
    gone: list[Path] = []
    for folder in dict.fromkeys(Path(f) for f in folders):
        gone += sweep_temporaries(folder)
    return gone
