"""Session state of the dashboard, initialised in one place.

Everything a page needs comes from here: the loaded :class:`~eci_core.io.collection.Collection`, the
settings chosen in the sidebar, the :class:`~eci_core.scoring.ScoreResult` for those settings,
and the user's per-negative marks. Pages never compute metrics; they call :func:`current`.

Caching
-------
* The default dataset is loaded once per process (``st.cache_resource`` keyed on its path and
  modification times) and never mutated: adding files works on a copy.
* Encoders and cross-encoders are loaded once per process (``st.cache_resource``).
* Scores live in a process-wide LRU store (held by ``st.cache_resource``) keyed on
  ``(content_hash(collection), encoder, cross-encoder, ECIConfig, every embedding-cache folder
  read)`` (:func:`score_key`), so switching pages or going back to earlier settings never
  recomputes, and a result is shared with another session only when all of these are equal.
* Embedding caches read: the user's cache and, read-only, the bundled sample's shipped cache (by
  exact path) and folders named with ``--readonly-cache`` / ``$ECI_READONLY_CACHE``; never an
  ``embeddings/`` folder found beside a loaded file (:func:`readonly_cache_dirs`). The store is filled outside any cached function,
  which lets the progress bar show what is being computed without being replayed later.

Where things live in the URL (``st.query_params``) so that a copied link reopens the same view:
the page is the URL path (``st.navigation``); ``q`` is the query shown in the drill-down;
``a`` / ``b`` the two compared sources; ``src`` the sources shown on the Margins page.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import streamlit as st

import eci_core  # noqa: F401  (sets the offline environment variables first)
from eci_core.config import ECIConfig
from eci_core.io.collection import Collection, content_hash
from eci_core.io.records import LoadReport
from eci_core.io.trust import UPLOAD_PREFIX

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "sample_data" / "pyfaq"

#: Choices of the sidebar's encoder box -> value passed to ``eci_core.models.registry.load_encoder``.
ENCODER_CHOICES = {
    "MiniLM (bundled)": "minilm",
    "Hashing (instant, lexical)": "hashing",
    "bge-small-en-v1.5 (bundled, ONNX, CPU)": "bge-small",
    "Local folder…": "folder",
    "Your embeddings (folder)…": "embeddings",
}
#: Mark values, as ``eci_core.io.export.clean_collection`` expects them.
MARK_FALSE_NEGATIVE = "false_negative"
MARK_FINE = "fine"
MARK_LABELS = {MARK_FALSE_NEGATIVE: "false negative", MARK_FINE: "fine"}
# The mark control of the drill-down and the Review queue: "unmarked" is an option of its own and
# the control never goes empty (required=True), so a click always sends a value that is not None.
# Streamlit calls on_change only when the value sent differs from the one it kept from the last
# finished run, and a row still on screen from the previous run (a new query or page loading) has
# no kept value (None): clearing a mark by deselecting (None) there was not seen and was dropped.
MARK_UNMARKED = "unmarked"
MARK_CHOICES = [MARK_UNMARKED, MARK_FINE, MARK_FALSE_NEGATIVE]
MARK_CHOICE_LABELS = {MARK_UNMARKED: "unmarked", **MARK_LABELS}


def mark_of_choice(value: str | None) -> str | None:
    """The mark a mark control's value stands for (None: no mark)."""
    return None if value in (None, MARK_UNMARKED) else value


SCORE_STORE_SIZE = 8

# Session-state keys (prefixed so they never clash with widget keys of a page).
K_COLLECTION = "eci_collection"
K_FINGERPRINT = "eci_fingerprint"
K_CONTENT_HASH = "eci_content_hash"  # SHA-256 of the data: the score store's key (see score_key)
K_REPORT = "eci_load_report"
K_ERRORS = "eci_load_errors"
K_DATA_LABEL = "eci_data_label"
K_DATA_DIRS = "eci_data_dirs"  # BEIR folders the user opened: runs added later resolve against their corpus
K_MARKS = "eci_marks"
K_MARKS_RESTORED = "eci_marks_restored"  # how many saved marks the last data change restored
K_FN_MODELS = "eci_fn_models"  # the review queue's refitted false-negative models (None: shipped)
K_FN_REFIT = "eci_fn_refit"  # what the last refit measured (false_negatives.refit_report), or None
K_QUERY = "eci_query_id"
K_PROJECTION = "pj_params"  # Projection page: method (pca/umap) and UMAP parameters
K_INITIALISED = "eci_initialised"
K_VALIDATIONS = "eci_validations"  # label -> ValidationResult opened or run in this session

