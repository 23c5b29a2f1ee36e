"""Bounded text and gzip: every byte a reader takes from a file passes the limits of
:class:`~eci_core.io.read.limits.LoadLimits` before it is decoded.

:class:`GzipRaw` (decompression with size and ratio limits), :func:`open_bytes` / :func:`read_bytes`
(plain or gzip), :class:`Lines` (``(line, text)`` of a UTF-8 file, line length bounded),
:func:`read_text` (a whole file), :func:`check_file_size`, :func:`check_json_document` and
:func:`longest_json_string_over` (whole-document JSON), and file naming helpers (:func:`file_stem`,
:func:`strip_gz`, :func:`plain_or_gz`, :func:`missing_path_error`).
"""

from __future__ import annotations

import errno
import io
import os
import re
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from eci_core.io.records import LoadError
from eci_core.io.read.limits import PROGRESS_EVERY, LoadLimits, Progress, current_limits, open_file
from eci_core.io.read.vocab import is_known_field


def utf8_error(path: str, line: int | None, byte: int, gz: bool) -> LoadError:
    """The one message for bytes that are not UTF-8: ``PATH:LINE: not valid UTF-8 ... at byte N of
    the file`` (``of the decompressed data`` for gzip), without echoing the bytes."""
    where = "of the decompressed data" if gz else "of the file"
    return LoadError(
        path,
        line,
        f"not valid UTF-8 (expected UTF-8 text) at byte {byte} {where}; re-save the file as UTF-8",
    )


# ====================================================================== reading text
def is_gz(path: Path) -> bool:
    try:
        with open_file(path) as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError:
        return False


def strip_gz(name: str) -> str:
    return name[:-3] if name.lower().endswith(".gz") else name


def file_stem(path: Path) -> str:
    name = strip_gz(path.name)
    base, dot, _ = name.rpartition(".")
    return base if dot and base else name


class GzipRaw(io.RawIOBase):
    """The decompressed bytes of a gzip file (several members allowed), with the size and
    compression-ratio limits of :class:`LoadLimits` checked as data comes out (a gzip bomb is
    rejected after ``ratio_grace_bytes``, not after decompressing it all)."""

    CHUNK = 1 << 16

    def __init__(self, raw, spath: str, limits: LoadLimits):
        self.raw, self.spath, self.lim = raw, spath, limits
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""  # compressed bytes read but not yet consumed
        self.in_total = 0
        self.out_total = 0
        self.fed = 0  # compressed bytes fed to the current member
        self.members = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = len(b)
        while True:
            if not self.pending:
                if self.done:
                    return 0
                self.pending = self.raw.read(self.CHUNK)
                if not self.pending:
                    if self.fed == 0 and self.members > 0:
                        self.done = True
                        return 0
                    raise LoadError(
                        self.spath,
                        None,
                        "broken gzip data (the file ends in the middle of the "
                        "compressed stream); re-compress the file",
                    )
            before = len(self.pending)
            try:
                out = self.d.decompress(self.pending, n)
            except zlib.error:
                raise LoadError(
                    self.spath,
                    None,
                    "broken gzip data (not a valid gzip/deflate stream); re-compress the file",
                ) from None
            if self.d.eof:  # end of one member: another may follow
                rest = self.d.unused_data
                self.in_total += before - len(rest) - len(self.d.unconsumed_tail)
                self.members += 1
                self.fed = 0
                self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.pending = rest.lstrip(b"\x00")  # zero padding after a member is allowed
            else:
                self.pending = self.d.unconsumed_tail
                self.in_total += before - len(self.pending)
                self.fed += before - len(self.pending)
            if out:
                self._check(len(out))
                b[: len(out)] = out
                return len(out)

    def _check(self, k: int) -> None:
        self.out_total += k
        lim = self.lim
        if self.out_total > lim.max_decompressed_bytes:
            raise LoadError(
                self.spath,
                None,
                f"the gzip decompresses to more than {lim.max_decompressed_bytes:,} "
                "bytes (LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES)",
            )
        if self.out_total > lim.ratio_grace_bytes and self.out_total > lim.max_compression_ratio * max(
            self.in_total, 1
        ):
            raise LoadError(
                self.spath,
                None,
                f"the gzip expands more than {lim.max_compression_ratio:g}x "
                "(a compression bomb?); LoadLimits.max_compression_ratio, env ECI_MAX_COMPRESSION_RATIO",
            )


