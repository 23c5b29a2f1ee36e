"""The bundled pyfaq sample corpus (sample_data/pyfaq, built by sample_data/build.py).

Checks the committed output (BEIR layout), and the reST-to-text helpers of the build script on
hand-written snippets.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYFAQ = ROOT / "sample_data" / "pyfaq"
ROLE_RE = re.compile(r":[a-z][\w-]*(?::[a-z][\w-]*)?:`")  # :func:`, :c:func:`, :ref:` ...
LLM_ID_RE = re.compile(r"llm-(faq-[a-z]+-\d+)-(\d+)")


def _jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            assert line.strip(), f"{path.name}:{n}: empty line"
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:  # pragma: no cover - message only
                pytest.fail(f"{path.name}:{n}: invalid JSON ({err})")
    return rows


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return _jsonl(PYFAQ / "corpus.jsonl")


@pytest.fixture(scope="module")
def queries() -> list[dict]:
    return _jsonl(PYFAQ / "queries.jsonl")


@pytest.fixture(scope="module")
def qrels() -> list[dict]:
    with open(PYFAQ / "qrels" / "test.tsv", encoding="utf-8", newline="") as fh:
        header = fh.readline().rstrip("\n")
        assert header == "query-id\tcorpus-id\tscore"
        return [dict(zip(("query-id", "corpus-id", "score"), row)) for row in csv.reader(fh, delimiter="\t")]


def _words(text: str) -> int:
    return len(text.split())


def test_files_exist_and_are_small():
    paths = [
        PYFAQ / "corpus.jsonl",
        PYFAQ / "queries.jsonl",
        PYFAQ / "qrels" / "test.tsv",
        PYFAQ / "qrels" / "false_negatives.tsv",
        PYFAQ / "LICENSE",
    ]
    for p in paths:
        assert p.is_file(), f"missing {p}: run python sample_data/build.py"
    assert sum(p.stat().st_size for p in paths) < 5 * 1024 * 1024


def test_license_is_psf_and_names_the_package_version():
    text = (PYFAQ / "LICENSE").read_text(encoding="utf-8")
    assert "PSF LICENSE AGREEMENT FOR PYTHON 3.11" in text
    assert "Python Software Foundation" in text
    assert "Zero-Clause BSD" in text or "ZERO-CLAUSE BSD" in text
    assert re.search(r"python3\.11-doc\s+version\s+3\.11\.\d+-\S+", text)
    assert "|release|" not in text


def test_queries_parse(queries):
    assert 150 <= len(queries) <= 200
    ids = [q["_id"] for q in queries]
    assert len(set(ids)) == len(ids), "duplicate query ids"
    for q in queries:
        assert set(q) >= {"_id", "text"}
        assert re.fullmatch(r"faq-[a-z]+-\d+", q["_id"]), q["_id"]
        assert q["text"].strip() and q["text"].endswith("?"), q
        assert not ROLE_RE.search(q["text"]) and "``" not in q["text"], q


def test_corpus_parse_and_sizes(corpus):
    ids = [p["_id"] for p in corpus]
    assert len(set(ids)) == len(ids), "duplicate passage ids"
    real = [p for p in corpus if not p["_id"].startswith("llm-")]
    assert 3000 <= len(real) <= 6000
    for p in corpus:
        assert set(p) >= {"_id", "title", "text"}, p.get("_id")
        assert isinstance(p["title"], str) and isinstance(p["text"], str)
        assert p["text"].strip(), f"{p['_id']}: empty text"
    for p in real:
        assert re.fullmatch(r"(faq-[a-z]+-\d+-a|faq-[a-z]+-\d+-c\d+|doc-[a-z0-9-]+-\d+)", p["_id"]), p["_id"]
        assert 30 <= _words(p["text"]) <= 250, (p["_id"], _words(p["text"]))
        assert p["title"].strip(), f"{p['_id']}: empty title"
    kinds = Counter(p["_id"].split("-")[0] for p in real)
    assert kinds["doc"] > 10 * sum(p["_id"].endswith("-a") for p in real)


def test_no_rest_markup_left(corpus):
    for p in corpus:
        for field in ("title", "text"):
            s = p[field]
            assert not ROLE_RE.search(s), (p["_id"], field, ROLE_RE.search(s).group())
            assert not re.search(r"(^|\n)\.\. [\w:-]+::", s), (p["_id"], field)
            assert not re.search(r"`[^`\n]+ <https?://[^`>]+>`_", s), (p["_id"], field)
            assert "\x00" not in s


def test_distractors_are_not_from_faq_or_whatsnew(corpus):
    for p in corpus:
        if p["_id"].startswith("doc-"):
            assert not re.match(r"doc-(faq|whatsnew)-", p["_id"]), p["_id"]
            assert "FAQ" not in p["title"].split(" — ")[0], p


def test_llm_passages_if_present(corpus, queries):
    qids = {q["_id"] for q in queries}
    for p in corpus:
        if p["_id"].startswith("llm-"):
            m = LLM_ID_RE.fullmatch(p["_id"])
            assert m, f"{p['_id']}: llm passage ids must be llm-<query id>-<n>"
            assert m.group(1) in qids, f"{p['_id']}: no query {m.group(1)}"


def test_every_query_has_exactly_one_existing_positive(corpus, queries, qrels):
    pids = {p["_id"] for p in corpus}
    qids = [q["_id"] for q in queries]
    per_query = Counter(r["query-id"] for r in qrels)
    assert set(per_query) == set(qids)
    assert all(per_query[q] == 1 for q in qids)
    for r in qrels:
        assert r["score"] == "1"
        assert r["corpus-id"] in pids, r
        assert r["corpus-id"] == r["query-id"] + "-a"
    # the positive never repeats the question as its title (that would leak the query)
    text_of = {q["_id"]: q["text"] for q in queries}
    by_id = {p["_id"]: p for p in corpus}
    for r in qrels:
        assert text_of[r["query-id"]] not in by_id[r["corpus-id"]]["title"]


@pytest.fixture(scope="module")
def false_negatives() -> list[dict]:
    with open(PYFAQ / "qrels" / "false_negatives.tsv", encoding="utf-8", newline="") as fh:
        header = fh.readline().rstrip("\n")
        assert header == "query-id\tcorpus-id\tscore"
        return [dict(zip(("query-id", "corpus-id", "score"), row)) for row in csv.reader(fh, delimiter="\t")]


def test_false_negative_labels(corpus, queries, qrels, false_negatives):
    """Known false negatives: the rest of each FAQ answer (``<query id>-c<k>``) and documentation
    passages that repeat an answer verbatim; never a positive, every id in the corpus."""
    pids = {p["_id"] for p in corpus}
    qids = {q["_id"] for q in queries}
    positives = {(r["query-id"], r["corpus-id"]) for r in qrels}
    pairs = [(r["query-id"], r["corpus-id"]) for r in false_negatives]
    assert len(pairs) == len(set(pairs)) == 259
    assert all(r["score"] == "1" for r in false_negatives)
    for q, p in pairs:
        assert q in qids and p in pids and (q, p) not in positives
        assert p.startswith(q + "-c") or p.startswith("doc-"), (q, p)
    cont = [p for _, p in pairs if "-c" in p and p.startswith("faq-")]
    assert len(cont) == 256 and len({q for q, _ in pairs}) == 100
    # every continuation passage of the corpus is labelled for its own question
    assert {p["_id"] for p in corpus if re.fullmatch(r"faq-[a-z]+-\d+-c\d+", p["_id"])} == set(cont)
    copies = sorted((q, p) for q, p in pairs if p.startswith("doc-"))
    assert copies == [
        ("faq-gui-3", "doc-library-tkinter-102"),
        ("faq-programming-22", "doc-library-inspect-34"),
        ("faq-programming-59", "doc-library-functools-21"),
    ]
    by_id = {p["_id"]: p for p in corpus}
    # spot check: the UnboundLocalError answer goes on with its example and the explanation
    assert "faq-programming-5-c2" in by_id
    assert by_id["faq-programming-5-c2"]["text"].startswith("This is because when you make an assignment")
    assert by_id["faq-programming-5-c2"]["title"] == by_id["faq-programming-5-a"]["title"]


def test_false_negatives_are_never_positives_when_loaded():
    loaders = pytest.importorskip("eci_core.io.load")
    coll, report = loaders.load_paths([PYFAQ])
    assert not report.errors, report.errors
    assert all(len(v) == 1 for v in coll.positives.values())
    pos = {coll.passage_ids[p] for v in coll.positives.values() for p in v}
    assert all(p.endswith("-a") for p in pos)
    # the miners meet the false negatives, as they would in real data
    mined = {coll.passage_ids[p] for s in coll.sources.values() for p in s.p_idx.tolist()}
    assert sum(1 for p in mined if re.fullmatch(r"faq-[a-z]+-\d+-c\d+", p)) > 100


def test_known_question_and_answer(corpus, queries):
    """Spot check against the FAQ source (faq/programming.rst.txt, section 'Core Language')."""
    q = {x["_id"]: x["text"] for x in queries}
    assert q["faq-programming-5"] == "Why am I getting an UnboundLocalError when the variable has a value?"
    pos = {p["_id"]: p for p in corpus}["faq-programming-5-a"]
    assert pos["title"] == "Programming FAQ — Core Language"
    assert pos["text"].startswith("It can be a surprise to get the UnboundLocalError")


def test_loader_reads_the_directory(queries, corpus):
    loaders = pytest.importorskip("eci_core.io.load")
    if not hasattr(loaders, "load_paths"):
        pytest.skip("eci_core.io.load.load_paths not written yet")
    if not (PYFAQ / "negatives").is_dir():
        pytest.skip("sample_data/pyfaq/negatives/ not mined yet (the BEIR loader needs it)")
    coll, report = loaders.load_paths([PYFAQ])
    assert not report.errors, report.errors
    assert coll.n_queries == len(queries)
    assert sorted(coll.query_ids) == sorted(q["_id"] for q in queries)
    assert all(len(v) == 1 for v in coll.positives.values())
    assert sum(len(v) for v in coll.positives.values()) == len(queries)
    # the loader keeps the passages it needs (positives and mined negatives), all from the corpus
    pids = {p["_id"] for p in corpus}
    assert len(queries) <= coll.n_passages <= len(corpus)
    assert set(coll.passage_ids) <= pids
    assert coll.sources, "no negatives source loaded"


# ------------------------------------------------------------------ build script helpers


@pytest.fixture(scope="module")
def build():
    spec = importlib.util.spec_from_file_location("pyfaq_build", ROOT / "sample_data" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.modules.pop(spec.name, None)
    return mod


@pytest.mark.parametrize(
    "src, expected",
    [
        (":func:`len` of ``x``", "len() of x"),
        (":meth:`~collections.OrderedDict.move_to_end`", "move_to_end()"),
        ("see :pep:`8` and :rfc:`2822`", "see PEP 8 and RFC 2822"),
        ("`the guide <https://example.org/>`_ says", "the guide says"),
        ("**bold** and *emph* but ``*args``", "bold and emph but *args"),
        (":class:`dict`\\ s and BLAKE2_", "dicts and BLAKE2"),
        (":ref:`the tutorial <tut-index>` for |release|", "the tutorial for 3.11"),
        ("Why does ``-22 // 10``\n   return -3?", "Why does -22 // 10 return -3?"),
    ],
)
def test_clean_inline(build, src, expected):
    assert build.clean_inline(src) == expected


def test_parse_blocks_directives_and_literals(build):
    src = """Title