# Widget keys of the sidebar (their values are the settings).
W_ENCODER = "set_encoder"
W_ENCODER_PATH = "set_encoder_path"
W_EMBEDDINGS = "set_embeddings"  # folder of your own vectors (eci_core.models.user_embeddings)
W_EMBEDDINGS_MODEL = "set_embeddings_model"
W_CROSS = "set_cross_encoder"
W_POSITIVE = "set_positive"
W_AGGREGATE = "set_aggregate"
W_TEMPERATURE = "set_temperature"
W_NEAR_DUP = "set_near_duplicate"
W_CE_MARGIN = "set_ce_margin"
W_PERCPOS = "set_percpos"


# --------------------------------------------------------------------------- launch arguments
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


#: Default time budget of one scoring run in the dashboard (seconds); see :func:`score_budget_s`.
DEFAULT_SCORE_BUDGET_S = 600.0


def score_budget_s() -> float | None:
    """Seconds one scoring run of the dashboard may take: ``--score-budget``, else
    ``$ECI_SCORE_BUDGET_S``, else :data:`DEFAULT_SCORE_BUDGET_S`; ``0`` means no limit."""
    raw = launch_args().get("score-budget") or os.environ.get("ECI_SCORE_BUDGET_S")
    try:
        val = float(raw) if raw not in (None, "") else DEFAULT_SCORE_BUDGET_S
    except ValueError:
        val = DEFAULT_SCORE_BUDGET_S
    return None if val <= 0 else val


class ScoringBudgetExceeded(RuntimeError):
    """Scoring ran past the dashboard's time budget (:func:`score_budget_s`)."""


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """What the sidebar chose: which encoder, whether a cross-encoder runs, and the options."""

    encoder: str
    cross_encoder: bool
    config: ECIConfig
    embeddings: str = ""  # a folder of your own vectors (then ``encoder`` is "embeddings")
    embeddings_model: str = ""

    def key(self) -> tuple:
        return (
            self.encoder,
            self.cross_encoder,
            tuple(sorted(self.config.as_dict().items())),
            self.embeddings,
            self.embeddings_model,
            _folder_stamp(self.embeddings),
        )


def _folder_stamp(folder: str) -> tuple:
    """(name, size, mtime) of the files of your embeddings folder: a changed file is a new key."""
    if not folder:
        return ()
    try:
        return tuple(
            sorted(
                (p.name, p.stat().st_size, p.stat().st_mtime_ns)
                for p in Path(folder).expanduser().iterdir()
                if p.is_file()
            )
        )
    except OSError:
        return ("unreadable",)


def _encoder_choice_default(enc: str) -> tuple[str, str]:
    if enc in ("minilm", "all-MiniLM-L6-v2", ""):
        return "MiniLM (bundled)", ""
    if enc == "hashing":
        return "Hashing (instant, lexical)", ""
    if enc == "bge-small":
        return "bge-small-en-v1.5 (bundled, ONNX, CPU)", ""
    return "Local folder…", enc


def settings() -> Settings:
    """The settings the sidebar widgets hold now (validated by ``ECIConfig``); a widget value
    that is missing falls back to its default."""
    ss = st.session_state
    d = _defaults()
    get = lambda k: ss.get(k, d[k])  # noqa: E731
    choice = ENCODER_CHOICES.get(get(W_ENCODER), "minilm")
    encoder = str(get(W_ENCODER_PATH)).strip() if choice == "folder" else choice
    config = ECIConfig(
        positive=get(W_POSITIVE),
        aggregate=get(W_AGGREGATE),
        temperature=float(get(W_TEMPERATURE)),
        near_duplicate_threshold=float(get(W_NEAR_DUP)),
        cross_encoder_margin=float(get(W_CE_MARGIN)),
        percpos=float(get(W_PERCPOS)),
    )
    emb = str(get(W_EMBEDDINGS)).strip() if choice == "embeddings" else ""
    emb_model = str(get(W_EMBEDDINGS_MODEL)).strip() if choice == "embeddings" else ""
    return Settings(
        encoder=encoder,
        cross_encoder=bool(get(W_CROSS)),
        config=config,
        embeddings=emb,
        embeddings_model=emb_model,
    )


def _defaults() -> dict[str, Any]:
    enc_label, enc_path = _encoder_choice_default(default_encoder())
    cfg = ECIConfig()
    return {
        K_COLLECTION: None,
        K_FINGERPRINT: None,
        K_CONTENT_HASH: None,
        K_REPORT: LoadReport(),
        K_ERRORS: [],
        K_DATA_LABEL: "nothing loaded",
        K_DATA_DIRS: [],
        K_MARKS: {},
        K_MARKS_RESTORED: 0,
        K_FN_MODELS: None,
        K_FN_REFIT: None,
        K_QUERY: None,
        K_PROJECTION: dict(PROJECTION_DEFAULTS),
        K_VALIDATIONS: {},
        W_ENCODER: enc_label,
        W_ENCODER_PATH: enc_path,
        W_EMBEDDINGS: "",
        W_EMBEDDINGS_MODEL: "",
        W_CROSS: default_cross_encoder(),
        W_POSITIVE: cfg.positive,
        W_AGGREGATE: cfg.aggregate,
        W_TEMPERATURE: cfg.temperature,
        W_NEAR_DUP: cfg.near_duplicate_threshold,
        W_CE_MARGIN: cfg.cross_encoder_margin,
        W_PERCPOS: cfg.percpos,
    }