def open_bytes(path: Path) -> tuple[io.BufferedReader, Any, bool]:
    """``(binary stream, underlying file, is_gzip)`` of a plain or gzipped file (limits applied)."""
    gz = is_gz(path)
    raw = open_file(path)
    if not gz:
        return raw, raw, False
    return io.BufferedReader(GzipRaw(raw, str(path), current_limits()), buffer_size=1 << 20), raw, True


def read_bytes(path: Path) -> tuple[bytes, bool]:
    """The whole (decompressed) content of a file, with the gzip limits checked."""
    f, raw, gz = open_bytes(path)
    try:
        return f.read(), gz
    finally:
        raw.close()


class Lines:
    """``(line_no, text)`` of a UTF-8 text file (plain or gzip), decoded line by line, streaming.

    Undecodable bytes raise a LoadError with the byte offset; progress is reported in bytes of
    the file on disk. Lines longer than ``LoadLimits.max_line_bytes`` are rejected before being
    read whole."""

    def __init__(self, path: Path, progress: Progress | None = None, stage: str = ""):
        self.path = path
        self.progress = progress
        self.stage = stage or f"reading {path.name}"
        self.lines = 0

    def __iter__(self) -> Iterator[tuple[int, str]]:
        path, spath = self.path, str(self.path)
        total = os.path.getsize(path)
        if total == 0:
            raise LoadError(spath, None, "file is empty")
        f, raw, gz = open_bytes(path)
        max_line = current_limits().max_line_bytes
        try:
            offset = 0
            no = 0
            readline = f.readline
            while True:
                b = readline(max_line + 1)
                if not b:
                    break
                no += 1
                if len(b) > max_line and not (len(b) == max_line + 1 and b.endswith(b"\n")):
                    raise LoadError(
                        spath,
                        no,
                        f"line longer than {max_line:,} bytes (LoadLimits.max_line_bytes, "
                        "env ECI_MAX_LINE_BYTES)",
                    )
                try:
                    s = b.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise utf8_error(spath, no, offset + e.start, gz) from None
                if no == 1 and s.startswith("\ufeff"):
                    s = s[1:]
                offset += len(b)
                self.lines = no
                if self.progress and no % PROGRESS_EVERY == 0:
                    self.progress(self.stage, raw.tell(), total)
                yield no, s.rstrip("\r\n")
            if no == 0:
                raise LoadError(spath, None, "file is empty" + (" (the gzip holds no data)" if gz else ""))
            if self.progress:
                self.progress(self.stage, total, total)
        except LoadError as e:
            if e.line is None and gz and no:  # a gzip problem found while reading: name the line
                raise LoadError(spath, no + 1, e.message, e.field) from None
            raise
        finally:
            raw.close()


def read_text(path: Path, check: Callable[[str, bytes], None] | None = None) -> str:
    """A whole (possibly gzipped) UTF-8 file as text, with the same checks as :class:`Lines`
    and :func:`check_file_size`; ``check(path, bytes)`` sees the bytes before they are decoded."""
    spath = str(path)
    if os.path.getsize(path) == 0:
        raise LoadError(spath, None, "file is empty")
    check_file_size(path, current_limits())
    data, gz = read_bytes(path)
    if not data:
        raise LoadError(spath, None, "file is empty (the gzip holds no data)")
    if check is not None:
        check(spath, data)
    try:
        s = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise utf8_error(spath, data.count(b"\n", 0, e.start) + 1, e.start, gz) from None
    return s[1:] if s.startswith("\ufeff") else s


