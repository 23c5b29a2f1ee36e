"""The dashboard's session state (``ui/state/``): one small module per concern, no private names
used across modules, and one score store (a slot of ``eci_core.explore.memo``)."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
import streamlit as st

from eci_core.config import ECIConfig
from eci_core.explore import memo

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "ui" / "state"
MAX_LINES = 400


def _python_files():
    yield ROOT / "app.py"
    for folder in ("pages", "ui", "tests"):
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_every_state_module_is_small_and_listed_in_the_package_docstring():
    assert not (ROOT / "ui" / "state.py").exists()
    doc = ast.get_docstring(ast.parse((STATE / "__init__.py").read_text()))
    modules = sorted(p for p in STATE.glob("*.py") if p.name != "__init__.py")
    assert len(modules) >= 6
    for p in modules:
        n = len(p.read_text().splitlines())
        assert n < MAX_LINES, f"{p.relative_to(ROOT)}: {n} lines (keep each concern under {MAX_LINES})"
        assert f":mod:`ui.state.{p.stem}`" in doc, f"ui/state/__init__.py does not list {p.stem}"


def _private_uses(path: Path) -> list[str]:
    """``from ui.state... import _x`` and ``<a ui.state module>._x`` in ``path``."""
    tree = ast.parse(path.read_text())
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    state_names: set[str] = set()  # local names bound to ui.state modules
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ui.state"):
            for a in node.names:
                if a.name.startswith("_"):
                    out.append(f"{name}:{node.lineno}: imports {a.name}")
                if node.module == "ui.state" or a.name == "state":
                    state_names.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "ui":
            state_names |= {a.asname or a.name for a in node.names if a.name == "state"}
        elif isinstance(node, ast.Import):
            state_names |= {a.asname for a in node.names if a.name.startswith("ui.state") and a.asname}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and isinstance(node.value, ast.Name)
            and node.value.id in state_names
        ):
            out.append(f"{name}:{node.lineno}: uses {node.value.id}.{node.attr}")
    return out


def test_no_page_or_test_uses_a_private_name_of_ui_state():
    found = [hit for p in _python_files() if p.parent != STATE for hit in _private_uses(p)]
    assert found == []


def test_the_private_name_check_sees_every_form(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from ui.state.scores import _score_owner\nfrom ui.state import loading\nloading._mtimes(1)\n"
        "from ui import state\nstate._score_store()\n"
    )
    assert [h.split(": ", 1)[1] for h in _private_uses(bad)] == [
        "imports _score_owner",
        "uses loading._mtimes",
        "uses state._score_store",
    ]


def test_state_modules_import_no_private_name_of_another_module():
    for p in STATE.glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith(("ui", "eci_core"))
            ):
                assert not [a.name for a in node.names if a.name.startswith("_")], (p.name, node.module)


# ----------------------------------------------------------------------------- the one memo
class _Owner:
    pass


def test_stored_reads_without_computing_and_counts_as_a_use():
    owner = _Owner()
    assert memo.stored(owner, (1,), slot="s") is None
    assert memo.stored(owner, (1,), slot="s", default="none") == "none"
    for i in range(2):
        memo.memo(owner, (i,), lambda i=i: f"v{i}", slot="s", size=2)
    assert memo.slot_values(owner, "s") == ["v0", "v1"]
    assert memo.stored(owner, (0,), slot="s") == "v0"  # now the most recent
    assert memo.slot_values(owner, "s") == ["v1", "v0"]
    memo.memo(owner, (2,), lambda: "v2", slot="s", size=2)  # evicts the least recent: (1,)
    assert memo.slot_values(owner, "s") == ["v0", "v2"]
    assert memo.stored(owner, (1,), slot="s") is None
    # outside a slot, and on an object never memoised
    assert memo.memo(owner, ("k",), lambda: 5) == 5 and memo.stored(owner, ("k",)) == 5
    assert memo.stored(_Owner(), ("k",)) is None and memo.slot_values(_Owner(), "s") == []


def test_stored_never_waits_for_a_computation_in_flight():
    owner, started, release = _Owner(), threading.Event(), threading.Event()

    def slow():
        started.set()
        release.wait(10)
        return "done"

    t = threading.Thread(target=lambda: memo.memo(owner, ("x",), slow, slot="s"))
    t.start()
    started.wait(10)
    assert memo.stored(owner, ("x",), slot="s") is None  # in flight: not stored yet, and no wait
    release.set()
    t.join(10)
    assert memo.stored(owner, ("x",), slot="s") == "done"


# ----------------------------------------------------------------------------- the score store
@pytest.fixture
def bare_session(monkeypatch):
    """A bare-mode session holding the bundled sample, scoring counted instead of run."""
    from eci_core.io.collection import content_hash
    from eci_core.io.load import load_paths
    from ui.state import keys, launch

    st.cache_resource.clear()
    coll, _ = load_paths([str(launch.SAMPLE_DIR)])
    st.session_state[keys.K_COLLECTION] = coll
    st.session_state[keys.K_CONTENT_HASH] = content_hash(coll)
    calls = []

    def fake_score(collection, encoder, config, **kw):
        calls.append(config.temperature)
        return ("result", config.temperature)

    monkeypatch.setattr("eci_core.scoring.score_collection", fake_score)
    yield calls
    st.cache_resource.clear()
    for k in (keys.K_COLLECTION, keys.K_CONTENT_HASH):
        del st.session_state[k]


def test_scores_are_computed_once_per_data_and_settings_and_the_store_is_bounded(bare_session):
    from ui.state import scores
    from ui.state.settings import Settings

    def settings(t):
        return Settings("hashing", False, ECIConfig(temperature=t))

    assert scores.cached_result(settings(0.05)) is None
    first = scores.compute_result(settings(0.05))
    assert scores.compute_result(settings(0.05)) is first and bare_session == [0.05]
    assert scores.cached_result(settings(0.05)) is first
    temps = [0.01 * (i + 1) for i in range(scores.SCORE_STORE_SIZE)]  # 0.05 is one of them
    for t in temps:
        scores.compute_result(settings(t))
    assert bare_session.count(0.05) == 1  # still stored
    assert len(scores.stored_results()) == scores.SCORE_STORE_SIZE
    scores.compute_result(settings(0.5))  # one more: the least recently used goes
    assert len(scores.stored_results()) == scores.SCORE_STORE_SIZE
    assert scores.cached_result(settings(0.01)) is None
    st.cache_resource.clear()  # Streamlit's "clear cache" drops the stored scores too
    assert scores.stored_results() == [] and scores.cached_result(settings(0.05)) is None