# --------------------------------------------------------------------------- initialisation
def init_state() -> None:
    """Set the session-state defaults that are missing, and open the default dataset once per
    browser session."""
    ss = st.session_state
    defaults = _defaults()
    # Every run: a widget key can be dropped by Streamlit's widget clean-up (e.g. the test
    # harness on reruns of a multipage app); setdefault restores only what is missing.
    for k, v in defaults.items():
        ss.setdefault(k, v)
    if ss.get(K_INITIALISED):
        return
    path = default_data_path()
    if path is not None:
        open_default_dataset(path)
    ss[K_INITIALISED] = True


def _mtimes(path: Path) -> tuple:
    """Modification time and size of a file or of every file under a folder (the key of the
    per-process dataset cache; scores are keyed on the loaded data's content hash instead)."""

    def stamp(p: Path) -> tuple:
        st_ = p.stat()
        return (str(p), st_.st_mtime_ns, st_.st_size)

    if path.is_file():
        return (stamp(path),)
    if path.is_dir():
        return tuple(sorted(stamp(p) for p in path.rglob("*") if p.is_file() and "embeddings" not in p.parts))
    return ()


@st.cache_resource(show_spinner="Reading the dataset…", max_entries=4)
def _load_cached(path: str, mtimes_key: tuple, roots: tuple[str, ...]) -> tuple[Collection, LoadReport]:
    from eci_core.io.loaders import load_paths

    return load_paths([path], roots=roots)


def open_default_dataset(path: Path) -> None:
    """Replace the session's data by the dataset at ``path`` (shared, read-only, cached)."""
    ss = st.session_state
    if not path.exists():
        ss[K_ERRORS] = [f"{path}: no such file or folder (set ECI_DATA or --data to a dataset)"]
        return
    try:
        coll, report = _load_cached(str(path), _mtimes(path), tuple(str(r) for r in read_roots()))
    except Exception as err:  # a LoadError or an unreadable dataset: say it in one line
        ss[K_ERRORS] = [one_line(err)]
        return
    ss[K_ERRORS] = list(report.errors)
    if coll is not None and coll.sources:
        _set_collection(coll, report, label=_dataset_label(path))
        ss[K_DATA_DIRS] = [str(path)] if path.is_dir() else []
    elif not report.errors:
        ss[K_ERRORS] = [f"{path}: no negatives found (a dataset needs at least one source of negatives)"]


def _dataset_label(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type name when the message is empty)."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _set_collection(coll: Collection, report: LoadReport, label: str) -> None:
    ss = st.session_state
    ss[K_COLLECTION] = coll
    ss[K_FINGERPRINT] = coll.fingerprint()
    ss[K_CONTENT_HASH] = content_hash(coll)
    _restore_marks()
    ss[K_REPORT] = report
    ss[K_DATA_LABEL] = label
    ss[K_QUERY] = None


def add_paths(paths: list[Path], label: str, hide_root: Path | None = None) -> None:
    """Load ``paths`` as extra sources of the current collection.

    The load works on a copy: when every path fails, the session keeps what it had; errors are
    shown as one line each (with ``hide_root/`` cut from file names, so an upload is named as the
    user's file). A path that loads adds its sources (named after the file stems); a TREC run or
    negative-ids file resolves its ids against the whole corpus of the BEIR folder opened before
    (``K_DATA_DIRS``), not only the passages already loaded. Every file opened must resolve inside
    :func:`read_roots` (an upload's: inside its own folder ``hide_root``).
    """
    from eci_core.io.loaders import load_paths

    ss = st.session_state
    current: Collection | None = ss[K_COLLECTION]
    base = current.copy() if current is not None else None
    try:
        corpus_dirs = (ss.get(K_DATA_DIRS) or []) if current is not None else []
        # an upload reads inside its own folder, plus the dataset folder opened before (its corpus)
        roots = [hide_root, *corpus_dirs] if hide_root is not None else read_roots()
        coll, report = load_paths(
            [str(p) for p in paths], collection=base, roots=roots, corpus_dirs=corpus_dirs
        )
    except Exception as err:
        ss[K_ERRORS] = [_short_names(one_line(err), hide_root)]
        return
    ss[K_ERRORS] = [_short_names(e, hide_root) for e in report.errors]
    if coll is None or not report.sources:
        return
    merged = LoadReport()
    merged.extend(ss[K_REPORT])
    merged.sources.extend(report.sources)
    old_label = ss[K_DATA_LABEL] if current is not None else ""
    _set_collection(coll, merged, label=f"{old_label} + {label}" if old_label else label)


