"""Trusted neighbour files and the data root on every file (issue 16, items 3 and 4), and saved
summaries shown as plain text.

* Neighbour files (review labels, saved validations, the validation corpus, a negatives file's
  BEIR directory) are read only from the dataset folder of a named path, never a parent, the
  temporary folder or an upload folder (:mod:`eci_core.io.trust`). ``tmp_path`` stands in for the
  temporary folder (``tempfile.tempdir``), where uploads are written to ``eci-upload-*``.
* With ``roots`` every file the loaders open must resolve inside a root: a symbolic link inside
  an allowed folder that points outside is refused in one line naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

import eci_core  # noqa: F401  (offline model environment first)
from eci_core.io import trust
from eci_core.io.records import LoadError
from eci_core.io.load import load_paths
from eci_core.io.formats import fn_labels
from eci_core.validation.loading import corpus_dir, with_full_corpus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
APP = str(ROOT / "app.py")
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"
PYFAQ = ROOT / "sample_data" / "pyfaq"
TIMEOUT = 120

UPLOAD_ROWS = [
    {
        "query": "How do I sort a list in Python?",
        "pos": ["Use list.sort() to sort a list in place, or sorted() for a new list."],
        "neg": ["Reverse a string with slicing: s[::-1].", "Open a file with open() and iterate over it."],
    },
    {
        "query": "How do I reverse a string?",
        "pos": ["Reverse a string with slicing: s[::-1]."],
        "neg": [
            "Use list.sort() to sort a list in place, or sorted() for a new list.",
            "Join strings with str.join().",
        ],
    },
]
UPLOAD = "".join(json.dumps(r) + "\n" for r in UPLOAD_ROWS).encode()
EVIL_TRAINER = "[click me](https://evil.example/x) **now**"


def _plant(folder: Path) -> None:
    """Neighbour files someone else could put in a shared folder: labels, a corpus with a
    passage of its own, and a saved validation whose trainer is a Markdown link."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "qrels" / "false_negatives.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    (folder / "corpus.jsonl").write_text(
        json.dumps({"_id": "planted-passage", "text": "planted text"}) + "\n"
    )
    evil = folder / "validation" / "evil"
    shutil.copytree(PYFAQ / "validation" / "linear", evil)
    doc = json.loads((evil / "results.json").read_text())
    doc["meta"]["trainer"] = EVIL_TRAINER
    (evil / "results.json").write_text(json.dumps(doc))


@pytest.fixture(params=["fast", "per-line"])
def reader(request, monkeypatch):
    """The vectorised readers (default) and the per-line parsers (``ECI_LOADER_FAST=0``)."""
    monkeypatch.setenv("ECI_LOADER_FAST", "1" if request.param == "fast" else "0")
    return request.param


def _beir(d: Path) -> Path:
    shutil.copytree(FIXTURE, d)
    return d


# ----------------------------------------------------------------------------- the rule
def test_dataset_dir_is_the_named_folder_or_the_folder_holding_the_file(tmp_path):
    d = _beir(tmp_path / "ds")
    (d / "sweep").mkdir()
    (d / "sweep" / "x.trec").write_text("q1 Q0 d1 1 1.0 x\n")
    assert trust.dataset_dir(d) == d
    # a negatives/ file of a BEIR directory is read as part of it (the loader needs its corpus)
    assert trust.dataset_dir(d / "negatives" / "bm25.trec") == d
    # any other sub-folder gives only itself: DIR must be named too for DIR's files
    assert trust.dataset_dir(d / "sweep" / "x.trec") == d / "sweep"
    assert corpus_dir(d / "sweep" / "x.trec") is None and corpus_dir(d) == d
    # negatives/ of a folder that is not a BEIR directory: that folder only
    (tmp_path / "plain" / "negatives").mkdir(parents=True)
    f = tmp_path / "plain" / "negatives" / "x.trec"
    f.write_text("q1 Q0 d1 1 1.0 x\n")
    assert trust.dataset_dir(f) == tmp_path / "plain" / "negatives"


