"""Plotly selection events → row ids (pure functions; no streamlit, no plotly import needed).

Streamlit's ``st.plotly_chart(fig, on_select="rerun")`` returns (as a dict-like object)::

    {"selection": {"points": [{"curve_number": 0, "point_index": 3, "point_number": 3,
                               "customdata": ["row-id", ...], "x": ..., "y": ...}, ...],
                   "point_indices": [3, ...],
                   "box": [{"xref": "x", "yref": "y", "x": [x0, x1], "y": [y0, y1]}],
                   "lasso": [{"xref": "x", "yref": "y", "x": [...], "y": [...]}]}}

Every figure built by the :mod:`eci_core.explore` page modules carries the row id of each point as the FIRST
element of ``custom_data``; :func:`selected_ids` reads it. ``point_index`` is per trace (a figure with one
trace per source restarts at 0 in every trace), so it is only used as a fallback, through the
figure's own traces, when a point comes without ``customdata``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

__all__ = [
    "selection_points",
    "selected_ids",
    "has_selection",
    "selection_kind",
    "trace_point_ids",
    "rows_for_ids",
]


def _get(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` for dicts and Streamlit's attribute-dicts, ``default`` when missing."""
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    try:
        return obj[key]
    except (KeyError, TypeError, IndexError):
        return getattr(obj, key, default)


def selection_points(event: Any) -> list[dict]:
    """The list of selected points of a selection event (``[]`` for ``None`` / empty events).

    Accepts the full event (``{"selection": {...}}``), the inner ``selection`` dict, or a bare list
    of points. Each point is returned as a plain dict.
    """
    if event is None:
        return []
    if isinstance(event, (list, tuple)):
        pts = event
    else:
        sel = _get(event, "selection", None)
        if sel is None:
            sel = event
        pts = _get(sel, "points", None) or []
    return [dict(p) if not isinstance(p, dict) else p for p in pts if p is not None]


def has_selection(event: Any) -> bool:
    """True when the event selects at least one point."""
    return len(selection_points(event)) > 0


def selection_kind(event: Any) -> str | None:
    """``"lasso"``, ``"box"``, ``"click"`` or ``None`` (nothing selected)."""
    if not has_selection(event):
        return None
    sel = _get(event, "selection", event)
    if _get(sel, "lasso", None):
        return "lasso"
    if _get(sel, "box", None):
        return "box"
    return "click"


def _point_int(point: Mapping, *keys: str) -> int | None:
    for k in keys:
        v = point.get(k)
        if v is not None:
            try:
                return int(v)
            except (TypeError, ValueError):
                continue
    return None


def trace_point_ids(figure: Any, id_index: int = 0) -> list[list[Any] | None]:
    """Per trace of ``figure``, the row id of each point (``customdata[i][id_index]``).

    ``figure`` is a plotly ``Figure`` or its ``to_dict()`` / ``to_plotly_json()`` form. A trace
    without customdata maps to ``None``. Used to resolve (curve_number, point_index) when a
    selection event carries no customdata.
    """
    if figure is None:
        return []
    traces = figure.data if hasattr(figure, "to_dict") else (_get(figure, "data", []) or [])
    out: list[list[Any] | None] = []
    for trace in traces:
        cd = _get(trace, "customdata", None)
        if cd is None:
            out.append(None)
            continue
        if isinstance(cd, Mapping) and "bdata" in cd:
            cd = _decode_typed_array(cd)
        arr = np.asarray(cd, dtype=object)
        if arr.ndim == 0:
            out.append(None)
        elif arr.ndim == 1:
            out.append([_plain(v) for v in arr.tolist()])
        else:
            out.append([_plain(v) for v in arr[:, id_index].tolist()])
    return out


def _decode_typed_array(spec: Mapping) -> np.ndarray:
    """Plotly's JSON typed-array form ``{"dtype": "i8", "bdata": base64, "shape": "n, m"}``."""
    import base64

    arr = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
    shape = spec.get("shape")
    if shape:
        arr = arr.reshape([int(v) for v in str(shape).split(",")])
    return arr


def _plain(v: Any) -> Any:
    """numpy scalars → Python scalars so that ids compare equal to ids read from a table."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def selected_ids(event: Any, figure: Any = None, id_index: int = 0, unique: bool = True) -> list[Any]:
    """Row ids of the selected points, in selection order.

    For each point the id is ``point["customdata"][id_index]`` (a scalar customdata is the id
    itself). A point without customdata is resolved through ``figure``: trace
    ``curve_number``, point ``point_index`` (or ``point_number``) → that trace's
    ``customdata[point_index][id_index]``. Points that cannot be resolved are skipped.

    Works for box and lasso selections, clicks, and figures with several traces (point indices
    restart at 0 in each trace, which is why customdata, not ``point_index``, is the key).
    ``None`` / empty events give ``[]``. With ``unique=True`` repeated ids are kept once (first
    occurrence); ids are returned as plain Python scalars.
    """
    points = selection_points(event)
    if not points:
        return []
    lookup = None
    ids: list[Any] = []
    for p in points:
        cd = p.get("customdata", p.get("custom_data"))
        rid: Any = None
        found = False
        if cd is not None:
            if isinstance(cd, (list, tuple, np.ndarray)):
                if len(cd) > id_index:
                    rid, found = cd[id_index], True
            else:
                rid, found = cd, True
        if not found and figure is not None:
            if lookup is None:
                lookup = trace_point_ids(figure, id_index)
            curve = _point_int(p, "curve_number", "curveNumber")
            idx = _point_int(p, "point_index", "point_number", "pointIndex", "pointNumber")
            if curve is not None and idx is not None and 0 <= curve < len(lookup):
                tids = lookup[curve]
                if tids is not None and 0 <= idx < len(tids):
                    rid, found = tids[idx], True
        if found:
            ids.append(_plain(rid))
    if unique:
        seen: set = set()
        out = []
        for r in ids:
            key = (type(r).__name__, r) if not isinstance(r, (int, float)) else r
            try:
                if key in seen:
                    continue
                seen.add(key)
            except TypeError:  # unhashable id (should not happen): keep it
                pass
            out.append(r)
        return out
    return ids


def rows_for_ids(df, ids: Iterable[Any], id_col: str | None = None):
    """The rows of ``df`` whose ``id_col`` (or index when ``id_col`` is None) is in ``ids``,
    in the order of ``ids`` (ids not in ``df`` are skipped; an id repeated in ``ids`` gives its
    rows once). Returns an empty frame with ``df``'s columns when nothing matches.

    Raises ``ValueError`` naming the column when ``id_col`` is not a column of ``df``.
    """
    import pandas as pd

    ids = list(ids)
    if id_col is not None and id_col not in df.columns:
        raise ValueError(
            f"id_col={id_col!r} is not a column of the table (columns: {', '.join(map(str, df.columns))})"
        )
    if not ids or len(df) == 0:
        return df.iloc[0:0]
    keys = pd.Index(df[id_col] if id_col is not None else df.index)
    order: dict = {}
    for i, r in enumerate(ids):
        r = _plain(r)
        if r not in order:
            order[r] = i
    # Ids from JSON may come back as str for int columns (or vice versa): match on the column's type.
    pos = pd.Series(keys).map(order)
    if pos.isna().all() and len(keys):
        as_str = {str(k): v for k, v in order.items()}
        pos = pd.Series(keys.astype(str)).map(as_str)
    mask = pos.notna().to_numpy()
    sel = np.flatnonzero(mask)
    rank = pos.to_numpy()[mask].astype(np.int64)
    sel = sel[np.argsort(rank, kind="stable")]
    return df.iloc[sel]