def _short_names(message: str, root: Path | None) -> str:
    """``message`` with ``root/`` (and an upload sub-folder ``u<n>/``) removed from paths."""
    if root is None:
        return message
    import re

    return re.sub(re.escape(str(root)) + r"/(u\d+/)?", "", message)


def replace_with_path(path: Path) -> None:
    """Open another dataset in place of the current one (kept when the new one fails); every
    file opened must resolve inside :func:`read_roots`."""
    from eci_core.io.loaders import load_paths

    ss = st.session_state
    try:
        coll, report = load_paths([str(path)], roots=read_roots())
    except Exception as err:
        ss[K_ERRORS] = [one_line(err)]
        return
    ss[K_ERRORS] = list(report.errors)
    if coll is not None and coll.sources:
        _set_collection(coll, report, label=_dataset_label(path))
        ss[K_DATA_DIRS] = [str(path)] if path.is_dir() else []


def max_upload_mb() -> int:
    """Largest upload the server accepts, in MB (Streamlit's ``server.maxUploadSize``, set in
    ``.streamlit/config.toml``; the uploader itself refuses a larger file with a message)."""
    try:
        return int(st.get_option("server.maxUploadSize"))
    except Exception:  # outside a server (tests): Streamlit's default
        return 200


def save_uploads(files, folder: Path) -> list[Path]:
    """Write uploaded files into ``folder``, keeping their names (sources are named after file
    stems, so ``bm25.jsonl`` becomes the source ``bm25``); a name used twice in one batch gets a
    sub-folder ``u<n>/`` so two files never overwrite each other."""
    out: list[Path] = []
    for f in files:
        name = Path(f.name).name or "upload"
        target_dir = folder
        n = 1
        while (target_dir / name).exists():
            target_dir = folder / f"u{n}"
            n += 1
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / name
        target.write_bytes(f.getvalue())
        out.append(target)
    return out


