#!/usr/bin/env python3
"""Build the bundled ``pyfaq`` sample corpus (BEIR layout) from Debian's ``python3.11-doc``.

The Python documentation is licensed under the PSF License Agreement (version 2); the Debian
package ships the reStructuredText sources of the HTML docs under
``usr/share/doc/python3.11/html/_sources/`` (files end in ``.rst.txt``).

What is built (all deterministic for a given ``.deb`` and ``--seed``):

* **queries** -- every section title of the Python FAQ (``_sources/faq/*.rst.txt``) that ends
  in ``?``; ``_id = faq-<file>-<n>`` (``n`` = 1-based order of the question in its file),
  ``text`` = the title cleaned of reST markup.
* **positives** -- one per query, ``_id = faq-<file>-<n>-a``: the answer's first prose
  paragraph; while it has fewer than ``MIN_WORDS`` words the following paragraph / code blocks
  of the same answer are appended, and the result is capped at ``MAX_WORDS`` words (cut at a
  sentence or line boundary).  The title is ``"<FAQ title> — <parent section>"`` (never the
  question itself, which would leak the query into the passage).
* **distractors** -- paragraphs of the rest of the documentation (tutorial, howto, library,
  reference, using, extending, glossary; not faq, whatsnew, changelog, c-api, distutils), cleaned
  the same way, packed into passages of ``MIN_WORDS``..``MAX_WORDS`` words (short paragraphs are
  merged with their neighbours inside a section, long ones split at sentence boundaries),
  de-duplicated on normalised text, then sampled with ``random.Random(seed)`` (weighted: the
  narrative docs at twice the rate of the library reference, see ``AREA_WEIGHT``) so that the
  corpus holds ``--total`` passages.  ``_id = doc-<path-slug>-<n>`` (``n`` = passage order in that
  document before sampling, so ids do not depend on the sample), ``title`` = ``"<document
  title> — <section heading>"``.  Passages that answer FAQ questions are deliberately kept: they
  are the real false negatives a hard-negative miner must surface.
* **known false negatives** (``qrels/false_negatives.tsv``) -- passages that answer a question
  but are not its positive: (a) the *continuations* of each answer, i.e. the rest of the answer
  after the positive (the words the cap cut off, then every later paragraph / code block),
  packed like a documentation section, ``_id = <query id>-c<k>``, same title as the positive;
  (b) documentation passages that repeat an answer verbatim (>= ``COPY_SHINGLES`` shared word
  8-grams with the answer's prose; see ``false_negatives``), added to the corpus when the sample
  did not draw them.  The distractor sample does not depend on them (they are added after it).

Word counts are ``len(text.split())``.  Output: ``corpus.jsonl``, ``queries.jsonl``,
``qrels/test.tsv`` (``query-id\\tcorpus-id\\tscore``, score 1), ``qrels/false_negatives.tsv``
(the same layout: the known false negatives below, never positives) and ``LICENSE`` (the PSF License
Agreement and the Zero-Clause BSD licence taken from the package's ``license.rst.txt``, plus the
package version).

Usage::

    python sample_data/build.py                      # apt-get download python3.11-doc
    python sample_data/build.py --deb python3.11-doc_3.11.2-6+deb12u8_all.deb
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "python3.11-doc"
RELEASE = "3.11"
SOURCES_REL = Path("usr/share/doc/python3.11/html/_sources")
MIN_WORDS = 30
MAX_WORDS = 250
MAX_CODE_WORDS = 150  # a code block longer than this is not used in a distractor passage
DEFAULT_TOTAL = 4500
DEFAULT_SEED = 20240611
# a documentation passage that shares at least COPY_SHINGLES word SHINGLE_WORDS-grams with the
# prose of an FAQ answer (a verbatim run of >= 12 words) is attributed to that answer
SHINGLE_WORDS = 8
COPY_SHINGLES = 5
FALSE_NEGATIVES_FILE = "false_negatives.tsv"  # in qrels/; never a qrels split of positives
DISTRACTOR_DIRS = ("tutorial", "howto", "library", "reference", "using", "extending")
DISTRACTOR_FILES = ("glossary.rst.txt",)
# sampling weight per area: the library reference is ~80 % of the pool; the narrative docs (closer
# to what FAQ questions ask) are sampled at twice its rate
AREA_WEIGHT = {"library": 1.0}
for _area in ("tutorial", "howto", "reference", "using", "extending", "glossary"):
    AREA_WEIGHT[_area] = 2.0

# --------------------------------------------------------------------------------------------
# reST inline markup
# --------------------------------------------------------------------------------------------

ROLE_RE = re.compile(r"(?<![\w`]):((?:[a-zA-Z0-9_-]+:)?[a-zA-Z0-9_-]+):`((?:[^`\\]|\\.)+?)`(?!`)")
LITERAL_RE = re.compile(r"``(.+?)``(?!`)")
LINK_RE = re.compile(r"`([^`<]*?)\s*<([^`>]+)>`__?")
REF_RE = re.compile(r"`([^`]+?)`__?(?![\w])")
DEFAULT_ROLE_RE = re.compile(r"(?<![\w`:])`([^`]+?)`(?![\w`_])")
STRONG_RE = re.compile(r"(?<![\w*\\])\*\*(?=\S)(.+?)(?<=[^\s\\])\*\*(?![\w*])")
EMPH_RE = re.compile(r"(?<![\w*\\])\*(?=[^\s*])([^*]+?)(?<=[^\s\\*])\*(?![\w*])")
FOOTNOTE_RE = re.compile(r"\s*\[(?:#[\w-]*|\d+|\*)\]_")
SUBST_REF_RE = re.compile(r"(?<![\w|])\|([A-Za-z_][\w.-]*)\|_{0,2}(?![\w|])")
NAMED_REF_RE = re.compile(r"(?<![\w\x00])([A-Za-z][\w.-]*[A-Za-z0-9])__?(?![\w\x00])")
SUBST = {"|release|": RELEASE, "|version|": RELEASE, "|today|": "", "|python_version|": RELEASE}
CALL_ROLES = {"func", "meth", "py:func", "py:meth", "c:func", "c:macro"}


@dataclass
class Labels:
    """Cross-reference targets: ``.. _label:`` -> following section title, doc path -> title."""

    ref: dict[str, str] = field(default_factory=dict)
    doc: dict[str, str] = field(default_factory=dict)


LABELS = Labels()


def _role_text(role: str, content: str) -> str:
    """Rendered text of ``:role:`content```, the way Sphinx would show it (approximately)."""
    content = content.replace("\\", "")
    name = role.split(":")[-1]
    explicit = re.fullmatch(r"(.*?)\s*<([^<>]+)>", content, flags=re.S)
    if explicit and explicit.group(1).strip():
        return explicit.group(1).strip()
    target = explicit.group(2) if explicit else content
    if name == "pep":
        return "PEP " + target.split("#")[0].strip()
    if name == "rfc":
        return "RFC " + target.split("#")[0].strip()
    if name == "issue":
        return "bpo-" + target.strip()
    if name == "gh":
        return "gh-" + target.strip()
    if name == "ref":
        key = target.strip().lower()
        return LABELS.ref.get(key, target.replace("-", " ").replace("_", " "))
    if name == "doc":
        key = target.strip().lstrip("/")
        return LABELS.doc.get(key, LABELS.doc.get(key.split("/")[-1], key.split("/")[-1]))
    if name in ("samp", "file"):
        return target.replace("{", "").replace("}", "")
    if name == "menuselection":
        return target.replace("-->", "→")
    text = target.strip()
    if text.startswith("!"):
        text = text[1:]
    if text.startswith("~"):
        text = text[1:].split(".")[-1]
    if role in CALL_ROLES and not text.endswith(")"):
        text += "()"
    return text


def clean_inline(text: str) -> str:
    """Turn one paragraph of reST into plain text (roles, literals, links, emphasis, escapes).

    ``:func:`len``` -> ``len()``, ``:pep:`8``` -> ``PEP 8``, ````x```` -> ``x``,
    ```text <url>`_`` -> ``text``, ``**b**`` -> ``b``; whitespace is collapsed.
    """
    for key, value in SUBST.items():
        text = text.replace(key, value)
    text = re.sub(r"\s+", " ", text).strip()
    keep: list[str] = []

    def stash(value: str) -> str:
        keep.append(value)
        return f"\x00{len(keep) - 1}\x00"

    text = LITERAL_RE.sub(lambda m: stash(m.group(1)), text)
    text = ROLE_RE.sub(lambda m: stash(_role_text(m.group(1), m.group(2))), text)
    text = LINK_RE.sub(lambda m: stash(m.group(1).strip() or m.group(2).strip()), text)
    text = REF_RE.sub(lambda m: stash(m.group(1)), text)
    text = DEFAULT_ROLE_RE.sub(lambda m: stash(m.group(1)), text)
    text = FOOTNOTE_RE.sub("", text)
    text = SUBST_REF_RE.sub(r"\1", text)
    text = NAMED_REF_RE.sub(r"\1", text)
    text = STRONG_RE.sub(r"\1", text)
    text = EMPH_RE.sub(r"\1", text)
    text = re.sub(r"\\ ", "", text)
    text = re.sub(r"\\(.)", r"\1", text)
    while "\x00" in text:
        new = re.sub(r"\x00(\d+)\x00", lambda m: keep[int(m.group(1))], text)
        if new == text:
            break
        text = new
    return re.sub(r"\s+", " ", text).strip()


# --------------------------------------------------------------------------------------------
# reST block structure
# --------------------------------------------------------------------------------------------


@dataclass
class Block:
    """A unit of a document: ``kind`` is ``title``, ``prose`` or ``code``."""

    kind: str
    text: str
    style: str = ""  # title adornment, e.g. "=o" (overlined "=") or "-"


ADORN_RE = re.compile(r"([!-/:-@\[-`{-~])\1{2,}\s*")
DIRECTIVE_RE = re.compile(r"\.\.\s+([\w:-]+)::\s*(.*)")
TARGET_RE = re.compile(r"\.\.\s+_([^:]+|`[^`]+`):\s*(\S*)\s*$")
SIMPLE_TABLE_RE = re.compile(r"=+(\s+=+)+\s*")
BULLET_RE = re.compile(r"([*+-]|\d+\.|#\.|[a-z]\.|\(\d+\))\s+")

CODE_DIRECTIVES = {"code-block", "code", "sourcecode", "doctest", "testcode", "testoutput"}
PROSE_DIRECTIVES = {  # body kept as text; argument (if any) kept as a leading sentence
    "note",
    "warning",
    "seealso",
    "important",
    "tip",
    "caution",
    "attention",
    "hint",
    "danger",
    "impl-detail",
    "topic",
    "sidebar",
    "glossary",
    "hlist",
    "centered",
    "admonition",
    "only",
    "container",
    "rst-class",
    "cssclass",
    "compound",
}
VERSION_DIRECTIVES = {
    "versionadded": "New in version {}.",
    "versionchanged": "Changed in version {}.",
    "deprecated": "Deprecated since version {}.",
    "deprecated-removed": "Deprecated since version {}, will be removed in version {}.",
}
OBJECT_DIRECTIVES = {  # signature line + description
    "function",
    "method",
    "class",
    "attribute",
    "data",
    "exception",
    "decorator",
    "decoratormethod",
    "coroutinemethod",
    "coroutinefunction",
    "classmethod",
    "staticmethod",
    "abstractmethod",
    "awaitablefunction",
    "awaitablemethod",
    "object",
    "describe",
    "cmdoption",
    "option",
    "envvar",
    "opcode",
    "pdbcommand",
    "property",
    "c:function",
    "c:type",
    "c:member",
    "c:macro",
    "c:var",
    "fixer",
    "2to3fixer",
}
# everything else (index, toctree, module, currentmodule, productionlist, literalinclude,
# include, image, figure, raw, list-table, csv-table, table, tabularcolumns, audit-event,
# sectionauthor, moduleauthor, highlight, contents, program, rubric, testsetup, testcleanup,
# math, ...) is dropped together with its body.


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _dedent(lines: list[str]) -> list[str]:
    return textwrap.dedent("\n".join(lines)).split("\n")


def _strip_blank(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _indented_body(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """Lines from ``start`` indented deeper than ``base`` (blank lines included)."""
    j = start
    while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
        j += 1
    return _strip_blank(lines[start:j]), j


def parse_blocks(text: str) -> list[Block]:
    """Parse reST source into a flat list of title / prose / code blocks."""
    return _parse(text.expandtabs(8).split("\n"))


def _parse(lines: list[str]) -> list[Block]:
    out: list[Block] = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        ind = _indent(line)
        # --- section titles (with or without overline) ---------------------------------
        if (
            ind == 0
            and ADORN_RE.fullmatch(line)
            and i + 2 < n
            and lines[i + 1].strip()
            and ADORN_RE.fullmatch(lines[i + 2])
            and lines[i + 2].strip()[0] == stripped[0]
        ):
            out.append(Block("title", clean_inline(lines[i + 1]), stripped[0] + "o"))
            i += 3
            continue
        if (
            ind == 0
            and i + 1 < n
            and ADORN_RE.fullmatch(lines[i + 1])
            and not SIMPLE_TABLE_RE.fullmatch(line)
            and len(lines[i + 1].strip()) >= max(3, len(stripped) - 2)
            and not stripped.startswith(".. ")
        ):
            out.append(Block("title", clean_inline(stripped), lines[i + 1].strip()[0]))
            i += 2
            continue
        if ind == 0 and ADORN_RE.fullmatch(line):  # transition
            i += 1
            continue
        # --- indented material at this level: block quote / list continuation -----------
        if ind > 0:
            body, j = _indented_body(lines, i, 0)
            out.extend(_parse(_dedent(body)))
            i = j
            continue
        # --- explicit markup ---------------------------------------------------------------
        if stripped.startswith(".. ") or stripped == "..":
            i = _explicit(lines, i, out)
            continue
        # --- tables ------------------------------------------------------------------------
        if SIMPLE_TABLE_RE.fullmatch(line):
            borders, j = 1, i + 1
            while j < n:
                if SIMPLE_TABLE_RE.fullmatch(lines[j]):
                    borders += 1
                    if j + 1 >= n or not lines[j + 1].strip():
                        j += 1
                        break
                j += 1
            i = j
            continue
        if stripped.startswith("+-") or stripped.startswith("+="):
            while i < n and lines[i].strip() and lines[i].strip()[0] in "+|":
                i += 1
            continue
        # --- paragraph (also lists, field lists, definition lists) -------------------------
        j = i
        para: list[str] = []
        while j < n and lines[j].strip():
            if j > i and _indent(lines[j]) == 0 and (ADORN_RE.fullmatch(lines[j])):
                break
            para.append(lines[j])
            j += 1
        i = j
        _paragraph(para, lines, out, i)
        if para and para[-1].rstrip().endswith("::"):
            # literal block: the next indented block
            k = i
            while k < n and not lines[k].strip():
                k += 1
            if k < n and _indent(lines[k]) > 0:
                # the block ends at the first line indented less than its first line (so the
                # rest of a definition-list / list-item body after it is prose again)
                body, k = _indented_body(lines, k, _indent(lines[k]) - 1)
                code = "\n".join(_dedent(body)).strip("\n")
                if code.strip():
                    out.append(Block("code", code))
                i = k
    return out


def _paragraph(para: list[str], lines: list[str], out: list[Block], nxt: int) -> None:
    """Emit one paragraph (prose, doctest code, list, field list) as blocks."""
    first = para[0].strip()
    if first.startswith(">>>"):
        out.append(Block("code", "\n".join(_dedent(para)).strip("\n")))
        return
    if first.startswith("| "):  # line block
        para = [p.strip()[2:] if p.strip().startswith("| ") else p for p in para]
    if (
        len(para) > 1
        and _indent(para[1]) > _indent(para[0])
        and not BULLET_RE.match(first)
        and not re.match(r":[^:`]+:\s", first)
        and not first.endswith((",", "("))
    ):
        # definition list item: "term\n    definition" -> "term: definition"
        para = [para[0].rstrip() + ":"] + para[1:] if not first.endswith(":") else para
    raw = "\n".join(p.strip() for p in para)
    if raw.endswith("::"):
        raw = raw[:-2].rstrip()
        if raw and not raw.endswith((" ", "\n")) and para[-1].rstrip()[-3:-2] != " ":
            raw += ":"
    if not raw.strip():
        return
    # list items / field-list items keep their own line; everything else becomes one line
    items: list[str] = []
    for p in para:
        s = p.strip()
        if _indent(p) == _indent(para[0]) and (BULLET_RE.match(s) or re.match(r":[^:`]+:\s", s)) and items:
            items.append(s)
        elif items:
            items[-1] += " " + s
        else:
            items.append(s)
    if raw != "\n".join(p.strip() for p in para):  # the literal marker was stripped
        items[-1] = re.sub(r"\s*::$", "", items[-1])
        if raw.endswith(":") and not items[-1].endswith(":"):
            items[-1] += ":"
    text_items = []
    for it in items:
        field_m = re.match(r":([^:`]+):\s+(.*)", it)
        if field_m:  # ":param x: desc" -> "x: desc"; ":returns: desc" -> "Returns: desc"
            words = field_m.group(1).split()
            label = words[-1] if len(words) > 1 else words[0].capitalize()
            it = f"{label}: {field_m.group(2)}"
        cleaned = clean_inline(it)
        if cleaned:
            text_items.append(cleaned)
    if text_items:
        out.append(Block("prose", "\n".join(text_items)))


def _explicit(lines: list[str], i: int, out: list[Block]) -> int:
    """Handle an explicit-markup construct starting at line ``i``; return the next index."""
    line = lines[i].strip()
    target = TARGET_RE.fullmatch(line)
    body, j = _indented_body(lines, i + 1, 0)
    if target:
        out.append(Block("target", target.group(1).strip("`").lower()))
        return j
    m = DIRECTIVE_RE.fullmatch(line)
    if not m:  # comment, footnote, substitution definition
        return j
    name, arg = m.group(1).lower(), m.group(2).strip()
    if name in OBJECT_DIRECTIVES:  # further signatures directly below the first one: dropped
        k = i + 1
        while k < j and lines[k].strip() and not re.match(r"\s*:[\w-]+:(\s|$)", lines[k]):
            k += 1
        body, _ = _indented_body(lines, k, 0)
    # directive options (":noindex:", ":language: c") come first in the body
    opts_end = 0
    while (
        opts_end < len(body)
        and body[opts_end].strip().startswith(":")
        and re.match(r"\s*:[\w-]+:(\s|$)", body[opts_end])
    ):
        opts_end += 1
    body = _strip_blank(body[opts_end:])
    content = _dedent(body) if body else []
    if name in CODE_DIRECTIVES:
        code = "\n".join(content).strip("\n")
        if code.strip():
            out.append(Block("code", code))
    elif name in PROSE_DIRECTIVES:
        if arg and name not in ("only", "rst-class", "cssclass", "container"):
            out.append(Block("prose", clean_inline(arg)))
        out.extend(_parse(content))
    elif name in VERSION_DIRECTIVES:
        parts = [p.strip() for p in arg.split(None, 1)] if arg else [""]
        version = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        if name == "deprecated-removed":
            vs = arg.split()
            head = VERSION_DIRECTIVES[name].format(vs[0], vs[1] if len(vs) > 1 else "?")
            rest = " ".join(vs[2:])
        else:
            head = VERSION_DIRECTIVES[name].format(version)
        inner = _parse(content)
        parts = [head, clean_inline(rest)] + [b.text for b in inner if b.kind == "prose"]
        out.append(Block("prose", " ".join(p for p in parts if p)))
    elif name in OBJECT_DIRECTIVES:
        sig = arg
        if sig:
            sig = re.sub(r"\s+", " ", sig.replace("\\", ""))
            out.append(Block("prose", sig + ":" if not sig.endswith(":") else sig))
        out.extend(_parse(content))
    elif name == "availability":
        out.append(Block("prose", "Availability: " + clean_inline(arg) + "."))
    return j


# --------------------------------------------------------------------------------------------
# documents -> sections -> passages
# --------------------------------------------------------------------------------------------


@dataclass
class Section:
    doc_title: str
    heading: str
    parent: str
    blocks: list[Block]


def sections_of(blocks: list[Block]) -> list[Section]:
    """Split a document's blocks at titles; levels follow the order adornments first appear."""
    styles: list[str] = []
    path: list[str] = []
    doc_title = ""
    result: list[Section] = []
    cur = Section("", "", "", [])
    for b in blocks:
        if b.kind == "title":
            if b.style not in styles:
                styles.append(b.style)
            level = styles.index(b.style)
            path = path[:level] + [b.text]
            if not doc_title:
                doc_title = b.text
            if cur.blocks:
                result.append(cur)
            cur = Section(doc_title, b.text, path[-2] if len(path) > 1 else "", [])
        elif b.kind in ("prose", "code"):
            cur.blocks.append(b)
    if cur.blocks:
        result.append(cur)
    for s in result:
        s.doc_title = doc_title or s.doc_title
    return result


