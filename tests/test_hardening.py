"""Hardening of the dashboard (issue 10): trust boundaries of the embedding caches and of the
process-wide score store, the data root of the local-path box, error text shown as text, the
scoring time budget, and uploads that leave nothing behind.

Runs the real ``app.py`` in Streamlit's ``AppTest`` harness on the small fixture with the
model-free ``HashingEncoder``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

import eci_core  # noqa: F401  (offline model environment first)
from eci_core.config import ECIConfig
from eci_core.io.collection import content_hash
from eci_core.models.cache import EmbeddingCache
from eci_core.models.encoding import embed
from eci_core.models.hashing import HashingEncoder
from eci_core.io.load import load_paths
from eci_core.scoring import score_collection

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
APP = str(ROOT / "app.py")
FIXTURE = ROOT / "tests" / "fixtures" / "app_small"
TIMEOUT = 120

# An uploaded source: three queries of the fixture with their real positives and BGE negatives.
UPLOAD_ROWS = [
    {
        "query": "How do I sort a list in Python?",
        "pos": ["Use list.sort() to sort a list in place, or sorted() for a new list."],
        "neg": [
            "Reverse a string with slicing: s[::-1].",
            "Open a file with open() and iterate over it.",
            "Sort a dictionary by value with sorted(d.items(), key=lambda kv: kv[1]).",
        ],
    },
    {
        "query": "How do I reverse a string?",
        "pos": ["Reverse a string with slicing: s[::-1]."],
        "neg": [
            "Use list.sort() to sort a list in place, or sorted() for a new list.",
            "Strings are immutable sequences of characters.",
            "Join strings with str.join().",
        ],
    },
    {
        "query": "How can I merge two dictionaries?",
        "pos": ["Merge two dicts with {**a, **b} or a | b."],
        "neg": [
            "Create a virtual environment with python -m venv.",
            "Dictionaries map keys to values.",
            "Update a dict in place with d.update(other).",
        ],
    },
]
UPLOAD = "".join(json.dumps(r) + "\n" for r in UPLOAD_ROWS).encode()


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "user-cache"))  # fresh: nothing cached yet
    monkeypatch.setenv("ECI_DATA", str(FIXTURE))
    monkeypatch.setenv("ECI_ENCODER", "hashing")
    for var in ("ECI_CROSS_ENCODER", "ECI_DATA_ROOT", "ECI_READONLY_CACHE", "ECI_SCORE_BUDGET_S"):
        monkeypatch.delenv(var, raising=False)


def _app():
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _upload(at, name: str = "upl.jsonl", body: bytes = UPLOAD):
    at.sidebar.file_uploader[0].set_value((name, body, "application/jsonl"))
    at.sidebar.button[0].click().run()  # "Add uploaded files"
    assert not at.exception, [e.message for e in at.exception]
    return at


def _stored_results_with(source: str):
    from ui.state.scores import stored_results

    return [r for r in stored_results() if source in set(r.sources["name"])]


class _Poison:
    """An "encoder" with the HashingEncoder's fingerprint that maps every text to one vector:
    a cache written with it makes every negative as similar to the query as the positive."""

    def __init__(self):
        h = HashingEncoder()
        self.name, self.fingerprint, self.dim = "poison", h.fingerprint, h.dim

    def _vecs(self, texts):
        v = np.zeros((len(texts), self.dim), dtype=np.float32)
        v[:, 0] = 1.0
        return v

    encode_queries = encode_passages = _vecs


def _plant_poison(folder: Path) -> Path:
    """An ``embeddings/`` cache folder in ``folder`` holding poisoned vectors for every text of
    the upload and of the fixture."""
    coll, _ = load_paths([str(FIXTURE)])
    texts_q = [r["query"] for r in UPLOAD_ROWS] + list(coll.query_texts)
    texts_p = [t for r in UPLOAD_ROWS for t in r["pos"] + r["neg"]] + list(coll.passage_texts)
    d = folder / "embeddings"
    cache = EmbeddingCache(directory=d)
    embed(_Poison(), texts_q, "query", cache=cache)
    embed(_Poison(), texts_p, "passage", cache=cache)
    assert any(d.rglob("*.arrow")), "the poisoned cache was not written"
    return d


def _expected_upload_scores(tmp_path: Path):
    clean = tmp_path / "clean-copy"
    clean.mkdir(exist_ok=True)
    (clean / "upl.jsonl").write_bytes(UPLOAD)
    coll, rep = load_paths([str(FIXTURE), str(clean / "upl.jsonl")])
    assert not rep.errors
    res = score_collection(coll, HashingEncoder(), ECIConfig())
    return res.sources.set_index("name").loc["upl"]


# ----------------------------------------------------------------------------- cache trust
def test_poisoned_embeddings_beside_an_upload_are_never_read(monkeypatch, tmp_path):
    """Poisoned ``embeddings/`` folders beside the uploaded file (its temporary folder), in the
    parent and in the grandparent change nothing, in this session or in a second one."""
    tmp_root = tmp_path / "tmp"
    (tmp_root / "parent").mkdir(parents=True)
    _plant_poison(tmp_root)  # grandparent of an upload: the temporary directory itself
    _plant_poison(tmp_root / "parent")
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp_with_poison(*a, **kw):  # the upload's folder gets a planted cache too
        kw["dir"] = str(tmp_root / "parent")
        d = real_mkdtemp(*a, **kw)
        _plant_poison(Path(d))
        return d

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp_with_poison)
    want = _expected_upload_scores(tmp_path)
    assert want["unsafe_query_rate"] < 1.0 and want["eci"] > 0.05  # the poison would give 1.0 and 0.0

    at = _upload(_app())
    assert at.session_state["eci_load_errors"] == []
    assert "upl" in at.session_state["eci_collection"].sources
    got = _stored_results_with("upl")
    assert got, "the upload was not scored"
    for res in got:
        row = res.sources.set_index("name").loc["upl"]
        assert row["eci"] == pytest.approx(want["eci"], abs=1e-9)
        assert row["unsafe_query_rate"] == pytest.approx(want["unsafe_query_rate"], abs=1e-12)

    # a second session opening a clean copy of the same file gets the same, clean numbers
    monkeypatch.setattr(tempfile, "mkdtemp", real_mkdtemp)
    at2 = _upload(_app())
    assert at2.session_state["eci_content_hash"] == at.session_state["eci_content_hash"]
    for res in _stored_results_with("upl"):
        assert res.sources.set_index("name").loc["upl", "eci"] == pytest.approx(want["eci"], abs=1e-9)


def test_readonly_caches_are_the_sample_and_named_folders_only(monkeypatch, tmp_path):
    from ui.state.launch import SAMPLE_DIR, readonly_cache_dirs

    named = tmp_path / "team-cache"
    named.mkdir()
    base = readonly_cache_dirs()
    assert all(p == (SAMPLE_DIR / "embeddings").resolve() for p in base)
    monkeypatch.setenv("ECI_READONLY_CACHE", str(named))
    assert readonly_cache_dirs() == base + [named.resolve()]


def test_score_key_holds_the_content_hash_and_every_cache_folder(monkeypatch, tmp_path):
    from ui.state.scores import score_key
    from ui.state.settings import Settings

    s = Settings("hashing", False, ECIConfig())
    key = score_key("abc", s)
    assert key[0] == "abc" and str((tmp_path / "user-cache").resolve()) in key[-1]
    named = tmp_path / "other"
    named.mkdir()
    monkeypatch.setenv("ECI_READONLY_CACHE", str(named))
    assert score_key("abc", s) != key  # another cache folder read: another result
    monkeypatch.setenv("ECI_CACHE_DIR", str(tmp_path / "another-user-cache"))
    assert str((tmp_path / "another-user-cache").resolve()) in score_key("abc", s)[-1]


def test_content_hash_changes_with_any_text_and_not_with_paths(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x.jsonl").write_bytes(UPLOAD)
    (b / "x.jsonl").write_bytes(UPLOAD)
    ca, _ = load_paths([str(a / "x.jsonl")])
    cb, _ = load_paths([str(b / "x.jsonl")])
    assert content_hash(ca) == content_hash(cb) and len(content_hash(ca)) == 64
    (b / "x.jsonl").write_bytes(UPLOAD.replace(b"immutable", b"Immutable"))
    cb, _ = load_paths([str(b / "x.jsonl")])
    assert content_hash(ca) != content_hash(cb)


# ----------------------------------------------------------------------------- uploads
def test_uploads_leave_no_temporary_folder(monkeypatch, tmp_path):
    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_root))
    at = _upload(_app())
    assert "upl" in at.session_state["eci_collection"].sources
    _upload(at, "broken.jsonl", b'{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": \n')
    assert at.session_state["eci_load_errors"][0].startswith("broken.jsonl:2: ")
    assert list(tmp_root.glob("eci-upload-*")) == []


def test_an_upload_over_the_size_limit_is_refused_in_one_line(monkeypatch, tmp_path):
    from ui.state import loading

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(loading, "max_upload_mb", lambda: 0)  # every file is over a 0 MB limit
    at = _upload(_app())
    (err,) = at.session_state["eci_load_errors"]
    assert err.startswith("upl.jsonl: ") and "over the upload limit of 0 MB" in err and "\n" not in err
    assert "upl" not in at.session_state["eci_collection"].sources
    assert list(tmp_path.glob("eci-upload-*")) == []


def test_add_without_a_finished_upload_says_so():
    from ui import sidebar

    at = _app()
    at.sidebar.button[0].click().run()
    assert at.session_state["eci_load_errors"] == [sidebar.NO_UPLOAD_YET]
    assert (
        "arrived" in sidebar.NO_UPLOAD_YET and "Choose one or more files first" not in sidebar.NO_UPLOAD_YET
    )


# ----------------------------------------------------------------------------- data root
def _add_path(at, path: Path):
    at.sidebar.text_input(key="eci_local_path").set_value(str(path))
    at.sidebar.button[1].click().run()  # "Add"
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_local_path_outside_the_data_root_is_refused(tmp_path):
    secret = tmp_path / "keys.csv"
    secret.write_text("AKIAEXAMPLEKEY1,secret1\nAKIAEXAMPLEKEY2,secret2\n")
    at = _add_path(_app(), secret)
    (err,) = at.session_state["eci_load_errors"]
    assert "outside the data root" in err and "AKIA" not in err
    assert list(at.session_state["eci_collection"].sources) == ["bm25", "dense", "random"]
    # a symlink inside the root that points outside is refused too
    link = FIXTURE.parent / "hardening-test-link.csv"
    try:
        link.symlink_to(secret)
        at = _add_path(at, link)
        assert "outside the data root" in at.session_state["eci_load_errors"][0]
    finally:
        link.unlink(missing_ok=True)
    # '..' out of the root is resolved first
    at = _add_path(at, FIXTURE / ".." / ".." / ".." / ".." / secret.relative_to("/"))
    assert "outside the data root" in at.session_state["eci_load_errors"][0]


def test_data_root_is_configurable(monkeypatch, tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_bytes(UPLOAD)
    monkeypatch.setenv("ECI_DATA_ROOT", str(tmp_path))
    at = _add_path(_app(), good)
    assert at.session_state["eci_load_errors"] == []
    assert "mine" in at.session_state["eci_collection"].sources


def test_default_data_root_is_cwd_sample_and_data(monkeypatch):
    from ui.state.launch import SAMPLE_DIR, data_roots, path_allowed

    roots = data_roots()
    assert Path.cwd().resolve() in roots and SAMPLE_DIR.resolve() in roots and FIXTURE.resolve() in roots
    assert path_allowed(FIXTURE / "queries.jsonl") and not path_allowed(Path("/etc/passwd"))
    monkeypatch.setenv("ECI_DATA_ROOT", "/")
    assert path_allowed(Path("/etc/passwd"))


# ----------------------------------------------------------------------------- errors as text
def test_error_text_is_escaped_for_markdown():
    from ui import components

    nasty = (
        "x.jsonl:1: [click](https://evil.example) **b** `c` <b>h</b> www.evil.example a@b.example $x$ &amp;"
    )
    out = components.plain(nasty)
    for bad in ("[click](", "**b**", "`c`", "<b>", "www.evil", "https://", "a@b", "$x$"):
        assert bad not in out
    # removing the escapes gives the text back exactly
    assert out.replace("\\", "") == nasty
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        return
    html = MarkdownIt("commonmark").render(out)
    assert "<a " not in html and "<strong>" not in html and "<code>" not in html and "<b>" not in html
    assert "&amp;amp;" in html  # the entity is shown as written, not decoded


def test_upload_name_with_markdown_is_shown_as_text():
    at = _upload(_app(), "[click](https:evil.example).jsonl", b'{"query": \n')
    (err,) = [e.value for e in at.sidebar.error]
    assert "\\[click\\]\\(https\\:evil\\.example\\)" in err and "[click](" not in err


# ----------------------------------------------------------------------------- time budget
def test_scoring_past_the_time_budget_stops_with_one_line(monkeypatch):
    from ui.state import scores

    class Clock:  # every reading is one second later: any budget under a second is spent at once
        t = 0.0

        def monotonic(self):
            Clock.t += 1.0
            return Clock.t

    monkeypatch.setenv("ECI_SCORE_BUDGET_S", "0.5")
    monkeypatch.setattr(scores, "time", Clock())
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    (err,) = [e.value for e in at.error]
    assert (
        err.startswith("Could not score the data: scoring stopped after 0")
        and "ECI\\_SCORE\\_BUDGET\\_S" in err
    )
    assert any("Scores are not available" in i.value for i in at.info)


def test_score_budget_setting(monkeypatch):
    from ui.state.launch import DEFAULT_SCORE_BUDGET_S, launch_args, score_budget_s

    assert score_budget_s() == DEFAULT_SCORE_BUDGET_S == 600.0
    monkeypatch.setenv("ECI_SCORE_BUDGET_S", "0")
    assert score_budget_s() is None
    monkeypatch.setenv("ECI_SCORE_BUDGET_S", "30")
    assert score_budget_s() == 30.0
    assert launch_args(["--score-budget", "5", "--data-root=/x", "--readonly-cache", "/c"]) == {
        "score-budget": "5",
        "data-root": "/x",
        "readonly-cache": "/c",
    }


# ----------------------------------------------------------------------------- serving defaults
def test_config_binds_localhost_and_hides_error_details():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["address"] == "127.0.0.1"
    assert cfg["client"]["showErrorDetails"] == "none"
    assert 1 <= cfg["server"]["maxUploadSize"] <= 200
    readme = (ROOT / "README.md").read_text()
    assert "streamlit run app.py --server.address 127.0.0.1" in readme