def add_uploads(files) -> None:
    """Load uploaded files as extra sources (see :func:`add_paths`).

    The files are written to a fresh ``eci-upload-*`` folder in the temporary directory only for
    the time of the load, then the folder is removed (the loaded data lives in memory), so no
    upload outlives its session or stays behind when it is replaced. A file larger than
    :func:`max_upload_mb` is refused with one line (the uploader normally refuses it first).
    """
    import shutil

    limit = max_upload_mb() * 1024 * 1024
    too_big = [f for f in files if getattr(f, "size", 0) > limit]
    files = [f for f in files if f not in too_big]
    errors = [
        f"{Path(f.name).name}: {f.size / 1e6:,.0f} MB is over the upload limit of {max_upload_mb():,} MB "
        "(server.maxUploadSize); open it with --data or the local-path box instead"
        for f in too_big
    ]
    if not files:
        st.session_state[K_ERRORS] = errors
        return
    folder = Path(tempfile.mkdtemp(prefix=UPLOAD_PREFIX))
    try:
        paths = save_uploads(files, folder)
        add_paths(paths, label=", ".join(p.name for p in paths), hide_root=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if errors:
        st.session_state[K_ERRORS] = errors + list(st.session_state[K_ERRORS])


# --------------------------------------------------------------------------- models
@st.cache_resource(show_spinner="Loading the encoder…", max_entries=3)
def get_encoder(name: str):
    """The target encoder (bundled MiniLM, ``hashing`` or a local folder), once per process."""
    from eci_core.models.registry import load_encoder

    return load_encoder(None if name == "minilm" else name)


@st.cache_resource(show_spinner="Loading the cross-encoder…", max_entries=2)
def get_cross_encoder():
    """The bundled ONNX cross-encoder, once per process."""
    from eci_core.models.registry import load_cross_encoder

    return load_cross_encoder(None)


def get_embedding_cache():
    """The on-disk embedding cache (``$ECI_CACHE_DIR`` or ``~/.cache/eci-explorer``) with the
    trusted read-only layers of :func:`readonly_cache_dirs`."""
    return _embedding_cache(tuple(str(p) for p in readonly_cache_dirs()))


@st.cache_resource(show_spinner=False, max_entries=4)
def _embedding_cache(readonly: tuple[str, ...]):
    from eci_core.models.cache import EmbeddingCache

    return EmbeddingCache(readonly_dirs=list(readonly))


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


def cache_dirs_read() -> tuple[str, ...]:
    """Every embedding-cache folder scoring reads: the user's cache, then the read-only layers."""
    from eci_core.config import default_cache_dir

    return (str(default_cache_dir().expanduser().resolve()), *(str(p) for p in readonly_cache_dirs()))


# --------------------------------------------------------------------------- score store
class _ScoreStore:
    """A small thread-safe LRU of ScoreResults shared by every session of the process."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple):
        with self.lock:
            val = self.items.get(key)
            if val is not None:
                self.items.move_to_end(key)
            return val

    def put(self, key: tuple, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _score_store() -> _ScoreStore:
    return _ScoreStore(SCORE_STORE_SIZE)


def score_key(content_hash: str, s: Settings) -> tuple:
    """Key of a result in the process-wide store: the data's content hash (SHA-256 of every
    text, id, label and source array), the settings, and every embedding-cache folder read
    (:func:`cache_dirs_read`). A result is shared between sessions only when all are equal."""
    return (content_hash,) + s.key() + (cache_dirs_read(),)


def cached_result(s: Settings | None = None):
    """The ScoreResult for the current data and settings if it was computed, else ``None``."""
    ss = st.session_state
    if ss.get(K_COLLECTION) is None:
        return None
    s = s or settings()
    return _score_store().get(score_key(ss[K_CONTENT_HASH], s))


def compute_result(s: Settings, progress: Callable[[str, int, int], None] | None = None):
    """Score the session's collection with ``s`` (or take it from the store)."""
    from eci_core.scoring import score_collection

    ss = st.session_state
    key = score_key(ss[K_CONTENT_HASH], s)
    store = _score_store()
    hit = store.get(key)
    if hit is not None:
        return hit
    budget = score_budget_s()
    started = time.monotonic()

    def timed(stage: str, done: int, total: int) -> None:
        if budget is not None and time.monotonic() - started > budget:
            raise ScoringBudgetExceeded(
                f"scoring stopped after {budget:g} s (the dashboard's time budget, at '{stage}'): score "
                "large data with `eci score DATA --out DIR`, or raise the budget with ECI_SCORE_BUDGET_S "
                "or --score-budget (0 = no limit)"
            )
        if progress:
            progress(stage, done, total)

    timed("loading the encoder", 0, 1)
    embeddings = None
    if s.encoder == "embeddings":
        if not s.embeddings:
            raise ValueError("Your embeddings: type the folder that holds your vectors in the sidebar")
        try:
            folder = Path(s.embeddings).expanduser().resolve()
        except (OSError, RuntimeError):  # a symlink loop
            folder = None
        if folder is None or not path_allowed(folder):
            raise ValueError(
                "Your embeddings: that folder is outside the folders this dashboard may read "
                "(start it with --data-root DIRS or set ECI_DATA_ROOT)"
            )
        from eci_core.models.user_embeddings import open_embeddings

        # the resolved folder that was checked is opened; every file in it must resolve inside the data root
        embeddings, encoder = (
            open_embeddings(folder, model=s.embeddings_model or None, roots=read_roots()),
            None,
        )
    else:
        encoder = get_encoder(s.encoder)
    cross = get_cross_encoder() if s.cross_encoder else None
    result = score_collection(
        ss[K_COLLECTION],
        encoder,
        s.config,
        cross_encoder=cross,
        cache=get_embedding_cache(),
        progress=timed,
        embeddings=embeddings,
    )
    store.put(key, result)
    return result


# --------------------------------------------------------------------------- what pages read
@dataclass
class Current:
    """What every page works with."""

    collection: Collection | None
    result: Any  # eci_core.scoring.ScoreResult | None
    settings: Settings
    fingerprint: str | None
    marks: dict = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.collection is not None and self.result is not None


def current() -> Current:
    ss = st.session_state
    s = settings()
    return Current(
        collection=ss.get(K_COLLECTION),
        result=cached_result(s),
        settings=s,
        fingerprint=ss.get(K_FINGERPRINT),
        marks=ss[K_MARKS],
    )


# --------------------------------------------------------------------------- marks
def mark_key(source: str, query_id: str, passage_id: str) -> tuple[str, str, str]:
    return (str(source), str(query_id), str(passage_id))


def set_mark(source: str, query_id: str, passage_id: str, value: str | None) -> None:
    """Mark one negative ``"false_negative"`` / ``"fine"``, or clear the mark with ``None``.
    The marks are saved at once with the data's fingerprint (:func:`save_marks`)."""
    _put_mark(mark_key(source, query_id, passage_id), value)
    save_marks()


def _put_mark(k: tuple[str, str, str], value: str | None) -> None:
    marks = st.session_state[K_MARKS]
    if value is None:
        marks.pop(k, None)
        return
    if value not in (MARK_FALSE_NEGATIVE, MARK_FINE):
        raise ValueError(f"mark={value!r}: use {MARK_FALSE_NEGATIVE!r} or {MARK_FINE!r}")
    marks[k] = value


