"""Lexical residuality: IDF and the IDF-weighted overlap of a negative with a positive.

Definitions (``shared/spec/ECI.md``, pairs table, ``lex_overlap``):

* tokens of a text: :func:`eci_core.text.tokenize` (the library's one tokenizer: the lowercase
  ``\\w+`` runs, Unicode word characters), each counted once per text (binary bag of words);
* IDF over a reference set of N texts (default: every passage of the collection; option: a
  given corpus): ``idf(t) = ln((N + 1) / (df(t) + 1)) + 1`` where ``df(t)`` is the number of
  reference texts that contain ``t`` (a token never seen in the reference set has ``df = 0``);
* ``lex_overlap(n, p) = Σ_{t ∈ T(n) ∩ T(p)} idf(t) / Σ_{t ∈ T(n)} idf(t)`` with ``T(x)`` the
  distinct tokens of ``x``; 0 when the negative has no token. It is the IDF-weighted share of
  the negative's vocabulary that also occurs in the positive, in [0, 1].

Everything is vectorised with binary ``scipy.sparse`` CSR token matrices: the overlap of
many (negative, positive) rows is ``(A ∘ B) · idf / (A · idf)``.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Sequence

import numpy as np

from eci_core.text import TOKEN_RE, tokenize


# Non-ASCII characters that are separators for ``tokenize`` exactly like a space: not ``\\w`` and
# their own lowercase (typographic quotes and dashes, no-break and thin spaces, ©, «, …). A text
# that is ASCII once they are replaced by spaces has the same tokens as that ASCII text, so it
# can take the vectorised path too. Chosen by Python's own rules at import, not by a table.
_SEPARATORS = "".join(
    c
    for c in map(
        chr,
        [
            *range(0x80, 0xC0),
            *range(0x2000, 0x2070),
            *range(0x2190, 0x2400),  # + arrows, math
            *range(0x25A0, 0x2600),
            0x3000,
        ],
    )  # + geometric shapes (bullets)
    if not TOKEN_RE.match(c) and c.lower() == c and c.upper() == c
)
_SEPARATOR_RE2 = "[" + "".join(f"\\x{{{ord(c):04x}}}" for c in _SEPARATORS) + "]"

_CHUNK = 65536  # texts tokenized at a time by the vectorised path (bounded temporaries)


def _text_chunks(texts: Iterable[str], size: int | None = None):
    """``texts`` in order as chunks: Arrow string arrays (a :class:`~eci_core.io.texts.TextColumn`'s
    blocks, no Python strings) or lists of at most ``size`` (default ``_CHUNK``) str."""
    size = size or _CHUNK
    chunks = getattr(texts, "arrow_chunks", None)
    if chunks is not None:
        for part in chunks(size):
            if isinstance(part, list):
                for lo in range(0, len(part), size):
                    yield part[lo : lo + size]
            else:
                yield part
        return
    if isinstance(texts, (list, tuple)):
        for lo in range(0, len(texts), size):
            yield texts[lo : lo + size]
        return
    it = iter(texts)
    while True:
        part = list(itertools.islice(it, size))
        if not part:
            return
        yield part


_WORD = np.zeros(256, dtype=bool)  # ASCII bytes Python's \\w matches: [A-Za-z0-9_]
_WORD[[ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"]] = True
_LOWER = np.arange(256, dtype=np.uint8)  # str.lower on ASCII: A-Z -> a-z, nothing else
_LOWER[ord("A") : ord("Z") + 1] += 32


def _ascii_tokens(arr) -> tuple[np.ndarray, "object"]:
    """Tokens of ASCII texts (an Arrow string array without nulls) by numpy on the UTF-8 buffer:
    ``(text of each token, tokens as a large_string array)``, in text then position order.

    A token is a maximal run of ``[A-Za-z0-9_]`` bytes within one text, lowercased by a byte
    table: on ASCII that is ``tokenize(text)`` exactly. The word bytes are
    packed together (``data[word]``), so the tokens are consecutive slices of one buffer."""
    import pyarrow as pa

    n = len(arr)
    bufs = arr.buffers()
    wide = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offs = np.frombuffer(bufs[1], dtype=wide)[arr.offset : arr.offset + n + 1].astype(np.int64)
    data = (
        np.frombuffer(bufs[2], dtype=np.uint8)[offs[0] : offs[-1]]
        if bufs[2] is not None and offs[-1] > offs[0]
        else np.zeros(0, dtype=np.uint8)
    )
    offs = offs - offs[0]
    word = _WORD[data]
    cut = np.zeros(len(data) + 1, dtype=bool)  # a token cannot run across a text boundary
    cut[offs] = True
    prev = np.empty_like(word)
    prev[:1] = False
    prev[1:] = word[:-1]
    nxt = np.empty_like(word)
    nxt[-1:] = False
    nxt[:-1] = word[1:]
    starts = np.flatnonzero(word & (~prev | cut[:-1]))
    ends = np.flatnonzero(word & (~nxt | cut[1:])) + 1
    del prev, nxt, cut
    toff = np.zeros(len(starts) + 1, dtype=np.int64)
    np.cumsum(ends - starts, out=toff[1:])
    packed = _LOWER[np.compress(word, data)]
    row = np.repeat(np.arange(n), np.diff(np.searchsorted(starts, offs)))  # tokens per text, from its offsets
    toks = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(toff), pa.py_buffer(packed))
    return row, toks


def _chunk_tokens(part) -> tuple[np.ndarray, "object", int] | None:
    """The tokens of one chunk of texts, in text order then position order (with repeats):
    ``(row of each token in the chunk, tokens as an Arrow string array, number of texts)``;
    None when most of the chunk's texts need Python's tokenizer (then the caller tokenizes the
    whole chunk text by text, as :func:`token_matrix_py`: cheaper than splitting it in two).

    ASCII texts are tokenized by :func:`_ascii_tokens` (numpy on the UTF-8 buffer: on ASCII,
    ``str.lower`` changes only ``A-Z`` and ``\\w`` is ``[A-Za-z0-9_]``), and so are texts whose
    only non-ASCII characters are in ``_SEPARATORS`` (those made spaces by Arrow's
    ``replace_substring_regex``). Any other text goes through Python's own ``str.lower`` and
    ``TOKEN_RE`` (Arrow's ``utf8_lower`` and RE2's classes follow other Unicode rules and tables than
    Python's: e.g. ``"İ".lower()`` is two code points, ``\\w`` includes
    every numeric character), so every token is Python's."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from eci_core.io.texts import bool_arrow, ints_arrow, np_of, str_arrow

    if isinstance(part, list):
        n = len(part)
        is_ascii = np.fromiter((t.isascii() for t in part), dtype=bool, count=n)
        if 2 * is_ascii.sum() < n:
            return None
        a_idx = np.flatnonzero(is_ascii)
        ascii_arr = str_arrow([part[i] for i in a_idx.tolist()], large=True) if len(a_idx) else None
        u_idx = np.flatnonzero(~is_ascii)
        u_texts = [part[i] for i in u_idx.tolist()]
    else:
        n = len(part)
        if part.null_count:
            part = pc.fill_null(part, "")
        is_ascii = np_of(pc.string_is_ascii(part)).astype(bool)
        if is_ascii.all():
            a_idx, ascii_arr = np.arange(n), part
            u_idx, u_texts = a_idx[:0], []
        else:
            u_idx = np.flatnonzero(~is_ascii)
            # texts whose only non-ASCII characters are separators: those made spaces, ASCII
            u_arr = pc.replace_substring_regex(
                pc.take(part, ints_arrow(u_idx)), pattern=_SEPARATOR_RE2, replacement=" "
            )
            now = np_of(pc.string_is_ascii(u_arr)).astype(bool)
            if 2 * (len(u_idx) - now.sum()) > n:
                return None
            src = np.arange(n)  # where each text's ASCII form is in concat(part, u_arr)
            src[u_idx] = n + np.arange(len(u_idx))
            is_ascii[u_idx[now]] = True
            a_idx = np.flatnonzero(is_ascii)
            both = pa.concat_arrays([part.cast(pa.large_string()), u_arr.cast(pa.large_string())])
            ascii_arr = pc.take(both, ints_arrow(src[a_idx])) if len(a_idx) else None
            u_texts = pc.filter(u_arr, bool_arrow(~now)).to_pylist()  # separators made spaces: same tokens
            u_idx = u_idx[~now]
    rows, toks = [], []
    if ascii_arr is not None:
        r, t = _ascii_tokens(ascii_arr)
        rows.append(a_idx[r])
        toks.append(t)
    if u_texts:
        per = [tokenize(t) for t in u_texts]
        rows.append(np.repeat(u_idx, np.fromiter(map(len, per), dtype=np.int64, count=len(per))))
        toks.append(str_arrow([t for p in per for t in p], large=True))
    if not rows:
        return np.zeros(0, dtype=np.int64), str_arrow([], large=True), n
    row = np.concatenate(rows)
    tok = toks[0] if len(toks) == 1 else pa.concat_arrays(toks)
    if len(toks) > 1:  # back to text order (stable: each text's tokens keep their order)
        order = np.argsort(row, kind="stable")
        row = row[order]
        tok = pc.take(tok, ints_arrow(order))
    return row, tok, n


