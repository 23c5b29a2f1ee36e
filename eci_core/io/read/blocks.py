"""Arrow block reading (the vectorised readers' plumbing).

:func:`line_blocks` cuts a (possibly gzipped) file into blocks of whole lines (~4 MiB,
:data:`BLOCK_BYTES`); :func:`arrow_tables` parses each with pyarrow, checked to hold one row per
line; :class:`NotFast` says where the per-line reader must decide instead. :func:`use_fast` (when
the vectorised readers run: ``ECI_LOADER_FAST``, file size, pyarrow already imported),
:func:`arrow_ids` (id columns exactly as the per-line reader gives them), :func:`block_lines`
(a block's lines for the per-line parser). Memory: :func:`use_system_pool`,
:func:`release_arrow_memory`, :func:`mmap_threshold`, :func:`trim_memory`.
"""

from __future__ import annotations

import contextvars
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

from eci_core.io.records import LoadError
from eci_core.io.read.limits import Progress, current_limits
from eci_core.io.read.text import open_bytes, utf8_error

# ============================================================ vectorised readers (fast path)
FAST_MIN_BYTES = 1 << 20  # TREC runs, negative-ids, qrels: the per-line parser costs ~15 us a line


FAST_MIN_TEXT_BYTES = 16 << 20  # corpus/queries: the per-line reader skips unneeded lines cheaply


def total_size(*paths: Path) -> int:
    total = 0
    for p in paths:
        try:
            total += os.path.getsize(p)
        except OSError:
            pass
    return total


def use_fast(nbytes: int, threshold: int = FAST_MIN_BYTES) -> bool:
    """Whether the vectorised readers read ``nbytes`` of files.

    ``ECI_LOADER_FAST=1``: always; ``0``: never (the per-line parsers); unset (``auto``): when
    pyarrow is already imported (the dashboard) or for at least ``threshold`` bytes on disk
    (:data:`FAST_MIN_BYTES`, 1 MiB, for id files; :data:`FAST_MIN_TEXT_BYTES`, 16 MiB, for a
    corpus), where they repay pyarrow's import (~0.5 s, ~100 MiB), so small data such as the
    bundled sample loads as fast as before."""
    mode = os.environ.get("ECI_LOADER_FAST", "auto").strip().lower()
    if mode in ("0", "false", "no", "off"):
        return False
    if mode in ("1", "true", "yes", "on"):
        return True
    import sys

    return "pyarrow" in sys.modules or nbytes >= threshold


_UNICODE_SPACE = re.compile(
    rb"\xc2[\x85\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80"
)