def words(text: str) -> int:
    return len(text.split())


SENT_RE = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z0-9(\"'`])")


def _split_long(text: str, kind: str, limit: int = MAX_WORDS) -> list[str]:
    """Split a unit longer than ``limit`` words at sentence (prose) or line (code) boundaries.

    Greedy packing of sentences into chunks of <= limit words; a sentence longer than the
    limit is cut into word windows.  A last chunk shorter than MIN_WORDS is merged back if the
    merged chunk still fits, otherwise the last two chunks are re-balanced.
    """
    if kind == "code":
        pieces = text.split("\n")
        joiner = "\n"
    else:
        pieces = [s for s in SENT_RE.split(text.replace("\n", " ")) if s.strip()]
        joiner = " "
    atoms: list[str] = []
    for p in pieces:
        w = p.split()
        if len(w) > limit:
            atoms.extend(" ".join(w[k : k + limit]) for k in range(0, len(w), limit))
        else:
            atoms.append(p)
    chunks: list[list[str]] = [[]]
    count = 0
    for a in atoms:
        aw = words(a)
        if count + aw > limit and chunks[-1]:
            chunks.append([])
            count = 0
        chunks[-1].append(a)
        count += aw
    out = [joiner.join(c).strip() for c in chunks if c]
    if len(out) > 1 and words(out[-1]) < MIN_WORDS:
        allw = (out[-2] + " " + out[-1]).split()
        if len(allw) <= limit:
            out[-2:] = [out[-2] + joiner + out[-1]]
        else:
            half = len(allw) // 2
            out[-2:] = [" ".join(allw[:half]), " ".join(allw[half:])]
    return out