def token_matrix(texts: Iterable[str], vocab: dict[str, int] | None = None, grow: bool = True):
    """Binary CSR matrix (n_texts × |vocab|): entry 1 when the text contains the token.

    ``vocab`` (token → column) is extended in place with unseen tokens when ``grow`` is true,
    else unseen tokens are ignored. Returns ``(matrix, vocab)``.

    New tokens get columns in order of first occurrence (not in ``set`` order, which follows the
    per-process string hash), so IDF sums, hence ``lex_overlap``, are the same to the last bit in
    every run. Memory: 5 bytes per (text, distinct token) entry (int32 column indices, int8 ones; products
    with float64 IDF vectors are exact, so every overlap equals the float64-matrix value).

    Vectorised: texts are tokenized 65,536 at a time (ASCII texts by numpy on their Arrow
    buffers, the others by Python's rules, see :func:`_chunk_tokens`), the chunk's tokens are
    dictionary-encoded by Arrow (distinct values numbered in order of first occurrence, which is
    the order new tokens get columns in), only the chunk's distinct tokens meet the Python
    ``vocab``, and each row's distinct sorted columns come from scipy's COO → CSR conversion
    (duplicates summed). The result (tokens, columns, their order, the CSR arrays) is that of
    :func:`token_matrix_py`, the one-text-at-a-time reference.
    """
    from array import array

    from scipy import sparse

    from eci_core.io.texts import np_of

    vocab = {} if vocab is None else vocab
    lengths = [np.zeros(1, dtype=np.int64)]
    indices = array("i")  # C int, grown in place chunk by chunk (no concatenated second copy)
    for part in _text_chunks(texts):
        got = _chunk_tokens(part)
        if got is None:  # mostly non-ASCII: text by text
            texts_py = part if isinstance(part, list) else part.to_pylist()
            ids_py = array("i")
            lens = np.zeros(len(texts_py), dtype=np.int64)
            for i, text in enumerate(texts_py):
                toks = dict.fromkeys(tokenize(text))
                ids = (
                    [vocab.setdefault(t, len(vocab)) for t in toks]
                    if grow
                    else [vocab[t] for t in toks if t in vocab]
                )
                ids.sort()
                ids_py.extend(ids)
                lens[i] = len(ids)
            lengths.append(lens)
            indices.extend(ids_py)
            del texts_py, ids_py
            continue
        row, tok, n = got
        enc = tok.dictionary_encode()
        words = enc.dictionary.to_pylist()
        if grow:
            col = np.fromiter(
                (vocab.setdefault(w, len(vocab)) if w else -1 for w in words),
                dtype=np.int64,
                count=len(words),
            )
        else:
            col = np.fromiter(
                (vocab.get(w, -1) if w else -1 for w in words), dtype=np.int64, count=len(words)
            )
        ids = col[np_of(enc.indices)]  # no nulls: a view of the int32 indices
        keep = ids >= 0
        # each row's distinct columns, sorted: scipy's COO -> CSR sums duplicates row by row
        # (int32 ones: a sum is a count >= 1, never 0, so no entry is dropped)
        part_m = sparse.csr_matrix(
            (np.ones(int(keep.sum()), dtype=np.int32), (row[keep], ids[keep])), shape=(n, len(vocab))
        )
        part_m.sum_duplicates()
        lengths.append(np.diff(part_m.indptr).astype(np.int64))
        indices.frombytes(part_m.indices.astype(np.intc, copy=False).tobytes())
        del part_m
    indptr = np.cumsum(np.concatenate(lengths))
    del lengths
    return _binary_csr(indices, indptr, len(vocab)), vocab


