"""``Network``: the small, stable public facade over plan + executor that tests and tools use.

>>> net = Network(load_project("samples/lenet5.json").graph, seed=0)
>>> out = net.forward({"image": x, "label": y}, training=True)
>>> net.backward(); net.grads["conv1.weight"]

The plan fuses known chains of nodes (``engine.plan``); ``Network(..., fuse=False)`` runs every
node on its own (the reference), and ``forward(..., keep=ids)`` keeps the chosen nodes out of any
fused chain. Either way ``forward`` can give every node's output: the inside of a fused chain is
recomputed on first access.
"""
from __future__ import annotations

from os import PathLike

import numpy as np

from layerloom.engine.executor import Executor
from layerloom.engine.graph import Graph
from layerloom.engine.kernels import aligned
from layerloom.engine.plan import Plan, PlanError, compile_plan
from layerloom.engine.shapes import DEFAULT_BATCH
from layerloom.engine.spec import LayerloomError, WeightsError


class Activations(dict):
    """``forward``'s result: a dict of node outputs where the nodes inside a fused chain are
    computed on first access, from the chain's input and the parameters at that moment (read
    them before the next optimiser step)."""

    # Set by ``Network.forward`` after construction: (node_id -> its fused step, the executor, the
    # parameters and the run's values that the step's members are recomputed from). A plain dict
    # built first and tagged once costs half an overriding __init__ (µs count at batch 1).
    _lazy: tuple = ({}, None, None, None)

    def __missing__(self, key):
        chains, executor, params, run = self._lazy
        step = chains.get(key)
        if step is None:
            raise KeyError(key)
        for node_id, value in executor.member_values(step, params, run).items():
            self.setdefault(node_id, value)
        return dict.__getitem__(self, key)

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key) or key in self._lazy[0]

    def get(self, key, default=None):
        return self[key] if key in self else default


class Network:
    """A compiled graph with its parameters; ``params`` and ``grads`` are keyed "<node>.<param>"."""

    def __init__(self, graph: Graph, seed: int = 0, dtype=np.float32, params: dict | None = None,
                 fuse: bool = True, batch_size: int = DEFAULT_BATCH):
        """``batch_size``: what the memory budget is checked for (the training batch); a graph
        over the budget raises PlanError naming the node before any parameter is allocated."""
        self.graph = graph
        self.dtype = np.dtype(dtype)
        self.plan: Plan = compile_plan(graph, batch_size=batch_size, itemsize=self.dtype.itemsize)
        self.executor = Executor(self.plan, self.dtype, fuse)
        self.rng = np.random.default_rng(seed)
        self.params: dict[str, np.ndarray] = self.plan.init_params(np.random.default_rng(seed), self.dtype)
        self.grads: dict[str, np.ndarray] = {}
        self._layouts: dict = {}
        if params is not None:
            self.load_params(params)

    def __repr__(self) -> str:
        n = sum(v.size for v in self.params.values())
        return f"Network({len(self.plan.steps)} steps, {n:,} parameters, {self.dtype})"

    @property
    def trainable_keys(self) -> tuple:
        return self.plan.trainable_keys

    def forward(self, inputs: dict, training: bool = False, check: bool = True,
                keep=None) -> dict:
        """Run the graph on ``{source_node_id: batch}``.

        Returns each node's output under its id; a node with several outputs also gives each one
        as ``"<node_id>.<port>"`` (its first output stays under the bare id). A block instance
        gives its outputs the same way under its path ("enc", "enc.1.sub"), the layers inside it
        under theirs ("enc.1.attn"). ``keep``: node ids computed as separate steps in this pass
        (e.g. every node, for a view of activations).
        """
        ex = self.executor
        values = ex.forward(self.params, inputs, training, self.rng, check, keep)
        names, chains = self._layout(ex._ran)
        if not chains:
            return {name: values[ref] for name, ref in names}
        out = Activations({name: values[ref] for name, ref in names})
        out._lazy = (chains, ex, self.params, values)
        return out

    def _layout(self, schedule: tuple) -> tuple:
        """((name, port ref) per returned output, {node inside a fused chain: its step}) of a
        schedule, worked out once."""
        cached = self._layouts.get(id(schedule))
        if cached is None or cached[0] is not schedule:
            names = []
            for s in schedule:
                names.append((s.node_id, (s.node_id, s.outputs[0])))
                if len(s.outputs) > 1:
                    names += [(f"{s.node_id}.{port}", (s.node_id, port)) for port in s.outputs]
            names += self._block_names()
            chains = {m.node_id: s for s in schedule for m in s.members[:-1]}
            cached = self._layouts[id(schedule)] = (schedule, names, chains)
        return cached[1], cached[2]

    def _block_names(self) -> list:
        """(name, port ref) of every block instance's outputs, named as a node's are."""
        ports: dict[str, list] = {}
        for (path, port), ref in self.plan.aliases.items():
            ports.setdefault(path, []).append((port, ref))
        names = []
        for path, refs in ports.items():
            names.append((path, refs[0][1]))
            if len(refs) > 1:
                names += [(f"{path}.{port}", ref) for port, ref in refs]
        return names

    def loss(self) -> float:
        """Sum of the loss nodes' outputs from the last forward."""
        if not self.plan.losses:
            raise PlanError(["the graph has no loss node: add MSELoss or CrossEntropyLoss"])
        return float(sum(self.executor.values[(n, self.plan.step(n).outputs[0])]
                         for n in self.plan.losses))

    def backward(self, check: bool = True) -> dict:
        """Gradients of the summed loss for every trainable parameter (frozen nodes get none)."""
        if not self.plan.losses:
            raise PlanError(["the graph has no loss node: add MSELoss or CrossEntropyLoss"])
        if not self.executor.values:
            raise LayerloomError("call forward() before backward()")
        self.grads = self.executor.backward(self.params, check)
        return self.grads

    def load_params(self, params: dict) -> None:
        """Replace parameters by a state dict; refuses a missing key or a wrong shape."""
        for key, value in self.params.items():
            if key not in params:
                raise WeightsError(f"the weights have no {key!r}")
            got = np.shape(params[key])
            if got != value.shape:
                raise WeightsError(f"{key}: expected shape {value.shape}, the weights have {got}")
        extra = sorted(set(params) - set(self.params))
        if extra:
            raise WeightsError(f"the weights have {extra[0]!r}, which this graph does not use")
        self.params = {k: aligned(params[k], self.dtype) for k in self.params}

    def load_matching(self, params: dict) -> list[str]:
        """Take from a state dict every parameter this graph has under the same key and shape
        (fine-tuning: a pretrained encoder's weights into a graph with a new head); the others
        keep their values. Returns the keys taken; WeightsError when none fits or a key this
        graph has comes with another shape (the wrong model, not a different head)."""
        taken = []
        for key, value in self.params.items():
            if key not in params:
                continue
            got = np.shape(params[key])
            if got != value.shape:
                raise WeightsError(f"{key}: expected shape {value.shape}, the weights have {got}")
            self.params[key] = aligned(params[key], self.dtype)
            taken.append(key)
        if not taken:
            raise WeightsError("none of the weights has a key of this graph: node ids must match")
        return taken

    def save_weights(self, path: str | PathLike) -> None:
        from layerloom.engine.export.weights import save_weights

        save_weights(self.params, path)

    def load_weights(self, path: str | PathLike) -> None:
        from layerloom.engine.export.weights import load_weights

        self.load_params(load_weights(path))