def longest_json_string_over(data: bytes, limit: int, piece_bytes: int = 1 << 22) -> int | None:
    """The byte offset of the opening quote of the first string literal of the JSON text
    ``data`` longer than ``limit`` bytes (as written, escapes included), or None. Found with
    numpy, ``piece_bytes`` at a time (4 MiB: at most 32 MiB of positions), before the text is
    decoded: quotes preceded by an odd run of backslashes are escaped; the others alternate
    opening and closing. Invalid JSON gives some answer; the decoder reports it afterwards."""
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    n = len(arr)
    step = max(int(piece_bytes), 1)
    open_at = -1  # >= 0: inside a string that opened there
    carry = 0  # backslashes ending the previous piece
    for lo in range(0, n, step):
        a = arr[lo : lo + step]
        q = np.flatnonzero(a == 34)
        b = np.flatnonzero(a == 92)
        if len(q):
            run = np.zeros(len(q), np.int64)  # backslashes right before each quote
            if len(b):
                new_run = np.ones(len(b), bool)
                new_run[1:] = np.diff(b) != 1
                run_start = b[new_run][np.cumsum(new_run) - 1]
                k = np.minimum(np.searchsorted(b, q - 1), len(b) - 1)
                run = np.where(b[k] == q - 1, q - run_start[k] + np.where(run_start[k] == 0, carry, 0), 0)
            if q[0] == 0:
                run[0] = carry
            q = q[run % 2 == 0] + lo
        start = 0
        if open_at >= 0 and len(q):
            if q[0] - open_at - 1 > limit:
                return open_at
            open_at, start = -1, 1
        opens, closes = q[start::2], q[start + 1 :: 2]
        long = np.flatnonzero(closes - opens[: len(closes)] - 1 > limit)
        if len(long):
            return int(opens[long[0]])
        if len(opens) > len(closes):
            open_at = int(opens[-1])
        if open_at >= 0 and lo + len(a) - open_at - 1 > limit:
            return open_at
        if len(b) and b[-1] == len(a) - 1:  # the piece ends with a run of backslashes
            gaps = np.flatnonzero(np.diff(b) != 1)
            first = int(b[gaps[-1] + 1]) if len(gaps) else int(b[0])
            carry = len(a) - first + (carry if first == 0 else 0)
        else:
            carry = 0
    return None


_JSON_KEY_BEFORE = re.compile(rb'"((?:[^"\\\n]|\\.){1,100})"\s*:\s*\[?[^:]*$', re.S)


def check_json_document(path: str, data: bytes, limits: LoadLimits) -> None:
    """Refuse a whole-document JSON file (``data``: its bytes, not yet decoded) holding a string
    longer than ``limits.max_line_bytes`` (the limit of one JSONL line), naming the line and, when
    it is a known field name, the field the string belongs to. Raises :class:`LoadError`."""
    at = longest_json_string_over(data, limits.max_line_bytes)
    if at is None:
        return
    m = _JSON_KEY_BEFORE.search(data, max(0, at - 4096), at)
    key = m.group(1).decode("utf-8", "replace") if m else None
    fld = key if key is not None and is_known_field(key) else None
    raise LoadError(
        path,
        data.count(b"\n", 0, at) + 1,
        f"a string longer than {limits.max_line_bytes:,} bytes "
        "(LoadLimits.max_line_bytes, env ECI_MAX_LINE_BYTES: the longest line of a text file, or "
        "string of a JSON file)",
        field=fld,
    )


def check_file_size(path: str | os.PathLike, limits: LoadLimits) -> None:
    """Refuse a file read whole into memory (a JSON document) that is larger on disk than
    ``limits.max_decompressed_bytes``, before reading it (a ``.gz`` is checked as it
    decompresses). Raises :class:`LoadError`."""
    size = os.path.getsize(path)
    if size > limits.max_decompressed_bytes:
        raise LoadError(
            str(path),
            None,
            f"the file holds more than {limits.max_decompressed_bytes:,} bytes, "
            "too many to read whole (LoadLimits.max_decompressed_bytes, env ECI_MAX_DECOMPRESSED_BYTES); "
            "save it as JSONL (one record per line), which is read line by line",
        )


def plain_or_gz(d: Path, name: str) -> Path | None:
    for cand in (d / name, d / (name + ".gz")):
        if cand.is_file():
            return cand
    return None


def missing_path_error(p: Path, spath: str) -> LoadError:
    """Why ``p`` cannot be opened: a symbolic link loop, a dangling link, or nothing there."""
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return LoadError(
                spath,
                None,
                "symbolic link loop (too many levels of symbolic links); point the link at a real file",
            )
        if p.is_symlink():
            return LoadError(spath, None, "broken symbolic link (its target does not exist)")
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            return LoadError(spath, None, f"cannot read the file ({e.strerror or type(e).__name__})")
    return LoadError(spath, None, "no such file or directory")