def set_pair_mark(pairs, query_id: str, passage_id: str, value: str | None) -> int:
    """Mark one (query, negative) in every source of ``pairs`` (the scored pairs table) that
    mined it: a false negative is one whichever miner found it. Returns how many sources."""
    # ``==`` on the id columns directly: they are categorical (scoring output), and ``astype(str)``
    # would build a string per pair (~1 s per column at 3M pairs) on every click
    hit = pairs[
        (pairs["query_id"] == str(query_id)).to_numpy(dtype=bool)
        & (pairs["passage_id"] == str(passage_id)).to_numpy(dtype=bool)
    ]
    names = list(dict.fromkeys(hit["source"].astype(str)))
    for s in names:
        _put_mark(mark_key(s, query_id, passage_id), value)
    save_marks()
    return len(names)


def pair_marks() -> dict[tuple[str, str], str]:
    """The marks per (query, passage), whatever the source (a false negative anywhere wins)."""
    out: dict[tuple[str, str], str] = {}
    for (_, q, p), m in st.session_state[K_MARKS].items():
        if out.get((q, p)) != MARK_FALSE_NEGATIVE:
            out[(q, p)] = m
    return out


def fn_scores_now(result):
    """fn_score per row of ``result.pairs``: the shipped model's, or the review queue's refit."""
    models = st.session_state.get(K_FN_MODELS)
    if models is None:
        return result.pairs["fn_score"].to_numpy()
    from eci_core.metrics.false_negatives import fn_scores

    return fn_scores(result.pairs, models)


def refit_on_marks(result) -> dict:
    """Refit the false-negative score on the session's marks plus the shipped prior
    (``eci_core.metrics.false_negatives.refit``); the review queue re-ranks with it. Returns and keeps
    what the refit measured (``refit_report``: precision on the marks before / after)."""
    from eci_core.io.marks import marked_rows
    from eci_core.metrics.false_negatives import refit, refit_report

    pairs = result.pairs
    rows, labels = marked_rows(pairs, st.session_state[K_MARKS])
    report = refit_report(pairs, rows, labels)
    st.session_state[K_FN_MODELS] = refit(pairs, rows, labels)
    st.session_state[K_FN_REFIT] = report
    return report


def save_marks() -> bool:
    """Save the session's marks under the data's fingerprint in the user's cache folder
    (``eci_core.io.marks``); False when there is no data or the folder is not writable."""
    from eci_core.io import marks

    fp = st.session_state.get(K_FINGERPRINT)
    if not fp:
        return False
    return marks.save_marks(fp, st.session_state[K_MARKS]) is not None


def _restore_marks() -> None:
    """Merge the marks saved for the current data into the session's (the session's win)."""
    from eci_core.io.marks import load_marks

    ss = st.session_state
    fp = ss.get(K_FINGERPRINT)
    saved = load_marks(fp) if fp else {}
    current = ss.get(K_MARKS) or {}
    ss[K_MARKS_RESTORED] = sum(1 for k in saved if k not in current)
    ss[K_MARKS] = {**saved, **current}
    ss[K_FN_MODELS] = None
    ss[K_FN_REFIT] = None
    if ss[K_MARKS_RESTORED] or (current and not saved):
        save_marks()


def clear_marks() -> None:
    """Forget every mark of this session and the saved ones of the current data."""
    from eci_core.io import marks

    ss = st.session_state
    ss[K_MARKS] = {}
    ss[K_MARKS_RESTORED] = 0
    ss[K_FN_MODELS] = None
    ss[K_FN_REFIT] = None
    if ss.get(K_FINGERPRINT):
        marks.clear_marks(ss[K_FINGERPRINT])


def marks_labels_bytes() -> bytes:
    """The marks as a labels file (``query-id corpus-id score``; 1 false negative, 0 fine)."""
    from eci_core.metrics.false_negatives import labels_bytes
    from eci_core.io.marks import marks_to_labels

    return labels_bytes(marks_to_labels(st.session_state[K_MARKS]))


def import_labels(data: bytes, pairs, name: str = "labels") -> tuple[int, int, int]:
    """Mark every negative of ``pairs`` (the scored pairs table) whose (query, passage) the labels
    file ``data`` lists; returns ``(marks set, labels that matched a negative, labels in the
    file)`` (a label marks its pair in every source that holds it). Raises ValueError in one line
    naming ``name`` and the line of a malformed file (nothing is changed then)."""
    from eci_core.io.marks import marks_from_labels_file

    new, n_labels = marks_from_labels_file(data, name, pairs)
    st.session_state[K_MARKS].update(new)
    save_marks()
    return len(new), len({(q, p) for _, q, p in new}), n_labels


def marks_frame():
    """The marks as a DataFrame ``source, query_id, passage_id, mark`` (for Export)."""
    import pandas as pd

    rows = [(s, q, p, m) for (s, q, p), m in st.session_state[K_MARKS].items()]
    return pd.DataFrame(rows, columns=["source", "query_id", "passage_id", "mark"])


# --------------------------------------------------------------------------- URL state
def qp_get(name: str, default: str | None = None) -> str | None:
    val = st.query_params.get(name)
    return default if val in (None, "") else val


