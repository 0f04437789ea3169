"""The vocabulary every layer file speaks: the Layer base, typed attribute descriptors, Ctx, errors.

A layer type is declared once (ports, attributes, category) and implemented as pure static
functions; the palette, inspector, loader, shape inference, executor and tests all read it.
Shapes always include the batch dimension first, written ``None`` when it is not known.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from layerloom.engine.short_repr import short

Shape = tuple  # (None, C, H, W): batch first, None when unknown


class LayerloomError(Exception):
    """Base of every error meant to be shown to a person as one line."""


class ShapeError(LayerloomError):
    """A layer cannot accept the shapes it is given; the message names the fix when there is one."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix  # a layer type to insert before the node ("Flatten"), when mechanical


class AttrError(LayerloomError):
    """An attribute value is out of range, of the wrong type, or not one of the choices."""


# Every integer attribute lives in int32's range unless its descriptor says less: sizes beyond it
# never fit in memory, and numpy's int64 shape arithmetic cannot overflow on products of two.
INT_LIMIT = 2**31 - 1
MAX_ENTRIES = 16  # an IntTuple (a shape, an axis list) has at most this many entries


class WeightsError(LayerloomError):
    """A weights dict or file that does not fit the graph (missing key, wrong shape). Defined
    here, below both the network that checks a state dict and the files that carry one."""


def fmt_shape(shape: Sequence) -> str:
    """``(None, 6, 28, 28)`` -> ``6×28×28`` (the batch is implied); scalars print as ``scalar``."""
    dims = [d for d in shape[1:]] if shape and shape[0] is None else list(shape)
    return "×".join(str(d) for d in dims) if dims else "scalar"


# ----------------------------------------------------------------------------------- attributes
@dataclass(frozen=True)
class Attr:
    """A typed attribute: default, limits and a doc line; ``validate`` coerces or raises AttrError."""

    default: Any
    doc: str = ""
    kind: ClassVar[str] = "any"

    def validate(self, name: str, value: Any) -> Any:
        return value


