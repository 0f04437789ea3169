"""The ONNX import's rules on models written operator by operator: what it reads exactly (Gemm's
transposes and scales, Flatten where the batch stays whole, broadcasting, float64, a fixed batch,
a newer opset), and what it refuses with the true reason in one line."""
import numpy as np
import pytest

from layerloom.engine.export.onnx_import import OnnxImportError, read_onnx
from layerloom.engine.network import Network

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(0)


def model(nodes, consts: dict, x_shape, y_shape, opset=17, dtype=TensorProto.FLOAT) -> bytes:
    x = helper.make_tensor_value_info("x", dtype, ["batch", *x_shape])
    y = helper.make_tensor_value_info("y", dtype, y_shape)
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def run(data: bytes, x: np.ndarray):
    result = read_onnx(data)
    net = Network(result.graph, params=result.params)
    node_id, _ = result.outputs["y"]
    return net.forward({"x": x})[node_id], result


def refusal(data: bytes) -> str:
    with pytest.raises(OnnxImportError) as err:
        read_onnx(data)
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_reads_its_transpose_and_both_scales(trans_b):
    w = RNG.standard_normal((3, 5) if trans_b else (5, 3)).astype(np.float32)
    c = RNG.standard_normal(3).astype(np.float32)
    gemm = helper.make_node("Gemm", ["x", "w", "c"], ["y"], transB=trans_b, alpha=0.5, beta=2.0)
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    got, result = run(model([gemm], {"w": w, "c": c}, [5], ["batch", 3]), x)
    want = 0.5 * x @ (w.T if trans_b else w) + 2.0 * c
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert [n.type for n in result.graph.nodes.values()] == ["Input", "Dense"]
    gemm_a = helper.make_node("Gemm", ["x", "w", "c"], ["y"], transA=1, transB=trans_b)
    assert "transA transposes the batch" in refusal(model([gemm_a], {"w": w, "c": c}, [5],
                                                          ["batch", 3]))


def test_flatten_keeps_the_batch_whole_or_says_it_would_not():
    flat = helper.make_node("Flatten", ["x"], ["y"], axis=2)
    x = RNG.standard_normal((3, 1, 2, 4)).astype(np.float32)
    got, _ = run(model([flat], {}, [1, 2, 4], [None, 8]), x)
    np.testing.assert_array_equal(got, x.reshape(3, 8))  # dim 1 is 1: nothing merges
    text = refusal(model([flat], {}, [3, 2, 4], [None, 8]))
    assert text.endswith("flattening at axis 2 merges the batch with dim 1 of 4-D input; "
                         "Layerloom keeps one sample per row")


def test_same_rank_inputs_broadcast_and_different_ranks_say_where_the_batch_would_go():
    mean = helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=1)
    sub = helper.make_node("Sub", ["x", "m"], ["y"])
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    got, result = run(model([mean, sub], {}, [3, 4, 5], ["batch", 3, 4, 5]), x)
    np.testing.assert_allclose(got, x - x.mean(axis=(2, 3), keepdims=True), rtol=1e-5, atol=1e-6)
    assert {n.type for n in result.graph.nodes.values()} == {"Input", "Mean", "Subtract"}
    flat_mean = helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0)
    add = helper.make_node("Add", ["x", "m"], ["y"])
    text = refusal(model([flat_mean, add], {}, [4, 3], ["batch", 4, 3]))
    assert "their ranks differ, so the batch axis of the 1-D input would meet an axis of size 3" \
        in text


def test_a_tensor_of_the_model_s_own_comes_in_as_a_parameter_node():
    """A learned per-channel scale (an initializer, as PyTorch writes nn.Parameter) trains; a
    Constant node's tensor is frozen; a constant with a batch axis of its own is refused."""
    gamma = RNG.standard_normal((3, 1, 1)).astype(np.float32)
    mul = helper.make_node("Mul", ["gamma", "x"], ["m"])
    shift = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(
        np.arange(4, dtype=np.float32)))
    sub = helper.make_node("Sub", ["m", "c"], ["y"])
    x = RNG.standard_normal((2, 3, 2, 4)).astype(np.float32)
    got, result = run(model([mul, shift, sub], {"gamma": gamma}, [3, 2, 4], ["batch", 3, 2, 4]), x)
    np.testing.assert_allclose(got, gamma * x - np.arange(4), rtol=1e-6)
    params = {n.id: n for n in result.graph.nodes.values() if n.type == "Parameter"}
    assert sorted(n.attrs["shape"] for n in params.values()) == [(1, 1, 4), (3, 1, 1)]
    assert {tuple(n.attrs["shape"]): n.frozen for n in params.values()} == {
        (3, 1, 1): False, (1, 1, 4): True}
    batched = helper.make_node("Add", ["x", "k"], ["y"])
    text = refusal(model([batched], {"k": np.ones((2, 4), np.float32)}, [4], ["batch", 4]))
    assert "its constant operand of shape (2, 4) has a batch axis of its own" in text


