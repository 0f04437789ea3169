"""Augmentation: each transform does what it says (the warp against PyTorch's grid_sample), it is
seeded, and training sees it while validation, test and predictions never do."""
import numpy as np
import pytest

from layerloom.engine.data import DataError, Dataset, Split
from layerloom.engine.data.augment import SETTINGS, Augmentation, rotate_shift
from layerloom.engine.data.section import adopt
from layerloom.engine.graph import Graph
from layerloom.engine.network import Network
from layerloom.engine.training import StepReport, TrainConfig, train

torch = pytest.importorskip("torch")


def images(n=6, c=3, h=12, w=10, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, c, h, w), dtype=np.float32)


def test_settings_round_trip_and_bad_values_are_one_line_errors():
    aug = Augmentation.from_dict({"flip": True, "crop_padding": 2, "rotation": 10})
    assert aug.active and Augmentation.from_dict(aug.to_dict()) == aug
    assert aug.to_dict() == {"crop_padding": 2, "flip": True, "rotation": 10.0}
    assert not Augmentation.from_dict(None).active and Augmentation().to_dict() == {}
    for bad, words in [({"flip": 1}, "flip: must be true or false"),
                       ({"crop_padding": 2.5}, "crop_padding: must be a int from 0 to 16"),
                       ({"rotation": 90}, "rotation: must be a float from 0.0 to 45.0"),
                       ({"zoom": 2}, "unknown setting 'zoom'"), ([], "must be an object")]:
        with pytest.raises(DataError) as err:
            Augmentation.from_dict(bad, "g.json: data.augment")
        assert words in str(err.value) and "\n" not in str(err.value)
    assert set(SETTINGS) == set(Augmentation.__dataclass_fields__)


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    aug = Augmentation(crop_padding=2, flip=True, rotation=10, shift=0.1, brightness=0.3,
                       contrast=0.3, cutout=4)
    x = images()
    a = aug.apply(x, np.random.default_rng(5))
    b = aug.apply(x, np.random.default_rng(5))
    c = aug.apply(x, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.array_equal(x, images())  # the input is left alone
    assert 0 <= a.min() and a.max() <= 1  # jittered images stay images


def test_flip_mirrors_about_half_the_images_left_to_right():
    x = images(n=200, c=1, h=4, w=4)
    out = Augmentation(flip=True).apply(x, np.random.default_rng(0))
    same = [np.array_equal(o, i) for o, i in zip(out, x)]
    mirrored = [np.array_equal(o, i[:, :, ::-1]) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 70 < sum(mirrored) < 130


def test_crop_with_padding_is_a_shifted_window_with_fill_in_the_gap():
    x = images(n=40, c=2, h=6, w=5)
    fill = np.array([0.25, 0.75], np.float32)
    out = Augmentation(crop_padding=2).apply(x, np.random.default_rng(1), fill=fill)
    padded = np.empty((40, 2, 10, 9), np.float32)
    padded[...] = fill.reshape(1, 2, 1, 1)
    padded[:, :, 2:8, 2:7] = x
    shifts = set()
    for n in range(40):
        found = [(dy, dx) for dy in range(5) for dx in range(5)
                 if np.array_equal(out[n], padded[n, :, dy:dy + 6, dx:dx + 5])]
        assert found, f"image {n} is not a window of the padded image"
        shifts.add(found[0])
    assert len(shifts) > 5


def test_rotation_and_shift_match_torch_grid_sample():
    """Same warp as affine_grid + grid_sample (bilinear, zeros outside, align_corners=True)."""
    x = images(n=5, c=2, h=9, w=9)
    out = rotate_shift(x, 30.0, 0.2, np.random.default_rng(7), np.zeros(2, np.float32))
    rng = np.random.default_rng(7)  # the same draws, in the same order
    angle = np.deg2rad(rng.uniform(-30.0, 30.0, 5))
    ty, tx = rng.uniform(-0.2, 0.2, 5) * 9, rng.uniform(-0.2, 0.2, 5) * 9
    c, s, half = np.cos(angle), np.sin(angle), 4.0
    theta = np.stack([np.stack([c, s, -(c * tx + s * ty) / half], 1),
                      np.stack([-s, c, (s * tx - c * ty) / half], 1)], 1)
    grid = torch.nn.functional.affine_grid(torch.tensor(theta), (5, 2, 9, 9), align_corners=True)
    want = torch.nn.functional.grid_sample(torch.tensor(x, dtype=torch.float64), grid,
                                           mode="bilinear", padding_mode="zeros",
                                           align_corners=True)
    np.testing.assert_allclose(out, want.numpy(), atol=1e-5)


def test_brightness_and_contrast_scale_within_their_range():
    x = np.full((300, 1, 3, 3), 0.5, np.float32)
    bright = Augmentation(brightness=0.2).apply(x, np.random.default_rng(0))
    factors = bright[:, 0, 0, 0] / 0.5
    assert 0.8 <= factors.min() < 0.85 and 1.15 < factors.max() <= 1.2
    ramp = np.linspace(0.3, 0.7, 9, dtype=np.float32).reshape(1, 1, 3, 3).repeat(300, 0)
    contrast = Augmentation(contrast=0.5).apply(ramp, np.random.default_rng(0))
    np.testing.assert_allclose(contrast.mean(axis=(1, 2, 3)), 0.5, atol=1e-6)  # mean kept
    spread = np.ptp(contrast, axis=(1, 2, 3)) / np.ptp(ramp[0])
    assert 0.5 <= spread.min() < 0.6 and 1.4 < spread.max() <= 1.5


def test_cutout_blanks_one_square_of_the_given_side():
    x = np.ones((50, 3, 10, 10), np.float32)
    out = Augmentation(cutout=4).apply(x, np.random.default_rng(0), fill=0.0)
    blank = (out == 0).all(axis=1)  # N×H×W: blanked in every channel
    sizes = blank.sum(axis=(1, 2))
    assert sizes.max() == 16 and sizes.min() >= 4  # a full square, or its part inside the image
    for n in range(50):
        rows, cols = np.flatnonzero(blank[n].any(1)), np.flatnonzero(blank[n].any(0))
        assert sizes[n] == len(rows) * len(cols)  # one rectangle


def image_graph() -> Graph:
    g = Graph()
    from layerloom.engine.graph import Node

    for node in [Node("image", "Input", {"shape": (1, 6, 6)}), Node("flat", "Flatten", {}),
                 Node("fc", "Dense", {"out_features": 2}), Node("label", "Label", {}),
                 Node("loss", "CrossEntropyLoss", {})]:
        g.add_node(node)
    for src, dst in [(("image", "y"), ("flat", "x")), (("flat", "y"), ("fc", "x")),
                     (("fc", "y"), ("loss", "input")), (("label", "y"), ("loss", "target"))]:
        g.connect(src, dst)
    return g


def test_augmentation_reaches_training_batches_only_and_is_reproducible():
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 1, 6, 6), dtype=np.float32), rng.integers(0, 2, 40)
    data = Dataset("d", Split(x[:24], y[:24]), Split(x[24:32], y[24:32]), Split(x[32:], y[32:]),
                   class_names=["a", "b"])
    adopt(data, {"augment": {"flip": True, "cutout": 3}}, same_source=True)
    seen = {True: [], False: []}

    def run(seed):
        net = Network(image_graph(), seed=0)
        forward = net.forward

        def spying(feeds, training=False, **kw):
            seen[training].append(np.array(feeds["image"]))
            return forward(feeds, training=training, **kw)

        net.forward = spying
        config = TrainConfig(epochs=2, batch_size=8, seed=seed, histogram_every=0)
        return [r.loss for r in train(net, data, config) if isinstance(r, StepReport)]

    first = run(seed=3)
    trained, evaluated = seen[True], seen[False]
    assert len(trained) == 6 and not any(b.shape == (8, 1, 6, 6) and any(
        np.array_equal(b, x[:24][i:i + 8]) for i in range(17)) for b in trained)
    pool = {row.tobytes() for row in x}
    assert all(row.tobytes() in pool for b in evaluated for row in b)  # never augmented
    assert not all(row.tobytes() in pool for b in trained for row in b)
    seen[True], seen[False] = [], []
    assert run(seed=3) == first and all(np.array_equal(a, b) for a, b in zip(trained, seen[True]))
    assert run(seed=4) != first


def test_the_warp_kernel_matches_its_numpy_twin():
    from layerloom.engine.kernels.warp import warp_bilinear, warp_bilinear_reference

    rng = np.random.default_rng(3)
    x = images(n=4, c=3, h=7, w=11)
    m = np.concatenate([rng.normal(0, 1, (4, 2, 2)), rng.normal(0, 4, (4, 2, 1))], axis=2)
    fill = np.array([0.1, 0.5, 0.9], np.float32)
    out = np.empty_like(x)
    warp_bilinear(x, m, fill, out)
    np.testing.assert_allclose(out, warp_bilinear_reference(x, m, fill), rtol=1e-6, atol=1e-6)
    identity = np.tile(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (4, 1, 1))
    warp_bilinear(x, identity, fill, out)
    np.testing.assert_array_equal(out, x)
