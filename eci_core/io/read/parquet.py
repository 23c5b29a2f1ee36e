"""Parquet rows within :class:`~eci_core.io.read.limits.LoadLimits`: the footer checked first
(:func:`check_parquet_metadata`), then each row group's dictionary columns and each batch of rows
before they become Python values (:class:`ParquetDecodedLimits`, with :func:`arrow_value_bytes`);
:func:`parquet_rows` yields the records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from eci_core.io.records import LoadError
from eci_core.io.texts import np_of
from eci_core.io.read.blocks import release_arrow_memory, use_system_pool
from eci_core.io.read.limits import ROOTS, LoadLimits, Progress, current_limits, open_file
from eci_core.io.read.vocab import shown_column


def arrow_value_bytes(array) -> Any:
    """Per element of a pyarrow ``Array``, the bytes its value takes once decoded, computed
    without decoding it: a string/binary value its length, a dictionary-encoded one its entry's
    length (so a 70 MiB dictionary entry named by 40 rows counts 40 times, read once), a list or
    struct the sum over its items, a null 0, any other value its fixed width (8 when it has none).
    Returns an int64 numpy array of ``len(array)``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def ints(a) -> Any:  # an integer Arrow array as int64, nulls 0 (pyarrow's own converters import pandas)
        v = np_of(a)
        return (np.nan_to_num(v, nan=0.0) if a.null_count else v).astype(np.int64)

    t, n = array.type, len(array)
    if n == 0:
        return np.zeros(0, np.int64)
    if pa.types.is_dictionary(t):
        entry = arrow_value_bytes(array.dictionary)
        out = entry[ints(array.indices)] if len(entry) else np.zeros(n, np.int64)
    elif (
        pa.types.is_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_string(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        out = ints(pc.binary_length(array))
    elif getattr(pa.types, "is_string_view", lambda _: False)(t) or getattr(
        pa.types, "is_binary_view", lambda _: False
    )(t):
        out = ints(pc.binary_length(array.cast(pa.large_binary())))
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        child = arrow_value_bytes(array.values)  # the whole child: offsets index it directly
        cs = np.concatenate([np.zeros(1, np.int64), np.cumsum(child)])
        offs = ints(array.offsets)
        out = cs[offs[1:]] - cs[offs[:-1]]
    elif pa.types.is_fixed_size_list(t):
        size = t.list_size
        child = arrow_value_bytes(array.values)[
            array.offset * size : (array.offset + n) * size
        ]  # null slots too
        out = child.reshape(n, size).sum(axis=1) if size else np.zeros(n, np.int64)
    elif pa.types.is_struct(t):
        out = np.zeros(n, np.int64)
        for f in array.flatten():
            out += arrow_value_bytes(f)
    else:
        try:
            width = max(t.bit_width // 8, 1)
        except ValueError:
            width = 8
        out = np.full(n, width, np.int64)
    if array.null_count:
        out = np.where(np_of(array.is_null()), 0, out)
    return out


def _plain_type(t: Any) -> Any:
    """``t`` with every dictionary type replaced by its value type (lists and structs recursed)."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _plain_type(t.value_type)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        f = t.value_field
        make = pa.large_list if pa.types.is_large_list(t) else pa.list_
        return make(pa.field(f.name, _plain_type(f.type), f.nullable))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain_type(f.type), f.nullable) for f in t])
    return t


def _decoded_rows(batch: Any) -> list[dict]:
    """``batch.to_pylist()``, its dictionary columns decoded by Arrow first (several times faster
    than converting dictionary values one by one; done only after the batch's size was checked)."""
    cols = []
    for col in batch.columns:
        plain = _plain_type(col.type)
        if plain != col.type:
            try:
                col = col.cast(plain)
            except Exception:  # a type Arrow cannot cast: to_pylist decodes the dictionary itself
                pass
        cols.append(col)
    import pyarrow as pa

    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names).to_pylist()


def check_parquet_metadata(pf: Any, path: str, limits: LoadLimits) -> None:
    """Refuse a Parquet file from its footer alone, before any page is decompressed: a column
    chunk, or the whole file, whose uncompressed size (dictionary pages included) is over
    ``limits.max_decompressed_bytes``, or a row group that expands more than
    ``limits.max_compression_ratio`` times once over ``ratio_grace_bytes`` (the rule of a ``.gz``,
    per row group: a zstd page holding a 70 MiB string of one repeated byte is a few KB; the
    message names the row group's largest column). ``pf`` is a ``pyarrow.parquet.ParquetFile``.
    Raises :class:`LoadError` (``PATH: [field 'F': ]message``)."""
    md = pf.metadata
    lim = limits.max_decompressed_bytes
    ratio, grace = limits.max_compression_ratio, limits.ratio_grace_bytes
    names = [md.schema.column(j).path.split(".")[0] for j in range(md.num_columns)]
    top = list(dict.fromkeys(names))

    def shown(j: int) -> tuple[str | None, str]:
        return shown_column(names[j], top.index(names[j]))

    total = 0
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        sizes = [rg.column(j).total_uncompressed_size for j in range(rg.num_columns)]
        packed = sum(rg.column(j).total_compressed_size for j in range(rg.num_columns))
        for j, size in enumerate(sizes):
            if size > lim:
                fld, extra = shown(j)
                raise LoadError(
                    path,
                    None,
                    f"a column chunk{extra} decompresses to more than {lim:,} bytes "
                    "(LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES)",
                    field=fld,
                )
        unpacked = sum(sizes)
        total += unpacked
        if unpacked > grace and unpacked > ratio * max(packed, 1):
            fld, extra = shown(max(range(len(sizes)), key=sizes.__getitem__))
            raise LoadError(
                path,
                None,
                f"a row group expands more than {ratio:g}x when decompressed (its largest "
                f"column{extra or ' is this one'}; a compression bomb?); LoadLimits.max_compression_ratio, "
                "env ECI_MAX_COMPRESSION_RATIO",
                field=fld,
            )
    if total > lim:
        raise LoadError(
            path,
            None,
            f"the Parquet data decompresses to more than {lim:,} bytes "
            "(LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES)",
        )


class ParquetDecodedLimits:
    """The :class:`LoadLimits` of a Parquet file checked batch by batch before a batch is
    decoded into Python values (with :func:`arrow_value_bytes`): a row holds at most
    ``max_line_bytes`` (the limit of one JSONL line), the file decodes to at most
    ``max_decompressed_bytes``, and to at most ``max_compression_ratio`` times its size on disk
    once more than ``ratio_grace_bytes`` came out (a 3.4 KB file whose 40 rows name one 70 MiB
    dictionary entry is refused after reading that entry once, never decoding it 40 times)."""

    def __init__(self, path: str, file_bytes: int, limits: LoadLimits, names: list[str] | None = None):
        self.path, self.file_bytes, self.lim = path, max(file_bytes, 1), limits
        self.names = names  # the file's columns, to number an unknown one in messages (batches may hold some)
        self.total = 0

    def check(self, batch: Any, first_row: int) -> None:
        """Raise :class:`LoadError` when ``batch`` (a ``pyarrow.RecordBatch`` whose first row is
        row ``first_row``, 1-based) breaks a limit; the message names the row and the field."""
        import numpy as np

        if batch.num_rows == 0:
            return
        lim = self.lim
        cols = [arrow_value_bytes(batch.column(j)) for j in range(batch.num_columns)]
        rows = np.sum(cols, axis=0) if cols else np.zeros(batch.num_rows, np.int64)
        over = np.flatnonzero(rows > lim.max_line_bytes)
        if len(over):
            r = int(over[0])
            cells = [int(c[r]) for c in cols]
            j = int(np.argmax(cells))
            name = batch.schema.names[j]
            fld, extra = shown_column(
                name, self.names.index(name) if self.names and name in self.names else j
            )
            what = "a cell" if cells[j] > lim.max_line_bytes else "a row (its largest cell here)"
            raise LoadError(
                self.path,
                first_row + r,
                f"{what}{extra} longer than {lim.max_line_bytes:,} bytes once "
                "decoded (LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES: the longest line, or "
                "Parquet row)",
                field=fld,
            )
        cum = self.total + np.cumsum(rows)
        bad = np.flatnonzero(cum > lim.max_decompressed_bytes)
        if len(bad):
            raise LoadError(
                self.path,
                first_row + int(bad[0]),
                "the Parquet data decodes to more than "
                f"{lim.max_decompressed_bytes:,} bytes (LoadLimits.max_decompressed_bytes, "
                "env ECI_MAX_DECOMPRESSED_BYTES)",
            )
        ratio = np.flatnonzero(
            (cum > lim.ratio_grace_bytes) & (cum > lim.max_compression_ratio * self.file_bytes)
        )
        if len(ratio):
            raise LoadError(
                self.path,
                first_row + int(ratio[0]),
                "the Parquet data expands more than "
                f"{lim.max_compression_ratio:g}x its file size once decoded (a compression bomb?); "
                "LoadLimits.max_compression_ratio, env ECI_MAX_COMPRESSION_RATIO",
            )
        self.total = int(cum[-1])


def parquet_rows(
    path: Path, progress: Progress | None, first_only: bool = False
) -> Iterator[tuple[int, dict]]:
    """The rows of a Parquet file, checked by :class:`ParquetDecodedLimits` before they become
    Python values. Per row group: first its string columns with dictionary pages, read as Arrow
    dictionaries (an entry named by many rows is held once), so their decoded size is known
    before any of it is decoded; then the row group 8,192 rows at a time, as before (each batch
    checked whole: rows, totals). ``first_only``: the first row alone, reading only the first
    pages (format detection)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    spath = str(path)
    size = os.path.getsize(path)
    if size == 0:
        raise LoadError(spath, None, "file is empty")
    limits = current_limits()
    use_system_pool()
    try:
        # under data roots every open goes through open_within (resolved, checked, no link followed)
        source = (lambda: path) if ROOTS.get() is None else (lambda: open_file(path))
        pf = pq.ParquetFile(source())
        md = pf.metadata
        check_parquet_metadata(pf, spath, limits)
        dict_paths = {
            md.row_group(i).column(j).path_in_schema
            for i in range(md.num_row_groups)
            for j in range(md.num_columns)
            if md.row_group(i).column(j).has_dictionary_page
            and md.row_group(i).column(j).physical_type == "BYTE_ARRAY"
        }
        pf_dict = pq.ParquetFile(source(), read_dictionary=sorted(dict_paths)) if dict_paths else None
    except (pa.ArrowException, OSError) as e:
        raise LoadError(spath, None, f"not a valid Parquet file ({e})") from None
    total = md.num_rows
    if total == 0:
        raise LoadError(spath, None, "file has no data rows")
    names = pf.schema_arrow.names
    dict_top = [n for n in names if any(p == n or p.startswith(n + ".") for p in dict_paths)]
    budget = ParquetDecodedLimits(spath, size, limits, names)
    pre = ParquetDecodedLimits(spath, size, limits, names)  # the dictionary columns alone, a row group ahead
    row = 0
    try:
        if first_only:
            for batch in (pf_dict or pf).iter_batches(batch_size=1):
                budget.check(batch, 1)
                yield 1, _decoded_rows(batch)[0]
                return
        for i in range(md.num_row_groups):
            if dict_top:
                # one batch for the row group: a dictionary read of pages that fell back to plain
                # values grows its dictionary batch after batch (quadratic in smaller batches)
                for batch in pf_dict.iter_batches(
                    batch_size=max(md.row_group(i).num_rows, 1), row_groups=[i], columns=dict_top
                ):
                    pre.check(batch, row + 1)
                    del batch
                release_arrow_memory()  # the dictionary read's buffers, before the rows are decoded
            for batch in pf.iter_batches(batch_size=8192, row_groups=[i]):
                budget.check(batch, row + 1)
                for rec in batch.to_pylist():
                    row += 1
                    yield row, rec
                if progress:
                    progress(f"reading {path.name}", row, total)
    except pa.ArrowException as e:
        raise LoadError(spath, row + 1, f"cannot read the Parquet data ({e})") from None