def pack_section(blocks: list[Block]) -> list[str]:
    """Pack a section's prose/code units into passages of MIN_WORDS..MAX_WORDS words.

    A prose paragraph ending in ":" (an "For example:" intro, an API signature) and the block
    after it form one unit when they fit.
    Units are appended to a buffer until it reaches MIN_WORDS, then flushed; a unit that would
    push the buffer past MAX_WORDS flushes the buffer first (or, when the buffer is still too
    short, is split); a too-short tail is merged into the previous passage when it fits and
    dropped otherwise.  Code units over MAX_CODE_WORDS are skipped.
    """
    units: list[str] = []
    prev_intro = False  # the previous unit is prose ending in ":" (it introduces a code block)
    for b in blocks:
        w = words(b.text)
        if w == 0:
            continue
        if b.kind == "code" and w > MAX_CODE_WORDS:
            prev_intro = False
            continue
        if prev_intro and words(units[-1]) + w <= MAX_WORDS:
            # keep "For example:" with its example and "len(s):" with its description
            units[-1] = units[-1] + "\n" + b.text
        elif w > MAX_WORDS:
            units.extend(_split_long(b.text, b.kind))
        else:
            units.append(b.text)
        prev_intro = units[-1].rstrip().endswith(":") and b.kind == "prose"
    passages: list[str] = []
    buf: list[str] = []
    for u in units:
        bw = sum(words(x) for x in buf)
        uw = words(u)
        if bw + uw > MAX_WORDS:
            if bw >= MIN_WORDS:
                passages.append("\n".join(buf))
                buf = []
            else:
                passages.extend(_split_long("\n".join(buf + [u]), "prose"))
                buf = []
                continue
        buf.append(u)
        if sum(words(x) for x in buf) >= MIN_WORDS:
            passages.append("\n".join(buf))
            buf = []
    if buf:
        tail = "\n".join(buf)
        if passages and words(passages[-1]) + words(tail) <= MAX_WORDS:
            passages[-1] = passages[-1] + "\n" + tail
    return [p for p in passages if MIN_WORDS <= words(p) <= MAX_WORDS]


