"""Score tables to files: ``eci score --out`` writes ``pairs.parquet``, ``queries.parquet``,
``sources.csv`` and ``beats.csv`` of a ScoreResult (:func:`write_tables`), Parquet in row groups
(:func:`write_parquet`) so a table of tens of millions of rows is never converted to Arrow at once."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["write_tables", "write_parquet", "ROWS_PER_GROUP"]


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
    (:func:`eci_core.io.export.escape_formula_cells`); ``escape_formulas=False`` writes them as
    they are. The Parquet files are exact."""
    from pathlib import Path

    from eci_core.io.export import escape_formula_cells

    esc = escape_formula_cells if escape_formulas else (lambda df: df)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(result.pairs, out / "pairs.parquet")
    write_parquet(result.queries, out / "queries.parquet")
    esc(result.sources).to_csv(out / "sources.csv", index=False)
    esc(result.beats).to_csv(out / "beats.csv")
    return ["pairs.parquet", "queries.parquet", "sources.csv", "beats.csv"]
