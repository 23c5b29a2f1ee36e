"""Reviewer marks: which mined negatives the user marked false negative or fine.

The marks live in the session (``K_MARKS``: ``(source, query_id, passage_id) -> "fine" |
"false_negative"``) and are saved at once under the data's fingerprint in the user's cache folder
(:mod:`eci_core.io.marks`), so they come back when the same data is opened again
(:func:`restore_marks`). The Review queue refits the false-negative score on them
(:func:`refit_on_marks`); Export writes them as a labels file or a table.
"""

from __future__ import annotations

import streamlit as st

from ui.state.keys import K_FINGERPRINT, K_FN_MODELS, K_FN_REFIT, K_MARKS, K_MARKS_RESTORED

#: Mark values, as ``eci_core.io.cleaning.clean_collection`` expects them.
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


def restore_marks() -> None:
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
    from eci_core.io.formats.fn_labels import labels_bytes
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