def _truncate(text: str, limit: int) -> str:
    """First <= limit words of ``text``, cut at the last sentence/line boundary that fits."""
    if words(text) <= limit:
        return text
    parts = re.split(r"(?<=[.!?:;\n])\s+", text)
    out = ""
    for p in parts:
        cand = out + (" " if out else "") + p
        if words(cand) > limit:
            break
        out = cand
    if words(out) < MIN_WORDS:  # no usable boundary: hard cut
        out = " ".join(text.split()[:limit])
    return out.strip()


def answer_parts(blocks: list[Block]) -> tuple[str, list[str]]:
    """The positive and the continuation passages of one FAQ answer.

    The positive is the first prose paragraph, extended with the following blocks until it has
    >= MIN_WORDS words, capped at MAX_WORDS (cut at a sentence boundary).  The continuations are
    the rest of the answer -- the words the cap cut off, then every later block -- packed like
    a documentation section (``pack_section``): later paragraphs of the same answer, i.e. known
    false negatives of the question.
    """
    start = next((k for k, b in enumerate(blocks) if b.kind == "prose"), None)
    if start is None:
        return "", []
    buf: list[str] = []
    used = start
    for b in blocks[start:]:
        buf.append(b.text)
        used += 1
        if words("\n".join(buf)) >= MIN_WORDS:
            break
    full = "\n".join(buf)
    positive = _truncate(full, MAX_WORDS)
    rest: list[Block] = []
    cut = full.split()[len(positive.split()) :]  # _truncate keeps a prefix of the words
    if cut:
        rest.append(Block("prose", " ".join(cut)))
    rest.extend(blocks[used:])
    return positive, pack_section(rest)


