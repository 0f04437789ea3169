"""Every bundled sample loads, passes shape inference, fits its own data and trains two steps."""

import numpy as np
import pytest

from layerloom.engine.data.section import load_data_section
from layerloom.engine.network import Network
from layerloom.engine.objective import graph_needs_no_data
from layerloom.engine.paths import SAMPLES
from layerloom.engine.project import check_fit, fit_graph_to_data
from layerloom.engine.serialize import load_project
from layerloom.engine.shapes import infer_shapes
from layerloom.engine.training import StepReport, TrainConfig, train

SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))


def test_the_default_samples_exist():
    names = {p.name for p in SAMPLE_FILES}
    assert {"lenet5.json", "mlp_spirals.json", "shapes_cnn.json"} <= names


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: p.stem)
def test_sample_loads_checks_and_trains_two_steps(path):
    project = load_project(path)
    assert infer_shapes(project.graph).ok
    data = None
    if not graph_needs_no_data(project.graph):  # the founding example trains on its Parameters
        assert project.data.get("spec"), f"{path.name} names no data"
        # as `layerloom train` reads it: the data section's augmentation and preprocessing too
        _, data = load_data_section(project.data, path.name)
        fit_graph_to_data(project.graph, data)
        check_fit(project.graph, data)
    config = TrainConfig.from_dict({**project.training, "max_steps": 2, "epochs": 1})
    net = Network(project.graph, seed=0)
    before = {k: v.copy() for k, v in net.params.items()}
    steps = [r for r in train(net, data, config) if isinstance(r, StepReport)]
    assert len(steps) == 2 and all(np.isfinite(s.loss) for s in steps)
    assert any(not np.array_equal(before[k], net.params[k]) for k in net.trainable_keys)


def test_the_colour_sample_trains_on_image_files_through_decode_and_augmentation():
    """shapes_cnn.json's data is a folder of PNG and JPEG files drawn on first use, read by the
    same folder reader a person's photos go through, augmented on the fly."""
    from PIL import Image

    from layerloom.engine.data.images import ImageArray
    from layerloom.engine.data.shapes import CLASSES, draw, ensure_shapes

    project = load_project(SAMPLES / "shapes_cnn.json")
    _, data = load_data_section(project.data, "shapes")
    assert data.sample_shape == (3, 32, 32) and data.class_names == list(CLASSES)
    assert isinstance(data.train.x, ImageArray) and data.augment.active and data.augment.flip
    assert len(data.train) + len(data.val) + len(data.test) == 5 * 400
    drawn = ensure_shapes(400)  # already there: drawn once, by the load above
    assert {p.suffix for p in drawn.rglob("*") if p.is_file() and p.name[0] != "."} == {".png", ".jpg"}
    png = drawn / "star" / "star_0002.png"
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), np.asarray(draw("star", 2)))
    assert np.array_equal(np.asarray(draw("cross", 7)), np.asarray(draw("cross", 7)))
