"""MultiHeadAttention is torch.nn.MultiheadAttention(batch_first=True) with separate query, key
and value inputs: forward, the head-averaged weights and every gradient equal PyTorch's in
float64 (self, cross with L ≠ S, kdim ≠ vdim ≠ embed_dim, causal, padded keys), padded keys
change nothing and receive nothing, and exported PyTorch code and ONNX compute Network.forward.
"""
import numpy as np
import pytest

from layerloom.engine.graph import Graph, Node
from layerloom.engine.network import Network
from layerloom.engine.registry import LAYERS
from layerloom.engine.shapes import infer_shapes
from layerloom.engine.spec import Ctx

torch = pytest.importorskip("torch")

MHA = LAYERS["MultiHeadAttention"]
# name: (attributes, query steps L, key steps S, valid keys per sample or None)
CASES = {
    "self": (dict(embed_dim=8, num_heads=2), 5, 5, None),
    "cross": (dict(embed_dim=8, num_heads=4), 3, 7, None),
    "kdim_vdim": (dict(embed_dim=6, num_heads=3, kdim=4, vdim=5), 4, 6, None),
    "causal": (dict(embed_dim=8, num_heads=2, causal=True), 6, 6, None),
    "causal_cross": (dict(embed_dim=4, num_heads=2, causal=True), 5, 3, None),
    "padding": (dict(embed_dim=8, num_heads=2), 4, 6, (6, 2, 4)),
    "padding_causal_kdim": (dict(embed_dim=6, num_heads=2, kdim=3, causal=True), 5, 5, (5, 1, 3)),
    "no_bias_padding": (dict(embed_dim=4, num_heads=1, bias=False), 2, 4, (1, 4, 3)),
}


def padding(lengths, keys):
    """True after each sample's valid keys, as a padded batch has it."""
    return None if lengths is None else np.arange(keys)[None, :] >= np.array(lengths)[:, None]


def make(name, seed=0):
    attrs, steps, keys, lengths = CASES[name]
    a = MHA.validate_attrs(attrs)
    rng = np.random.default_rng(seed)
    n = 3
    kdim, vdim = a.kdim or a.embed_dim, a.vdim or a.embed_dim
    query = rng.standard_normal((n, steps, a.embed_dim))
    key = query if name == "self" else rng.standard_normal((n, keys, kdim))
    value = query if name == "self" else rng.standard_normal((n, keys, vdim))
    shapes = tuple((None, *x.shape[1:]) for x in (query, key, value))
    params = {k: v + 0.1 * rng.standard_normal(v.shape)
              for k, v in MHA.init(a, shapes, rng).items()}
    return a, params, query, key, value, padding(lengths, keys)


def ours(a, params, query, key, value, pad, dy=None, dw=None):
    ctx = Ctx(False, None, (True, True, True, False))
    y, w = MHA.forward(a, params, ctx, query, key, value, pad)
    if dy is None:
        return y, w
    in_grads, grads = MHA.backward(a, params, ctx, dy, dw)
    return y, w, in_grads, grads


def theirs(a, params, query, key, value, pad, dy, dw):
    module = torch.nn.MultiheadAttention(a.embed_dim, a.num_heads, bias=a.bias,
                                         kdim=a.kdim or None, vdim=a.vdim or None,
                                         batch_first=True).double()
    module.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
    tensors = {id(x): torch.tensor(x, requires_grad=True) for x in (query, key, value)}
    tq, tk, tv = (tensors[id(x)] for x in (query, key, value))
    mask = torch.ones(tq.shape[1], tk.shape[1], dtype=torch.bool).triu(1) if a.causal else None
    y, w = module(tq, tk, tv, key_padding_mask=None if pad is None else torch.tensor(pad),
                  attn_mask=mask)
    torch.autograd.backward([y, w], [torch.tensor(dy), torch.tensor(dw)])
    grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    return y.detach().numpy(), w.detach().numpy(), [t.grad.numpy() for t in (tq, tk, tv)], grads


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_weights_and_gradients_equal_pytorch_in_float64(name):
    a, params, query, key, value, pad = make(name)
    rng = np.random.default_rng(9)
    dy = rng.standard_normal(query.shape[:2] + (a.embed_dim,))
    dw = rng.standard_normal(query.shape[:2] + (key.shape[1],))
    y, w, in_grads, grads = ours(a, params, query, key, value, pad, dy, dw)
    ty, tw, t_in, t_grads = theirs(a, params, query, key, value, pad, dy, dw)
    tol = dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(y, ty, **tol)
    np.testing.assert_allclose(w, tw, **tol)
    assert set(grads) == set(t_grads) == set(params)
    for k in params:
        np.testing.assert_allclose(grads[k], t_grads[k], **tol, err_msg=k)
    if name == "self":  # one tensor feeds all three ports: its gradient is their sum
        np.testing.assert_allclose(sum(in_grads[:3]), t_in[0], **tol)
    else:
        for g, t in zip(in_grads, t_in):
            np.testing.assert_allclose(g, t, **tol)
    assert in_grads[3] is None  # the mask is data