def answer_passage(blocks: list[Block]) -> str:
    """The positive: first prose paragraph, extended to >= MIN_WORDS words, capped at MAX_WORDS."""
    return answer_parts(blocks)[0]


def shingles(text: str, k: int = SHINGLE_WORDS) -> set[tuple[str, ...]]:
    """Word ``k``-grams of ``text`` (lower-cased ``\\w+`` tokens)."""
    w = re.findall(r"\w+", text.lower())
    return {tuple(w[i : i + k]) for i in range(len(w) - k + 1)}


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


def _slug(rel: Path) -> str:
    s = str(rel).removesuffix(".rst.txt").lower()
    return re.sub(r"[^a-z0-9]+", "-", s).strip("-")


def _title_of(doc_title: str, heading: str) -> str:
    parts = [p for p in (doc_title, heading) if p]
    if len(parts) == 2 and parts[0] == parts[1]:
        parts = parts[:1]
    return " — ".join(parts)


def _norm(text: str) -> str:
    return hashlib.sha1(re.sub(r"\W+", " ", text.lower()).strip().encode()).hexdigest()


def collect_labels(src: Path) -> None:
    """Fill LABELS from every source file: ``.. _x:`` before a title, and each doc's title."""
    for f in sorted(src.rglob("*.rst.txt")):
        blocks = parse_blocks(f.read_text(encoding="utf-8"))
        rel = str(f.relative_to(src)).removesuffix(".rst.txt")
        pending: list[str] = []
        first = True
        for b in blocks:
            if b.kind == "target":
                pending.append(b.text)
            elif b.kind == "title":
                if first:
                    LABELS.doc[rel] = b.text
                    first = False
                for p in pending:
                    LABELS.ref.setdefault(p, b.text)
                pending = []
            else:
                pending = []


