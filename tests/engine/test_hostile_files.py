"""One regression test per class of hostile data, weights and ONNX file (issue 20): each ends in a
one-line error naming the file and the defect, or loads correctly; never a traceback, never an
allocation the file cannot back (checked in a child process under an address-space limit)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from layerloom.engine.data import MAX_CLASSES, DataError, load_data
from layerloom.engine.spec import LayerloomError

from .hostile_files import CASES, npy_of, open_file, zip_of
from .limited_child import ROOT

LIMIT_MB = 1024  # the readers plus numpy, onnx and safetensors take ~400 MB of address space


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_file_class_ends_in_one_line_or_loads(tmp_path, case):
    target = case.build(tmp_path)
    if not case.words:
        assert open_file(case.kind, target) is not None
        return
    with pytest.raises(LayerloomError) as err:
        open_file(case.kind, target)
    text = str(err.value)
    assert "\n" not in text and case.words in text
    named = target.partition(":")[2] if case.kind == "data" else target
    assert named in text or named.rsplit("/", 1)[-1] in text  # the file is named


def test_every_class_ends_cleanly_under_a_memory_limit(tmp_path):
    """``ulimit -v`` 1 GiB: a 4 GiB read buffer or a 3.6 TiB claim would end in MemoryError."""
    run = subprocess.run([sys.executable, "-m", "tests.engine.limited_child", str(LIMIT_MB),
                          "cases", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    results = [json.loads(line) for line in run.stdout.splitlines()]
    assert run.returncode == 0, run.stderr[-2000:]
    assert [r["name"] for r in results] == [c.name for c in CASES]
    crashes = [r for r in results if r["outcome"] == "crash"]
    assert not crashes, crashes
    for case, result in zip(CASES, results):
        assert result["outcome"] == ("error" if case.words else "ok"), (case.name, result)


def test_a_huge_label_makes_one_class_not_a_list_up_to_it(tmp_path):
    data = load_data(CASES[2].build(tmp_path), val_fraction=0)  # npz labels 0, 1, 10**12
    assert data.class_names == ["0", "1", "1000000000000"]
    assert set(np.unique(np.concatenate([data.train.y, data.test.y]))) == {0, 1, 2}
    idx = load_data(CASES[4].build(tmp_path))  # IDX labels 0, 1, 2**31-1
    assert idx.class_names == ["0", "1", "2147483647"] and idx.num_classes == 3


def test_more_distinct_labels_than_the_limit_is_refused(tmp_path):
    n = MAX_CLASSES + 1
    path = tmp_path / "many.npz"
    path.write_bytes(zip_of({"x.npy": npy_of(np.ones((n, 1), np.float32)),
                             "y.npy": npy_of(np.arange(n, dtype=np.int64) * 7)}))
    with pytest.raises(DataError, match=f"{n:,} distinct labels; a classification set has at most"):
        load_data(f"npz:{path}")


def test_error_messages_never_quote_the_file(tmp_path):
    secret = "root:x:0:0:hunter2"
    (tmp_path / "passwd.csv").write_text(f"1,2,0\n{secret},3,1\n")
    (tmp_path / "passwd.txt").write_bytes(secret.encode() + b"\xff\xfe")
    for spec in (f"csv:{tmp_path / 'passwd.csv'}", f"text:{tmp_path / 'passwd.txt'}",
                 f"npz:{tmp_path / 'passwd.csv'}", f"idx:{tmp_path}"):
        with pytest.raises(DataError) as err:
            load_data(spec)
        told = str(err.value).replace(str(tmp_path), "")
        assert "hunter2" not in told and "x:0:0" not in told


def test_a_data_set_with_too_few_samples_for_training_is_refused(tmp_path):
    path = tmp_path / "one.npz"
    path.write_bytes(zip_of({"x.npy": npy_of(np.ones((1, 2), np.float32)),
                             "y.npy": npy_of(np.zeros(1, np.int64))}))
    with pytest.raises(DataError, match="leave none for training"):
        load_data(f"npz:{path}", val_fraction=0.9)


def test_onnx_outputs_without_a_shape_pass_the_checker_and_constants_are_checked():
    from onnx import TensorProto, helper

    from layerloom.engine.export.onnx_import import OnnxImportError, graph_from_onnx

    def model(w) -> bytes:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)  # rank left out
        gemm = helper.make_node("Gemm", ["x", "fc.weight"], ["y"], transB=1)
        m = helper.make_model(helper.make_graph([gemm], "g", [x], [y], initializer=[w]),
                              opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        return m.SerializeToString()

    good = helper.make_tensor("fc.weight", TensorProto.FLOAT, [3, 2], [0.5] * 6)
    graph, params = graph_from_onnx(model(good))
    assert params["fc.weight"].shape == (3, 2)
    text = helper.make_tensor("fc.weight", TensorProto.STRING, [3, 2], [b"ab"] * 6)
    with pytest.raises(OnnxImportError, match="data type 8 is not a number type"):
        graph_from_onnx(model(text))
    outside = helper.make_tensor("fc.weight", TensorProto.FLOAT, [3, 2], [0.5] * 6)
    outside.data_location = TensorProto.EXTERNAL
    with pytest.raises(OnnxImportError, match="its data is in another file"):
        graph_from_onnx(model(outside))