def test_a_float64_model_is_read_as_float32_and_says_so():
    w = RNG.standard_normal((2, 3))
    gemm = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    data = model([gemm], {"w": w}, [3], ["batch", 2], dtype=TensorProto.DOUBLE)
    x = RNG.standard_normal((4, 3))
    got, result = run(data, x)
    assert result.notes == ("the model computes in float64; Layerloom imported it as float32 "
                            "(weights converted)",)
    assert result.params["fc1.weight"].dtype == np.float32
    np.testing.assert_allclose(got, x @ w.T, rtol=1e-5, atol=1e-6)


def test_a_model_exported_for_batch_1_runs_any_batch():
    """PyTorch without dynamic axes writes batch 1 into the input and into Reshape targets."""
    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])
    reshape = helper.make_node("Reshape", ["x", "s"], ["y"])
    graph = helper.make_graph([reshape], "g", [x_info], [y_info],
                              [numpy_helper.from_array(np.array([1, 6], np.int64), "s")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = RNG.standard_normal((5, 2, 3)).astype(np.float32)
    got, _ = run(data.SerializeToString(), x)
    np.testing.assert_array_equal(got, x.reshape(5, 6))


def test_a_reshape_that_moves_values_between_samples_is_refused():
    reshape = helper.make_node("Reshape", ["x", "s"], ["y"])
    text = refusal(model([reshape], {"s": np.array([-1, 2], np.int64)}, [6], ["batch", 2]))
    assert "it moves values between samples (target [-1, 2] for 6 per sample)" in text


def test_a_newer_model_the_converter_cannot_take_back_is_read_as_written():
    """GroupNormalization-21 (one gain per channel) has no way down to opset 17."""
    norm = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2,
                            epsilon=1e-5)
    s, b = RNG.standard_normal(4).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    x = RNG.standard_normal((3, 4, 2, 3)).astype(np.float32)
    got, result = run(model([norm], {"s": s, "b": b}, [4, 2, 3], ["batch", 4, 2, 3], opset=21), x)
    groups = x.reshape(3, 2, -1)
    xhat = ((groups - groups.mean(-1, keepdims=True))
            / np.sqrt(groups.var(-1, keepdims=True) + 1e-5)).reshape(x.shape)
    np.testing.assert_allclose(got, xhat * s[:, None, None] + b[:, None, None], rtol=1e-4,
                               atol=1e-5)
    assert [n.type for n in result.graph.nodes.values()] == ["Input", "GroupNorm"]


def test_random_numbers_and_foreign_operators_are_refused_for_what_they_are():
    draw = helper.make_node("RandomNormal", [], ["r"], shape=[3])
    add = helper.make_node("Add", ["x", "r"], ["y"])
    assert refusal(model([draw, add], {}, [3], ["batch", 3])).endswith(
        "cannot compute its constant value (it draws random numbers)")
    custom = helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    data = helper.make_model(helper.make_graph([custom], "g", [x], [y]), opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    assert refusal(data.SerializeToString()) == (
        "the model uses operators of domain 'com.microsoft'; Layerloom reads standard ONNX "
        "operators only")


def test_layerloom_import_prints_the_notes(tmp_path, capsys):
    from layerloom.engine.cli import main

    gemm = helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)
    path = tmp_path / "double.onnx"
    path.write_bytes(model([gemm], {"w": RNG.standard_normal((2, 3))}, [3], ["batch", 2],
                           dtype=TensorProto.DOUBLE))
    assert main(["import", str(path), str(tmp_path / "double.json")]) == 0
    err = capsys.readouterr().err
    assert "note: the model computes in float64; Layerloom imported it as float32" in err
