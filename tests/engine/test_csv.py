"""CSV tables done right: named columns, a chosen target, categorical and numeric columns fitted on
the training split only, missing values counted and filled by a rule, the stored preprocessing."""
import numpy as np
import pytest

from layerloom.engine.data import DataError, load_data
from layerloom.engine.data.csv import load_csv
from layerloom.engine.data.table import TablePrep


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text


def houses(tmp_path, n=60, missing=True):
    """size (numeric), colour (text), zone (codes), id, price (target); some cells missing."""
    rng = np.random.default_rng(0)
    lines = ["id,size,colour,zone,price"]
    for i in range(n):
        size = f"{rng.uniform(50, 150):.1f}" if not (missing and i % 10 == 3) else "NA"
        colour = ["red", "blue", "green"][i % 3] if not (missing and i % 15 == 4) else ""
        zone = str([10115, 20095][i % 2])
        price = f"{1000 + 3.7 * i:.2f}" if not (missing and i == 7) else "?"
        lines.append(f"{i},{size},{colour},{zone},{price}")
    path = tmp_path / "houses.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_header_target_categorical_and_ignored_columns(tmp_path):
    path = houses(tmp_path)
    data = load_data(f"csv:{path}?target=price&categorical=zone&ignore=id&val_fraction=0.2")
    prep = TablePrep.from_dict(data.preprocessing)
    assert data.task == "regression" and data.target_shape == (1,)
    assert prep.target == "price" and [c.name for c in prep.features] == ["size", "colour", "zone"]
    assert prep.feature_names == ["size", "colour=(missing)", "colour=blue", "colour=green",
                                  "colour=red", "zone=10115", "zone=20095"]
    assert data.sample_shape == (7,) and len(data.train) + len(data.val) + len(data.test) == 59
    onehot = data.train.x[:, 1:]
    assert set(np.unique(onehot)) == {0.0, 1.0} and (onehot[:, :4].sum(1) == 1).all()
    assert "one-hot: colour, zone" in data.description and "1 row left out" in data.description


