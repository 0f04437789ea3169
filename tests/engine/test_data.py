"""Data readers: IDX (validated, gz or raw by magic), npz, csv, synthetic sets, the bundled subset."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from layerloom.engine.data import DataError, load_data, parse_spec, split_order
from layerloom.engine.data.bundled import BUNDLED_DIR, load_bundled, stratified_indices
from layerloom.engine.data.csv import load_csv
from layerloom.engine.data.idx import FASHION_CLASSES, encode_idx, load_idx_dir, read_idx, write_idx
from layerloom.engine.data.loader import BatchLoader
from layerloom.engine.data.npz import load_npz
from layerloom.engine.data.synthetic import GENERATORS


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text


def mnist_folder(folder: Path, n_train=50, n_test=20, classes=10, gz=True, names="lecun") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 6, 5), dtype=np.uint8)
        labels = (np.arange(n) % classes).astype(np.uint8)
        for kind, ndim, arr in (("images", 3, images), ("labels", 1, labels)):
            sep = "-" if names == "lecun" else "."
            write_idx(folder / f"{stem}-{kind}{sep}idx{ndim}-ubyte{'.gz' if gz else ''}", arr)
    return folder


# ------------------------------------------------------------------------------------ IDX
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trips_every_type_and_gives_writable_native_arrays(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    write_idx(tmp_path / "a.idx", arr)
    back = read_idx(tmp_path / "a.idx")
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] = 1  # np.frombuffer would be read-only


def test_gzip_is_recognised_by_magic_bytes_not_by_name(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_idx(tmp_path / "compressed.raw", arr, compress=True)
    write_idx(tmp_path / "plain.gz", arr, compress=False)
    assert (tmp_path / "compressed.raw").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed.raw"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), arr)


def test_idx_header_matches_lecuns_layout():
    raw = encode_idx(np.zeros((2, 3), dtype=np.uint8))
    assert raw[:4] == bytes([0, 0, 0x08, 2]) and raw[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert len(raw) == 12 + 6


@pytest.mark.parametrize("mangle, words", [
    (lambda b: b[:-1], "truncated"),
    (lambda b: b[:10], "truncated header"),
    (lambda b: b[:3], "too short"),
    (lambda b: b + b"\0", "unexpected bytes"),
    (lambda b: b"\x01" + b[1:], "not an IDX file"),
    (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX type"),
    (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
    (lambda b: gzip.compress(b)[:-9], "gzip"),
])
def test_corrupt_idx_files_give_one_line_naming_the_file(tmp_path, mangle, words):
    good = encode_idx(np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(mangle(good))
    with pytest.raises(DataError) as err:
        read_idx(path)
    assert str(path) in one_line(err) and words in str(err.value)


def test_missing_idx_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_idx(tmp_path / "nope")


def test_idx_folder_loads_into_splits_with_digit_names(tmp_path):
    data = load_idx_dir(mnist_folder(tmp_path / "digits"), val_fraction=0.2, seed=1)
    assert data.train.x.shape == (40, 1, 6, 5) and data.val.x.shape == (10, 1, 6, 5)
    assert data.test.x.shape == (20, 1, 6, 5) and data.test.y.dtype == np.int64
    x = np.asarray(data.train.x)
    assert data.train.x.dtype == x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert data.class_names == [str(i) for i in range(10)] and data.task == "classification"


def test_idx_pixels_stay_uint8_and_batches_equal_the_whole_split_made_float(tmp_path):
    folder = mnist_folder(tmp_path / "digits")
    data = load_idx_dir(folder, val_fraction=0.2, seed=1)
    pixels = read_idx(folder / "train-images-idx3-ubyte.gz")[:, None]
    keep, hold = split_order(len(pixels), 0.2, 1)  # split_off's order
    for split, rows in ((data.train, keep), (data.val, hold)):
        assert split.x.store.pixels.dtype == np.uint8 and split.x.in_memory
        np.testing.assert_array_equal(np.asarray(split.x),
                                      np.divide(pixels[rows], np.float32(255), dtype=np.float32))
    order = np.random.default_rng(3).permutation(len(data.train))
    with BatchLoader(data.train, order, 16) as loader:
        assert not loader.background  # a gather from memory needs no thread
        got = np.concatenate([b.x for b in loader])
    np.testing.assert_array_equal(got, np.asarray(data.train.x)[order])


def test_idx_images_stored_as_floats_load_as_float_arrays(tmp_path):
    folder = tmp_path / "floats"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, n in (("train", 30), ("t10k", 10)):
        write_idx(folder / f"{stem}-images-idx3-ubyte", rng.random((n, 6, 5), np.float32))
        write_idx(folder / f"{stem}-labels-idx1-ubyte", (np.arange(n) % 3).astype(np.uint8))
    data = load_idx_dir(folder)
    assert all(type(s.x) is np.ndarray and s.x.dtype == np.float32
               for s in (data.train, data.val, data.test))
    assert (len(data.train), len(data.val), len(data.test)) == (27, 3, 10)


def test_idx_folder_accepts_raw_files_and_the_dotted_naming(tmp_path):
    data = load_idx_dir(mnist_folder(tmp_path / "d", gz=False, names="dotted"))
    assert len(data.test) == 20


def test_class_names_come_from_classes_txt_then_fashion_folder_name(tmp_path):
    folder = mnist_folder(tmp_path / "fashion_things", classes=3)
    assert load_idx_dir(folder).class_names == FASHION_CLASSES
    (folder / "classes.txt").write_text("cat\ndog\nbird\n")
    assert load_idx_dir(folder).class_names == ["cat", "dog", "bird"]
    (folder / "classes.txt").write_text("cat\n")
    with pytest.raises(DataError, match="lists 1 class names"):
        load_idx_dir(folder)


def test_idx_folder_with_mismatched_counts_or_missing_files_is_refused(tmp_path):
    folder = mnist_folder(tmp_path / "m")
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(19, dtype=np.uint8))
    with pytest.raises(DataError) as err:
        load_idx_dir(folder)
    assert "20 images but" in one_line(err) and "19 labels" in str(err.value)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte.gz"):
        load_idx_dir(folder)
    with pytest.raises(DataError, match="no such folder"):
        load_idx_dir(tmp_path / "absent")


# ------------------------------------------------------------------------------------ npz
def test_npz_with_train_and_test_arrays_and_class_names(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.integers(0, 256, (30, 8, 8), dtype=np.uint8),
             y_train=np.arange(30) % 3, x_test=rng.integers(0, 256, (6, 8, 8), dtype=np.uint8),
             y_test=np.arange(6) % 3, class_names=np.array(["a", "b", "c"]))
    data = load_npz(tmp_path / "d.npz", val_fraction=0.1)
    assert data.train.x.shape == (27, 1, 8, 8) and data.test.x.shape == (6, 1, 8, 8)
    assert data.train.x.max() <= 1 and data.class_names == ["a", "b", "c"]


def test_npz_with_x_and_y_holds_out_test_and_reads_float_targets_as_regression(tmp_path):
    np.savez(tmp_path / "r.npz", x=np.ones((50, 4)), y=np.linspace(0, 1, 50))
    data = load_data(f"npz:{tmp_path / 'r.npz'}")
    assert data.task == "regression" and data.train.y.shape[1:] == (1,)
    assert len(data.train) + len(data.val) + len(data.test) == 50 and len(data.test) == 10


@pytest.mark.parametrize("arrays, words", [
    ({"a": np.ones(3)}, "expected arrays x and y"),
    ({"x": np.ones((4, 2)), "y": np.ones(3, dtype=int)}, "4 samples but y has 3"),
    ({"x": np.array([object(), 1], dtype=object), "y": np.ones(2, dtype=int)}, "allow_pickle=False"),
    ({"x_train": np.ones((4, 2)), "y_train": np.zeros(4, int), "x_test": np.ones((2, 2))},
     "only one of x_test"),
])
def test_bad_npz_archives_are_refused_in_one_line(tmp_path, arrays, words):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as err:
        load_npz(tmp_path / "bad.npz")
    assert words in one_line(err)


def test_npz_that_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError) as err:
        load_npz(tmp_path / "junk.npz")
    assert "junk.npz" in one_line(err)


# ------------------------------------------------------------------------------------ csv
def test_csv_with_header_and_integer_labels_is_classification(tmp_path):
    rows = "\n".join(f"{i * 0.1},{i % 4},{i % 3}" for i in range(60))
    (tmp_path / "c.csv").write_text("a,b,label\n" + rows + "\n")
    data = load_csv(tmp_path / "c.csv")
    assert data.task == "classification" and data.class_names == ["0", "1", "2"]
    assert data.train.x.shape[1:] == (2,) and data.train.y.dtype == np.int64
    assert "label" in data.description


def test_csv_without_header_and_real_targets_is_regression(tmp_path):
    (tmp_path / "r.csv").write_text("".join(f"{i};{i * 0.5 + 0.25}\n" for i in range(40)))
    data = load_data(f"csv:{tmp_path / 'r.csv'}")
    assert data.task == "regression" and data.train.y.dtype == np.float32
    assert data.train.y.shape[1:] == (1,) and data.num_classes == 0


def test_csv_negative_integer_labels_become_sorted_classes(tmp_path):
    (tmp_path / "s.csv").write_text("".join(f"{i},{1 if i % 2 else -1}\n" for i in range(20)))
    data = load_csv(tmp_path / "s.csv", val_fraction=0)
    assert data.class_names == ["-1", "1"] and set(np.unique(data.train.y)) == {0, 1}


@pytest.mark.parametrize("text, words", [
    ("1,2,0\n3,x,1\n", "line 2, column 2: not a number"),
    ("1,2,0\n3,4\n", "line 2: has 2 columns, expected 3"),
    ("1\n2\n", "at least two columns"),
    ("a,b\n", "no data rows under the header"),
    ("1,inf,0\n", "line 1, column 2: an infinite value"),
])
def test_bad_csv_names_the_line(tmp_path, text, words):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError) as err:
        load_csv(tmp_path / "bad.csv")
    assert words in one_line(err)


# ------------------------------------------------------------------------------ synthetic
@pytest.mark.parametrize("name, classes", [("spirals", 3), ("moons", 2), ("circles", 2), ("xor", 2)])
def test_synthetic_sets_are_2d_balanced_and_seeded(name, classes):
    data = load_data(name)
    total = len(data.train) + len(data.val) + len(data.test)
    assert total == 1000 and data.sample_shape == (2,) and data.num_classes == classes
    y = np.concatenate([data.train.y, data.val.y, data.test.y])
    counts = np.bincount(y)
    assert len(counts) == classes and counts.min() > 0.35 * 1000 / classes
    x, _ = GENERATORS[name](n=200, seed=5)
    x2, _ = GENERATORS[name](n=200, seed=5)
    x3, _ = GENERATORS[name](n=200, seed=6)
    assert np.array_equal(x, x2) and not np.array_equal(x, x3)


def test_more_noise_spreads_the_points():
    clean, _ = GENERATORS["circles"](n=400, noise=0.0)
    assert np.allclose(np.sort(np.hypot(*clean.T))[[0, -1]], [0.5, 1.0], atol=1e-6)
    noisy, _ = GENERATORS["circles"](n=400, noise=0.3)
    assert np.hypot(*noisy.T).max() > 1.2


def test_spec_options_are_parsed_into_typed_values():
    assert parse_spec("spirals?n=500&noise=0.2") == ("spirals", None, {"n": 500, "noise": 0.2})
    assert parse_spec("idx:/data/x") == ("idx", "/data/x", {})
    data = load_data("spirals?n=300&classes=4&seed=2")
    assert len(data.train) + len(data.val) + len(data.test) == 300 and data.num_classes == 4


@pytest.mark.parametrize("spec, words", [
    ("imagenet", "use one of bundled, idx:DIR, folder:DIR, npz:FILE, csv:FILE, text:FILE, seq:TASK"),
    ("idx:", "give a path"),
    ("spirals?n", "options must look like"),
    ("spirals?depth=3", "unknown option 'depth'"),
    ("spirals?n=-5", "n must be an integer"),
    ("moons?noise=loud", "noise must be a number"),
    ("", "empty data spec"),
])
def test_bad_specs_say_what_is_accepted(spec, words):
    with pytest.raises(DataError) as err:
        load_data(spec)
    assert words in one_line(err)


# ------------------------------------------------------------------------------------ bundled
def test_bundled_set_is_a_small_stratified_fashion_mnist_subset_with_its_licence():
    data = load_bundled()
    assert data.sample_shape == (1, 28, 28) and data.class_names == FASHION_CLASSES
    train_counts = np.bincount(np.concatenate([data.train.y, data.val.y]), minlength=10)
    assert train_counts.tolist() == [600] * 10
    assert np.bincount(data.test.y, minlength=10).tolist() == [100] * 10
    assert 0.2 < np.asarray(data.train.x).mean() < 0.4  # real clothing images, not noise
    size = sum(p.stat().st_size for p in BUNDLED_DIR.iterdir())
    assert size < 4 * 2**20
    licence = (BUNDLED_DIR / "LICENSE").read_text()
    assert "MIT" in licence and "Zalando SE" in licence and "2017" in licence


def test_stratified_indices_take_the_same_count_of_every_class():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    idx = stratified_indices(labels, 5, np.random.default_rng(0))
    assert np.bincount(labels[idx]).tolist() == [5, 5, 5, 5] and np.all(np.diff(idx) > 0)
    with pytest.raises(DataError, match="only 10"):
        stratified_indices(labels, 11, np.random.default_rng(0))


# ------------------------------------------------------------------------ fitting a graph
def test_fitting_sets_input_shape_and_label_kind_from_the_data():
    from layerloom.engine.project import check_fit, fit_graph_to_data, planned_fit

    from .test_graph import mlp

    graph, data = mlp(), load_data("spirals")
    assert planned_fit(graph, data) == [("x", "shape", (4,), (2,))]
    assert fit_graph_to_data(graph, data) == ["Input 'x': shape 4 -> 2"]
    assert graph.nodes["x"].attrs["shape"] == (2,) and fit_graph_to_data(graph, data) == []
    check_fit(graph, data)  # 3 class scores for 3 classes
    with pytest.raises(DataError, match="'fc2' gives 3 class scores but data 'spirals' has 4"):
        check_fit(graph, load_data("spirals?classes=4"))


def test_fitting_regression_data_switches_the_label_to_values(tmp_path):
    from layerloom.engine.project import check_fit, fit_graph_to_data

    from .test_graph import mlp

    (tmp_path / "r.csv").write_text("".join(f"{i},{i * 0.5},{i * 0.25 + 0.1}\n" for i in range(30)))
    graph = mlp()
    changes = fit_graph_to_data(graph, load_csv(tmp_path / "r.csv"))
    assert "Label 't': kind class index -> values" in changes
    assert graph.nodes["t"].attrs["shape"] == (1,)
    with pytest.raises(DataError, match="cannot take: CrossEntropyLoss 'loss'"):
        check_fit(graph, load_csv(tmp_path / "r.csv"))
