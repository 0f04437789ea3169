"""One specification over every registered layer: declarations, shapes, finite differences, PyTorch.

Adding a layer file with its ``examples`` and an oracle in ``tests/engine/oracles/`` is enough for
it to be checked here; a layer without either fails ``test_every_layer_is_specified``.
"""
import numpy as np
import pytest

from layerloom.engine.registry import CATEGORIES, LAYERS
from layerloom.engine.spec import Ctx, FixedInput, IntInput, RangeInput

from .oracles import ORACLES

torch = pytest.importorskip("torch")

COMPUTE = sorted(t for t, c in LAYERS.items() if not c.is_source)
CASES = [(t, i) for t in COMPUTE for i in range(len(LAYERS[t].examples))]


def make_inputs(example, rng):
    out = []
    for spec in example.inputs:
        if isinstance(spec, IntInput):
            out.append(rng.integers(0, spec.high, size=spec.shape).astype(np.int64))
        elif isinstance(spec, RangeInput):
            out.append(rng.uniform(spec.low, spec.high, size=spec.shape))
        elif isinstance(spec, FixedInput):
            out.append(spec.array())
        else:
            out.append(rng.standard_normal(spec))
    return out


def setup(type_id, case, seed=0):
    cls = LAYERS[type_id]
    ex = cls.examples[case]
    a = cls.validate_attrs(ex.attrs)
    rng = np.random.default_rng(seed)
    xs = make_inputs(ex, rng)
    shapes = tuple((None, *x.shape[1:]) for x in xs)
    params = {k: np.asarray(v, dtype=np.float64) for k, v in cls.init(a, shapes, rng).items()}
    # Perturb parameters away from init (zero biases, unit gains) so every term is exercised.
    for k in params:
        if k not in cls.buffers:
            params[k] = params[k] + 0.1 * rng.standard_normal(params[k].shape)
    diff = cls.differentiable_inputs if cls.differentiable_inputs is not None else cls.inputs
    needs = tuple(p in diff and np.issubdtype(x.dtype, np.floating) for p, x in zip(cls.inputs, xs))
    return cls, a, xs, shapes, params, needs


def run(cls, a, params, xs, needs, training):
    p = {k: v.copy() for k, v in params.items()}
    ctx = Ctx(training, np.random.default_rng(123), needs)
    out = cls.forward(a, p, ctx, *[x.copy() for x in xs])
    outs = (out,) if len(cls.outputs_for(a)) == 1 else tuple(out)
    return [np.asarray(o) for o in outs], ctx, p


def test_every_layer_is_specified():
    for type_id, cls in LAYERS.items():
        assert cls.category in CATEGORIES, f"{type_id}: category {cls.category!r} unknown"
        assert cls.__doc__ and cls.description(), f"{type_id}: needs a docstring"
        assert cls.examples, f"{type_id}: needs at least one Example"
        for name, attr in cls.attrs.items():
            assert attr.doc, f"{type_id}.{name}: attribute needs a doc line"
        cls.validate_attrs({})  # the defaults themselves are valid
        if not cls.is_source:
            assert type_id in ORACLES, f"{type_id}: no PyTorch oracle in tests/engine/oracles/"


@pytest.mark.parametrize("type_id,case", CASES)
def test_infer_matches_forward_shapes(type_id, case):
    cls, a, xs, shapes, params, needs = setup(type_id, case)
    outs, _, _ = run(cls, a, params, xs, needs, training=True)
    inferred = cls.infer(a, *shapes)
    ports = cls.outputs_for(a)
    inferred = (inferred,) if len(ports) == 1 else tuple(inferred)
    assert len(inferred) == len(ports) == len(outs), f"{type_id}: one output per port"
    for port, shape, y in zip(ports, inferred, outs):
        want = tuple(y.shape)
        got = tuple(len(xs[0]) if d is None else d for d in shape)
        assert got == want, f"{type_id}.{port}: infer says {shape}, forward gives {want}"


