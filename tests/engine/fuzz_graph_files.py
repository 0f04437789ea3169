"""Property-based fuzzing of graph files, run as a child process under an address-space limit.

``python -m tests.engine.fuzz_graph_files LIMIT_MB EXAMPLES [random]`` generates graph files three ways —
valid files mutated at random JSON paths, raw text mutations (truncation, deep nesting, huge
literals), and graphs built from random layers with random attribute values — and asserts that
each one ends in success (loaded, shapes inferred, the network built within a small budget, the
CLI's check run) or in one ``LayerloomError`` line. Anything else (a traceback, MemoryError under
the limit, a hang the parent's timeout catches) fails. Not collected by pytest: its driver is
``test_fuzz_graph_files.py``.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def limit_memory(megabytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (megabytes * 2**20, megabytes * 2**20))


def main(argv: list[str]) -> int:
    limit_memory(int(argv[0]))
    os.environ["LAYERLOOM_MEMORY_BUDGET"] = "256M"  # what passes the budget really allocates
    from hypothesis import HealthCheck, given, settings, strategies as st

    from layerloom.engine.block_types import STRUCTURAL
    from layerloom.engine.cli import main as cli_main
    from layerloom.engine.network import Network
    from layerloom.engine.registry import LAYERS
    from layerloom.engine.serialize import load_project
    from layerloom.engine.shapes import batch_size_of, infer_shapes
    from layerloom.engine.spec import LayerloomError
    from tests.engine.block_cases import model_with_blocks

    examples = int(argv[1])
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    seeds = [json.loads(p.read_text()) for p in sorted((ROOT / "samples").glob("*.json"))]
    seeds.append(model_with_blocks())
    types = sorted({*LAYERS, *STRUCTURAL})

    def outcome(text: str) -> None:
        """Success or one LayerloomError line, for the loader, the network and the CLI."""
        path = folder / "case.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            project = load_project(path)
            report = infer_shapes(project.graph, batch_size_of(project.training))
            if report.ok and project.graph.nodes:
                Network(project.graph, batch_size=batch_size_of(project.training))
        except LayerloomError as err:
            assert str(err) and "\n" not in str(err), repr(str(err))
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = cli_main(["check", str(path)])
        lines = err.getvalue().splitlines()
        assert code in (0, 1) and all(ln.startswith(("error: ", "note: ")) for ln in lines), lines

    nasty = st.one_of(
        st.integers(min_value=-2**70, max_value=2**70), st.sampled_from([0, -1, 2**31, 2**63, 10**30]),
        st.floats(allow_nan=False), st.booleans(), st.none(), st.text(max_size=30),
        st.sampled_from(["y", "x", "Dense", "Block", "BlockInput", "res", "fc1", "a" * 200]),
        st.lists(st.integers(-3, 10**7), max_size=5), st.dictionaries(st.text(max_size=5),
                                                                      st.integers(), max_size=3))

    def paths(value, prefix=()):
        yield prefix
        items = value.items() if isinstance(value, dict) else enumerate(value) \
            if isinstance(value, list) else ()
        for k, v in items:
            yield from paths(v, prefix + (k,))

    @st.composite
    def mutated(draw):
        data = json.loads(json.dumps(draw(st.sampled_from(seeds))))
        for _ in range(draw(st.integers(1, 3))):
            where = draw(st.sampled_from(list(paths(data))[1:]))
            parent = data
            for k in where[:-1]:
                parent = parent[k]
            action = draw(st.sampled_from(["replace", "delete", "copy"]))
            if action == "replace":
                parent[where[-1]] = draw(nasty)
            elif action == "delete":
                del parent[where[-1]]
            elif isinstance(parent, list):
                parent.append(json.loads(json.dumps(parent[where[-1]])))
        return json.dumps(data)

    @st.composite
    def text_mutated(draw):
        text = json.dumps(draw(st.sampled_from(seeds)))
        at = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(["", "[" * 5000, "9" * 5000, '"id": "x", "id": "y", ', "NaN",
                                      "1e999", "\\ud800", "{", "]", "-"]))
        return text[:at] + piece + text[at + draw(st.integers(0, 20)):]

    def value_for(attr):
        """A plausible value for a descriptor (its default, one near its range) or a nasty one."""
        low = getattr(attr, "min", None)
        low = 1 if low is None else int(low)
        near = {"int": st.integers(low - 1, low + 40), "float": st.floats(-1, 2),
                "ints": st.lists(st.integers(low - 1, low + 40), min_size=attr.__dict__.get(
                    "length") or 1, max_size=attr.__dict__.get("length") or 4),
                "choice": st.sampled_from(list(getattr(attr, "choices", ())) or [None]),
                "bool": st.booleans(), "name": st.sampled_from(["res", "nope"])}
        return st.one_of(st.just(attr.default), near.get(attr.kind, nasty), nasty)

    @st.composite
    def generated(draw):
        n = draw(st.integers(1, 8))
        shape = draw(st.lists(st.integers(1, 40), min_size=1, max_size=4))
        nodes = [{"id": "n0", "type": "Input", "attrs": {"shape": shape}}]
        for i in range(1, n):
            cls = {**LAYERS, **STRUCTURAL}[draw(st.sampled_from(types))]
            names = draw(st.lists(st.sampled_from(sorted(cls.attrs)), unique=True)) if cls.attrs else []
            nodes.append({"id": f"n{i}", "type": cls.type_id,
                          "attrs": {k: draw(value_for(cls.attrs[k])) for k in names}})
        ports_out, ports_in = ["y", "seq", "last", "out"], ["x", "a", "b", "input", "target"]
        edges = [{"from": [f"n{draw(st.integers(0, n - 1))}", draw(st.sampled_from(ports_out))],
                  "to": [f"n{draw(st.integers(0, n - 1))}", draw(st.sampled_from(ports_in))]}
                 for _ in range(draw(st.integers(0, 2 * n)))]
        data = {"format": "layerloom-graph", "version": 2, "nodes": nodes, "edges": edges}
        if draw(st.booleans()):
            data["blocks"] = model_with_blocks()["blocks"]
        return json.dumps(data)

    # CI runs the same cases every time; "random" (a third argument) explores new ones.
    run = settings(max_examples=examples, deadline=None, database=None,
                   derandomize=argv[2:] != ["random"],
                   suppress_health_check=list(HealthCheck))
    for strategy in (mutated(), text_mutated(), generated()):
        run(given(strategy)(outcome))()
    print("fuzz: all cases ended in success or one line", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