def test_temp_folder_its_parents_and_upload_folders_are_never_trusted(tmp_path):
    tmp = tmp_path / "TMP"
    (tmp / "eci-upload-abc" / "u1").mkdir(parents=True)
    (tmp / "mine").mkdir()
    assert not trust.is_trusted_dir(tmp, temp_dir=tmp)
    assert not trust.is_trusted_dir(tmp_path, temp_dir=tmp) and not trust.is_trusted_dir("/", temp_dir=tmp)
    assert not trust.is_trusted_dir(tmp / "eci-upload-abc", temp_dir=tmp)
    assert not trust.is_trusted_dir(tmp / "eci-upload-abc" / "u1", temp_dir=tmp)
    # while an upload loads its own folder holds exactly the uploaded files
    assert trust.is_trusted_dir(tmp / "eci-upload-abc", uploads=True, temp_dir=tmp)
    assert trust.is_trusted_dir(tmp / "mine", temp_dir=tmp)
    # a symlink to the temporary folder is the temporary folder
    (tmp_path / "link").symlink_to(tmp)
    assert not trust.is_trusted_dir(tmp_path / "link", temp_dir=tmp)


def test_a_file_in_the_temp_folder_itself_finds_no_neighbours(monkeypatch, tmp_path):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    _plant(tmp_path)
    f = tmp_path / "x.jsonl"
    f.write_bytes(UPLOAD)
    coll = SimpleNamespace(sources={"x": SimpleNamespace(path=str(f))})
    assert fn_labels.find_labels_file(coll) is None
    assert corpus_dir(f) is None


def test_no_neighbour_file_is_read_from_a_parent_folder(tmp_path):
    """A file named in R/a/: R's labels, corpus and validations are not its neighbours (the
    old lookup went up to the grandparent)."""
    _plant(tmp_path)
    (tmp_path / "a").mkdir()
    f = tmp_path / "a" / "x.jsonl"
    f.write_bytes(UPLOAD)
    coll, rep = load_paths([f])
    assert rep.errors == [] and coll.sources["x"].path == str(f)
    assert fn_labels.find_labels_file(coll) is None
    assert corpus_dir(f) is None
    full = with_full_corpus(coll, [f])
    assert "planted-passage" not in full.passage_map() and full.n_passages == coll.n_passages


def test_the_named_beir_folder_still_finds_its_own_files():
    coll, rep = load_paths([PYFAQ])
    assert rep.errors == []
    assert fn_labels.find_labels_file(coll) == PYFAQ / "qrels" / "false_negatives.tsv"
    assert fn_labels.find_labels_file(coll, roots=[PYFAQ]) == PYFAQ / "qrels" / "false_negatives.tsv"
    assert corpus_dir(PYFAQ) == PYFAQ and corpus_dir(PYFAQ / "negatives" / "bm25.trec") == PYFAQ
    assert corpus_dir(PYFAQ / "sweep" / sorted(os.listdir(PYFAQ / "sweep"))[0]) is None
    assert trust.neighbour_dirs(s.path for s in coll.sources.values()) == [PYFAQ]


# ----------------------------------------------------------------------------- uploads, in the app
@pytest.fixture
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "user-cache"))
    monkeypatch.setenv("ECI_DATA", str(FIXTURE))
    monkeypatch.setenv("ECI_ENCODER", "hashing")
    for var in ("ECI_CROSS_ENCODER", "ECI_DATA_ROOT", "ECI_READONLY_CACHE", "ECI_SCORE_BUDGET_S"):
        monkeypatch.delenv(var, raising=False)


