"""The bundled text corpora: the King James Bible by default, the old docstrings on request, and
the ``chars`` option that cuts a quick epoch without changing the vocabulary."""
import numpy as np
import pytest

from layerloom.engine.data import DataError, load_data
from layerloom.engine.data.text import CORPORA, decode, encode, read_corpus
from layerloom.engine.paths import RESOURCES


def test_the_default_corpus_is_a_megabytes_long_english_text_with_its_licence_recorded():
    text = read_corpus("kjv")
    assert len(text) > 4_000_000 and text.startswith("In the beginning God created the heaven")
    assert not any(ch.isdigit() for ch in text)  # verse numbers stripped
    assert "The grace of our Lord Jesus Christ be with you all. Amen.\n" in text[-100:]
    readme = (RESOURCES / "text" / "README.md").read_text()
    assert "kjv.txt.gz" in readme and "public domain" in readme.lower()
    assert CORPORA["kjv"][0].stat().st_size < 1_300_000  # compressed in the wheel


def test_text_reads_the_bible_by_default_and_the_docstrings_on_request():
    bible = load_data("text?seq_len=64&chars=20000")
    assert bible.num_classes == 63 and "King James" in bible.description
    assert "20,000 characters" in bible.description
    docs = load_data("text?corpus=docstrings")
    assert docs.num_classes == 92 and "docstrings" in docs.description
    with pytest.raises(DataError, match="unknown corpus 'shakespeare'.*kjv, docstrings"):
        load_data("text?corpus=shakespeare")


def test_a_shorter_cut_keeps_the_whole_vocabulary_and_the_first_windows():
    short = load_data("text?seq_len=32&chars=3300", val_fraction=0.0)
    full_vocab = load_data("text?seq_len=32&chars=100000").class_names
    assert short.class_names == full_vocab  # a model's width does not depend on the cut
    assert len(short.train) + len(short.test) == (3300 - 1) // 32
    firsts = {decode(row, short.class_names) for row in short.train.x}
    assert "In the beginning God created the" in firsts | {decode(r, short.class_names)
                                                           for r in short.test.x}
    with pytest.raises(DataError, match="chars must be a whole number"):
        load_data("text?chars=-5")


def test_encoding_is_vectorised_but_still_names_the_first_unknown_character():
    vocab = ["a", "b", "\u00e9"]
    np.testing.assert_array_equal(encode("b\u00e9ab", vocab), [1, 2, 0, 1])
    with pytest.raises(DataError, match="character 'z' is not in the vocabulary of 3"):
        encode("abzq", vocab)
    assert encode("", vocab).shape == (0,)