def test_gradients_equal_finite_differences_with_padding_and_causal_mask():
    a, params, query, key, value, pad = make("padding_causal_kdim", seed=4)
    rng = np.random.default_rng(5)
    dy = rng.standard_normal(query.shape[:2] + (a.embed_dim,))
    dw = rng.standard_normal(query.shape[:2] + (key.shape[1],))

    def objective(xs, p):
        y, w = ours(a, p, *xs, pad)
        return float((y * dy).sum() + (w * dw).sum())

    _, _, in_grads, grads = ours(a, params, query, key, value, pad, dy, dw)
    xs, eps = [query, key, value], 1e-6
    for j, x in enumerate(xs):
        for idx in zip(*(rng.integers(0, s, 6) for s in x.shape)):
            hi, lo = [v.copy() for v in xs], [v.copy() for v in xs]
            hi[j][idx] += eps
            lo[j][idx] -= eps
            numeric = (objective(hi, params) - objective(lo, params)) / (2 * eps)
            assert np.isclose(in_grads[j][idx], numeric, rtol=1e-6, atol=1e-8), (j, idx)
    for name, value_ in params.items():
        idx = tuple(rng.integers(0, s) for s in value_.shape)
        hi, lo = dict(params), dict(params)
        hi[name], lo[name] = value_.copy(), value_.copy()
        hi[name][idx] += eps
        lo[name][idx] -= eps
        numeric = (objective(xs, hi) - objective(xs, lo)) / (2 * eps)
        assert np.isclose(grads[name][idx], numeric, rtol=1e-6, atol=1e-8), name


@pytest.mark.parametrize("name", ["padding", "padding_causal_kdim", "no_bias_padding"])
def test_padded_keys_change_nothing_and_receive_no_gradient(name):
    a, params, query, key, value, pad = make(name)
    rng = np.random.default_rng(2)
    dy = rng.standard_normal(query.shape[:2] + (a.embed_dim,))
    dw = rng.standard_normal(query.shape[:2] + (key.shape[1],))
    y, w, in_grads, _ = ours(a, params, query, key, value, pad, dy, dw)
    key2, value2 = key.copy(), value.copy()
    key2[pad] = 1e3 * rng.standard_normal(key2[pad].shape)
    value2[pad] = -1e3 * rng.standard_normal(value2[pad].shape)
    y2, w2 = ours(a, params, query, key2, value2, pad)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(w2, w)
    assert not w[np.broadcast_to(pad[:, None, :], w.shape)].any()  # nobody attends to padding
    assert not in_grads[1][pad].any() and not in_grads[2][pad].any()
    assert in_grads[1][~pad].any() and in_grads[2][~pad].any()


def cross_graph(mask_dtype="float32", need_weights=True) -> Graph:
    """A decoder step: causal self-attention over the target, then cross-attention to a source
    whose one edge feeds both key and value, its padding given as an input."""
    g = Graph()
    g.add_node(Node("tgt", "Input", {"shape": [4, 6]}))
    g.add_node(Node("src", "Input", {"shape": [5, 3]}))
    g.add_node(Node("pad", "Input", {"shape": [5], "dtype": mask_dtype}))
    g.add_node(Node("selfatt", "MultiHeadAttention", {"embed_dim": 6, "num_heads": 2,
                                                      "causal": True, "need_weights": False}))
    g.add_node(Node("cross", "MultiHeadAttention", {"embed_dim": 6, "num_heads": 3, "kdim": 3,
                                                    "vdim": 3, "need_weights": need_weights}))
    for port in ("query", "key", "value"):
        g.connect(("tgt", "y"), ("selfatt", port))
    g.connect(("selfatt", "y"), ("cross", "query"))
    g.connect(("src", "y"), ("cross", "key"))
    g.connect(("src", "y"), ("cross", "value"))
    g.connect(("pad", "y"), ("cross", "key_padding_mask"))
    return g


