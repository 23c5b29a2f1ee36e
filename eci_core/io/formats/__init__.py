"""The accepted formats, one module per family, and the one table that lists them.

=======================================  ==========================================================
module                                   formats (reader, detector, writer)
=======================================  ==========================================================
:mod:`.sentence_transformers`            ``st-triplet``, ``st-ntuple``, ``st-labeled-pair``,
                                         ``st-labeled-list`` (writers: n-tuple, triplet)
:mod:`.bge`                              ``bge`` (FlagEmbedding; writer)
:mod:`.tevatron`                         ``tevatron`` (Tevatron / RLHN; writer)
:mod:`.msmarco_hn`                       ``msmarco-hn`` (msmarco-hard-negatives + TSV texts)
:mod:`.beir`                             ``beir`` (a directory; qrels, corpus and queries readers)
:mod:`.trec_run`, :mod:`.negative_ids`   ``trec-run``, ``negative-ids`` (negatives by id;
                                         :mod:`.run_files` reads either, :mod:`.id_runs` holds them)
:mod:`.fn_labels`                        false-negative labels files (not a hard-negative format)
=======================================  ==========================================================

:data:`FORMATS` (name -> :class:`FormatSpec`) is filled below, in the order the README's format
table, ``--format`` and the messages list them. Adding a format is one module (its reader,
detector and writer) plus one entry here; :func:`register_format` adds one at run time (a
plug-in, or the test format of ``tests/test_format_registry.py``).
"""

from __future__ import annotations

from eci_core.io.formats import beir, bge, msmarco_hn, negative_ids, tevatron, trec_run
from eci_core.io.formats import sentence_transformers as st
from eci_core.io.formats.beir import load_run_file
from eci_core.io.formats.registry import (
    FORMATS,
    ExportSpec,
    FormatSpec,
    aliases,
    detect_format,
    detect_row,
    normalise_format,
    register_format,
    unregister_format,
)
from eci_core.io.read.vocab import FORMAT_HINTS, KNOWN_FIELDS

__all__ = [
    "FORMATS",
    "FORMAT_HINTS",
    "KNOWN_FIELDS",
    "ExportSpec",
    "FormatSpec",
    "aliases",
    "detect_format",
    "detect_row",
    "normalise_format",
    "register_format",
    "unregister_format",
]


for _spec in (
    FormatSpec(
        "st-triplet",
        "sentence_transformers",
        "anchor, positive, negative [, scores]",
        aliases=("triplet",),
        known_fields=st.KNOWN_FIELDS,
        detect=st.detect_triplet,
        detect_order=60,
        parse_rows=st.parse_triplet,
        passage_ids=False,
        export=ExportSpec(
            "sentence-transformers triplet (JSONL)",
            "triplet.jsonl",
            st.write_triplet,
            order=2,
            button="triplet",
        ),
    ),
    FormatSpec(
        "st-ntuple",
        "sentence_transformers",
        "anchor, positive, negative_1..negative_n [, scores]",
        aliases=("n-tuple", "ntuple", "n-tuple-scores", "st-n-tuple", "st-n-tuple-scores"),
        known_fields=st.KNOWN_FIELDS,
        detect=st.detect_ntuple,
        detect_order=50,
        parse_rows=st.parse_ntuple,
        passage_ids=False,
        export=ExportSpec(
            "sentence-transformers n-tuple (JSONL)",
            "ntuple.jsonl",
            st.write_ntuple,
            order=1,
            button="n-tuple",
        ),
    ),
    FormatSpec(
        "st-labeled-pair",
        "sentence_transformers",
        "anchor, passage, label|score",
        aliases=("labeled-pair",),
        known_fields=st.KNOWN_FIELDS,
        detect=st.detect_labeled_pair,
        detect_order=80,
        parse_rows=st.parse_labeled_pair,
        passage_ids=False,
    ),
    FormatSpec(
        "st-labeled-list",
        "sentence_transformers",
        "anchor, [passages], labels|scores",
        aliases=("labeled-list",),
        known_fields=st.KNOWN_FIELDS,
        detect=st.detect_labeled_list,
        detect_order=70,
        parse_rows=st.parse_labeled_list,
        passage_ids=False,
    ),
    FormatSpec(
        "bge",
        "bge",
        "query, pos, neg [, pos_scores, neg_scores]",
        aliases=("flagembedding",),
        known_fields=bge.KNOWN_FIELDS,
        detect=bge.detect,
        detect_order=40,  # after msmarco-hn, whose rows also hold pos and neg
        parse_rows=bge.parse_bge,
        passage_ids=False,
        export=ExportSpec("BGE / FlagEmbedding (JSONL)", "bge.jsonl", bge.write, order=3, button="BGE"),
    ),
    FormatSpec(
        "tevatron",
        "tevatron",
        "query_id, query, positive_passages, negative_passages",
        aliases=("rlhn",),
        known_fields=tevatron.KNOWN_FIELDS,
        detect=tevatron.detect,
        detect_order=10,
        parse_rows=tevatron.parse_tevatron,
        export=ExportSpec("Tevatron (JSONL)", "tevatron.jsonl", tevatron.write, order=4, button="Tevatron"),
    ),
    FormatSpec(
        "msmarco-hn",
        "msmarco_hn",
        "qid, pos, neg: {system: [pid...]}",
        aliases=("msmarco", "msmarco-hard-negatives"),
        known_fields=msmarco_hn.KNOWN_FIELDS,
        detect=msmarco_hn.detect,
        detect_order=30,
        load=msmarco_hn.load_msmarco_path,
    ),
    FormatSpec(
        "beir",
        "beir",
        "a directory with corpus.jsonl, queries.jsonl, qrels/, negatives/",
        known_fields=beir.KNOWN_FIELDS,
        directory=beir.looks_like_beir_dir,
        load=beir.load_beir_path,
    ),
    FormatSpec(
        "trec-run",
        "trec_run",
        "qid Q0 docid rank score tag",
        aliases=("trec", "run"),
        known_fields=trec_run.KNOWN_FIELDS,
        container="trec",
        load=load_run_file,
    ),
    FormatSpec(
        "negative-ids",
        "negative_ids",
        "query_id, negative_ids [, scores]",
        known_fields=negative_ids.KNOWN_FIELDS,
        detect=negative_ids.detect,
        detect_order=20,
        load=load_run_file,
    ),
):
    register_format(_spec)
del _spec