def build_queries(src: Path) -> tuple[list[dict], list[dict], list[str], list[dict], dict[str, str]]:
    """FAQ questions, their answer passages, the ids of questions skipped because their
    whole answer has fewer than MIN_WORDS words (ids keep the question's position, so the
    skipped ones leave gaps), the continuation passages of each answer (``_id =
    <query id>-c<k>``, ``k`` = 1, 2, ... in answer order, ``query`` = the question's id) and
    the prose of each whole answer (query id -> text, for attributing copies)."""
    queries, positives, skipped, continuations = [], [], [], []
    prose: dict[str, str] = {}
    for f in sorted((src / "faq").glob("*.rst.txt")):
        name = f.name.removesuffix(".rst.txt")
        n = 0
        # walk the titles in order; a question's answer is the blocks up to the next title
        blocks = parse_blocks(f.read_text(encoding="utf-8"))
        styles: list[str] = []
        path: list[str] = []
        doc_title = ""
        for k, b in enumerate(blocks):
            if b.kind != "title":
                continue
            if b.style not in styles:
                styles.append(b.style)
            path = path[: styles.index(b.style)] + [b.text]
            doc_title = doc_title or b.text
            if not b.text.endswith("?"):
                continue
            n += 1
            body = []
            for bb in blocks[k + 1 :]:
                if bb.kind == "title":
                    break
                if bb.kind in ("prose", "code"):
                    body.append(bb)
            answer, rest = answer_parts(body)
            qid = f"faq-{name}-{n}"
            if words(answer) < MIN_WORDS:  # the whole answer is too short to be a passage
                skipped.append(qid)
                continue
            parent = path[-2] if len(path) > 1 else ""
            title = _title_of(doc_title, parent)
            queries.append({"_id": qid, "text": b.text})
            positives.append({"_id": f"{qid}-a", "title": title, "text": answer})
            for c, text in enumerate(rest, 1):
                continuations.append({"_id": f"{qid}-c{c}", "title": title, "text": text, "query": qid})
            prose[qid] = "\n".join(bb.text for bb in body if bb.kind == "prose")
    return queries, positives, skipped, continuations, prose


