"""The vectorised lexicon (Arrow string kernels for ASCII texts) against the one-text-at-a-time
Python reference: same tokens, same columns in the same order, same IDF, bit-identical
``lex_overlap``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eci_core.io.texts import ArrowTextMap, TextColumn, str_arrow
from eci_core.metrics import lexical as L
from eci_core.text import tokenize

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "pyfaq"

EDGE = [
    "",
    " ",
    "\t\n",
    "___",
    "a",
    "A",
    "Hello, World! hello world",
    "x_y_Z 12ab __init__ café-au-lait",
    "İstanbul",
    "ISTANBUL istanbul",
    "ß Straße STRASSE",
    "ΣΟΦΟΣ σοφος σοφοσ Σ",
    "ǅ ǆ Ǆ",  # titlecase digraphs
    "x² ½ Ⅻ ٣ ①",
    "e\u0301 n\u0303",
    "a\u200db\u200cc",
    "\x00a\x00b\x7f",
    "ÀÉÎ àéî",
    "ﬁ ﬂ",
    "Kelvin \u212a K",
    "emoji 😀 ok",
    "日本語のテキスト 123",
    "tab\tsep\rcr\x0bvt\x1ffs",
    "A" * 300,
    "Don’t “Quote” — DASH… ©2020 «x» a\u00a0b\u2009c\u200bd",
    "x‿y ⁀ ⁔ ª º µ",
    "’’",
    "\x85NEL\x85",
    "MiXeD CaSe 123 ABC_def",
    "\ud800 lone surrogate",
    "ascii after non-ascii é ABC",
]


def same(texts, vocab=None, grow=True, vocab_ref=None, ref_texts=None):
    """token_matrix == token_matrix_py: vocab (order included), CSR arrays and their dtypes."""
    ref_texts = list(texts) if ref_texts is None else ref_texts
    m, v = L.token_matrix(texts, vocab=vocab, grow=grow)
    r, w = L.token_matrix_py(ref_texts, vocab=vocab_ref, grow=grow)
    assert list(v.items()) == list(w.items())
    assert m.shape == r.shape
    for a, b in ((m.indptr, r.indptr), (m.indices, r.indices), (m.data, r.data)):
        assert a.dtype == b.dtype
        assert np.array_equal(a, b)
    return m, v


def arrow_column(texts, block=5):
    """A TextColumn backed by Arrow blocks of ``block`` rows (how the loaders hold big files),
    with the rows in a shuffled order so that chunks take from several blocks."""
    texts = [t for t in texts if not re.search("[\ud800-\udfff]", t)]  # Arrow holds valid UTF-8 only
    blocks = [str_arrow(texts[i : i + block]) for i in range(0, len(texts), block)] or [str_arrow([])]
    col = TextColumn()
    rows = np.random.default_rng(0).permutation(len(texts))
    col.extend_rows(ArrowTextMap(str_arrow([str(i) for i in range(len(texts))]), blocks), rows)
    col.append("tail text Ä")
    assert list(col) == [texts[i] for i in rows] + ["tail text Ä"]
    return col


def test_tokens_of_edge_cases_are_pythons():
    m, v = same(EDGE)
    # the hand-checked ones: Python lowercases 'İ' to 'i' + U+0307 (not a word character),
    # keeps 'ß', lowercases the final 'Σ' to 'σ' (str.lower maps final sigma to 'ς' only
    # after a letter: 'ΣΟΦΟΣ'.lower() == 'σοφος'), counts '²', '½', 'Ⅻ' as word characters
    assert "i" in v and "stanbul" in v and "istanbul" in v
    assert "ß" in v and "straße" in v and "strasse" in v
    assert "σοφος" in v and "σοφοσ" in v
    assert "x²" in v and "½" in v
    # each text's row holds its distinct tokens once
    row = EDGE.index("Hello, World! hello world")
    assert sorted(m[row].indices.tolist()) == sorted({v["hello"], v["world"]})


def test_separators_are_non_word_and_their_own_case():
    assert "’" in L._SEPARATORS and "—" in L._SEPARATORS and "\u00a0" in L._SEPARATORS
    for c in "µªº²½_aZ0":  # word characters (µ, ª, º, ², ½ are \w for Python) are not separators
        assert c not in L._SEPARATORS
    for c in L._SEPARATORS:
        assert tokenize(f"a{c}b") == ["a", "b"] and c.lower() == c


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_one_tokenizer_for_lexical_overlap_and_the_hashing_encoder(text):
    """``eci_core.text.tokenize`` is the tokenizer of both: the hashing encoder's vector of a text
    is the vector of its tokens joined by spaces, and the lexicon's tokens of a text are the
    distinct tokens of ``tokenize`` (what ``eci score`` computes lex_overlap and hashing
    embeddings from)."""
    from eci_core.models.hashing import HashingEncoder

    toks = tokenize(text)
    assert toks == re.findall(r"\w+", text.lower())
    enc = HashingEncoder(dim=64)
    assert np.array_equal(enc.encode_queries([text]), enc.encode_queries([" ".join(toks)]))
    m, vocab = L.token_matrix([text])
    inv = {i: t for t, i in vocab.items()}
    assert {inv[c] for c in m[0].indices.tolist()} == set(toks)


def test_unicode_rules_differ_from_arrows_so_non_ascii_takes_the_python_path():
    """Why non-ASCII texts are not given to Arrow: its lowercase differs from Python's."""
    import pyarrow.compute as pc

    texts = ["İ", "ΣΟΦΟΣ", "ǅ"]
    arrow = pc.utf8_lower(str_arrow(texts)).to_pylist()
    python = [t.lower() for t in texts]
    assert arrow != python  # 'İ': Python gives 'i̇' (2 code points), utf8proc one
    same(texts)