def test_numeric_columns_are_standardised_with_the_training_split_only(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,y\n" + "".join(f"{v},{v % 2}\n" for v in range(100)))
    data = load_csv(path, 0.2, 0, test_fraction=0.2)
    train = data.train.x[:, 0]
    assert abs(train.mean()) < 1e-5 and abs(train.std() - 1) < 1e-5
    prep = TablePrep.from_dict(data.preprocessing)
    raw_val = data.val.x[:, 0] * prep.features[0].std + prep.features[0].mean
    assert abs(data.val.x[:, 0].mean()) > 1e-3 or abs(data.val.x[:, 0].std() - 1) > 1e-3
    assert np.allclose(raw_val, np.round(raw_val), atol=1e-3)  # the same numbers, rescaled


@pytest.mark.parametrize("fill", ["mean", "median", "zero", "drop"])
def test_missing_values_are_counted_per_column_and_filled_by_the_rule(tmp_path, fill):
    path = houses(tmp_path)
    data = load_csv(path, 0.0, 0, test_fraction=0.0, fill=fill, ignore="id")
    assert "missing values: size 6, colour 4, price 1" in data.description
    prep = TablePrep.from_dict(data.preprocessing)
    size = prep.features[0]
    raw = [float(r.split(",")[1]) for r in path.read_text().splitlines()[1:]
           if r.split(",")[1] != "NA" and r.split(",")[4] != "?"]
    expected = {"mean": np.mean(raw), "median": np.median(raw), "zero": 0.0, "drop": 0.0}[fill]
    assert size.fill == pytest.approx(expected)
    assert len(data.train) == (59 - 10 if fill == "drop" else 59)  # 6 + 4 rows with a gap
    if fill != "drop":
        filled = data.train.x[:, 0] * size.std + size.mean
        assert np.isclose(filled, expected, atol=1e-3).sum() >= 6


def test_text_targets_make_named_classes_and_codes_stay_classes(tmp_path):
    path = tmp_path / "iris.csv"
    rows = [f"{i * 0.1:.1f},{['setosa', 'versicolor'][i % 2]}" for i in range(30)]
    path.write_text("length,species\n" + "\n".join(rows))
    data = load_csv(path, 0.0, 0)
    assert data.task == "classification" and data.class_names == ["setosa", "versicolor"]
    with pytest.raises(DataError) as err:
        load_csv(path, task="regression")
    assert "regression needs numbers" in one_line(err)


def test_the_stored_preprocessing_prepares_new_rows_like_training_rows(tmp_path):
    path = houses(tmp_path, missing=False)
    data = load_csv(path, 0.0, 0, test_fraction=0.0, ignore="id", categorical="zone")
    prep = TablePrep.from_dict(data.preprocessing)
    assert TablePrep.from_dict(prep.to_dict()) == prep
    header, *rows = [line.split(",") for line in path.read_text().splitlines()]
    x = prep.transform(header, rows, "rows")  # every row of the file, as a person would pass it
    assert {tuple(r) for r in np.round(x, 5)} == {tuple(r) for r in np.round(data.train.x, 5)}
    unseen = prep.transform(header, [["0", "99", "purple", "99999", "0"]], "new row")
    assert unseen[0, 1:].sum() == 0  # a colour or zone never seen in training: all zeros
    with pytest.raises(DataError) as err:
        prep.transform(["id", "size"], rows, "new.csv")
    assert "no column 'colour'" in one_line(err)


@pytest.mark.parametrize("options, words", [
    ({"target": "cost"}, "target names no column 'cost'"),
    ({"categorical": "size,shape"}, "categorical names no column 'shape'"),
    ({"fill": "guess"}, "fill must be one of mean, median, zero, drop"),
    ({"header": "maybe"}, "header must be true or false"),
])
def test_bad_table_options_are_one_line_errors(tmp_path, options, words):
    with pytest.raises(DataError) as err:
        load_csv(houses(tmp_path), **options)
    assert words in one_line(err)


def test_ids_and_free_text_are_refused_as_categories_and_duplicate_names_too(tmp_path):
    path = tmp_path / "ids.csv"
    path.write_text("name,y\n" + "".join(f"user{i},{i % 2}\n" for i in range(1200)))
    with pytest.raises(DataError) as err:
        load_csv(path, 0.0, 0, test_fraction=0.0)
    assert "ignore=name" in one_line(err)
    (tmp_path / "dup.csv").write_text("a,a,y\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError) as err:
        load_csv(tmp_path / "dup.csv")
    assert "two columns share a name" in one_line(err)


def test_a_table_of_only_text_has_a_header_and_a_numeric_one_may_not(tmp_path):
    (tmp_path / "t.csv").write_text("colour,size,kind\n" + "red,big,a\nblue,small,b\n" * 10)
    data = load_csv(tmp_path / "t.csv", 0.0, 0, test_fraction=0.0)
    assert data.class_names == ["a", "b"] and data.sample_shape == (4,)
    (tmp_path / "n.csv").write_text("".join(f"{i},{i * 2 + 100},{i % 2 + 7}\n" for i in range(10)))
    plain = load_csv(tmp_path / "n.csv", 0.0, 0, test_fraction=0.0)
    assert TablePrep.from_dict(plain.preprocessing).columns == ("column 1", "column 2", "column 3")
    forced = load_csv(tmp_path / "n.csv", 0.0, 0, test_fraction=0.0, header=True)
    assert len(forced.train) == 9


def test_a_regression_run_ends_with_its_test_predictions_against_the_truth(tmp_path):
    from layerloom.engine.graph import Graph, Node
    from layerloom.engine.network import Network
    from layerloom.engine.project import fit_graph_to_data
    from layerloom.engine.training import DoneReport, RegressionFit, TrainConfig, train

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(size=300)
    colour = np.where(rng.random(300) < 0.5, "red", "blue")
    y = 2 * a - b + (colour == "red") * 1.5 + rng.normal(0, 0.05, 300)
    path = tmp_path / "lin.csv"
    path.write_text("a,b,colour,y\n" + "".join(f"{p:.4f},{q:.4f},{c},{t:.4f}\n"
                                               for p, q, c, t in zip(a, b, colour, y)))
    data = load_csv(path, 0.1, 0)
    g = Graph()
    for node in [Node("x", "Input", {}), Node("fc", "Dense", {"out_features": 1}),
                 Node("t", "Label", {}), Node("loss", "MSELoss", {})]:
        g.add_node(node)
    for src, dst in [(("x", "y"), ("fc", "x")), (("fc", "y"), ("loss", "input")),
                     (("t", "y"), ("loss", "target"))]:
        g.connect(src, dst)
    fit_graph_to_data(g, data)
    done = list(train(Network(g, seed=0), data, TrainConfig(lr=0.05, epochs=30, batch_size=32)))[-1]
    assert isinstance(done, DoneReport) and done.confusion is None
    fit = done.regression
    assert isinstance(fit, RegressionFit) and fit.true.shape == fit.predicted.shape == (60, 1)
    np.testing.assert_array_equal(fit.true, data.test.y)
    assert fit.r2 > 0.99 and fit.mse == pytest.approx(done.test_loss, rel=1e-4)


def test_whole_numbers_are_classes_only_when_each_comes_back_a_few_times(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("area,price\n" + "".join(f"{i},{100000 + 900 * i}\n" for i in range(200)))
    assert load_csv(path).task == "regression"  # 200 different prices: values, not classes
    path.write_text("x,grade\n" + "".join(f"{i},{i % 12}\n" for i in range(40)))
    assert load_csv(path).task == "classification"