@pytest.mark.parametrize("type_id,case", CASES)
def test_declared_parameter_shapes_are_what_init_makes(type_id, case):
    # Shape inference sizes a graph (counts, memory budget) from param_shapes alone.
    cls, a, xs, shapes, params, needs = setup(type_id, case)
    assert cls.declares_params(), f"{type_id}: defines init, so it must declare param_shapes"
    declared = cls.param_shapes(a, shapes)
    assert list(declared) == list(params), f"{type_id}: parameter names or order differ"
    assert {k: tuple(v) for k, v in declared.items()} == {k: v.shape for k, v in params.items()}


@pytest.mark.parametrize("type_id,case", CASES)
def test_backward_matches_finite_differences(type_id, case):
    cls, a, xs, shapes, params, needs = setup(type_id, case)
    outs, ctx, _ = run(cls, a, params, xs, needs, training=True)
    rng = np.random.default_rng(7)
    dys = [rng.standard_normal(y.shape) for y in outs]
    in_grads, p_grads = cls.backward(a, {k: v.copy() for k, v in params.items()}, ctx, *dys)

    def objective(xs_, params_):
        ys, _, _ = run(cls, a, params_, xs_, needs, training=True)
        return sum(float((y * d).sum()) for y, d in zip(ys, dys))

    def check(array, analytic, label, poke):
        assert analytic is not None and analytic.shape == array.shape, f"{label}: bad grad shape"
        flat = np.arange(array.size)
        for i in rng.choice(flat, size=min(24, array.size), replace=False):
            idx = np.unravel_index(i, array.shape)
            hi, lo = poke(idx, 1e-6), poke(idx, -1e-6)
            numeric = (hi - lo) / 2e-6
            assert np.isclose(analytic[idx], numeric, rtol=1e-5, atol=1e-7), \
                f"{type_id} {label}{list(idx)}: analytic {analytic[idx]:.8g}, numeric {numeric:.8g}"

    for j, (x, need) in enumerate(zip(xs, needs)):
        if not need:
            continue

        def poke(idx, eps, j=j):
            moved = [v.copy() for v in xs]
            moved[j][idx] += eps
            return objective(moved, params)

        check(x, in_grads[j], f"d/d{cls.inputs[j]}", poke)
    for name, value in params.items():
        if name in cls.buffers:
            continue

        def poke(idx, eps, name=name):
            moved = {k: v.copy() for k, v in params.items()}
            moved[name][idx] += eps
            return objective(xs, moved)

        check(value, p_grads.get(name), f"d/d{name}", poke)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("type_id,case", CASES)
def test_matches_pytorch(type_id, case, training):
    cls, a, xs, shapes, params, needs = setup(type_id, case)
    if getattr(cls, "stochastic", False) and training:
        pytest.skip("random masks differ from PyTorch's; compared in inference mode")
    outs, ctx, p_after = run(cls, a, params, xs, needs, training)
    tx = [torch.tensor(x, requires_grad=need) for x, need in zip(xs, needs)]
    tp = {k: torch.tensor(v, requires_grad=k not in cls.buffers) for k, v in params.items()}
    t_out = ORACLES[type_id](a, tp, tx, training)
    ports = cls.outputs_for(a)
    t_outs = (t_out,) if len(ports) == 1 else tuple(t_out)
    for port, y, ty in zip(ports, outs, t_outs):
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=f"{type_id}.{port} forward")
    for name in (b for b in cls.buffers if b in p_after):  # running statistics updated alike
        np.testing.assert_allclose(p_after[name], tp[name].detach().numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=f"{type_id}.{name} after forward")
    rng = np.random.default_rng(7)
    dys = [rng.standard_normal(y.shape) for y in outs]
    in_grads, p_grads = cls.backward(a, {k: v.copy() for k, v in params.items()}, ctx, *dys)
    torch.autograd.backward([t for t in t_outs], [torch.tensor(d) for d in dys])
    for j, (t, need) in enumerate(zip(tx, needs)):
        if need:
            np.testing.assert_allclose(in_grads[j], t.grad.numpy(), rtol=1e-6, atol=1e-9,
                                       err_msg=f"{type_id} d/d{cls.inputs[j]}")
    for name, t in tp.items():
        if name not in cls.buffers:
            np.testing.assert_allclose(p_grads[name], t.grad.numpy(), rtol=1e-6, atol=1e-9,
                                       err_msg=f"{type_id} d/d{name}")
