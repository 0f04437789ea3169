"""The run store: every training run, from the window or the CLI, recorded in one SQLite database.

Comparing runs is how a person learns what a setting does, so nothing about a run is thrown away:
its graph (full JSON and a hash), data, settings, machine, per-step loss and learning rate,
per-epoch metrics, test metrics, gradient-norm summaries, how it ended and where its weights went.
Writes are one transaction per batch of steps in WAL mode: a crash keeps everything up to the last
batch, and the next open marks the run "interrupted". The schema is versioned (``user_version``)
and migrated forward in order, so an older database opens unchanged.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from layerloom.engine.spec import LayerloomError

STATUSES = ("running", "finished", "stopped", "diverged", "failed", "interrupted")

# Each entry moves the schema from version i to i + 1. Never edit a shipped entry: add one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, stop_reason TEXT,
        source TEXT NOT NULL, started REAL NOT NULL, ended REAL, graph_path TEXT,
        graph_json TEXT NOT NULL, graph_hash TEXT NOT NULL, data_spec TEXT,
        settings_json TEXT NOT NULL, seed INTEGER, machine TEXT, threads INTEGER, pid INTEGER,
        weights_path TEXT, steps INTEGER NOT NULL DEFAULT 0, test_loss REAL, test_accuracy REAL,
        deleted INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE steps (
        run_id INTEGER NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, epoch INTEGER,
        loss REAL, accuracy REAL, lr REAL, PRIMARY KEY (run_id, step));
    CREATE TABLE epochs (
        run_id INTEGER NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, train_loss REAL,
        train_accuracy REAL, val_loss REAL, val_accuracy REAL, PRIMARY KEY (run_id, epoch));
    CREATE TABLE grad_norms (
        run_id INTEGER NOT NULL REFERENCES runs(id), key TEXT NOT NULL, count INTEGER NOT NULL,
        mean REAL, max REAL, last REAL, PRIMARY KEY (run_id, key));
    """,
    """
    ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
    ALTER TABLE runs ADD COLUMN sweep_id TEXT;
    CREATE INDEX runs_sweep ON runs(sweep_id);
    """,
    """
    CREATE TABLE sweeps (
        id TEXT PRIMARY KEY, created REAL NOT NULL, graph_path TEXT NOT NULL,
        spec_json TEXT NOT NULL);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class RunStoreError(LayerloomError):
    """The run database cannot be opened or is from a newer Layerloom."""


def default_db_path() -> Path:
    """``LAYERLOOM_RUNS_DB``, else ``runs.sqlite`` in the user's data folder (XDG on Linux)."""
    if os.environ.get("LAYERLOOM_RUNS_DB"):
        return Path(os.environ["LAYERLOOM_RUNS_DB"])
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "layerloom" / "runs.sqlite"