def build_distractors(src: Path) -> list[dict]:
    files: list[Path] = []
    for d in DISTRACTOR_DIRS:
        files.extend(sorted((src / d).rglob("*.rst.txt")))
    files.extend(src / f for f in DISTRACTOR_FILES)
    out = []
    for f in files:
        rel = f.relative_to(src)
        if "changelog" in f.name:
            continue
        slug = _slug(rel)
        n = 0
        for sec in sections_of(parse_blocks(f.read_text(encoding="utf-8"))):
            for text in pack_section(sec.blocks):
                n += 1
                out.append(
                    {"_id": f"doc-{slug}-{n}", "title": _title_of(sec.doc_title, sec.heading), "text": text}
                )
    return out


def false_negatives(
    positives: list[dict],
    continuations: list[dict],
    prose: dict[str, str],
    pool: list[dict],
    distractors: list[dict],
) -> tuple[list[dict], list[tuple[str, str]], int]:
    """The known false negatives: passages added to the corpus, (query id, passage id) labels,
    and how many labels are attributed documentation passages.

    * every continuation of an answer (``build_queries``) is a false negative of its question;
      one whose normalised text equals a positive's is dropped, one equal to a sampled
      distractor labels that distractor instead;
    * a documentation passage of the (de-duplicated) pool that shares >= COPY_SHINGLES word
      SHINGLE_WORDS-grams with the prose of an answer repeats that answer verbatim (a run of
      >= 12 words) and is a false negative of its question; it is added to the corpus when the
      sample did not draw it.  (References from an answer to other documentation, ``:ref:`` and
      the like, are not used: they point at related material, not necessarily at an answer.)

    Labels are sorted by query id order of ``positives``, then passage id.
    """
    pos_norm = {_norm(p["text"]) for p in positives}
    dis_by_norm = {_norm(p["text"]): p for p in distractors}
    chosen_ids = {p["_id"] for p in distractors}
    extra: list[dict] = []
    labels: set[tuple[str, str]] = set()
    for c in continuations:
        h = _norm(c["text"])
        if h in pos_norm:
            continue
        if h in dis_by_norm:
            labels.add((c["query"], dis_by_norm[h]["_id"]))
            continue
        pos_norm.add(h)
        extra.append({k: c[k] for k in ("_id", "title", "text")})
        labels.add((c["query"], c["_id"]))
    answer_sh = {q: shingles(t) for q, t in prose.items()}
    copies: set[tuple[str, str]] = set()
    for p in pool:
        ps = shingles(p["text"])
        if len(ps) < COPY_SHINGLES:
            continue
        for q, a in answer_sh.items():
            if len(ps & a) >= COPY_SHINGLES:
                copies.add((q, p["_id"]))
                if p["_id"] not in chosen_ids:
                    chosen_ids.add(p["_id"])
                    extra.append(p)
    labels |= copies
    order = {p["_id"].removesuffix("-a"): k for k, p in enumerate(positives)}
    return extra, sorted(labels, key=lambda x: (order[x[0]], x[1])), len(copies)


def license_text(src: Path, version: str) -> str:
    """PSF License Agreement + Zero-Clause BSD sections of ``license.rst.txt``, as plain text."""
    raw = (src / "license.rst.txt").read_text(encoding="utf-8")

    def section(label: str) -> str:
        start = raw.index(f".. _{label}:")
        lines = raw[start:].split("\n")[1:]
        while not lines[0].strip():
            lines = lines[1:]
        title = lines[0].strip()
        body: list[str] = []
        for k, ln in enumerate(lines[2:]):
            nxt = lines[k + 3] if k + 3 < len(lines) else ""
            if ln.startswith(".. _") or (ln.strip() and ADORN_RE.fullmatch(nxt) and not ln.startswith(" ")):
                break
            if ln.strip() == ".. parsed-literal::":
                continue
            body.append(ln)
        text = textwrap.dedent("\n".join(body)).strip()
        for key, value in SUBST.items():
            text = text.replace(key, value)
            title = title.replace(key, value)
        return f"{title}\n{'-' * len(title)}\n\n{text}\n"

    header = (
        "The pyfaq sample corpus (corpus.jsonl, queries.jsonl, qrels/) is derived from the\n"
        f"Python {RELEASE} documentation as shipped in the Debian package {PACKAGE}\n"
        f"version {version}, (c) 2001-2023 Python Software Foundation. The texts were\n"
        "converted from reStructuredText to plain text, split into passages and sampled by\n"
        "sample_data/build.py; FAQ section titles became queries and the beginning of each\n"
        "answer its relevant passage.\n\n"
        "Python software and documentation are licensed under the PSF License Agreement;\n"
        "examples, recipes and other code in the documentation are dual licensed under the\n"
        "PSF License Agreement and the Zero-Clause BSD license. Both texts follow.\n\n"
    )
    return header + section("PSF-license") + "\n" + section("BSD0")