@dataclass(frozen=True)
class Int(Attr):
    min: int | None = None
    max: int | None = None
    kind: ClassVar[str] = "int"

    def validate(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise AttrError(f"{name}: must be an integer, got {short(value)}")
        value = int(value)
        low = -INT_LIMIT if self.min is None else self.min
        high = INT_LIMIT if self.max is None else self.max
        if value < low:
            raise AttrError(f"{name}: must be >= {low}, got {short(value)}")
        if value > high:
            raise AttrError(f"{name}: must be <= {high}, got {short(value)}")
        return value


@dataclass(frozen=True)
class Float(Attr):
    min: float | None = None
    max: float | None = None
    kind: ClassVar[str] = "float"

    def validate(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise AttrError(f"{name}: must be a number, got {short(value)}")
        try:
            value = float(value)
        except OverflowError:  # an int beyond float's range
            raise AttrError(f"{name}: must be finite, got {short(value)}") from None
        if not np.isfinite(value):
            raise AttrError(f"{name}: must be finite, got {value}")
        if self.min is not None and value < self.min:
            raise AttrError(f"{name}: must be >= {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise AttrError(f"{name}: must be <= {self.max}, got {value}")
        return value


@dataclass(frozen=True)
class Bool(Attr):
    kind: ClassVar[str] = "bool"

    def validate(self, name: str, value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise AttrError(f"{name}: must be true or false, got {short(value)}")
        return bool(value)


@dataclass(frozen=True)
class Choice(Attr):
    choices: tuple = ()
    kind: ClassVar[str] = "choice"

    def validate(self, name: str, value: Any) -> Any:
        if isinstance(value, (list, dict)) or value not in self.choices:
            options = ", ".join(repr(c) for c in self.choices)
            raise AttrError(f"{name}: must be one of {options}, got {short(value)}")
        return value


@dataclass(frozen=True)
class IntTuple(Attr):
    """A tuple of ints (a shape, or an axis list); ``length`` fixes its size when set."""

    length: int | None = None
    min: int | None = None
    allow_minus_one: bool = False  # Reshape's "infer this dimension"
    kind: ClassVar[str] = "ints"

    def validate(self, name: str, value: Any) -> tuple:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = (int(value),) * (self.length or 1)
        if not isinstance(value, (list, tuple)):
            raise AttrError(f"{name}: must be a list of integers, got {short(value)}")
        if len(value) > (self.length or MAX_ENTRIES):
            raise AttrError(f"{name}: must have {self.length or f'at most {MAX_ENTRIES}'} "
                            f"entries, got {len(value)}")
        out = []
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise AttrError(f"{name}[{i}]: must be an integer, got {short(v)}")
            v = int(v)
            if self.allow_minus_one and v == -1:
                out.append(v)
                continue
            low = -INT_LIMIT if self.min is None else self.min
            if not low <= v <= INT_LIMIT:
                bound = f">= {low}" if v < low else f"<= {INT_LIMIT}"
                raise AttrError(f"{name}[{i}]: must be {bound}, got {short(v)}")
            out.append(v)
        if self.length is not None and len(out) != self.length:
            raise AttrError(f"{name}: must have {self.length} entries, got {len(out)}")
        return tuple(out)


def IntPair(default, doc: str = "", min: int | None = 0) -> IntTuple:  # noqa: N802 (a descriptor "type")
    """Two ints (height, width) as PyTorch's ``kernel_size=(3, 3)``; a single int is repeated."""
    if isinstance(default, int):
        default = (default, default)
    return IntTuple(default=tuple(default), doc=doc, length=2, min=min)


class AttrValues(Mapping):
    """A node's validated attributes: read as ``a.units`` or ``a["units"]``; immutable."""

    def __init__(self, values: Mapping[str, Any]):
        values = dict(values)
        object.__setattr__(self, "_values", values)
        # ``a.units`` finds these as plain instance attributes: going through ``__getattr__`` cost
        # 0.5 µs a read on a layer's hot path. A name the Mapping interface uses stays behind it.
        self.__dict__.update((k, v) for k, v in values.items() if not hasattr(type(self), k))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("attributes are read-only")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    __repr__ = lambda self: f"AttrValues({self._values!r})"  # noqa: E731


# --------------------------------------------------------------------------------- context
class Ctx:
    """What a forward call saves for its backward, plus the run's mode. ``needs_input_grad[i]``
    lets backward skip an input gradient nobody will read (an Input node, or a branch only
    upstream of frozen nodes)."""

    __slots__ = ("saved", "training", "rng", "needs_input_grad")

    def __init__(self, training: bool = False, rng: np.random.Generator | None = None,
                 needs_input_grad: tuple = ()):
        self.saved: tuple = ()
        self.training = training
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.needs_input_grad = needs_input_grad

    def save(self, *values: Any) -> None:
        self.saved = values


# ---------------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class IntInput:
    """An example input of integer ids in ``[0, high)`` (labels, token ids)."""

    shape: tuple
    high: int


@dataclass(frozen=True)
class RangeInput:
    """An example float input drawn uniformly from ``[low, high)``: for a layer whose domain is
    not every real (Log, Sqrt need positive values)."""

    shape: tuple
    low: float
    high: float


@dataclass(frozen=True)
class FixedInput:
    """An example input with given values (nested tuples): for values whose structure a random
    draw would break (a key padding mask must leave every query a key to attend to)."""

    values: tuple

    @property
    def shape(self) -> tuple:
        return np.shape(self.values)

    def array(self) -> np.ndarray:
        out = np.array(self.values)
        return out.astype(np.int64) if out.dtype.kind in "iub" else out.astype(np.float64)


@dataclass(frozen=True)
class Example:
    """Attributes and concrete input shapes the registry-wide tests run a layer with."""

    attrs: dict = field(default_factory=dict)
    inputs: tuple = ()  # each a concrete shape (float input), an IntInput, RangeInput or FixedInput


# ------------------------------------------------------------------------------ PyTorch code
@dataclass(frozen=True)
class TorchCode:
    """How one node reads in generated PyTorch code (``engine.export.torch_code``).

    ``forward``: an expression for the node's output, or for a tuple of its outputs in port
    order; ``{m}`` stands for the node's module and ``{<input port>}`` for each input's value.
    ``module``: the constructor of the ``torch.nn`` module that holds the node's parameters,
    stored under the node's id, so that the "<node_id>.<param>" keys of a weights file are its
    state_dict unchanged; "" for a node without one. ``helpers``: source of functions or classes
    the expressions use, written once at the top of the file.
    """

    forward: str
    module: str = ""
    helpers: tuple = ()


# ------------------------------------------------------------------------------------ layer
class Layer:
    """Base of every layer type. Subclasses hold no state: only declarations and static functions.

    - ``infer(a, *in_shapes) -> shape`` (or a tuple of shapes when ``outputs`` has several ports);
      raise ShapeError with a readable message.
    - ``init(a, in_shapes, rng) -> {name: array}`` in PyTorch's layouts and default init.
    - ``forward(a, p, ctx, *xs) -> y`` (or a tuple for several outputs).
    - ``backward(a, p, ctx, *dys) -> (input_grads, param_grads)``; an input grad may be None when
      ``ctx.needs_input_grad`` says nobody needs it. For several outputs, an unused output's dy is
      passed as zeros.
    - ``to_torch(a, in_shapes) -> TorchCode``: the node in exported PyTorch code (not for the
      data sources, which become the model's arguments).
    - ``to_onnx(a, in_shapes, g, *xs) -> name`` (or a tuple of names, one per output port): the
      node's inference as ONNX operators, written through ``g`` (``engine.export.onnx_graph``)
      from the input value names ``xs`` (not for sources and losses).
    """

    type_id: ClassVar[str] = ""
    category: ClassVar[str] = "Other"
    formula: ClassVar[str] = ""  # the Explain tab, rich text: "{out_features}" -> the node's
    backward_formula: ClassVar[str] = ""  # value; declared beside forward and backward
    inputs: ClassVar[tuple] = ("x",)
    outputs: ClassVar[tuple] = ("y",)
    optional_inputs: ClassVar[tuple] = ()
    attrs: ClassVar[dict] = {}
    is_source: ClassVar[bool] = False  # fed from the dataset (Input, Label)
    is_loss: ClassVar[bool] = False  # output is a scalar summed into the training loss
    differentiable_inputs: ClassVar[tuple | None] = None  # None = all; e.g. labels are not
    buffers: ClassVar[tuple] = ()  # params updated by forward, never trained (running_mean...)
    examples: ClassVar[tuple] = ()
    # Traits other parts of the engine read here instead of keeping lists of type names:
    # splits its kernels over the engine's cores, so a graph with it holds the BLAS at one
    # thread (engine.threads.blas_only)
    parallel_kernels: ClassVar[bool] = False
    # an element-wise activation a fused Dense chain may absorb after a Dense (engine.fusion)
    fusable_activation: ClassVar[bool] = False

    @classmethod
    def description(cls) -> str:
        """First line of the docstring: the palette's tooltip."""
        return (cls.__doc__ or cls.type_id).strip().splitlines()[0]

    @classmethod
    def validate_attrs(cls, values: Mapping[str, Any]) -> AttrValues:
        """Fill defaults, refuse unknown names, coerce each value; raises AttrError."""
        unknown = set(values) - set(cls.attrs)
        if unknown:
            raise AttrError(f"unknown attribute {sorted(unknown)[0]!r} for {cls.type_id}")
        out = {}
        for name, attr in cls.attrs.items():
            out[name] = attr.validate(name, values[name]) if name in values else attr.default
        cls.check_attrs(out)
        return AttrValues(out)

    @classmethod
    def check_attrs(cls, a: dict) -> None:
        """Cross-attribute rules (override when needed); raise AttrError."""

    @classmethod
    def outputs_for(cls, a: Mapping[str, Any]) -> tuple:
        """The output ports of a node with these attributes: ``outputs``, unless their number
        follows an attribute (Chunk's pieces). The graph refuses an edit that would take away a
        port an edge leaves from."""
        return cls.outputs

    @classmethod
    def label(cls, a: Mapping[str, Any]) -> str:
        """Key attributes for the node's face on the canvas ("6@5×5"); override per layer."""
        return ""

    @staticmethod
    def infer(a: AttrValues, *shapes: Shape):
        raise NotImplementedError

    @staticmethod
    def param_shapes(a: AttrValues, in_shapes: tuple) -> dict:
        """``{name: shape}`` of what ``init`` returns, computed without allocating: shape
        inference reads it for parameter counts and the memory budget, so a huge width is
        refused before anything exists. A layer that overrides ``init`` must declare it (see
        ``declares_params``; the registry-wide tests compare the two)."""
        return {}

    @classmethod
    def declares_params(cls) -> bool:
        """False for a layer with an ``init`` of its own but no ``param_shapes``: it cannot be
        sized without allocating, so shape inference refuses it rather than guess."""
        own = cls.__mro__[:cls.__mro__.index(Layer)]
        return not any("init" in vars(k) for k in own) or any("param_shapes" in vars(k) for k in own)

    @staticmethod
    def init(a: AttrValues, in_shapes: tuple, rng: np.random.Generator) -> dict:
        return {}

    @staticmethod
    def forward(a: AttrValues, p: dict, ctx: Ctx, *xs):
        raise NotImplementedError

    @staticmethod
    def backward(a: AttrValues, p: dict, ctx: Ctx, *dys):
        raise NotImplementedError

    @staticmethod
    def to_torch(a: AttrValues, in_shapes: tuple) -> TorchCode:
        raise NotImplementedError

    @staticmethod
    def to_onnx(a: AttrValues, in_shapes: tuple, g, *xs: str):
        raise NotImplementedError


def uniform_fan_in(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    """U(-1/√fan_in, 1/√fan_in): PyTorch's default for Linear/Conv weights and biases
    (kaiming_uniform with a=√5 reduces to this bound). Lives here, not in a layer file, so that
    layers can share it without importing each other (the registry imports every layer)."""
    bound = 1.0 / np.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape)