=====

.. _label:

Sub?
----

Use this::

    x = 1

.. note::
   Be careful.

.. versionadded:: 3.2
   The *y* flag.

.. index:: single: hidden

.. function:: f(a)
              f(a, b)
   :noindex:

   Does things.
"""
    blocks = [(b.kind, b.text) for b in build.parse_blocks(src) if b.kind != "target"]
    assert blocks == [
        ("title", "Title"),
        ("title", "Sub?"),
        ("prose", "Use this:"),
        ("code", "x = 1"),
        ("prose", "Be careful."),
        ("prose", "New in version 3.2. The y flag."),
        ("prose", "f(a):"),
        ("prose", "Does things."),
    ]


def test_pack_section_word_bounds(build):
    Block = build.Block
    short = Block("prose", "one two three four five")  # 5 words
    para = Block("prose", " ".join(f"w{k}." for k in range(40)))  # 40 words
    long = Block("prose", " ".join(f"Sentence {k} has five words." for k in range(120)))  # 600
    out = build.pack_section([short, short, para, long, short])
    counts = [len(p.split()) for p in out]
    assert all(30 <= c <= 250 for c in counts), counts
    # short + short + para are merged into one passage of 50 words
    assert counts[0] == 50
    # nothing is lost except possibly a too-short tail: 50 + 600 + 5 words in
    assert sum(counts) in (650, 655)
