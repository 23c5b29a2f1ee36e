"""Launch arguments and trust: what the server was started with, and which folders it may read.

* :func:`launch_args`: the options after ``--`` (``streamlit run app.py -- --data DIR``).
* The dataset, encoder and cross-encoder opened at start (``--data`` / ``$ECI_DATA`` ...).
* The data root (:func:`data_roots`, :func:`read_roots`, :func:`path_allowed`): every file the
  dashboard opens must resolve inside it.
* The embedding-cache folders read besides the user's cache (:func:`readonly_cache_dirs`): the
  bundled sample's shipped cache (by exact path) and folders named with ``--readonly-cache`` /
  ``$ECI_READONLY_CACHE``; never an ``embeddings/`` folder found beside a loaded file.
* The time budget of one scoring run (:func:`score_budget_s`).

No Streamlit here: these read the command line and the environment only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "sample_data" / "pyfaq"
#: Default time budget of one scoring run in the dashboard (seconds); see :func:`score_budget_s`.
DEFAULT_SCORE_BUDGET_S = 600.0


def launch_args(argv: list[str] | None = None) -> dict[str, str]:
    """Options given after ``--`` on the command line (``streamlit run app.py -- --data DIR``).

    Recognised: ``--data PATH`` (dataset to open), ``--encoder NAME`` (``minilm``, ``hashing`` or
    a local folder), ``--cross-encoder`` (start with the cross-encoder on), ``--data-root DIRS``
    (folders the sidebar's local-path box may read, ``os.pathsep``-separated), ``--readonly-cache
    DIRS`` (extra embedding-cache folders to read, never write) and ``--score-budget SECONDS``.
    Unknown arguments are ignored so that Streamlit's own flags never break the app.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    out: dict[str, str] = {}
    valued = ("--data", "--encoder", "--data-root", "--readonly-cache", "--score-budget")
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in valued and i + 1 < len(argv):
            out[arg[2:]] = argv[i + 1]
            i += 2
            continue
        if any(arg.startswith(v + "=") for v in valued):
            k, v = arg[2:].split("=", 1)
            out[k] = v
        elif arg == "--cross-encoder":
            out["cross-encoder"] = "1"
        i += 1
    return out


def default_data_path() -> Path | None:
    """The dataset opened at start: ``--data``, else ``$ECI_DATA``, else the bundled sample."""
    args = launch_args()
    given = args.get("data") or os.environ.get("ECI_DATA")
    if given:
        return Path(given).expanduser()
    return SAMPLE_DIR if SAMPLE_DIR.exists() else None


def default_encoder() -> str:
    """``--encoder``, else ``$ECI_ENCODER``, else the bundled MiniLM."""
    return launch_args().get("encoder") or os.environ.get("ECI_ENCODER") or "minilm"


def default_cross_encoder() -> bool:
    """Cross-encoder off unless ``--cross-encoder`` or ``ECI_CROSS_ENCODER=1``."""
    if "cross-encoder" in launch_args():
        return True
    return os.environ.get("ECI_CROSS_ENCODER", "").strip().lower() in ("1", "true", "yes", "on")


def _path_list(value: str | None) -> list[Path]:
    return [Path(x).expanduser() for x in (value or "").split(os.pathsep) if x.strip()]


def data_roots() -> list[Path]:
    """Folders the sidebar's local-path box may read (resolved; symlinks are followed first).

    ``--data-root DIRS`` or ``$ECI_DATA_ROOT`` (``os.pathsep``-separated; ``/`` allows every
    path) replace the default: the working directory the server was started in, the bundled
    sample and the dataset given with ``--data`` / ``$ECI_DATA``. The limit holds whatever
    address the server binds: anyone who can reach the server could otherwise read every file
    the server's user can read.
    """
    given = launch_args().get("data-root") or os.environ.get("ECI_DATA_ROOT")
    if given:
        roots = _path_list(given)
    else:
        roots = [Path.cwd(), SAMPLE_DIR]
        data = launch_args().get("data") or os.environ.get("ECI_DATA")
        if data:
            roots.append(Path(data).expanduser())
    out: list[Path] = []
    for r in roots:
        r = r.resolve()
        if r not in out:
            out.append(r)
    return out


def read_roots() -> list[Path]:
    """Folders every file the dashboard opens must resolve into (the data root, checked file by
    file by the loaders: a symbolic link out of it is refused): :func:`data_roots`, the bundled
    sample and the dataset named with ``--data`` / ``$ECI_DATA`` (named on purpose by whoever
    started the server)."""
    out = list(data_roots())
    for extra in (SAMPLE_DIR, default_data_path()):
        if extra is None:
            continue
        try:
            r = extra.resolve()
        except (OSError, RuntimeError):
            continue
        if r not in out:
            out.append(r)
    return out


def path_allowed(path: Path) -> bool:
    """True when ``path`` (after resolving ``..`` and symlinks) lies inside a :func:`data_roots` folder."""
    try:
        real = Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return False
    return any(real == r or real.is_relative_to(r) for r in data_roots())


def score_budget_s() -> float | None:
    """Seconds one scoring run of the dashboard may take: ``--score-budget``, else
    ``$ECI_SCORE_BUDGET_S``, else :data:`DEFAULT_SCORE_BUDGET_S`; ``0`` means no limit."""
    raw = launch_args().get("score-budget") or os.environ.get("ECI_SCORE_BUDGET_S")
    try:
        val = float(raw) if raw not in (None, "") else DEFAULT_SCORE_BUDGET_S
    except ValueError:
        val = DEFAULT_SCORE_BUDGET_S
    return None if val <= 0 else val


def readonly_cache_dirs() -> list[Path]:
    """Embedding-cache folders read (never written) besides the user's cache: the bundled
    sample's shipped ``sample_data/pyfaq/embeddings`` (by exact path) and the folders named with
    ``--readonly-cache`` / ``$ECI_READONLY_CACHE`` (``os.pathsep``-separated).

    Nothing is discovered beside loaded files: an ``embeddings/`` folder next to an uploaded or
    opened file (or in its parent or grandparent, e.g. ``/tmp`` for an upload) could have been
    planted by anyone who can write there, and would decide the scores.
    """
    named = _path_list(launch_args().get("readonly-cache") or os.environ.get("ECI_READONLY_CACHE"))
    out: list[Path] = []
    for d in [SAMPLE_DIR / "embeddings", *named]:
        d = d.resolve()
        if d.is_dir() and d not in out:
            out.append(d)
    return out