def qp_set(**values: str | None) -> None:
    """Write values into the URL (``None`` removes the parameter); unchanged values are skipped."""
    for k, v in values.items():
        if v is None or v == "":
            if k in st.query_params:
                del st.query_params[k]
        elif st.query_params.get(k) != str(v):
            st.query_params[k] = str(v)


def open_in_drilldown(query_id: str) -> None:
    """Show ``query_id`` in the Query drill-down page (switches page, keeps it in the URL)."""
    st.session_state[K_QUERY] = str(query_id)
    st.switch_page(PAGE_FILES["drilldown"], query_params={"q": str(query_id)})


PAGE_FILES = {
    "overview": "pages/overview.py",
    "margins": "pages/margins.py",
    "signal_safety": "pages/signal_vs_safety.py",
    "projection": "pages/projection.py",
    "drilldown": "pages/query.py",
    "compare": "pages/compare.py",
    "export": "pages/export.py",
    "review": "pages/review.py",
    "validation": "pages/validation.py",
}


# --------------------------------------------------------------------------- projection
#: The Projection page's default parameters (PCA; the UMAP ones apply once UMAP is chosen).
PROJECTION_DEFAULTS = {"method": "pca", "n_neighbors": 15, "min_dist": 0.1, "metric": "cosine"}
#: The Projection page's default sources: the best-ranked ones (every source at once is a crowded, slow map).
PROJECTION_DEFAULT_SOURCES = 3


@st.cache_resource(show_spinner=False, max_entries=8)  # the same table each rerun (no copy): read-only
def _projected(
    key: tuple,
    sources: tuple,
    color_by: str,
    method: str,
    n_neighbors: int,
    min_dist: float,
    metric: str,
    max_points: int,
    _collection: Collection,
    _result,
):
    from eci_core.explore.projection import project_points, projection_frame

    # sample first, then embed only the kept points (a cache read after scoring)
    data = projection_frame(
        _collection,
        _result,
        sources=list(sources),
        color_by=color_by,
        max_points=max_points,
        encoder=get_encoder(key[1]),
        cache=get_embedding_cache(),
    )
    points = project_points(
        data,
        method=method,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        cache=get_embedding_cache(),
    )
    return points, data.note, data.n_total


def projection_points(
    cur: "Current",
    sources: list[str],
    color_by: str,
    method: str = "pca",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    max_points: int = 20000,
):
    """The projected point table (``x``, ``y`` + point metadata), the sampling note and the
    number of points before sampling; cached on the data, settings and parameters."""
    key = score_key(st.session_state[K_CONTENT_HASH], cur.settings)
    return _projected(
        key,
        tuple(sources),
        color_by,
        method,
        int(n_neighbors),
        float(min_dist),
        metric,
        int(max_points),
        cur.collection,
        cur.result,
    )


def prepare_pages(s: Settings, result, progress: Callable[[str, int, int], None] | None = None) -> None:
    """Compute what the pages derive from new scores (:func:`eci_core.explore.warm.warm_up`) and
    the Projection page's default map, once per (data, settings), before the first chart is
    drawn: a first page visit then finds them ready instead of computing them or waiting for a
    background computation."""
    from eci_core.explore import warm

    cur = Current(collection=st.session_state[K_COLLECTION], result=result, settings=s, fingerprint=None)
    names = [str(n) for n in result.sources["name"]] if len(result.sources) else []
    p = PROJECTION_DEFAULTS
    projection = (
        [
            (
                "projection",
                lambda: projection_points(
                    cur,
                    names[:PROJECTION_DEFAULT_SOURCES],
                    "source",
                    method=p["method"],
                    n_neighbors=p["n_neighbors"],
                    min_dist=p["min_dist"],
                    metric=p["metric"],
                ),
            )
        ]
        if names
        else []
    )
    warm.warm_up(cur.collection, result, progress=progress, then=projection)