def cross_feeds(mask_dtype="float32") -> dict:
    rng = np.random.default_rng(3)
    pad = padding((5, 2, 3), 5).astype(mask_dtype)
    return {"tgt": rng.standard_normal((3, 4, 6)), "src": rng.standard_normal((3, 5, 3)),
            "pad": pad}


def test_a_graph_with_one_edge_into_key_and_value_trains_as_pytorch_does():
    g = cross_graph()
    g.add_node(Node("label", "Label", {"kind": "values", "shape": [4, 6]}))
    g.add_node(Node("loss", "MSELoss", {}))
    g.connect(("cross", "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    net = Network(g, dtype=np.float64, seed=1)
    feeds = cross_feeds()
    feeds["label"] = np.random.default_rng(4).standard_normal((3, 4, 6))
    net.forward(feeds, training=True)
    grads = net.backward()
    self_mod = torch.nn.MultiheadAttention(6, 2, batch_first=True).double()
    cross_mod = torch.nn.MultiheadAttention(6, 3, kdim=3, vdim=3, batch_first=True).double()
    for prefix, module in (("selfatt", self_mod), ("cross", cross_mod)):
        module.load_state_dict({k[len(prefix) + 1:]: torch.tensor(v)
                                for k, v in net.params.items() if k.startswith(prefix + ".")})
    tgt, src = torch.tensor(feeds["tgt"]), torch.tensor(feeds["src"])
    causal = torch.ones(4, 4, dtype=torch.bool).triu(1)
    h = self_mod(tgt, tgt, tgt, attn_mask=causal)[0]
    y = cross_mod(h, src, src, key_padding_mask=torch.tensor(feeds["pad"] != 0))[0]
    loss = torch.nn.functional.mse_loss(y, torch.tensor(feeds["label"]))
    loss.backward()
    assert np.isclose(net.loss(), loss.item(), rtol=1e-10)
    for prefix, module in (("selfatt", self_mod), ("cross", cross_mod)):
        for name, p in module.named_parameters():
            np.testing.assert_allclose(grads[f"{prefix}.{name}"], p.grad.numpy(), rtol=1e-8,
                                       atol=1e-12, err_msg=f"{prefix}.{name}")


@pytest.mark.parametrize("mask_dtype", ["float32", "int64"])
def test_exported_pytorch_code_and_onnx_compute_network_forward(mask_dtype, tmp_path):
    from .test_export_onnx import run_onnx
    from .test_export_torch import as_tensor, exported, torch_model

    g = cross_graph(mask_dtype)
    net = Network(g, dtype=np.float64, seed=2)
    feeds = cross_feeds(mask_dtype)
    want = net.forward(feeds)
    module, _ = exported(g, tmp_path)
    model = torch_model(module, net, tmp_path)
    with torch.no_grad():
        y, w = model(*[as_tensor(feeds[k]) for k in ("tgt", "src", "pad")])
    np.testing.assert_allclose(y.numpy(), want["cross"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), want["cross.weights"], rtol=1e-9, atol=1e-12)
    net32 = Network(g, seed=2)
    want = net32.forward(feeds)
    got = run_onnx(net32, feeds)
    np.testing.assert_allclose(got["cross.y"], want["cross"], rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(got["cross.weights"], want["cross.weights"], rtol=1e-4, atol=2e-5)


def test_the_mask_port_is_optional_and_shape_errors_name_the_fix():
    g = cross_graph(need_weights=False)
    g.disconnect(g.edge_into(("cross", "key_padding_mask")))
    report = infer_shapes(g)
    assert report.ok, report.errors
    assert report.shapes[("cross", "y")] == (None, 4, 6)
    g.set_attr("cross", "kdim", 4)
    assert "key has 3 features but kdim is 4: set kdim to 3" in infer_shapes(g).errors["cross"]
    g.set_attr("cross", "kdim", 3)
    g.connect(("pad", "y"), ("cross", "key_padding_mask"))
    assert infer_shapes(g).ok
    g.set_attr("pad", "shape", (4,))
    assert "key_padding_mask must be (N, 5)" in infer_shapes(g).errors["cross"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("causal,lengths", [(False, None), (True, None), (False, (6, 2, 5)),
                                            (True, (3, 1, 6))])
@pytest.mark.parametrize("steps,keys", [(4, 6), (5, 5), (7, 2)])
def test_cross_attention_kernels_equal_their_numpy_twins(dtype, causal, lengths, steps, keys):
    from layerloom.engine.kernels import attention as att

    if lengths is not None and max(lengths) > keys:
        lengths = tuple(min(n, keys) for n in lengths)
    rng = np.random.default_rng(6)
    heads, dh, n = 2, 3, 3
    q, do = (rng.standard_normal((n, steps, heads * dh)).astype(dtype) for _ in range(2))
    k, v = (rng.standard_normal((n, keys, heads * dh)).astype(dtype) for _ in range(2))
    dused = rng.standard_normal((n, steps, keys)).astype(dtype)
    pad = padding(lengths, keys)
    scale = 1 / np.sqrt(dh)
    o, weights_t = att.mha_forward(q, k, v, heads, dtype(scale), causal,
                                   att.no_padding(n, keys) if pad is None else pad)
    want_o, want_w = att.mha_forward_reference(q, k, v, heads, scale, causal, pad)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(weights_t.transpose(0, 1, 3, 2), want_w, **tol)
    np.testing.assert_allclose(o, want_o, **tol)
    if pad is not None:
        assert not weights_t.transpose(0, 1, 3, 2)[np.broadcast_to(pad[:, None, None],
                                                                   want_w.shape)].any()
    grads = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    att.mha_backward(q, k, v, weights_t, do, heads, dtype(scale),
                     np.ascontiguousarray(dused.transpose(0, 2, 1)), *grads)
    want = att.mha_backward_reference(q, k, v, want_w, do, heads, scale, dused=dused)
    for got, w in zip(grads, want):
        tol = tol if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6 * np.abs(w).max())
        np.testing.assert_allclose(got, w, **tol)


def test_dropout_gradients_equal_finite_differences_under_the_same_mask():
    a = MHA.validate_attrs(dict(embed_dim=4, num_heads=2, dropout=0.3, kdim=3))
    rng = np.random.default_rng(8)
    query, key, value = (rng.standard_normal(s) for s in ((2, 3, 4), (2, 5, 3), (2, 5, 4)))
    params = {k: v + 0.1 * rng.standard_normal(v.shape)
              for k, v in MHA.init(a, ((None, 3, 4), (None, 5, 3), (None, 5, 4)), rng).items()}
    pad = padding((5, 3), 5)
    dy, dw = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5))

    def run(q, p, grads=False):
        ctx = Ctx(True, np.random.default_rng(11), (True, True, True, False))
        y, w = MHA.forward(a, p, ctx, q, key, value, pad)
        if grads:
            return MHA.backward(a, p, ctx, dy, dw)
        return float((y * dy).sum() + (w * dw).sum())

    (dq, _, _, _), grads = run(query, params, grads=True)
    eps = 1e-6
    for idx in [(0, 0, 0), (1, 2, 3), (0, 1, 2)]:
        hi, lo = query.copy(), query.copy()
        hi[idx] += eps
        lo[idx] -= eps
        assert np.isclose(dq[idx], (run(hi, params) - run(lo, params)) / (2 * eps), rtol=1e-6)
    w = params["k_proj_weight"]
    hi, lo = dict(params), dict(params)
    hi["k_proj_weight"], lo["k_proj_weight"] = w.copy(), w.copy()
    hi["k_proj_weight"][1, 2] += eps
    lo["k_proj_weight"][1, 2] -= eps
    numeric = (run(query, hi) - run(query, lo)) / (2 * eps)
    assert np.isclose(grads["k_proj_weight"][1, 2], numeric, rtol=1e-6)


def loss_graph() -> Graph:
    g = cross_graph()
    g.add_node(Node("label", "Label", {"kind": "values", "shape": [4, 6]}))
    g.add_node(Node("loss", "MSELoss", {}))
    g.connect(("cross", "y"), ("loss", "input"))
    g.connect(("label", "y"), ("loss", "target"))
    return g


def test_node_gradient_check_passes_with_and_without_the_mask():
    from layerloom.engine.node_check import check_nodes

    g, feeds = loss_graph(), cross_feeds()
    feeds["label"] = np.zeros((3, 4, 6))
    for masked in (True, False):
        if not masked:
            g.remove_node("pad")
            feeds.pop("pad")
        checks = check_nodes(g, feeds, node_ids=["selfatt", "cross"])
        assert all(c.passed and c.results for c in checks), [c.lines() for c in checks]
        names = {t.name for c in checks for t in c.results}
        assert {"d/dquery", "d/dkey", "d/dvalue", "d/dk_proj_weight"} <= names
        assert "d/dkey_padding_mask" not in names


def test_explain_shows_the_cross_attention_weights_and_their_gradients():
    from layerloom.engine.explain import explain_node

    feeds = cross_feeds()
    feeds["label"] = np.zeros((3, 4, 6))
    numbers = explain_node(loss_graph(), "cross", feeds)
    weights = numbers.tensors["weights"]
    assert weights.shape == (3, 4, 5)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert not weights[1, :, 2:].any()  # sample 1 has two valid source positions
    assert {"key_padding_mask", "dL/dquery", "dL/dy", "dL/dk_proj_weight"} <= set(numbers.tensors)
    # key and value are data (an Input), the mask is no variable: no gradient computed for them
    assert not {"dL/dkey", "dL/dvalue", "dL/dkey_padding_mask"} & set(numbers.tensors)


def decoder_model() -> dict:
    """Block "dec" (causal self-attention, then cross-attention to a padded memory, each with a
    residual Add), used twice in a row: an encoder–decoder's decoder as a person would wire it."""
    from .block_cases import edge, node

    block = {"nodes": [node("x", "BlockInput"), node("memory", "BlockInput"),
                       node("pad", "BlockInput"),
                       node("sa", "MultiHeadAttention", {"embed_dim": 6, "num_heads": 2,
                                                         "causal": True, "need_weights": False}),
                       node("add1", "Add"),
                       node("ca", "MultiHeadAttention", {"embed_dim": 6, "num_heads": 3,
                                                         "kdim": 3, "vdim": 3}),
                       node("add2", "Add"), node("out", "BlockOutput"),
                       node("attn", "BlockOutput")],
             "edges": [*(edge("x.y", f"sa.{p}") for p in ("query", "key", "value")),
                       edge("x.y", "add1.a"), edge("sa.y", "add1.b"), edge("add1.y", "ca.query"),
                       edge("memory.y", "ca.key"), edge("memory.y", "ca.value"),
                       edge("pad.y", "ca.key_padding_mask"), edge("add1.y", "add2.a"),
                       edge("ca.y", "add2.b"), edge("add2.y", "out.x"),
                       edge("ca.weights", "attn.x")]}
    nodes = [node("tgt", "Input", {"shape": [4, 6]}), node("src", "Input", {"shape": [5, 3]}),
             node("pad", "Input", {"shape": [5]}),
             node("dec1", "Block", {"block": "dec"}), node("dec2", "Block", {"block": "dec"}),
             node("head", "Dense", {"out_features": 2})]
    edges = [edge("tgt.y", "dec1.x"), edge("dec1.out", "dec2.x"), edge("dec2.out", "head.x")]
    for d in ("dec1", "dec2"):
        edges += [edge("src.y", f"{d}.memory"), edge("pad.y", f"{d}.pad")]
    return {"format": "layerloom-graph", "version": 2, "nodes": nodes, "edges": edges,
            "blocks": {"dec": block}}


def test_decoder_blocks_with_cross_attention_export_to_code_and_onnx_that_compute_forward(
        tmp_path):
    from layerloom.engine.serialize import graph_from_dict

    from .test_export_onnx import run_onnx
    from .test_export_torch import as_tensor, exported, torch_model

    g = graph_from_dict(decoder_model())
    net = Network(g, dtype=np.float64, seed=3)
    assert "dec2.ca.k_proj_weight" in net.params
    feeds = cross_feeds()
    want = net.forward(feeds)
    module, _ = exported(g, tmp_path)
    model = torch_model(module, net, tmp_path)
    with torch.no_grad():
        got = model(*[as_tensor(feeds[k]) for k in ("tgt", "src", "pad")])
    net32 = Network(g, seed=3)
    want32 = net32.forward(feeds)
    from_onnx = run_onnx(net32, feeds)
    # what no node reads, in the model's output order: both blocks' maps, then the head
    assert list(from_onnx) == ["dec1.attn", "dec2.attn", "head"]
    for name, value in zip(from_onnx, got):
        np.testing.assert_allclose(value.numpy(), want[name], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(from_onnx[name], want32[name], rtol=1e-4, atol=2e-5)
