"""Plotly selection events → row ids (eci_core.explore.selection)."""

import numpy as np
import pandas as pd
import pytest

from eci_core.explore.selection import (
    has_selection,
    rows_for_ids,
    selected_ids,
    selection_kind,
    selection_points,
    trace_point_ids,
)


def _event(points, box=None, lasso=None):
    return {
        "selection": {
            "points": points,
            "point_indices": [p.get("point_index") for p in points],
            "box": box or [],
            "lasso": lasso or [],
        }
    }


def test_box_selection_reads_row_ids_from_customdata():
    ev = _event(
        [
            {
                "curve_number": 0,
                "point_index": 4,
                "point_number": 4,
                "x": 0.2,
                "y": 0.1,
                "customdata": [17, "q1", "bm25"],
            },
            {
                "curve_number": 0,
                "point_index": 9,
                "point_number": 9,
                "x": 0.3,
                "y": 0.2,
                "customdata": [3, "q2", "bm25"],
            },
        ],
        box=[{"xref": "x", "yref": "y", "x": [0.1, 0.4], "y": [0.0, 0.3]}],
    )
    assert selected_ids(ev) == [17, 3]
    assert selection_kind(ev) == "box"
    assert has_selection(ev)


def test_lasso_selection():
    ev = _event(
        [
            {"curve_number": 1, "point_index": 0, "customdata": ["a"]},
            {"curve_number": 1, "point_index": 2, "customdata": ["c"]},
        ],
        lasso=[{"xref": "x", "yref": "y", "x": [0, 1, 1], "y": [0, 0, 1]}],
    )
    assert selected_ids(ev) == ["a", "c"]
    assert selection_kind(ev) == "lasso"


def test_multi_trace_point_indices_restart_so_customdata_is_used():
    # two traces (one per source); both selected points have point_index 0 but different rows
    ev = _event(
        [
            {"curve_number": 0, "point_index": 0, "customdata": [10, "q1", "bm25"]},
            {"curve_number": 1, "point_index": 0, "customdata": [25, "q1", "dense"]},
            {"curve_number": 1, "point_index": 0, "customdata": [25, "q1", "dense"]},  # repeated: kept once
        ]
    )
    assert selected_ids(ev) == [10, 25]
    assert selected_ids(ev, unique=False) == [10, 25, 25]


@pytest.mark.parametrize(
    "ev",
    [
        None,
        {},
        {"selection": None},
        {"selection": {"points": []}},
        {"selection": {"points": [], "box": [], "lasso": []}},
        [],
    ],
)
def test_empty_events(ev):
    assert selected_ids(ev) == []
    assert selection_points(ev) == []
    assert selection_kind(ev) is None
    assert not has_selection(ev)


def test_fallback_through_figure_traces_when_customdata_missing():
    fig = {
        "data": [
            {"type": "scattergl", "customdata": [[100, "x"], [101, "y"], [102, "z"]]},
            {"type": "scattergl", "customdata": [[200, "u"], [201, "v"]]},
            {"type": "contour"},
        ]
    }
    ev = _event(
        [
            {"curve_number": 1, "point_index": 1},  # → 201
            {"curve_number": 0, "point_number": 2},  # → 102 (point_number spelling)
            {"curve_number": 2, "point_index": 0},  # trace without customdata: skipped
            {"curve_number": 7, "point_index": 0},  # no such trace: skipped
        ]
    )
    assert selected_ids(ev, figure=fig) == [201, 102]
    assert selected_ids(ev) == []  # nothing to resolve against
    assert trace_point_ids(fig) == [[100, 101, 102], [200, 201], None]


def test_fallback_with_real_plotly_figure_and_numpy_ids():
    go = pytest.importorskip("plotly.graph_objects")
    fig = go.Figure(
        [
            go.Scatter(x=[0, 1], y=[0, 1], customdata=np.array([[np.int64(5)], [np.int64(6)]])),
            go.Scatter(x=[0, 1], y=[1, 0], customdata=np.array([[7], [8]])),
        ]
    )
    ev = _event([{"curve_number": 1, "point_index": 1}, {"curve_number": 0, "point_index": 0}])
    ids = selected_ids(ev, figure=fig)
    assert ids == [8, 5] and all(type(i) is int for i in ids)


def test_scalar_customdata_and_attribute_style_event():
    class AttrDict(dict):
        __getattr__ = dict.__getitem__

    ev = AttrDict(selection=AttrDict(points=[{"curve_number": 0, "point_index": 0, "customdata": "r9"}]))
    assert selected_ids(ev) == ["r9"]


def test_rows_for_ids_preserves_selection_order():
    df = pd.DataFrame({"row_id": [0, 1, 2, 3, 4], "v": list("abcde")})
    out = rows_for_ids(df, [3, 0, 9, 3], "row_id")
    assert out["v"].tolist() == ["d", "a"]
    assert rows_for_ids(df, [], "row_id").empty
    assert list(rows_for_ids(df, [], "row_id").columns) == ["row_id", "v"]
    # by index
    d2 = df.set_index("row_id")
    assert rows_for_ids(d2, [4, 1])["v"].tolist() == ["e", "b"]
    # ids that came back from JSON as strings still match an int column
    assert rows_for_ids(df, ["2", "1"], "row_id")["v"].tolist() == ["c", "b"]
    with pytest.raises(ValueError, match="id_col='nope'"):
        rows_for_ids(df, [1], "nope")


def test_roundtrip_with_views_signal_safety_figure():
    """A figure built by views carries row ids that map back to the frame's rows."""
    pytest.importorskip("plotly")
    from eci_core.explore import signal_safety

    q = pd.DataFrame(
        {
            "source": ["a", "a", "b"],
            "query_id": ["q1", "q2", "q1"],
            "S": [0.4, 0.5, 0.3],
            "delta": [0.1, 0.0, 0.2],
            "eci": [0.2, 0.0, 0.25],
        }
    )
    frame = signal_safety.signal_safety_frame(q)
    fig = signal_safety.signal_safety_figure(q, marginals=True, contours=True, frame=frame)
    scatters = [i for i, t in enumerate(fig.data) if t.type == "scattergl"]
    # select the single point of trace "b" by (curve, index) only
    ev = _event([{"curve_number": scatters[1], "point_index": 0}])
    ids = selected_ids(ev, figure=fig)
    rows = rows_for_ids(frame, ids, "row_id")
    assert rows[["source", "query_id"]].values.tolist() == [["b", "q1"]]


def test_fallback_with_figure_dict_typed_arrays():
    """Plotly 6+ serialises numeric numpy customdata as base64 typed arrays in to_dict()."""
    go = pytest.importorskip("plotly.graph_objects")
    fig = go.Figure(
        [
            go.Scatter(x=[0, 1], y=[0, 1], customdata=np.array([[5], [6]])),
            go.Scatter(x=[0, 1], y=[1, 0], customdata=np.array([[7], [8]])),
        ]
    )
    ev = _event([{"curve_number": 1, "point_index": 0}, {"curve_number": 0, "point_index": 1}])
    assert selected_ids(ev, figure=fig.to_dict()) == [7, 6]
