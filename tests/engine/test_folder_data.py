"""folder:DIR data: class folders (nested images too), any image mode, corrupt and stray files,
stratified seeded splits, split folders, normalisation from the training split, the decode cache."""
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from layerloom.engine.data import DataError, load_data
from layerloom.engine.data import folder as folder_module
from layerloom.engine.data.cache import cache_dir
from layerloom.engine.data.folder import load_folder
from layerloom.engine.data.images import ImagePrep, decode
from tests.engine.image_folders import COLOURS, class_folder, picture


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text
    return text


def count_decodes(monkeypatch) -> list:
    calls = []

    def counting(path, *args):
        calls.append(Path(path).name)
        return decode(path, *args)

    monkeypatch.setattr(folder_module, "decode", counting)
    return calls


def test_classes_come_from_folder_names_and_nested_images_belong_to_their_class(tmp_path):
    root = class_folder(tmp_path / "photos", per_class=4)
    deep = root / "green" / "2023" / "summer"
    deep.mkdir(parents=True)
    picture(COLOURS["green"], seed=7).save(deep / "extra.jpg")
    data = load_data(f"folder:{root}?size=8x8&val_fraction=0&test_fraction=0")
    assert data.class_names == ["blue", "green", "red"]
    assert data.name == "photos" and data.task == "classification"
    assert np.bincount(data.train.y).tolist() == [4, 5, 4]
    assert data.sample_shape == (3, 8, 8) and data.train.x.dtype == np.float32


def test_grey_rgba_palette_and_16_bit_images_become_the_chosen_channels(tmp_path):
    root = tmp_path / "modes"
    (root / "a").mkdir(parents=True)
    picture((200, 30, 30), seed=1, mode="L").save(root / "a" / "grey.png")
    rgba = np.zeros((12, 12, 4), np.uint8)  # fully transparent: reads as white paper
    Image.fromarray(rgba, "RGBA").save(root / "a" / "clear.png")
    picture((30, 200, 30), seed=2, mode="P").save(root / "a" / "palette.gif")
    deep = (np.full((12, 12), 65535, np.uint16))
    Image.fromarray(deep).save(root / "a" / "sixteen.tiff")
    picture((30, 30, 200), seed=3).save(root / "a" / "colour.webp")
    for channels in (3, 1):
        prep = dict(size=(6, 6), channels=channels, fit="crop")
        assert decode(root / "a" / "clear.png", **prep).min() == 255
        assert decode(root / "a" / "sixteen.tiff", **prep).min() == 255
        grey = decode(root / "a" / "grey.png", **prep)
        assert grey.shape == (channels, 6, 6)
        if channels == 3:  # a grey picture has three equal channels
            assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])
        data = load_folder(root, 0.0, 0, size=6, channels=channels, test_fraction=0.0,
                           normalize=False)
        assert len(data.train) == 5 and data.sample_shape == (channels, 6, 6)


