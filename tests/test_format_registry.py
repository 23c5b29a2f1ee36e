"""The format registry (eci_core.io.formats): a new format is one module-like spec plus one
registry entry, and loading, detection, the exporters, the CLI's --format and the README read it.

The toy format below ("toy-pairs": ``{"toy_query", "toy_positive", "toy_negatives": "a|b"}``
per line) stands for a new module: its reader, detector and writer, registered by a fixture that
removes it afterwards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eci_core.io.cleaning import CleanedSet
from eci_core.io.records import LoadError, PassageRef, QueryRecord
from eci_core.io.export import EXPORT_FORMATS, export_bytes
from eci_core.io.formats import (
    FORMAT_HINTS,
    FORMATS,
    KNOWN_FIELDS,
    ExportSpec,
    FormatSpec,
    detect_format,
    normalise_format,
    register_format,
    unregister_format,
)
from eci_core.io.formats.base import parse_rows
from eci_core.io.load import load_paths
from eci_core.io.read.values import need_field, text_value

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the toy "module"
def toy_record(path: str, line: int, row: dict) -> QueryRecord:
    q = text_value(path, line, need_field(path, line, row, "toy_query"), "toy_query")
    pos = text_value(path, line, need_field(path, line, row, "toy_positive"), "toy_positive")
    negs = text_value(path, line, need_field(path, line, row, "toy_negatives"), "toy_negatives").split("|")
    return QueryRecord(None, q, [PassageRef(None, pos)], [PassageRef(None, n) for n in negs], line)


def toy_parse(path, rows):
    return parse_rows(path, rows, toy_record)


def toy_detect(row: dict) -> bool:
    return "toy_query" in row


def toy_write(cleaned, source=None, n=None) -> bytes:
    return "".join(
        json.dumps(
            {
                "toy_query": r.query,
                "toy_positive": r.positives[0].text,
                "toy_negatives": "|".join(x.text for x in r.negatives),
            }
        )
        + "\n"
        for r in cleaned.get(source)
    ).encode("utf-8")


TOY = FormatSpec(
    "toy-pairs",
    "toy",
    "toy_query, toy_positive, toy_negatives",
    aliases=("toy",),
    known_fields=("toy_query", "toy_positive", "toy_negatives"),
    detect=toy_detect,
    detect_order=0,
    parse_rows=toy_parse,
    passage_ids=False,
    export=ExportSpec("Toy pairs (JSONL)", "toy.jsonl", toy_write),
)


@pytest.fixture
def toy():
    before = list(FORMATS)
    register_format(TOY)
    try:
        yield TOY
    finally:
        unregister_format(TOY.name)
    assert list(FORMATS) == before


def _toy_file(tmp_path: Path) -> Path:
    f = tmp_path / "mine.jsonl"
    rows = [
        {
            "toy_query": "what is a cat",
            "toy_positive": "A cat is a feline.",
            "toy_negatives": "Dogs bark.|Cars.",
        },
        {"toy_query": "capital of france", "toy_positive": "Paris.", "toy_negatives": "Lyon."},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return f


# ----------------------------------------------------------------------------- the toy format end to end
def test_a_registered_format_is_detected_loaded_and_exported(toy, tmp_path):
    f = _toy_file(tmp_path)
    assert detect_format(f) == "toy-pairs"
    assert normalise_format("TOY") == "toy-pairs"
    assert FORMAT_HINTS["toy-pairs"] == TOY.hint and "toy_negatives" in KNOWN_FIELDS

    coll, report = load_paths([f])
    assert not report.errors
    assert list(coll.sources) == ["mine"]
    assert coll.n_queries == 2 and len(coll.sources["mine"]) == 3
    src = report.sources[0]
    assert src.format == "toy-pairs"

    _, forced = load_paths([f], format="toy")  # an alias, as --format would pass it
    assert not forced.errors and forced.sources[0].format == "toy-pairs"

    # the exporter offers it and writes it; the file reads back as the same records
    assert "Toy pairs (JSONL)" in EXPORT_FORMATS
    recs = [
        QueryRecord(
            "q1", "what is a cat", [PassageRef(None, "A cat is a feline.")], [PassageRef(None, "Dogs bark.")]
        )
    ]
    data, name = export_bytes(CleanedSet("drop_flagged", {"mine": recs}, None), "Toy pairs (JSONL)")
    assert name == "mine.toy.jsonl"
    out = tmp_path / name
    out.write_bytes(data)
    back, rep = load_paths([out])
    assert not rep.errors and rep.sources[0].format == "toy-pairs"
    assert back.n_queries == 1 and len(back.sources["mine.toy"]) == 1


def test_a_bad_row_of_a_registered_format_names_its_line_and_field(toy, tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text(
        json.dumps({"toy_query": "q", "toy_positive": "p", "toy_negatives": "n"})
        + "\n"
        + json.dumps({"toy_query": "q2", "toy_positive": 5, "toy_negatives": "SECRET"})
        + "\n",
        encoding="utf-8",
    )
    _, report = load_paths([f])
    assert report.errors == [f"{f}:2: field 'toy_positive': expected a string, got a number"]


def test_unregistering_removes_the_format_everywhere(tmp_path):
    f = _toy_file(tmp_path)
    register_format(TOY)
    unregister_format(TOY.name)
    assert "toy-pairs" not in FORMATS and "toy-pairs" not in FORMAT_HINTS
    assert "toy_query" not in KNOWN_FIELDS and "Toy pairs (JSONL)" not in EXPORT_FORMATS
    with pytest.raises(ValueError, match="not a known format"):
        normalise_format("toy")
    with pytest.raises(LoadError) as err:
        detect_format(f)
    # an unknown field name is counted, never shown
    assert "toy_query" not in str(err.value) and "3 unrecognised fields" in str(err.value)


def test_a_name_or_alias_is_registered_once(toy):
    with pytest.raises(ValueError, match="already registered"):
        register_format(FormatSpec("toy-2", "toy", "…", aliases=("toy",), parse_rows=toy_parse))
    with pytest.raises(ValueError, match="already registered"):
        register_format(FormatSpec("BGE", "toy", "…", parse_rows=toy_parse))
    with pytest.raises(ValueError, match="parse_rows"):
        register_format(FormatSpec("toy-3", "toy", "…"))


# ----------------------------------------------------------------------------- the lists read the registry
def test_the_readme_formats_table_lists_exactly_the_registry():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Accepted formats", 1)[1].split("\n## ", 1)[0]
    table = section.split("| format | `--format` |", 1)[1].split("\n\n", 1)[0]
    rows = [ln for ln in table.splitlines()[1:] if ln.startswith("| ") and not ln.startswith("|---")]
    names = [re.fullmatch(r"`([a-z0-9-]+)`", ln.split(" | ")[1].strip()).group(1) for ln in rows]
    assert names == list(FORMATS)


def test_the_cli_format_choices_are_the_registry(toy):
    from eci_core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command" or getattr(a, "choices", None))
    for name in ("inspect", "score"):
        fmt = next(a for a in sub.choices[name]._actions if a.dest == "format")
        assert list(fmt.choices) == list(FORMATS)  # the toy format too: read when the parser is built
        assert fmt.type("n-tuple") == "st-ntuple"  # aliases still accepted
        assert ", ".join(FORMATS) in " ".join(fmt.help.split())