def _app():
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_files_planted_next_to_an_upload_are_never_read(_env, monkeypatch, tmp_path):
    """TMP/qrels/false_negatives.tsv, TMP/corpus.jsonl and TMP/validation/**/results.json next
    to the ``eci-upload-*`` folder: not the review labels, not in the validation corpus, not
    listed on the Validation page (they all were before)."""
    tmp = tmp_path / "TMP"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    _plant(tmp)
    at = _app()
    at.sidebar.file_uploader[0].set_value(("upl.jsonl", UPLOAD, "application/jsonl"))
    at.sidebar.button[0].click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["eci_load_errors"] == []
    coll = at.session_state["eci_collection"]
    upl = coll.sources["upl"]
    assert Path(upl.path).parent.name.startswith(trust.UPLOAD_PREFIX)

    def nothing_planted_is_read():
        assert fn_labels.find_labels_file(coll) is None
        assert corpus_dir(upl.path) is None
        full = with_full_corpus(coll, [s.path for s in coll.sources.values()])
        assert "planted-passage" not in full.passage_map() and full.n_passages == coll.n_passages

    nothing_planted_is_read()
    # the upload folder is gone once loaded, and anyone could make it again: planted there too
    _plant(Path(upl.path).parent)
    nothing_planted_is_read()
    at.switch_page("pages/validation.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    options = at.selectbox(key="val_choice").options
    assert options and not any("evil" in o or str(tmp) in o for o in options)


# ----------------------------------------------------------------------------- saved summaries
def test_a_saved_validation_is_shown_as_plain_text(_env, tmp_path):
    """A results.json whose trainer is a Markdown link: the Validation page's summary, notes and
    caption and the Overview verdict show it as text (every Markdown character escaped)."""
    from eci_core.validation import load_results
    from ui import components

    _plant(tmp_path)
    res = load_results(tmp_path / "validation" / "evil")
    at = _app()
    at.session_state["eci_validations"] = {"evil": res}
    at.switch_page("pages/validation.py")
    at.run()
    at.selectbox(key="val_choice").set_value("evil").run()
    assert not at.exception, [e.message for e in at.exception]
    summary = res.summary()
    assert EVIL_TRAINER in summary
    assert [s.value for s in at.success] == [components.plain(summary)]
    shown = [s.value for s in at.success] + [c.value for c in at.caption]
    assert any(EVIL_TRAINER in t.replace("\\", "") for t in shown)  # all of it, as text
    assert not any("](" in t or "**" in t for t in shown)  # no link or emphasis can form


def test_the_overview_verdict_is_plain_text(_env, monkeypatch, tmp_path):
    from eci_core.explore import overview
    from eci_core.validation import load_results
    from ui import components
    from ui.state import validation

    _plant(tmp_path)
    res = load_results(tmp_path / "validation" / "evil")
    monkeypatch.setattr(validation, "validation_status", lambda settings: (res, None))
    at = _app()
    assert not at.exception, [e.message for e in at.exception]
    verdict = next(i.value for i in at.info if EVIL_TRAINER in i.value.replace("\\", ""))
    assert "](" not in verdict and "**" not in verdict
    assert verdict == components.plain(overview.verdict(_scored(), res, None))


def _scored():
    from eci_core.config import ECIConfig
    from eci_core.models.hashing import HashingEncoder
    from eci_core.scoring import score_collection

    coll, _ = load_paths([str(FIXTURE)])
    return score_collection(coll, HashingEncoder(), ECIConfig())


# ----------------------------------------------------------------------------- data root
def _linked_beir(tmp_path: Path, which: str) -> tuple[Path, Path]:
    """``root/ds``: the fixture with ``which`` replaced by a symlink to a copy outside ``root``."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    d = _beir(root / "ds")
    target = outside / which
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(d / which, target)
    (d / which).symlink_to(target)
    return root, d


@pytest.mark.parametrize("which", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_a_beir_file_linked_out_of_the_root_is_refused(tmp_path, which, reader):
    root, d = _linked_beir(tmp_path, which)
    coll, rep = load_paths([d], roots=[root])
    assert rep.errors == [f"{d / which}: {trust.outside_message()}"]
    assert coll.sources == {}
    # the CLI has no root: the user named the folder, the link is followed
    coll, rep = load_paths([d])
    assert rep.errors == [] and set(coll.sources) == {"bm25", "dense", "random"}


def test_a_negatives_file_linked_out_of_the_root_is_refused_and_the_others_load(tmp_path, reader):
    root, d = _linked_beir(tmp_path, "negatives/dense.trec")
    coll, rep = load_paths([d], roots=[root])
    assert rep.errors == [f"{d / 'negatives' / 'dense.trec'}: {trust.outside_message()}"]
    assert set(coll.sources) == {"bm25", "random"}


def test_a_parquet_file_linked_out_of_the_root_is_refused(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    pq.write_table(pa.table({"anchor": ["q"], "positive": ["p"], "negative": ["n"]}), outside / "t.parquet")
    (root / "t.parquet").symlink_to(outside / "t.parquet")
    coll, rep = load_paths([root / "t.parquet"], roots=[root])
    assert rep.errors == [f"{root / 't.parquet'}: {trust.outside_message()}"]
    coll, rep = load_paths([root / "t.parquet"], roots=[root, outside])
    assert rep.errors == [] and list(coll.sources) == ["t"]


def test_the_sample_loads_the_same_with_its_root():
    c1, r1 = load_paths([PYFAQ])
    c2, r2 = load_paths([PYFAQ], roots=[PYFAQ])
    assert r2.errors == [] and list(c2.sources) == list(c1.sources)
    assert c2.fingerprint() == c1.fingerprint()


def test_open_within_refuses_a_link_swapped_in_after_the_check(monkeypatch, tmp_path):
    """The check resolves the path; if a link appears between the check and the open, the open
    (O_NOFOLLOW on the last part, then the opened file's own path on Linux) refuses it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "ok.txt").write_text("fine")
    with trust.open_within(root / "ok.txt", [root]) as f:
        assert f.read() == b"fine"
    with pytest.raises(LoadError, match="outside the data root"):
        trust.open_within(root / ".." / "outside" / "secret.txt", [root])
    # the check passed on a path that then became a link (emulated: the check returns it as is)
    (root / "late.txt").symlink_to(outside / "secret.txt")
    (root / "latedir").symlink_to(outside)
    monkeypatch.setattr(trust, "resolve_within", lambda p, roots: Path(p))
    with pytest.raises(LoadError, match="outside the data root"):
        trust.open_within(root / "late.txt", [root])
    if Path("/proc/self/fd").is_dir():
        with pytest.raises(LoadError, match="outside the data root"):
            trust.open_within(root / "latedir" / "secret.txt", [root])


def test_the_dashboard_refuses_a_linked_file_inside_the_data_root(_env, monkeypatch, tmp_path):
    root, d = _linked_beir(tmp_path, "corpus.jsonl")
    monkeypatch.setenv("ECI_DATA_ROOT", str(root))
    at = _app()
    at.sidebar.text_input(key="eci_local_path").set_value(str(d))
    at.sidebar.button[1].click().run()  # "Add"
    assert not at.exception, [e.message for e in at.exception]
    (err,) = at.session_state["eci_load_errors"]
    assert err.startswith(f"{d / 'corpus.jsonl'}: outside the data root")
    assert list(at.session_state["eci_collection"].sources) == ["bm25", "dense", "random"]  # kept


def test_the_dashboard_loads_the_resolved_path_it_checked(_env, monkeypatch, tmp_path):
    """The local-path box checks the resolved path and loads that path (not the typed one, which
    a link swapped in after the check could send elsewhere)."""
    root = tmp_path / "root"
    real = _beir(root / "real")
    (root / "typed").symlink_to(real)
    monkeypatch.setenv("ECI_DATA_ROOT", str(root))
    at = _app()
    at.sidebar.text_input(key="eci_local_path").set_value(str(root / "typed"))
    at.sidebar.button[2].click().run()  # "Open instead"
    assert not at.exception, [e.message for e in at.exception]
    assert at.session_state["eci_load_errors"] == []
    paths = {s.path for s in at.session_state["eci_collection"].sources.values()}
    assert paths and all(p.startswith(str(real.resolve()) + os.sep) for p in paths)


@pytest.mark.parametrize("linked", ["queries.npy", "queries.ids.txt"])
def test_your_embeddings_folder_with_a_file_linked_out_of_the_root_is_refused(tmp_path, linked):
    import numpy as np

    from eci_core.models.user_embeddings import open_embeddings, write_embeddings

    root, outside = tmp_path / "root", tmp_path / "outside"
    emb = root / "emb"
    write_embeddings(emb, "query", ["q1", "q2"], np.eye(2, 4, dtype=np.float32))
    write_embeddings(emb, "passage", ["d1", "d2"], np.eye(2, 4, dtype=np.float32))
    assert open_embeddings(emb, model="m", roots=[root]).model == "m"
    outside.mkdir()
    shutil.move(emb / linked, outside / linked)
    (emb / linked).symlink_to(outside / linked)
    with pytest.raises(ValueError, match=r"outside the data root"):
        open_embeddings(emb, model="m", roots=[root])
    assert open_embeddings(emb, model="m").model == "m"  # no roots (the CLI): the link is followed