def _binary_csr(indices, indptr: np.ndarray, n_cols: int):
    """The binary CSR matrix (int8 ones) of C-int column ``indices`` (an ``array("i")`` buffer) and
    row pointers ``indptr``; int32 indices unless there are 2^31 entries or more (scipy then needs int64)."""
    from scipy import sparse

    idx = np.frombuffer(indices, dtype=np.intc).astype(np.int32, copy=False)
    if indptr[-1] >= 2**31:
        idx = idx.astype(np.int64)
    else:
        indptr = indptr.astype(np.int32)
    return sparse.csr_matrix(
        (np.ones(idx.shape[0], dtype=np.int8), idx, indptr), shape=(indptr.shape[0] - 1, n_cols), copy=False
    )


def token_matrix_py(texts: Iterable[str], vocab: dict[str, int] | None = None, grow: bool = True):
    """:func:`token_matrix` one text at a time in Python (the reference the vectorised path is
    tested against; same result, ~5× slower on ASCII text)."""
    from array import array

    vocab = {} if vocab is None else vocab
    lengths = array("q", [0])
    indices = array("i")  # C int: 4 bytes
    for text in texts:
        toks = dict.fromkeys(tokenize(text))  # distinct, in order: columns never depend on str hashing
        if grow:
            ids = [vocab.setdefault(t, len(vocab)) for t in toks]
        else:
            ids = [vocab[t] for t in toks if t in vocab]
        ids.sort()
        indices.extend(ids)
        lengths.append(len(ids))
    indptr = np.cumsum(np.frombuffer(lengths, dtype=np.int64))
    del lengths
    return _binary_csr(indices, indptr, len(vocab)), vocab


