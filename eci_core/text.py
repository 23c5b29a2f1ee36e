"""The library's one word tokenizer (the bottom layer: imports nothing from ``eci_core``).

:func:`tokenize` is what every word-level feature of the library uses: the lexical overlap of the
metric contract (:mod:`eci_core.metrics.lexical`, ``shared/spec/ECI.md``), the model-free
:class:`~eci_core.models.hashing.HashingEncoder` (``--encoder hashing``) and the words the query
drill-down highlights (:mod:`eci_core.explore.drilldown`). A token is a maximal run of Unicode word
characters (Python's ``\\w``: letters, digits, underscore, in every script) of the lowercased
text (``str.lower``), kept in order with repeats; everything else separates tokens. Changing it
changes ``lex_overlap`` and the hashing encoder's vectors, so ``eci score`` numbers.

The one tokenizer that differs on purpose is BM25's (:mod:`eci_core.mining.bm25`): ``bm25s``'
own analyser (tokens of two or more word characters, English stop words removed), the
Lucene-style analysis BM25 baselines use; its docstring says why.
"""

from __future__ import annotations

import re

#: One token: a maximal run of Unicode word characters (of the lowercased text).
TOKEN_RE = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lowercase ``\\w+`` tokens of ``text`` in order, with repeats.

    ``tokenize("Hello, World_2 héllo") == ["hello", "world_2", "héllo"]``: punctuation, spaces
    and symbols separate tokens; the underscore and non-ASCII letters are word characters."""
    return TOKEN_RE.findall(text.lower())


__all__ = ["TOKEN_RE", "tokenize"]