@pytest.mark.parametrize("chunk", [1, 3, 65536])
def test_chunks_and_arrow_blocks_give_the_same_matrix(monkeypatch, chunk):
    monkeypatch.setattr(L, "_CHUNK", chunk)
    texts = EDGE * 2 + ["the cat sat", "THE DOG sat", "the café"]
    ref, ref_v = same(texts)
    col = arrow_column(texts)
    same(col)
    same(iter(list(texts)), ref_texts=texts)  # a generator
    # grow=False against an existing vocabulary: unseen tokens are ignored
    vocab = dict(ref_v)
    same(["cat café unseen", "", "İ DOG"], vocab=vocab, grow=False, vocab_ref=dict(ref_v))


words = st.sampled_from(
    [
        "the",
        "The",
        "CAT",
        "café",
        "Ünï",
        "a_b",
        "42",
        "İ",
        "ß",
        "ς",
        "x²",
        "日本",
        "’",
        "—",
        "«»",
        "\u00a0",
        "©",
        "‿",
        "µ",
        "→",
        "■",
        "∑x",
    ]
)
texty = st.lists(st.one_of(words, st.text(max_size=6)), max_size=12).map(lambda ws: " ".join(ws))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40), st.text(alphabet=st.characters(max_codepoint=127), max_size=40), texty
        ),
        max_size=30,
    ),
    st.integers(1, 7),
)
def test_random_texts_token_for_token(texts, chunk):
    old = L._CHUNK
    L._CHUNK = chunk
    try:
        m, v = same(texts)
        same(arrow_column(texts, block=3))
        # token for token: each row's columns are the distinct tokens of tokenize()
        inv = {c: t for t, c in v.items()}
        for i, t in enumerate(texts):
            assert {inv[c] for c in m[i].indices.tolist()} == set(tokenize(t))
    finally:
        L._CHUNK = old


@pytest.fixture(scope="module")
def sample():
    from eci_core.io.load import load_paths

    coll, report = load_paths([str(SAMPLE)])
    assert not report.errors
    return coll


def test_sample_lexicon_and_lex_overlap_are_bit_identical(sample, monkeypatch):
    texts = sample.passage_texts
    assert len(texts) > 3000 and any(not t.isascii() for t in texts)  # both paths are used
    # the sample's texts are a list tail (mostly non-ASCII: typographic quotes): held in Arrow
    # blocks, most take the vectorised path once their separators are spaces
    same(arrow_column(list(texts), block=500))
    new = L.PassageLexicon(texts)
    corpus = list(texts)[::3]
    new_c = L.PassageLexicon(texts, idf_corpus=corpus)
    monkeypatch.setattr(L, "token_matrix", L.token_matrix_py)
    old = L.PassageLexicon(list(texts))
    old_c = L.PassageLexicon(list(texts), idf_corpus=corpus)
    rng = np.random.default_rng(1)
    neg, pos = rng.integers(0, len(texts), (2, 50_000))
    for a, b in ((new, old), (new_c, old_c)):
        assert list(a.vocab.items()) == list(b.vocab.items())
        assert (a.matrix != b.matrix).nnz == 0
        assert a.idf.tobytes() == b.idf.tobytes()
        x, y = a.overlap(neg, pos), b.overlap(neg, pos)
        assert x.tobytes() == y.tobytes()
        assert 0 < np.mean(x) < 1