def graph_hash(graph_json: str) -> str:
    return hashlib.sha256(graph_json.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Run:
    """One row of the runs table, as the CLI and the Runs panel show it."""

    id: int
    name: str
    status: str
    stop_reason: str | None
    source: str
    started: float
    ended: float | None
    graph_path: str | None
    graph_hash: str
    data_spec: str | None
    settings: dict
    seed: int | None
    machine: str | None
    threads: int | None
    weights_path: str | None
    steps: int
    test_loss: float | None
    test_accuracy: float | None
    tags: str = ""
    note: str = ""
    sweep_id: str | None = None
    best_val_accuracy: float | None = None
    best_val_loss: float | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@dataclass
class RunMeta:
    """What a recorder knows about a run before its first step."""

    name: str
    graph_json: str
    settings: dict
    source: str = "cli"  # "cli", "window", "sweep"
    graph_path: str | None = None
    data_spec: str | None = None
    seed: int | None = None
    threads: int | None = None
    sweep_id: str | None = None
    tags: str = ""


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """One open database. Connections are per thread (sqlite3's rule): open a store where it
    is used."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=10.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as err:
            raise RunStoreError(f"{self.path}: not a usable run database ({err})") from None
        except OSError as err:
            raise RunStoreError(f"{self.path}: cannot open the run database "
                                f"({err.strerror or err})") from None
        self.mark_interrupted()

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ schema
    @property
    def version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.version
        if version > SCHEMA_VERSION:
            raise RunStoreError(f"{self.path}: written by a newer Layerloom (schema {version}, "
                                f"this one knows {SCHEMA_VERSION})")
        for target in range(version, SCHEMA_VERSION):  # each step in one transaction
            self.db.executescript("BEGIN;" + MIGRATIONS[target]
                                  + f";PRAGMA user_version = {target + 1};COMMIT;")

    def mark_interrupted(self) -> int:
        """Runs left "running" by a process of this machine that is gone: a crash or a kill."""
        here = platform.node()
        rows = self.db.execute("SELECT id, pid FROM runs WHERE status = 'running' AND machine = ?",
                               (here,)).fetchall()
        gone = [rid for rid, pid in rows if not _pid_alive(pid)]
        with self.db:
            self.db.executemany("UPDATE runs SET status = 'interrupted', stop_reason = "
                                "'the process ended without closing the run' WHERE id = ?",
                                [(rid,) for rid in gone])
        return len(gone)

    # ------------------------------------------------------------------ writing
    def begin_run(self, meta: RunMeta) -> int:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (name, status, source, started, graph_path, graph_json, "
                "graph_hash, data_spec, settings_json, seed, machine, threads, pid, sweep_id, tags)"
                " VALUES (?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (meta.name, meta.source, time.time(), meta.graph_path, meta.graph_json,
                 graph_hash(meta.graph_json), meta.data_spec, json.dumps(meta.settings),
                 meta.seed, platform.node(), meta.threads, os.getpid(), meta.sweep_id, meta.tags))
        return int(cur.lastrowid)

    def write_batch(self, run_id: int, steps: Sequence[tuple], epochs: Sequence[tuple],
                    norms: dict[str, tuple]) -> None:
        """One transaction: steps (step, epoch, loss, accuracy, lr), epochs (epoch, train_loss,
        train_accuracy, val_loss, val_accuracy), gradient-norm summaries key -> (count, mean,
        max, last)."""
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?)",
                                [(run_id, *s) for s in steps])
            self.db.executemany("INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?)",
                                [(run_id, *e) for e in epochs])
            self.db.executemany("INSERT OR REPLACE INTO grad_norms VALUES (?, ?, ?, ?, ?, ?)",
                                [(run_id, k, *v) for k, v in norms.items()])
            if steps:
                self.db.execute("UPDATE runs SET steps = ? WHERE id = ?", (steps[-1][0] + 1, run_id))

    def end_run(self, run_id: int, status: str, reason: str | None = None,
                test_loss: float | None = None, test_accuracy: float | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(status)
        with self.db:
            self.db.execute("UPDATE runs SET status = ?, stop_reason = ?, ended = ?, "
                            "test_loss = ?, test_accuracy = ? WHERE id = ?",
                            (status, reason, time.time(), test_loss, test_accuracy, run_id))

    def set_weights_path(self, run_id: int, path: str | os.PathLike) -> None:
        with self.db:
            self.db.execute("UPDATE runs SET weights_path = ? WHERE id = ?",
                            (str(Path(path).resolve()), run_id))

    def keep_weights(self, run_id: int, params: dict) -> Path:
        """A run's final weights beside the database (``weights/run-<id>.npz``), so Restore can
        reopen any run as it ended; a run whose weights were saved elsewhere keeps that path."""
        from layerloom.engine.export.weights import save_weights

        target = self.path.parent / "weights" / f"run-{run_id}.npz"
        target.parent.mkdir(parents=True, exist_ok=True)
        save_weights(params, target)
        with self.db:
            self.db.execute("UPDATE runs SET weights_path = COALESCE(weights_path, ?) WHERE id = ?",
                            (str(target), run_id))
        return target

    def update(self, run_id: int, **fields_: str) -> None:
        """Rename, tag or annotate a run (name, tags, note)."""
        bad = set(fields_) - {"name", "tags", "note"}
        if bad:
            raise ValueError(f"not editable: {sorted(bad)}")
        with self.db:
            for key, value in fields_.items():
                self.db.execute(f"UPDATE runs SET {key} = ? WHERE id = ?", (str(value), run_id))

    def set_deleted(self, run_id: int, deleted: bool = True) -> None:
        """Deleting hides a run (undo shows it again); ``purge`` removes hidden runs for good."""
        with self.db:
            self.db.execute("UPDATE runs SET deleted = ? WHERE id = ?", (int(deleted), run_id))

    def purge(self) -> int:
        with self.db:
            ids = [r for (r,) in self.db.execute("SELECT id FROM runs WHERE deleted = 1")]
            for run_id in ids:  # weights the store kept itself go with the run
                (self.path.parent / "weights" / f"run-{run_id}.npz").unlink(missing_ok=True)
            for table in ("steps", "epochs", "grad_norms"):
                self.db.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(i,) for i in ids])
            self.db.executemany("DELETE FROM runs WHERE id = ?", [(i,) for i in ids])
        return len(ids)

    def create_sweep(self, sweep_id: str, graph_path: str, spec: dict) -> None:
        with self.db:
            self.db.execute("INSERT INTO sweeps VALUES (?, ?, ?, ?)",
                            (sweep_id, time.time(), graph_path, json.dumps(spec)))

    def sweep(self, sweep_id: str) -> tuple[str, dict]:
        """(graph path, spec) of a recorded sweep, to resume it."""
        row = self.db.execute("SELECT graph_path, spec_json FROM sweeps WHERE id = ?",
                              (sweep_id,)).fetchone()
        if row is None:
            raise LayerloomError(f"no sweep {sweep_id!r} in {self.path}")
        return row[0], json.loads(row[1])

    # ------------------------------------------------------------------ reading
    _COLUMNS = ("id, name, status, stop_reason, source, started, ended, graph_path, graph_hash, "
                "data_spec, settings_json, seed, machine, threads, weights_path, steps, "
                "test_loss, test_accuracy, tags, note, sweep_id")

    def _run(self, row: tuple) -> Run:
        best = self.db.execute("SELECT MAX(val_accuracy), MIN(val_loss) FROM epochs "
                               "WHERE run_id = ?", (row[0],)).fetchone()
        values = list(row)
        values[10] = json.loads(values[10])
        return Run(*values, best_val_accuracy=best[0], best_val_loss=best[1])

    def runs(self, sweep_id: str | None = None, include_deleted: bool = False) -> list[Run]:
        where, args = ["1=1"], []
        if not include_deleted:
            where.append("deleted = 0")
        if sweep_id is not None:
            where.append("sweep_id = ?")
            args.append(sweep_id)
        rows = self.db.execute(f"SELECT {self._COLUMNS} FROM runs WHERE {' AND '.join(where)} "
                               "ORDER BY id", args).fetchall()
        return [self._run(r) for r in rows]

    def run(self, run_id: int) -> Run:
        row = self.db.execute(f"SELECT {self._COLUMNS} FROM runs WHERE id = ?",
                              (run_id,)).fetchone()
        if row is None:
            raise LayerloomError(f"no run {run_id} in {self.path}")
        return self._run(row)

    def graph_json(self, run_id: int) -> str:
        self.run(run_id)
        return self.db.execute("SELECT graph_json FROM runs WHERE id = ?", (run_id,)).fetchone()[0]

    def steps(self, run_id: int) -> list[tuple]:
        """(step, epoch, loss, accuracy, lr) in step order."""
        return self.db.execute("SELECT step, epoch, loss, accuracy, lr FROM steps WHERE run_id = ?"
                               " ORDER BY step", (run_id,)).fetchall()

    def epochs(self, run_id: int) -> list[tuple]:
        """(epoch, train_loss, train_accuracy, val_loss, val_accuracy) in epoch order."""
        return self.db.execute("SELECT epoch, train_loss, train_accuracy, val_loss, val_accuracy "
                               "FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)).fetchall()

    def grad_norms(self, run_id: int) -> dict[str, tuple]:
        rows = self.db.execute("SELECT key, count, mean, max, last FROM grad_norms "
                               "WHERE run_id = ? ORDER BY key", (run_id,)).fetchall()
        return {r[0]: tuple(r[1:]) for r in rows}
