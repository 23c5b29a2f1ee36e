"""Tables to files.

* :func:`table_bytes`: any table as CSV or Parquet bytes. In CSV a text cell starting with ``=``,
  ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with ``'`` so that spreadsheet tools
  show it instead of running it as a formula (:func:`escape_formula_cells`, used by every CSV the
  product writes; ``escape_formulas=False`` writes the cells as they are; read back with
  :func:`unescape_formula_cells`).
* ``eci score --out`` writes ``pairs.parquet``, ``queries.parquet``, ``sources.csv`` and
  ``beats.csv`` of a ScoreResult (:func:`write_tables`), Parquet in row groups
  (:func:`write_parquet`) so a table of tens of millions of rows is never converted to Arrow at once.
"""

from __future__ import annotations

import io
import json
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = [
    "write_tables",
    "write_parquet",
    "ROWS_PER_GROUP",
    "table_bytes",
    "rows_table_bytes",
    "FORMULA_STARTS",
    "escape_formula",
    "escape_formula_cells",
    "unescape_formula",
    "unescape_formula_cells",
]


#: rows per Parquet row group written by :func:`write_parquet` (and the rows converted at a time)
ROWS_PER_GROUP = 1_000_000


def write_parquet(
    table: pd.DataFrame,
    path,
    rows_per_group: int = ROWS_PER_GROUP,
    as_strings: tuple[str, ...] = ("source", "query_id", "passage_id", "flag_reasons"),
) -> None:
    """Write ``table`` to Parquet ``rows_per_group`` rows at a time (one row group each), so only
    one slice is ever converted to Arrow (``DataFrame.to_parquet`` converts the whole table first:
    a second copy of it at tens of millions of rows).

    Categorical columns named in ``as_strings`` are written as plain strings, as a string column
    would be (the pairs table keeps its ids as categorical codes in memory; the file holds the
    ids); other columns as pandas would write them (``pd.read_parquet`` reads them back).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    conv = {
        c: "str" for c in as_strings if c in table.columns and isinstance(table[c].dtype, pd.CategoricalDtype)
    }
    writer = None
    try:
        for a in range(0, max(len(table), 1), rows_per_group):
            part = table.iloc[a : a + rows_per_group]
            t = pa.Table.from_pandas(part.astype(conv) if conv else part, preserve_index=False)
            del part
            if writer is None:
                writer = pq.ParquetWriter(str(path), t.schema)
            writer.write_table(t)
            del t
    finally:
        if writer is not None:
            writer.close()


def write_tables(result: Any, out, escape_formulas: bool = True) -> list[str]:
    """``eci score --out``: ``pairs.parquet``, ``queries.parquet``, ``sources.csv`` and
    ``beats.csv`` of a ScoreResult into the folder ``out`` (created); returns the file names.

    In the CSV files a text cell (a source name, a header) that a spreadsheet would run as a
    formula (starting with ``=``, ``+``, ``-``, ``@``, tab, CR) gets a leading ``'``
    (:func:`escape_formula_cells`); ``escape_formulas=False`` writes them as
    they are. The Parquet files are exact."""
    from pathlib import Path

    esc = escape_formula_cells if escape_formulas else (lambda df: df)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(result.pairs, out / "pairs.parquet")
    write_parquet(result.queries, out / "queries.parquet")
    esc(result.sources).to_csv(out / "sources.csv", index=False)
    esc(result.beats).to_csv(out / "beats.csv")
    return ["pairs.parquet", "queries.parquet", "sources.csv", "beats.csv"]


def _flat_for_table(df: pd.DataFrame) -> pd.DataFrame:
    """Lists / tuples / dicts in object columns → JSON strings (CSV cannot hold them; Parquet
    could, but one spelling for both keeps files comparable)."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            col = out[c]
            if col.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
                out[c] = col.map(
                    lambda v: (
                        json.dumps(v.tolist() if isinstance(v, np.ndarray) else v, ensure_ascii=False)
                        if isinstance(v, (list, tuple, dict, np.ndarray))
                        else v
                    )
                )
    return out


#: First characters that make a spreadsheet tool read a CSV cell as a formula (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: Any) -> Any:
    """``value`` with ``'`` in front when it is a string starting with one of
    :data:`FORMULA_STARTS` (spreadsheet tools then show it as text), or with ``'`` characters
    followed by one (so that :func:`unescape_formula` gives the value back exactly); anything
    else unchanged."""
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unescape_formula(value: Any) -> Any:
    """The inverse of :func:`escape_formula` (reading back a CSV the product wrote)."""
    if isinstance(value, str) and value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS):
        return value[1:]
    return value


def _is_text(col: pd.Series | pd.Index) -> bool:
    return (
        col.dtype == object or pd.api.types.is_string_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype)
    )


def escape_formula_cells(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` safe to open in a spreadsheet: every text cell, column name, index
    value and index name goes through :func:`escape_formula`. Every CSV the product writes
    (the Export page, ``eci score --out``, saved validations) uses it unless the caller passes
    ``escape_formulas=False``; :func:`unescape_formula` reverses it."""
    out = df.copy()
    out.columns = pd.Index(
        [escape_formula(str(c)) for c in out.columns], name=escape_formula(out.columns.name)
    )
    for c in out.columns:
        if _is_text(out[c]):
            out[c] = out[c].map(escape_formula).astype(object)
    idx = out.index
    if _is_text(idx):
        out.index = pd.Index([escape_formula(v) for v in idx], name=escape_formula(idx.name), dtype=object)
    else:
        out.index = idx.rename(escape_formula(idx.name))
    return out


def unescape_formula_cells(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (read back from a CSV written with :func:`escape_formula_cells`) with the text
    cells and column names as they were before escaping (the index is left to the caller)."""
    out = df.copy()
    out.columns = [unescape_formula(c) if isinstance(c, str) else c for c in out.columns]
    for c in out.columns:
        if _is_text(out[c]):
            out[c] = out[c].map(unescape_formula)
    return out


def table_bytes(
    df: pd.DataFrame, fmt: Literal["csv", "parquet"] = "csv", escape_formulas: bool = True
) -> bytes:
    """A table as CSV (UTF-8, header, no index, CRLF rows) or Parquet (pyarrow) bytes. List-valued cells
    are written as JSON strings. In CSV, text cells (and headers) starting with ``=``, ``+``,
    ``-``, ``@``, tab or CR get a leading ``'`` (:func:`escape_formula`) unless
    ``escape_formulas=False``; Parquet is written as is."""
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt={fmt!r}: use 'csv' or 'parquet'")
    flat = _flat_for_table(df)
    if fmt == "csv":
        if escape_formulas:
            flat = escape_formula_cells(flat)
        # CRLF rows (RFC 4180): the writer then quotes every cell holding a CR or LF, so a text
        # with a carriage return stays one cell instead of breaking its row
        return flat.to_csv(index=False, lineterminator="\r\n").encode("utf-8")
    buf = io.BytesIO()
    flat.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def rows_table_bytes(rows: list[dict], columns: list[str], fmt: Literal["csv", "parquet"]) -> bytes:
    """Records (dicts with ``columns``) as a CSV or Parquet table (:func:`table_bytes`)."""
    return table_bytes(pd.DataFrame(rows, columns=columns), fmt)
