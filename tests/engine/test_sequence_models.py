"""Recurrent and Transformer models end to end: the samples learn, text generation, sequence data.

The training runs are short (a few epochs on the first 60 k characters of the bundled corpus) but
must beat a uniform guess over the vocabulary (ln V) clearly, and the encoder must solve its
synthetic task.
"""
import json
import math

import numpy as np
import pytest

from layerloom.engine.data import DataError, load_data
from layerloom.engine.data.sequences import load_sequence_task
from layerloom.engine.data.text import decode, encode, text_dataset
from layerloom.engine.network import Network
from layerloom.engine.paths import SAMPLES
from layerloom.engine.project import fit_graph_to_data, load_project
from layerloom.engine.registry import LAYERS
from layerloom.engine.sampling import SamplingError, generate
from layerloom.engine.spec import Ctx
from layerloom.engine.threads import engine_threads
from layerloom.engine.training import DoneReport, EpochReport, TrainConfig, train


SHORT_TEXT = "text?seq_len=64&chars=60000"  # the samples' corpus, cut to a test-sized epoch


def train_sample(name: str, epochs: int, spec: str | None = None):
    """Train a sample on its own data (or ``spec``) for ``epochs``; returns (net, dataset, epoch
    reports, done)."""
    project = load_project(SAMPLES / name)
    data = load_data(spec or project.data["spec"], seed=project.data.get("seed", 0))
    fit_graph_to_data(project.graph, data)
    config = TrainConfig.from_dict({**project.training, "epochs": epochs})
    net = Network(project.graph, seed=config.seed)
    with engine_threads():  # as the CLI and the GUI train: one thread pool at a time
        reports = list(train(net, data, config))
    epochs_seen = [r for r in reports if isinstance(r, EpochReport)]
    assert len(epochs_seen) == epochs and isinstance(reports[-1], DoneReport)
    return net, data, epochs_seen, reports[-1]


@pytest.fixture(scope="module")
def char_lstm():
    return train_sample("char_lstm.json", epochs=3, spec=SHORT_TEXT)


# ------------------------------------------------------------------------- samples learn
def test_char_lstm_validation_loss_falls_well_below_a_uniform_guess(char_lstm):
    _, data, epochs, _ = char_lstm
    uniform = math.log(data.num_classes)
    assert data.num_classes == 63  # the King James Bible's characters
    assert epochs[-1].val_loss < 0.7 * uniform, (epochs[-1].val_loss, uniform)
    assert epochs[-1].val_loss < epochs[0].val_loss


def test_tiny_gpt_validation_loss_falls_well_below_a_uniform_guess(tmp_path, capsys):
    """Through `layerloom train`, as the issue states it: the sample's own data is the bundled text."""
    from layerloom.engine import cli

    metrics = tmp_path / "gpt.json"
    argv = ["train", str(SAMPLES / "tiny_gpt.json"), "--epochs", "3", "--metrics-json", str(metrics),
            "--data", SHORT_TEXT]
    assert cli.main(argv) == 0, capsys.readouterr().err
    m = json.loads(metrics.read_text())
    assert m["data"].startswith("text") and m["dataset"]["classes"] == 63
    uniform = math.log(m["dataset"]["classes"])
    val = [e["val_loss"] for e in m["epochs"]]
    assert len(val) == 3 and val[-1] < 0.7 * uniform and val[-1] < val[0], (val, uniform)


def test_sequence_classifier_solves_its_synthetic_task():
    _, data, _, done = train_sample("seq_classifier.json", epochs=4)
    assert data.name == "seq:sorted" and len(data.test) >= 500
    assert done.test_accuracy >= 0.95, done.test_accuracy


def test_causal_models_ignore_the_padding_after_the_prompt():
    """What generation relies on: a position's scores never read later positions."""
    for name in ("tiny_gpt.json", "char_lstm.json"):
        net = Network(load_project(SAMPLES / name).graph, seed=1)
        rng = np.random.default_rng(0)
        x = rng.integers(0, 63, size=(2, 64))
        y = np.zeros((2, 64), dtype=np.int64)
        before = net.forward({"tokens": x, "next_char": y})["logits"].copy()
        x[:, 40:] = rng.integers(0, 63, size=(2, 24))
        after = net.forward({"tokens": x, "next_char": y})["logits"]
        np.testing.assert_allclose(after[:, :40], before[:, :40], rtol=1e-5, atol=1e-6)
        assert not np.allclose(after[:, 40:], before[:, 40:])


