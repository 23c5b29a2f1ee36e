"""Validation: the saved validations the dashboard can quote, and which one the Overview quotes for
the loaded data and settings (:func:`validation_status`).

Saved validations come from the loaded data's folder (``DIR/validation/**/results.json``, read once
per file version with ``st.cache_resource``) and from this session (opened or run on the
Validation page). A validation is quoted only when it covers every loaded source with the same
negatives and was made under the same encoder and settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from eci_core.io.collection import Collection
from ui.state.keys import K_COLLECTION, K_CONTENT_HASH, K_VALIDATIONS
from ui.state.launch import SAMPLE_DIR, read_roots
from ui.state.loading import dataset_label
from ui.state.models import get_encoder
from ui.state.settings import Settings, settings


@st.cache_resource(show_spinner=False, max_entries=16)
def _load_validation(path: str, mtime_ns: int, roots: tuple[str, ...]):
    from eci_core.validation import load_results

    return load_results(path, roots=roots)


def shipped_validation_dirs() -> list[Path]:
    """Saved validations shipped with the loaded data (``DIR/validation/**/results.json`` in the
    dataset folder of a loaded source, :func:`eci_core.io.trust.neighbour_dirs`: never a parent
    folder, the temporary folder or an upload folder), the bundled sample's first. A loaded
    source's results must resolve inside the data root (:func:`ui.state.launch.data_roots`)."""
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
            out[dataset_label(d)] = _load_validation(
                str(d), (d / "results.json").stat().st_mtime_ns, tuple(str(r) for r in read_roots())
            )
        except (OSError, ValueError):
            continue
    out.update(st.session_state.get(K_VALIDATIONS, {}))
    return out


def add_validation(label: str, result: Any) -> None:
    """Keep ``result`` (opened or run on the Validation page) for this session under ``label``."""
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
