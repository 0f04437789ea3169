"""Where a graph file's data lives, and whether Layerloom may read it without asking.

A graph file can come from anywhere, so the data path in its ``data`` section is not trusted: a
relative path is resolved against the graph file's folder (not the current directory), and a path
that resolves outside that folder (absolute, ``..``, a device such as ``/dev/zero``, a symlink
pointing out) is refused with ``OutsideDataError`` unless the person agreed: the window asks, the
CLI wants ``--data`` or ``--allow-outside-data``. Paths a person typed or chose themselves (the
CLI's ``--data``, the Data panel) are theirs and are not checked here; the readers still read
regular files only. Synthetic and bundled data have no path and are always fine.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from layerloom.engine.data import DataError, parse_spec


CLI_HOW = "pass --data SPEC, or --allow-outside-data to read it"


class OutsideDataError(DataError):
    """A graph file names data outside its own folder; ``path`` is where it points."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class DataPlace:
    """A data spec placed relative to its graph file."""

    spec: str  # the spec the reader gets: its path absolute, resolved against the graph's folder
    path: Path | None  # the resolved path (symlinks followed); None for bundled and synthetic data
    outside: str  # why it is not read without asking ("" when it may be)


def no_file(kind: str, arg: str | None) -> bool:
    """The spec names no file: bundled, synthetic, a generated sequence or pairs task."""
    from layerloom.engine.data.pair_tasks import TASKS as PAIR_TASKS

    return arg is None or kind == "seq" or (kind == "pairs" and arg in PAIR_TASKS)


def _with_path(kind: str, path: str, options: dict) -> str:
    return f"{kind}:{path}" + (f"?{urlencode(options)}" if options else "")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def place(spec: str, graph_path: str | os.PathLike | None) -> DataPlace:
    """Resolve ``spec``'s path against ``graph_path``'s folder (the current directory when the
    graph has no file yet) and say whether it lies outside that folder."""
    kind, arg, options = parse_spec(spec)
    if no_file(kind, arg):  # no file: bundled, synthetic, a generated sequence task
        return DataPlace(spec, None, "")
    folder = Path(graph_path).resolve().parent if graph_path is not None else Path.cwd()
    raw = Path(arg)
    resolved = (raw if raw.is_absolute() else folder / raw).resolve()
    placed = DataPlace(_with_path(kind, str(resolved), options), resolved, "")
    if graph_path is None:
        return placed
    if not _inside(resolved, folder):
        return DataPlace(placed.spec, resolved, "outside the graph file's folder")
    link = _link_out(resolved, folder) if resolved.is_dir() else None
    if link is not None:  # a folder of IDX files or images: none of them may link out either
        return DataPlace(placed.spec, link.resolve(),
                         f"{link.relative_to(resolved)} in {raw} links outside the graph file's "
                         f"folder")
    return placed


def _link_out(root: Path, folder: Path) -> Path | None:
    """The first symbolic link under ``root`` (at any depth) whose target lies outside
    ``folder``; scandir's cached types keep this to one pass over the tree."""
    pending = [root]
    while pending:
        try:
            with os.scandir(pending.pop()) as entries:
                for entry in entries:
                    if entry.is_symlink():
                        if not _inside(Path(entry.path).resolve(), folder):
                            return Path(entry.path)
                    elif entry.is_dir(follow_symlinks=False):
                        pending.append(Path(entry.path))
        except OSError:
            continue  # unreadable: the reader says so
    return None


def graph_data_spec(spec: str, graph_path: str | os.PathLike | None,
                    allowed: frozenset | set = frozenset(), allow_all: bool = False,
                    how: str = CLI_HOW) -> str:
    """The spec to read for a graph file's data section; ``OutsideDataError`` when it points
    outside the graph's folder and neither ``allow_all`` nor ``allowed`` (resolved paths the
    person agreed to) lets it. ``how`` ends the message: what the person can do."""
    placed = place(spec, graph_path)
    if placed.outside and not allow_all and placed.path not in allowed:
        name = Path(graph_path).name if graph_path is not None else "the graph"
        raise OutsideDataError(f"{name} wants to read data from {placed.path}, "
                               f"{placed.outside}: {how}", placed.path)
    return placed.spec


def source_spec(file_spec: str, given: str | None, graph_path: str | os.PathLike | None,
                allowed: frozenset | set = frozenset(), allow_all: bool = False,
                how: str = CLI_HOW) -> tuple[str, bool]:
    """(the spec to read, whether it is the data the graph file names). ``given`` (the CLI's
    ``--data``) is the person's own choice and wins unchecked; else the file's spec is placed
    and checked by ``graph_data_spec``."""
    if not given:
        return graph_data_spec(file_spec, graph_path, allowed, allow_all, how), True
    try:
        same = given == file_spec or given == place(file_spec, graph_path).spec
    except DataError:
        same = False
    return given, same


def portable_spec(spec: str, graph_path: str | os.PathLike | None) -> str:
    """``spec`` as a graph file at ``graph_path`` should store it: relative to the file's folder
    when the data is inside it (the folder can move or be shared whole), else absolute."""
    kind, arg, options = parse_spec(spec)
    if no_file(kind, arg) or graph_path is None:
        return spec
    folder = Path(graph_path).resolve().parent
    absolute = Path(arg).resolve()  # as place() sees it, so what is stored relative is inside
    try:
        return _with_path(kind, absolute.relative_to(folder).as_posix(), options)
    except ValueError:
        return _with_path(kind, str(absolute), options)


def rebase_spec(spec: str, old_graph: str | os.PathLike | None,
                new_graph: str | os.PathLike) -> str:
    """The spec naming the same data once the graph file moves from ``old_graph`` (None: not
    saved yet, relative to the current directory) to ``new_graph`` (Save As)."""
    try:
        kind, arg, _options = parse_spec(spec)
    except DataError:
        return spec  # not ours to repair: loading it says what is wrong
    if no_file(kind, arg):
        return spec
    return portable_spec(place(spec, old_graph).spec, new_graph)


def rebase_data(section: dict, old_graph: str | os.PathLike | None,
                new_graph: str | os.PathLike) -> bool:
    """Rewrite a data section's spec in place for a graph saved from ``old_graph`` to
    ``new_graph``; True when it changed (another folder, and a path to carry over)."""
    spec = section.get("spec")
    old_folder = Path(old_graph).resolve().parent if old_graph is not None else Path.cwd()
    if not isinstance(spec, str) or old_folder == Path(new_graph).resolve().parent:
        return False
    moved = rebase_spec(spec, old_graph, new_graph)
    if moved == spec:
        return False
    section["spec"] = moved
    return True