def weighted_sample(weights: list[float], k: int, seed: int) -> list[int]:
    """k distinct indices drawn without replacement with probability proportional to weight.

    Efraimidis-Spirakis: item i gets the key u_i ** (1 / w_i), u_i ~ U(0, 1) from
    ``random.Random(seed)``; the k largest keys win.  Returned in ascending index order.
    """
    rng = random.Random(seed)
    keys = [rng.random() ** (1.0 / w) for w in weights]
    top = sorted(range(len(weights)), key=lambda i: (-keys[i], i))[:k]
    return sorted(top)


def fetch_deb(workdir: Path) -> Path:
    subprocess.run(["apt-get", "download", PACKAGE], cwd=workdir, check=True)
    debs = sorted(workdir.glob(f"{PACKAGE}_*.deb"))
    if not debs:
        raise SystemExit(f"apt-get download {PACKAGE} produced no .deb in {workdir}")
    return debs[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deb", type=Path, help=f"path to a {PACKAGE} .deb (default: apt-get download)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "pyfaq")
    ap.add_argument("--total", type=int, default=DEFAULT_TOTAL, help="corpus size (passages)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="pyfaq-") as tmp:
        tmpd = Path(tmp)
        deb = args.deb.resolve() if args.deb else fetch_deb(tmpd)
        if not deb.is_file():
            raise SystemExit(f"--deb {deb}: no such file")
        version = subprocess.run(
            ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
        ).stdout.strip()
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmpd / "x")], check=True)
        src = tmpd / "x" / SOURCES_REL
        if not (src / "faq").is_dir():
            raise SystemExit(f"{deb}: no {SOURCES_REL}/faq in the package; layout changed?")
        collect_labels(src)
        queries, positives, skipped, continuations, prose = build_queries(src)
        pool = build_distractors(src)
        lic = license_text(src, version)

    seen = {_norm(p["text"]) for p in positives}
    unique = []
    for p in pool:
        h = _norm(p["text"])
        if h not in seen:
            seen.add(h)
            unique.append(p)
    n_dis = args.total - len(positives)
    if not 0 < n_dis <= len(unique):
        raise SystemExit(
            f"--total {args.total}: need between {len(positives) + 1} and "
            f"{len(positives) + len(unique)} passages"
        )
    chosen = weighted_sample([AREA_WEIGHT.get(p["_id"].split("-")[1], 1.0) for p in unique], n_dis, args.seed)
    distractors = [unique[k] for k in chosen]
    extra, labels, n_copies = false_negatives(positives, continuations, prose, unique, distractors)
    corpus = positives + extra + distractors

    out = args.out
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as fh:
        for p in corpus:
            fh.write(
                json.dumps({"_id": p["_id"], "title": p["title"], "text": p["text"]}, ensure_ascii=False)
                + "\n"
            )
    with open(out / "queries.jsonl", "w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    with open(out / "qrels" / "test.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q in queries:
            fh.write(f"{q['_id']}\t{q['_id']}-a\t1\n")
    with open(out / "qrels" / FALSE_NEGATIVES_FILE, "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, pid in labels:
            fh.write(f"{qid}\t{pid}\t1\n")
    (out / "LICENSE").write_text(lic, encoding="utf-8")

    by_area: dict[str, int] = {}
    for p in distractors:
        area = p["_id"].split("-")[1]
        by_area[area] = by_area.get(area, 0) + 1
    wc = [words(p["text"]) for p in corpus]
    print(f"{PACKAGE} {version}")
    print(
        f"queries: {len(queries)}  positives: {len(positives)}  "
        f"skipped (answer < {MIN_WORDS} words): {len(skipped)} {' '.join(skipped)}"
    )
    print(
        f"distractor pool: {len(pool)} ({len(pool) - len(unique)} duplicates dropped), "
        f"sampled: {len(distractors)} {dict(sorted(by_area.items()))}"
    )
    print(
        f"false negatives: {len(labels)} labels over {len({q for q, _ in labels})} queries: "
        f"{len(labels) - n_copies} answer continuations, {n_copies} documentation passages "
        f"attributed to an answer ({len(extra)} passages added to the corpus)"
    )
    print(f"corpus: {len(corpus)} passages, words min {min(wc)} mean {sum(wc) / len(wc):.0f} max {max(wc)}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
