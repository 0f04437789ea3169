"""A run trained elsewhere comes back: ``layerloom runs import DIR`` reads the ``metrics.json`` an
exported project's ``train.py`` writes (``engine.export.project_runner``) and records it in the
run store beside the local runs, with its graph and its weights.

The file came from another machine, so it is checked like any other input before anything is
recorded: its format and version, the types and sizes of every list, and that the graph it names
loads. Every problem is one line naming the file.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from layerloom.engine.runs import RunMeta, RunStore
from layerloom.engine.spec import LayerloomError

MAX_METRICS_BYTES = 256 * 1024 * 1024
MAX_ROWS = 10_000_000


class RunImportError(LayerloomError):
    """A run folder that cannot be imported."""


def _number(v, where: str, optional: bool = True) -> float | None:
    if v is None and optional:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RunImportError(f"{where}: expected a finite number, got {type(v).__name__}")
    return float(v)


def _rows(doc: dict, key: str, width: int, where: str) -> list[tuple]:
    rows = doc.get(key, [])
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise RunImportError(f"{where}: {key} must be a list of at most {MAX_ROWS:,} rows")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise RunImportError(f"{where}: {key}[{i}] must be a list of {width} values")
        index = row[0]
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise RunImportError(f"{where}: {key}[{i}][0] must be a step or epoch number")
        out.append((index, *(_number(v, f"{where}: {key}[{i}][{j + 1}]")
                             for j, v in enumerate(row[1:]))))
    return out


def find_metrics(folder: str | Path) -> Path:
    """``DIR/metrics.json``, or ``DIR/out/metrics.json`` for a project folder."""
    folder = Path(folder)
    for candidate in (folder / "metrics.json", folder / "out" / "metrics.json"):
        if candidate.is_file():
            return candidate
    raise RunImportError(f"{folder}: no metrics.json here or in out/ (run train.py first)")


def import_run(folder: str | Path, store: RunStore, name: str | None = None) -> int:
    """Record the run in ``store``; returns its id."""
    from layerloom.engine.serialize import load_project, project_to_dict

    path = find_metrics(folder)
    where = str(path)
    if path.stat().st_size > MAX_METRICS_BYTES:
        raise RunImportError(f"{where}: larger than {MAX_METRICS_BYTES >> 20} MB")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError) as err:
        raise RunImportError(f"{where}: not JSON ({type(err).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != "layerloom-run":
        raise RunImportError(f"{where}: not a Layerloom run (format 'layerloom-run')")
    if doc.get("version") != 1:
        raise RunImportError(f"{where}: run format version {doc.get('version')!r}, this "
                             f"Layerloom reads version 1")
    settings = doc.get("settings")
    if not isinstance(settings, dict):
        raise RunImportError(f"{where}: settings must be an object")
    steps = _rows(doc, "steps", 4, where)
    epochs = _rows(doc, "epochs", 5, where)
    graph_file = doc.get("graph")
    if not isinstance(graph_file, str):
        raise RunImportError(f"{where}: graph must name the graph file")
    graph_path = (path.parent / graph_file).resolve()
    project = load_project(graph_path)  # its own one-line errors
    status = doc.get("status")
    if status not in ("finished", "stopped", "running"):
        raise RunImportError(f"{where}: status {status!r} is not finished, stopped or running")
    world = doc.get("world_size", 1)
    meta = RunMeta(name=name or f"{graph_path.parent.name} (imported)",
                   graph_json=json.dumps(project_to_dict(project), sort_keys=True),
                   settings=settings, source="import", graph_path=str(graph_path),
                   data_spec=str(path.parent.parent / "data.npz"),
                   seed=settings.get("seed") if isinstance(settings.get("seed"), int) else None,
                   threads=world if isinstance(world, int) else None,
                   tags=f"{doc.get('device', '')} ×{world}".strip())
    run_id = store.begin_run(meta)
    store.write_batch(run_id, [(s[0], int(s[1]), s[2], None, s[3]) for s in steps],
                      [e for e in epochs], {})
    weights = doc.get("weights")
    if isinstance(weights, str) and (path.parent / weights).is_file():
        store.set_weights_path(run_id, path.parent / weights)
    store.end_run(run_id, {"running": "interrupted"}.get(status, status),
                  None if status == "finished" else f"the run {status} on its machine",
                  _number(doc.get("test_loss"), f"{where}: test_loss"),
                  _number(doc.get("test_accuracy"), f"{where}: test_accuracy"))
    started, ended = doc.get("started"), doc.get("ended")
    if all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (started, ended)):
        with store.db:  # when it ran, not when it was imported
            store.db.execute("UPDATE runs SET started = ?, ended = ? WHERE id = ?",
                             (float(started), float(ended), run_id))
    return run_id