def odd_space(data: bytes) -> bool:
    """Whether ``data`` holds whitespace that ``str.split()`` splits on but a one-character
    delimiter does not."""
    if any(data.find(c) >= 0 for c in (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")):
        return True
    return not data.isascii() and bool(_UNICODE_SPACE.search(data))


class NotFast(Exception):
    """The vectorised reader cannot match the per-line reader exactly here: use the latter.

    ``block`` is ``(first line, byte offset in the decompressed file, bytes, gzip?)`` of the
    block where that was found, when known: the per-line parser re-scans it first."""

    def __init__(self, block: tuple[int, int, bytes, bool] | None = None):
        super().__init__()
        self.block = block


BLOCK_BYTES = 1 << 22  # 4 MiB: pyarrow's readers take several times a block while parsing it


def line_blocks(path: Path, where: list | None = None) -> Iterator[bytes]:
    """The decompressed file in blocks of whole lines (about 4 MiB each, BOM removed), so a
    vectorised reader never holds the whole text. Raises :class:`NotFast` where the per-line
    reader must decide: a lone CR, a line over the limit, an empty file, a gzip problem. When
    ``where`` is given, ``where[:] = [first line, byte offset, gzip?, bytes of the file on disk
    read so far, lines in the block]`` of the block yielded."""
    max_line = current_limits().max_line_bytes
    try:
        f, raw, gz = open_bytes(path)
    except OSError:
        raise NotFast from None
    line, offset = 1, 0
    try:
        first = True
        while True:
            b = f.read(BLOCK_BYTES)
            if not b:
                if first:
                    raise NotFast
                return
            if not b.endswith(b"\n"):
                b += f.readline(max_line + 1)
                if not b.endswith(b"\n") and f.peek(1):
                    raise NotFast  # a line over the limit
            size, start = len(b), offset  # start: where b begins in the decompressed file
            if first:
                if b.startswith(b"\xef\xbb\xbf"):
                    b = b[3:]
                    start += 3
                first = False
            nl = b.count(b"\n")
            if where is not None:
                where[:] = [line, start, gz, raw.tell(), nl + (0 if b.endswith(b"\n") else 1)]
            if b.find(b"\r") >= 0 and b.count(b"\r") != b.count(b"\r\n"):
                raise NotFast((line, start, b, gz))
            if len(b) > max_line:
                import numpy as np

                nl = np.flatnonzero(np.frombuffer(b, dtype=np.uint8) == 10)
                if np.diff(np.r_[-1, nl, len(b)]).max() > max_line + 1:
                    raise NotFast
            yield b
            line += nl
            offset += size
    except LoadError:
        raise NotFast from None
    finally:
        raw.close()


# While load_paths runs, pyarrow allocates from the C library's malloc instead of its default
# pool (mimalloc/jemalloc): the buffers the loaders keep (text blocks, id columns) then do not pin
# the pool's pages between the many freed parse temporaries (measured: ~60 MiB less RSS after
# loading 300k passages, BENCHMARKS.md "Loading"). The previous pool is restored afterwards.
ARROW_POOL: contextvars.ContextVar[dict | None] = contextvars.ContextVar("eci_arrow_pool", default=None)


def use_system_pool() -> None:
    """Inside load_paths: make malloc pyarrow's default pool until the load ends (once)."""
    state = ARROW_POOL.get()
    if state is not None and "prev" not in state:
        import pyarrow as pa

        state["prev"] = pa.default_memory_pool()
        pa.set_memory_pool(pa.system_memory_pool())


def arrow_tables(path: Path, read: Callable[[bytes], Any], progress: Progress | None = None) -> Iterator[Any]:
    """``read(block)`` per block, each checked to hold one row per line (row i = line i + 1);
    ``progress("reading <name>", bytes on disk read, file size)`` after each block."""
    import pyarrow as pa

    use_system_pool()

    total = os.path.getsize(path) if progress else 0
    where: list = []
    for b in line_blocks(path, where):
        block = (where[0], where[1], b, where[2])
        try:
            t = read(b)
        except (pa.ArrowException, ValueError, NotFast):
            raise NotFast(block) from None
        if t.num_rows != where[4]:  # the block's lines, counted by line_blocks
            raise NotFast(block)
        if progress:
            progress(f"reading {path.name}", min(where[3], total), total)
        yield t


def concat_tables(tables: list) -> Any:
    import pyarrow as pa

    try:
        return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    except (pa.ArrowException, ValueError):
        raise NotFast from None


def release_arrow_memory() -> None:
    """Give pyarrow's freed buffers back to the system (the pool keeps them otherwise)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


_SPACE_CLASS = (
    r"[\t\n\x0b\x0c\r\x1c-\x1f \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}]"
)
_ID_SPACE = "^" + _SPACE_CLASS + "|" + _SPACE_CLASS + "$|^$"


def arrow_ids(col) -> Any:
    """An id column (string or integer) as strings exactly as :func:`id_value` gives them, or None."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        return None
    if pa.types.is_integer(col.type):
        return pc.cast(col, pa.string())
    if not pa.types.is_string(col.type) and not pa.types.is_large_string(col.type):
        return None
    if len(col) and pc.any(pc.match_substring_regex(col, _ID_SPACE)).as_py():
        return None
    return col


# pyarrow parses a block of the file (BLOCK_BYTES) in pieces of this size on its thread pool, as
# its own readers do; a line longer than a piece makes it fail, and the block is parsed again whole
PARSE_PIECE_BYTES = 1 << 20


def parse_in_pieces(parse: Callable[[int, bool], Any]) -> Any:
    """``parse(block_size, use_threads)``: in :data:`PARSE_PIECE_BYTES` pieces on pyarrow's
    threads, else (a line longer than a piece, or any error) in one piece, on this thread."""
    import pyarrow as pa

    try:
        return parse(PARSE_PIECE_BYTES, True)
    except (pa.ArrowException, ValueError):
        return parse(1 << 24, False)


def read_json_block(b: bytes):
    import pyarrow as pa
    import pyarrow.json as pajson

    buf = pa.py_buffer(b)
    return parse_in_pieces(
        lambda size, threads: pajson.read_json(
            buf,
            read_options=pajson.ReadOptions(block_size=size, use_threads=threads),
            parse_options=pajson.ParseOptions(newlines_in_values=False),
        )
    )


def read_json_table(path: Path):
    """A JSONL file as one pyarrow table, or None when pyarrow cannot read it exactly like json.loads."""
    try:
        return concat_tables(list(arrow_tables(path, read_json_block)))
    except NotFast:
        return None


def block_lines(spath: str, block: tuple[int, int, bytes, bool]) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of one block, split, decoded and checked exactly as :class:`Lines` does."""
    line, start, data, gz = block
    pieces = data.split(b"\n")
    if pieces[-1] == b"":
        pieces.pop()  # the block ends with a newline
    pos = 0
    for i, piece in enumerate(pieces):
        b = piece + b"\n" if i < len(pieces) - 1 or data.endswith(b"\n") else piece
        try:
            s = b.decode("utf-8")
        except UnicodeDecodeError as e:
            raise utf8_error(spath, line, start + pos + e.start, gz) from None
        yield line, s.rstrip("\r\n")
        pos += len(b)
        line += 1


# glibc malloc serves a block of at least M_MMAP_THRESHOLD bytes with its own mmap (returned to
# the system when freed); by default the threshold rises (up to 32 MiB) each time such a block is
# freed, after which the loaders' many freed 1-30 MiB temporaries stay in the heap, fragmented
# between the blocks they keep. A load fixes it at 16 MiB: lower (256 KiB before) every 1-16 MiB
# temporary (a 4 MiB block, pyarrow's parse buffers, numpy arrays of a few 100k rows) is a fresh
# mmap whose pages fault in again, ~1 s of system time on 3M TREC lines + 300k passages for ~25 MiB
# less peak RSS; at 16 MiB the peak stays under the 256 KiB one of the previous readers
# (BENCHMARKS.md "Arrow-native data model"). Afterwards it is left at glibc's dynamic maximum,
# where a numpy-heavy process's threshold ends anyway. Not done when MALLOC_MMAP_THRESHOLD_ is set.
LOAD_MMAP_THRESHOLD = 16 << 20


AFTER_MMAP_THRESHOLD = 32 << 20


def mmap_threshold(nbytes: int) -> None:
    import sys

    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, nbytes)  # M_MMAP_THRESHOLD
    except Exception:  # an optimisation only (musl and others: no mallopt)
        pass


def trim_memory() -> None:
    """Return freed memory to the system after a load (pyarrow's pool; glibc's heap on Linux)."""
    try:
        import ctypes
        import sys

        if "pyarrow" in sys.modules:
            release_arrow_memory()
        if sys.platform.startswith("linux"):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:  # an optimisation only
        pass


def read_plain_columns(
    data: bytes,
    names: list[str],
    delimiter: str,
    types: dict,
    block_size: int,
    use_threads: bool,
    include: list[str] | None = None,
):
    """``data`` (a block of whole lines) as a pyarrow table of plain delimited columns: no quoting,
    escapes or values spanning lines, empty lines kept (so a line's number is its row's), and no
    value read as null. The vectorised TREC-run and qrels readers share it; ``types`` maps a
    column to its Arrow type, ``include`` leaves the other columns unconverted."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=names, block_size=block_size, use_threads=use_threads),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char=False,
            double_quote=False,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=False,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            include_columns=include or names,
        ),
    )