# --------------------------------------------------------------------------- routing
def use_navigation_only() -> bool:
    """Turn off Streamlit's legacy ``pages/`` folder routing; True when it was on.

    Streamlit still emulates its first multipage API when a ``pages/`` folder sits next to the
    main script: a URL such as ``/overview`` then runs ``pages/overview.py`` on its own, without
    ``app.py`` (no sidebar, no navigation, no state). ``app.py`` calls this on every run; a
    page that finds the emulation still on runs ``app.py`` in its place, in the same run (see
    :func:`ui.components.require_result`), so every run goes through ``app.py``'s
    ``st.navigation``.
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the emulation
        return False
    was_on = bool(getattr(PagesManager, "uses_pages_directory", False))
    if was_on:
        PagesManager.uses_pages_directory = False
    return was_on


# --------------------------------------------------------------------------- validation
@st.cache_resource(show_spinner=False, max_entries=16)
def _load_validation(path: str, mtime_ns: int, roots: tuple[str, ...]):
    from eci_core.validation import load_results

    return load_results(path, roots=roots)


def shipped_validation_dirs() -> list[Path]:
    """Saved validations shipped with the loaded data (``DIR/validation/**/results.json`` in the
    dataset folder of a loaded source, :func:`eci_core.io.trust.neighbour_dirs`: never a parent
    folder, the temporary folder or an upload folder), the bundled sample's first. A loaded
    source's results must resolve inside the data root (:func:`data_roots`)."""
    from eci_core.io.trust import neighbour_dirs, within_roots
    from eci_core.validation import find_results

    coll = st.session_state.get(K_COLLECTION)
    bases: list[tuple[Path, Any]] = [(SAMPLE_DIR, [SAMPLE_DIR])]
    if coll is not None:
        roots = read_roots()
        bases += [(d, roots) for d in neighbour_dirs(src.path for src in coll.sources.values())]
    out: list[Path] = []
    for base, roots in bases:
        for d in find_results(base / "validation") if (base / "validation").is_dir() else []:
            if d not in out and within_roots(d / "results.json", roots):
                out.append(d)
    return out


def validation_results() -> dict[str, Any]:
    """Every validation available: shipped ones (label = folder relative to the repository) and
    those opened or run in this session. Unreadable shipped results are skipped."""
    out: dict[str, Any] = {}
    for d in shipped_validation_dirs():
        try:
            out[_dataset_label(d)] = _load_validation(
                str(d), (d / "results.json").stat().st_mtime_ns, tuple(str(r) for r in read_roots())
            )
        except (OSError, ValueError):
            continue
    out.update(st.session_state.get(K_VALIDATIONS, {}))
    return out


def add_validation(label: str, result: Any) -> None:
    st.session_state[K_VALIDATIONS][label] = result


@st.cache_resource(show_spinner=False, max_entries=8)
def _source_signatures(content_hash: str, _collection: Collection) -> dict[str, str] | None:
    from eci_core.validation import source_signatures

    try:
        return source_signatures(_collection)
    except (KeyError, IndexError):
        return None


def matches_loaded_data(result: Any) -> bool:
    """True when validation ``result`` covers every loaded source with the same negatives,
    whatever its encoder (:func:`validation_status` also checks the encoder and settings; the
    loaded sources' signatures are computed once per data content: seconds at millions of pairs,
    and the Overview asks on every run)."""
    coll = st.session_state.get(K_COLLECTION)
    if coll is None or not result.validated_names(coll.sources):
        return False
    sig = _source_signatures(st.session_state[K_CONTENT_HASH], coll)
    return sig is not None and result.matches_data(coll, signatures=sig)


def view_encoder(s: Settings | None = None) -> Any:
    """What the scores of settings ``s`` (default: the sidebar's) were computed under, for
    ``ValidationResult.view_problem``: the loaded encoder object (its portable identity is
    compared), or a label for your own embeddings (no saved validation was made under them)."""
    s = s or settings()
    if s.embeddings:
        return f"your own embeddings ({s.embeddings_model or Path(s.embeddings).name})"
    try:
        return get_encoder(s.encoder)
    except (ValueError, TypeError, OSError, RuntimeError):
        return s.encoder


def validation_status(s: Settings | None = None) -> tuple[Any, str | None]:
    """``(validation, why_not)``: the validation the Overview quotes for the loaded data and the
    settings ``s`` (default: the sidebar's), else ``(None, why_not)``.

    A validation is quoted only when it covers every loaded source with the same negatives AND
    was made under the same encoder and pre-training settings
    (``ValidationResult.matches``): the session's own runs first, then shipped cheap-trainer
    results (most seeds), then the others. ``why_not`` is one sentence when a validation of the
    loaded sources exists but was made under another encoder or settings (else None)."""
    coll = st.session_state.get(K_COLLECTION)
    if coll is None:
        return None, None
    s = s or settings()
    results = validation_results()
    session = set(st.session_state.get(K_VALIDATIONS, {}))

    def order(item):
        label, r = item
        cfg = (r.meta or {}).get("config", {})
        return (label not in session, r.trainer == "finetune", -int(cfg.get("seeds") or 0))

    encoder = None
    first_problem = None
    for label, r in sorted(results.items(), key=order):
        if not matches_loaded_data(r):
            continue
        if encoder is None:
            encoder = view_encoder(s)
        problem = r.view_problem(encoder, s.config)
        if problem is None:
            return r, None
        if first_problem is None:
            first_problem = (
                f"a validation of the loaded sources exists ({label}, {r.trainer} trainer) but is not "
                f"quoted: {problem}."
            )
    return None, first_problem


def validation_for_loaded_data() -> Any:
    """The validation the Overview quotes (:func:`validation_status`), or None."""
    return validation_status()[0]