def idf_weights(reference, n_tokens: int | None = None) -> np.ndarray:
    """``idf(t) = ln((N + 1) / (df(t) + 1)) + 1`` from a binary reference token matrix (N rows).

    ``n_tokens`` pads the vector to a larger vocabulary (tokens absent from the reference get
    ``df = 0``).
    """
    n = reference.shape[0]
    df = np.asarray(reference.sum(axis=0)).ravel()
    if n_tokens is not None and n_tokens > df.shape[0]:
        df = np.concatenate([df, np.zeros(n_tokens - df.shape[0])])
    return np.log((n + 1.0) / (df + 1.0)) + 1.0


def overlap_rows(neg_rows, pos_rows, idf: np.ndarray) -> np.ndarray:
    """Row-wise ``lex_overlap`` of two row-aligned binary CSR matrices (float64, 0 for an empty
    negative)."""
    num = np.asarray(neg_rows.multiply(pos_rows) @ idf).ravel()
    den = np.asarray(neg_rows @ idf).ravel()
    out = np.zeros(num.shape[0], dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


class PassageLexicon:
    """Binary token matrix of a list of passages with the IDF of a reference set.

    ``PassageLexicon(texts)`` takes IDF over ``texts`` themselves (the spec's default: all
    passages loaded in the session); ``PassageLexicon(texts, idf_corpus=corpus)`` takes IDF over
    ``corpus`` instead. :meth:`overlap` then scores (negative index, positive index) pairs.
    """

    def __init__(self, texts: Sequence[str], idf_corpus: Sequence[str] | None = None):
        self.matrix, self.vocab = token_matrix(texts)
        if idf_corpus is None:
            self.idf = idf_weights(self.matrix)
        else:
            ref, _ = token_matrix(idf_corpus, vocab=self.vocab, grow=False)
            self.idf = idf_weights(ref, n_tokens=len(self.vocab))

    @classmethod
    def from_matrix(cls, matrix, idf: np.ndarray | None = None) -> "PassageLexicon":
        """A lexicon from an existing binary token matrix (rows = passages, e.g. token-id
        arrays of a tokenizer); IDF over its own rows unless ``idf`` is given."""
        self = cls.__new__(cls)
        self.matrix = matrix.tocsr()
        self.vocab = {}
        self.idf = idf_weights(self.matrix) if idf is None else np.asarray(idf, dtype=np.float64)
        if self.idf.shape[0] != self.matrix.shape[1]:
            raise ValueError(
                f"idf has {self.idf.shape[0]} entries for a vocabulary of {self.matrix.shape[1]} tokens"
            )
        return self

    def overlap(self, neg_idx: np.ndarray, pos_idx: np.ndarray, chunk: int = 200_000) -> np.ndarray:
        """``lex_overlap`` of passage ``neg_idx[i]`` against passage ``pos_idx[i]`` for every i."""
        neg_idx = np.asarray(neg_idx, dtype=np.int64)
        pos_idx = np.asarray(pos_idx, dtype=np.int64)
        if neg_idx.shape != pos_idx.shape:
            raise ValueError(f"neg_idx {neg_idx.shape} and pos_idx {pos_idx.shape} must have the same shape")
        out = np.empty(neg_idx.shape[0], dtype=np.float64)
        for a in range(0, neg_idx.shape[0], chunk):
            b = min(a + chunk, neg_idx.shape[0])
            out[a:b] = overlap_rows(self.matrix[neg_idx[a:b]], self.matrix[pos_idx[a:b]], self.idf)
        return out


def lex_overlap(
    negatives: Sequence[str], positives: Sequence[str], idf_corpus: Sequence[str] | None = None
) -> np.ndarray:
    """``lex_overlap`` of ``negatives[i]`` against ``positives[i]`` (texts), IDF over
    ``idf_corpus`` (default: the given negatives and positives together)."""
    if len(negatives) != len(positives):
        raise ValueError(
            f"negatives ({len(negatives)}) and positives ({len(positives)}) must have the same length"
        )
    texts = list(negatives) + list(positives)
    lex = PassageLexicon(texts, idf_corpus=texts if idf_corpus is None else idf_corpus)
    n = len(negatives)
    return lex.overlap(np.arange(n), np.arange(n, 2 * n))