# ---------------------------------------------------------------------------- generation
def test_generation_has_the_requested_length_and_repeats_with_its_seed(char_lstm):
    net, data, _, _ = char_lstm
    vocab = data.class_names
    a = generate(net, vocab, "Return the ", 50, temperature=1.0, seed=3)
    assert len(a) == 50 and set(a) <= set(vocab)
    assert generate(net, vocab, "Return the ", 50, temperature=1.0, seed=3) == a
    assert generate(net, vocab, "Return the ", 50, temperature=1.0, seed=4) != a
    greedy = generate(net, vocab, "Return the ", 20, temperature=0, seed=1)
    assert generate(net, vocab, "Return the ", 20, temperature=0, seed=2) == greedy
    long_prompt = "x" * 100 + "The "  # longer than the 64-step context: the tail is used
    assert len(generate(net, vocab, long_prompt, 5, seed=0)) == 5


def test_generation_refuses_what_it_cannot_continue(char_lstm):
    net, data, _, _ = char_lstm
    with pytest.raises(SamplingError, match="not in the vocabulary"):
        generate(net, data.class_names, "caf\u00e9", 5)
    with pytest.raises(SamplingError, match="empty"):
        generate(net, data.class_names, "", 5)
    with pytest.raises(SamplingError, match="temperature"):
        generate(net, data.class_names, "a", 5, temperature=-1)
    with pytest.raises(SamplingError, match="vocabulary has 3"):
        generate(net, ["a", "b", "c"], "ab", 5)


def test_generate_command_prints_the_prompt_and_its_continuation(char_lstm, tmp_path, capsys):
    from layerloom.engine import cli

    net, _, _, _ = char_lstm
    weights = tmp_path / "lstm.npz"
    net.save_weights(weights)
    parser = cli.build_parser()  # `layerloom generate` as the console entry point parses it
    argv = ["generate", str(SAMPLES / "char_lstm.json"), "--weights", str(weights),
            "--prompt", "import ", "--length", "30", "--seed", "5"]
    args = parser.parse_args(argv)
    assert args.run(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("import ") and len(first) == len("import ") + 30 + 1
    args.run(parser.parse_args(argv))
    assert capsys.readouterr().out == first
    with pytest.raises(SystemExit):
        parser.parse_args(argv + ["--temperature", "-2"])
    assert cli.main(argv[:-2] + ["--prompt", "\u20ac"]) == 1  # a one-line error, not a traceback
    assert "not in the vocabulary" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- data
def test_text_windows_predict_the_next_character():
    text = "the quick brown fox jumps over the lazy dog. " * 20
    data = text_dataset(text, "fox", val_fraction=0.1, seed=0, seq_len=16)
    assert data.class_names == sorted(set(text)) and data.train.x.dtype == np.int64
    x, y = data.train.x, data.train.y
    assert x.shape[1:] == y.shape[1:] == (16,)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x, y):
        window = decode(row_x, data.class_names) + decode(row_y[-1:], data.class_names)
        assert window in text
    assert len(data.train) + len(data.val) + len(data.test) == (len(text) - 1) // 16
    np.testing.assert_array_equal(decode(encode("fox", data.class_names), data.class_names), "fox")


def test_text_specs_and_their_errors(tmp_path):
    assert load_data("text?seq_len=32").sample_shape == (32,)
    f = tmp_path / "poem.txt"
    f.write_text("Roses are red,\r\nviolets are blue.\n" * 40, encoding="utf-8")
    data = load_data(f"text:{f}?seq_len=20")
    assert "\r" not in data.class_names and data.name == "text:poem.txt"
    (tmp_path / "bad.txt").write_bytes(b"abc\xff\xfe" * 100)
    with pytest.raises(DataError, match="not UTF-8"):
        load_data(f"text:{tmp_path / 'bad.txt'}")
    with pytest.raises(DataError, match="fewer than"):
        load_data(f"text:{f}?seq_len=1000")
    with pytest.raises(DataError, match="no such file"):
        load_data(f"text:{tmp_path / 'missing.txt'}")


