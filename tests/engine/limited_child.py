"""Run file readers in this process under an address-space limit (``ulimit -v``), for the tests.

    python -m tests.engine.limited_child LIMIT_MB cases FOLDER   # every hostile file class
    python -m tests.engine.limited_child LIMIT_MB fuzz FORMAT N  # N generated/mutated files

Prints one JSON object per line: ``{"name", "outcome": "ok"|"error"|"crash", "text"}``. "crash"
is anything but a one-line ``LayerloomError`` (a traceback's last line, a MemoryError): what the
tests fail on. The limit is set before numpy is imported, so nothing slips under it.
"""
from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def limit(megabytes: int) -> None:
    os.environ["OPENBLAS_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "1"
    size = megabytes << 20
    resource.setrlimit(resource.RLIMIT_AS, (size, size))


def outcome(name: str, call) -> dict:
    from layerloom.engine.spec import LayerloomError

    try:
        call()
    except LayerloomError as err:
        text = str(err)
        ok = bool(text) and "\n" not in text
        return {"name": name, "outcome": "error" if ok else "crash", "text": text}
    except BaseException as err:  # noqa: BLE001 (what the test is looking for)
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        frame = traceback.extract_tb(err.__traceback__)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        return {"name": name, "outcome": "crash", "text": f"{last} (at {where})"}
    return {"name": name, "outcome": "ok", "text": ""}


def run_cases(folder: str) -> None:
    from tests.engine.hostile_files import CASES, open_file

    for case in CASES:
        sub = Path(folder) / case.name.replace(" ", "_").replace("/", "_")
        sub.mkdir(parents=True, exist_ok=True)
        target = case.build(sub)
        print(json.dumps(outcome(case.name, lambda: open_file(case.kind, target))), flush=True)


def main(argv: list[str]) -> int:
    limit(int(argv[0]))
    if argv[1] == "cases":
        run_cases(argv[2])
        return 0
    from tests.engine.fuzz_files import run_fuzz

    return run_fuzz(argv[2], int(argv[3]), outcome)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
