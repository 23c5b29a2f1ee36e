"""The architecture rules, read from the source (nothing of the package is run):

* no module uses a private name (``_name``) of another module, neither ``from m import _name`` nor
  ``m._name`` on an imported module (eci_core, the app, the benchmarks and the sample scripts);
* no module of eci_core is over 800 lines (split by concern instead);
* the import-linter contracts in pyproject.toml hold: the layers of eci_core import only downward,
  eci_core never imports the app (ui) or streamlit, io never imports models, metrics or explore.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "eci_core"
#: the code the private-name rule covers (tests may reach into a module's internals)
CHECKED = ("eci_core", "ui", "pages", "bench", "sample_data", "app.py")
MAX_LINES = 800


def _files(*names: str) -> list[Path]:
    out = []
    for name in names:
        path = ROOT / name
        out += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return out


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_module(dotted: str, folder: Path, root: Path) -> bool:
    """Whether ``dotted`` names a module or package of this tree (absolute from the root, or a
    sibling of ``folder``: the benchmarks import each other by file name)."""
    for base in (root, folder):
        path = base.joinpath(*dotted.split("."))
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return True
    return False


def private_uses(path: Path, root: Path = ROOT) -> list[str]:
    """``FILE:LINE: what`` for each private name of another module that ``path`` uses: imported
    (``from m import _f``, ``import m._f``) or read as an attribute of an imported module
    (``m._f``, ``pkg.m._f``), at any depth of the file (lazy imports included)."""
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad, modules = [], {}  # local name -> the module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if any(_private(part) for part in a.name.split(".")):
                    bad.append(f"{rel}:{node.lineno}: import {a.name}")
                modules[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if any(_private(part) for part in mod.split(".")):
                bad.append(f"{rel}:{node.lineno}: from {mod} import ...")
            for a in node.names:
                if _private(a.name):
                    bad.append(f"{rel}:{node.lineno}: from {'.' * node.level}{mod} import {a.name}")
                elif node.level == 0 and _is_module(f"{mod}.{a.name}", path.parent, root):
                    modules[a.asname or a.name] = f"{mod}.{a.name}"
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)):
            continue
        chain, base = [node.attr], node.value
        while isinstance(base, ast.Attribute):
            chain.append(base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in modules:
            dotted = ".".join([modules[base.id], *reversed(chain)])
            bad.append(f"{rel}:{node.lineno}: {dotted}")
    return bad


def test_no_module_uses_a_private_name_of_another_module():
    """A name another module needs is public where it belongs (``metrics.eci.FLAG_REASONS``, not
    ``eci._REASONS``; ``scoring.arrays.positives_for``, not ``scoring._positives_for``)."""
    bad = [b for path in _files(*CHECKED) for b in private_uses(path)]
    assert bad == [], "\n".join(bad)


def test_the_private_name_check_finds_each_kind_of_use(tmp_path):
    """The check above can fail: each way of reaching a private name is reported, the public and
    dunder ones and the module's own names are not."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "lib.py").write_text("def _f(): ...\n")
    code = tmp_path / "pkg" / "user.py"
    code.write_text(
        "import numpy as np\n"
        "import pkg.lib\n"
        "from pkg import lib as L\n"
        "from pkg.lib import _f, __doc__\n"
        "def g():\n"
        "    from pkg._hidden import x\n"
        "    return L._f(), pkg.lib._f(), np._core, np.zeros, L.__name__, _own(), self._x\n"
    )
    assert sorted(private_uses(code, tmp_path)) == [
        "pkg/user.py:4: from pkg.lib import _f",
        "pkg/user.py:6: from pkg._hidden import ...",
        "pkg/user.py:7: numpy._core",
        "pkg/user.py:7: pkg.lib._f",  # L._f
        "pkg/user.py:7: pkg.lib._f",  # pkg.lib._f
    ]


def test_no_eci_core_module_is_over_800_lines():
    sizes = {
        str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines()) for p in _files("eci_core")
    }
    over = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert over == {}, f"over {MAX_LINES} lines (split by concern): {over}"


def test_import_contracts_hold():
    """``lint-imports`` (the contracts in pyproject.toml's ``[tool.importlinter]``) passes on this
    tree: the same check ``make test`` runs."""
    if importlib.util.find_spec("importlinter") is None:
        pytest.skip("import-linter is not installed (pip install import-linter, or `make setup-test`)")
    run = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()", "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