def test_corrupt_images_are_skipped_and_named_stray_files_ignored_empty_classes_left_out(tmp_path):
    root = class_folder(tmp_path / "d", per_class=5, classes=("red", "blue"), ext=".jpg")
    good = (root / "red" / "000.jpg").read_bytes()
    (root / "red" / "broken.jpg").write_bytes(good[:len(good) // 3])  # a truncated JPEG
    (root / "blue" / "fake.png").write_bytes(b"this is not a picture")
    (root / "blue" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("files outside the class folders")
    (root / "empty" / "nothing here").mkdir(parents=True)
    os.mkfifo(root / "red" / "pipe.png")  # reading it would block: never opened
    data = load_folder(root, 0.0, 0, size=8, test_fraction=0.0)
    assert data.class_names == ["blue", "red"]
    assert len(data.train) == 10
    assert "2 unreadable images skipped" in data.description
    assert "broken.jpg" in data.description and "fake.png" in data.description
    assert "3 non-image files ignored" in data.description
    assert "empty class folder left out: empty" in data.description


def test_split_is_stratified_and_reproducible(tmp_path):
    root = class_folder(tmp_path / "s", per_class=20)
    a = load_folder(root, 0.25, 3, size=8, test_fraction=0.2)
    assert np.bincount(a.test.y).tolist() == [4, 4, 4]  # 20 % of every class
    assert np.bincount(a.val.y).tolist() == [4, 4, 4]  # 25 % of the remaining 16
    assert np.bincount(a.train.y).tolist() == [12, 12, 12]
    b = load_folder(root, 0.25, 3, size=8, test_fraction=0.2)
    c = load_folder(root, 0.25, 4, size=8, test_fraction=0.2)
    assert np.array_equal(a.test.x.rows, b.test.x.rows) and np.array_equal(a.train.x.rows, b.train.x.rows)
    assert not np.array_equal(np.sort(a.test.x.rows), np.sort(c.test.x.rows))
    every = np.concatenate([a.train.x.rows, a.val.x.rows, a.test.x.rows])
    assert sorted(every.tolist()) == list(range(60))  # each image in exactly one split


def test_train_val_test_folders_are_used_and_a_missing_val_is_carved_from_train(tmp_path):
    class_folder(tmp_path / "set" / "train", per_class=10, classes=("red", "blue"))
    class_folder(tmp_path / "set" / "test", per_class=3, classes=("red", "blue"))
    data = load_folder(tmp_path / "set", 0.2, 0, size=8)
    assert data.class_names == ["blue", "red"]
    assert len(data.test) == 6 and np.bincount(data.test.y).tolist() == [3, 3]
    assert np.bincount(data.val.y).tolist() == [2, 2] and len(data.train) == 16
    class_folder(tmp_path / "set" / "val", per_class=1, classes=("red", "blue"))
    data = load_folder(tmp_path / "set", 0.2, 0, size=8)
    assert (len(data.train), len(data.val), len(data.test)) == (20, 2, 6)


def test_normalisation_comes_from_the_training_split_only(tmp_path):
    class_folder(tmp_path / "n" / "train", per_class=6, classes=("red", "blue"))
    (tmp_path / "n" / "test" / "red").mkdir(parents=True)
    for i in range(6):  # white test images must not move the statistics
        Image.new("RGB", (20, 24), (255, 255, 255)).save(tmp_path / "n" / "test" / "red" / f"{i}.png")
    data = load_folder(tmp_path / "n", 0.0, 0, size=8)
    raw = np.stack([decode(tmp_path / "n" / "train" / c / f"{i:03d}.png", (8, 8), 3, "crop")
                    for c in ("red", "blue") for i in range(6)]).astype(np.float64) / 255
    prep = ImagePrep.from_dict(data.preprocessing)
    np.testing.assert_allclose(prep.mean, raw.mean(axis=(0, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(prep.std, raw.std(axis=(0, 2, 3)), atol=1e-6)
    x = np.asarray(data.train.x)
    np.testing.assert_allclose(x.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_crop_keeps_the_centre_and_stretch_squashes_the_whole_picture(tmp_path):
    bands = np.zeros((10, 40, 3), np.uint8)
    bands[:, :10], bands[:, 10:30], bands[:, 30:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    Image.fromarray(bands).save(tmp_path / "wide.png")
    crop = decode(tmp_path / "wide.png", (10, 10), 3, "crop")
    stretch = decode(tmp_path / "wide.png", (10, 10), 3, "stretch")
    assert crop[1].min() > 200 and crop[0].max() < 60  # only the green middle
    assert stretch[0, :, 0].min() > 200 and stretch[2, :, -1].min() > 200  # red left, blue right


def test_the_decoded_cache_is_reused_and_replaced_when_files_change(tmp_path, monkeypatch):
    root = class_folder(tmp_path / "c", per_class=3, classes=("red", "blue"))
    calls = count_decodes(monkeypatch)
    first = load_folder(root, 0.0, 0, size=8, test_fraction=0.0)
    assert len(calls) == 6
    again = load_folder(root, 0.0, 0, size=8, test_fraction=0.0)
    assert len(calls) == 6  # nothing decoded the second time
    assert np.array_equal(np.asarray(first.train.x), np.asarray(again.train.x))
    picture(COLOURS["green"], seed=9).save(root / "red" / "001.png")  # same name, new picture
    os.utime(root / "red" / "001.png", ns=(1, 10**18))
    changed = load_folder(root, 0.0, 0, size=8, test_fraction=0.0)
    assert len(calls) == 12
    assert not np.array_equal(np.asarray(first.train.x), np.asarray(changed.train.x))
    prefix, stem = first.train.x.store.path.stem[:16], changed.train.x.store.path.stem
    caches = sorted(p.name for p in (cache_dir() / "images").glob(f"{prefix}-*"))
    assert caches == [f"{stem}.json", f"{stem}.npy", f"{stem}.stats.npy"]  # the stale one is gone
    load_folder(root, 0.0, 0, size=12, test_fraction=0.0)  # other options: another cache
    assert len(calls) == 18


@pytest.mark.parametrize("spec, words", [
    ("folder:{root}?size=2", "size must be HxW"), ("folder:{root}?size=8x", "size must be HxW"),
    ("folder:{root}?channels=2", "channels must be 1 or 3"),
    ("folder:{root}?fit=zoom", "fit must be one of crop, stretch"),
    ("folder:{root}?test_fraction=1", "test_fraction must be in [0, 1)"),
    ("folder:{root}/missing", "no such folder"), ("folder:{root}/red", "no class folders"),
    ("folder:{root}?colour=yes", "unknown option 'colour'"),
])
def test_bad_folder_specs_are_one_line_errors(tmp_path, spec, words):
    root = class_folder(tmp_path / "e", per_class=1, classes=("red",))
    with pytest.raises(DataError) as err:
        load_data(spec.format(root=root))
    assert words in one_line(err)


def test_image_arrays_index_like_numpy_arrays(tmp_path):
    root = class_folder(tmp_path / "i", per_class=4, classes=("red", "blue"))
    x = load_folder(root, 0.0, 0, size=8, test_fraction=0.0).train.x
    whole = np.asarray(x)
    assert whole.shape == x.shape == (8, 3, 8, 8) and len(x) == 8
    np.testing.assert_array_equal(x[3], whole[3])
    np.testing.assert_array_equal(x[-1], whole[-1])
    np.testing.assert_array_equal(x[2:5], whole[2:5])
    np.testing.assert_array_equal(x[np.array([6, 0, 6])], whole[[6, 0, 6]])
    mask = np.arange(8) % 3 == 0
    np.testing.assert_array_equal(x[mask], whole[mask])
    with pytest.raises(IndexError):
        x[np.array([8])]


def test_an_image_file_is_prepared_exactly_as_its_training_row(tmp_path):
    root = class_folder(tmp_path / "p", per_class=2, classes=("red",))
    data = load_folder(root, 0.0, 0, size="6x10", test_fraction=0.0)
    prep = ImagePrep.from_dict(data.preprocessing)
    assert prep.size == (6, 10) and prep.channels == 3 and prep.fit == "crop"
    row = int(np.flatnonzero(data.train.x.rows == 1)[0])  # red/001.png is the second file
    np.testing.assert_array_equal(prep.load(root / "red" / "001.png"), data.train.x[row:row + 1])
    with pytest.raises(DataError) as err:
        prep.load(tmp_path / "nothing.png")
    assert "no such file" in one_line(err)


@pytest.mark.parametrize("change, words", [
    ({"size": [4]}, "size"), ({"channels": 2}, "channels"), ({"fit": "zoom"}, "fit"),
    ({"mean": [0.5]}, "mean"), ({"std": [0.2, 0.0, 0.2]}, "std"), ({"kind": "table"}, "image"),
])
def test_stored_preprocessing_is_checked(change, words):
    good = ImagePrep((8, 8), 3, "crop", (0.5,) * 3, (0.25,) * 3).to_dict()
    assert ImagePrep.from_dict(good) == ImagePrep((8, 8), 3, "crop", (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(DataError) as err:
        ImagePrep.from_dict({**good, **change})
    assert words in one_line(err)


def test_the_graph_files_stored_preprocessing_is_what_the_same_source_normalises_with(tmp_path):
    from layerloom.engine.data.section import load_data_section

    root = class_folder(tmp_path / "s", per_class=3, classes=("red", "blue"))
    spec = f"folder:{root}?size=8"
    fresh = load_data(spec)
    stored = ImagePrep((8, 8), 3, "crop", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    section = {"spec": spec, "preprocessing": stored.to_dict(), "augment": {"flip": True}}
    _, data = load_data_section(section, "g.json")
    assert data.preprocessing == stored.to_dict() and data.augment.flip
    unit = data.train.x.unit(np.arange(2))
    np.testing.assert_array_equal(data.train.x[:2], (unit - 0.5) / 0.25)
    np.testing.assert_array_equal(data.test.x.rows, fresh.test.x.rows)  # the same split
    for other in ({**section, "spec": spec + "&fit=stretch"},  # another source: its own numbers
                  {**section, "preprocessing": {**stored.to_dict(), "std": [0, 0, 0]}}):
        _, data = load_data_section(other, "g.json")
        assert data.preprocessing["mean"] != [0.5, 0.5, 0.5]
    _, data = load_data_section(section, "g", spec + "&seed=1")
    assert data.preprocessing != stored.to_dict()
    with pytest.raises(DataError) as err:
        load_data_section({**section, "augment": {"flip": "yes"}}, "g.json")
    assert "g.json: data.augment.flip: must be true or false" in one_line(err)
