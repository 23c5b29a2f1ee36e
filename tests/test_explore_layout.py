"""The layout of eci_core/explore and its place in the layers (read from the source, nothing run):
io never imports explore (the HTML report lives in explore and imports downward), explore imports
no private name of another module, and each page's data is a module of reasonable size."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "eci_core"


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement in ``path``, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def test_io_never_imports_explore():
    bad = [
        f"{p.relative_to(PKG)} imports {m}"
        for p in sorted((PKG / "io").rglob("*.py"))
        for m, _ in _imports(p)
        if m == "eci_core.explore" or m.startswith("eci_core.explore.")
    ]
    assert bad == []


def test_explore_imports_no_private_name_and_no_streamlit():
    bad = []
    for p in sorted((PKG / "explore").rglob("*.py")):
        for m, names in _imports(p):
            if m.split(".")[0] == "streamlit":
                bad.append(f"{p.name} imports streamlit")
            bad += [
                f"{p.name} imports {m}.{n}"
                for n in names
                if m.startswith("eci_core.") and n.startswith("_") and not n.startswith("__")
            ]
    assert bad == []


def test_explore_modules_stay_under_800_lines():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (PKG / "explore").glob("*.py")}
    assert {n: k for n, k in sizes.items() if k > 800} == {}
    assert "views.py" not in sizes  # no facade re-exporting the page modules