def test_sequence_tasks_have_the_stated_answers():
    copy = load_sequence_task("copy", n=200, length=6, delay=2)
    np.testing.assert_array_equal(copy.train.y[:, 2:], copy.train.x[:, :4])
    assert not copy.train.y[:, :2].any() and copy.train.x.min() >= 1
    rev = load_sequence_task("reverse", n=200)
    np.testing.assert_array_equal(rev.train.y, rev.train.x[:, ::-1])
    srt = load_sequence_task("sort", n=200)
    np.testing.assert_array_equal(srt.train.y, np.sort(srt.train.x, axis=1))
    par = load_sequence_task("parity", n=200, length=5)
    assert set(np.unique(par.train.x)) <= {0, 1}
    np.testing.assert_array_equal(par.train.y, par.train.x.sum(axis=1) % 2)
    cls = load_data("seq:sorted?n=400")
    x = np.concatenate([cls.train.x, cls.val.x, cls.test.x])
    y = np.concatenate([cls.train.y, cls.val.y, cls.test.y])
    np.testing.assert_array_equal(y, np.all(np.diff(x, axis=1) >= 0, axis=1))
    assert y.sum() == 200 and cls.class_names == ["unsorted", "sorted"]
    with pytest.raises(DataError, match="unknown sequence task"):
        load_data("seq:shuffle")
    with pytest.raises(DataError, match="delay"):
        load_data("seq:copy?length=4&delay=4")


# ------------------------------------------------------------------------ layer behaviour
def test_attention_dropout_is_differentiable_and_off_in_inference():
    cls = LAYERS["MultiHeadSelfAttention"]
    a = cls.validate_attrs({"embed_dim": 4, "num_heads": 2, "dropout": 0.5, "causal": True})
    a0 = cls.validate_attrs({"embed_dim": 4, "num_heads": 2, "dropout": 0.0, "causal": True})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 4))
    p = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in cls.init(a, ((None, 5, 4),), rng).items()}

    def run(x_, training, attrs=a):
        ctx = Ctx(training, np.random.default_rng(9), (True,))
        return cls.forward(attrs, p, ctx, x_), ctx

    np.testing.assert_array_equal(run(x, False)[0], run(x, False, a0)[0])
    y, ctx = run(x, True)
    assert not np.allclose(y, run(x, True, a0)[0])
    dy = rng.standard_normal(y.shape)
    (dx,), _ = cls.backward(a, p, ctx, dy)
    for idx in [(0, 1, 2), (1, 4, 0), (1, 0, 3)]:
        hi, lo = x.copy(), x.copy()
        hi[idx] += 1e-6
        lo[idx] -= 1e-6
        numeric = ((run(hi, True)[0] - run(lo, True)[0]) * dy).sum() / 2e-6
        assert np.isclose(dx[idx], numeric, rtol=1e-5, atol=1e-8)


def test_batch_norm_infers_with_the_statistics_it_gathered():
    torch = pytest.importorskip("torch")
    cls = LAYERS["BatchNorm2d"]
    a = cls.validate_attrs({"momentum": 0.2})
    rng = np.random.default_rng(0)
    p = cls.init(a, ((None, 3, 4, 4),), rng)
    module = torch.nn.BatchNorm2d(3, momentum=0.2).double()
    for _ in range(3):
        x = 2.0 + 3.0 * rng.standard_normal((5, 3, 4, 4))
        cls.forward(a, p, Ctx(True), x)
        module(torch.tensor(x))
    np.testing.assert_allclose(p["running_var"], module.running_var.numpy(), rtol=1e-12)
    module.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(cls.forward(a, p, Ctx(False), x),
                               module(torch.tensor(x)).detach().numpy(), rtol=1e-10)


def test_buffers_change_in_training_but_are_never_trained():
    from layerloom.engine.graph import Graph, Node

    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [3]}))
    g.add_node(Node("bn", "BatchNorm1d", {}))
    g.add_node(Node("fc", "Dense", {"out_features": 2}))
    g.add_node(Node("t", "Label", {"kind": "values", "shape": [2]}))
    g.add_node(Node("loss", "MSELoss", {}))
    for src, dst in [(("x", "y"), ("bn", "x")), (("bn", "y"), ("fc", "x")),
                     (("fc", "y"), ("loss", "input")), (("t", "y"), ("loss", "target"))]:
        g.connect(src, dst)
    net = Network(g)
    assert "bn.running_mean" in net.params and "bn.running_mean" not in net.trainable_keys
    feeds = {"x": np.full((4, 3), 5.0) + np.arange(4)[:, None], "t": np.zeros((4, 2))}
    net.forward(feeds, training=False)
    assert not net.params["bn.running_mean"].any()
    net.forward(feeds, training=True)
    np.testing.assert_allclose(net.params["bn.running_mean"], 0.1 * 6.5)
    assert set(net.backward()) == {"bn.weight", "bn.bias", "fc.weight", "fc.bias"}
