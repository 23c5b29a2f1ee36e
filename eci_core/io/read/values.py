"""No-echo value checks: each returns the value in the type a reader needs or raises a one-line
:class:`~eci_core.io.records.LoadError` (``PATH:LINE: field 'F': message``) that describes the value's
kind, never its content.

:func:`text_value` (non-empty text), :func:`id_value` (string or integer id), :func:`num_value`,
:func:`finite`, :func:`as_list` (a list, or a cell holding a JSON array / Python list literal),
:func:`text_list`, :func:`num_list`, :func:`need_field`, :func:`present`, :func:`kind_of`,
:func:`loads_checked` (``json.loads``), :func:`check_surrogates` (lone UTF-16 surrogates),
:func:`unexpected_error` (any exception a record caused, as one line), :func:`maybe_list`,
:func:`maybe_dict` (detection).
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from eci_core.io.records import LoadError
from eci_core.io.read.vocab import field_names, plural

_STR_ONLY = {str}


_SURR_ESC = re.compile(r"\\[uU](?:0000)?[dD][89a-fA-F]")


_SURR = re.compile("[\ud800-\udfff]")


DIGITS_MSG = "an integer with more than 4,300 digits (Python's limit for numbers read from text)"


def _surrogate_field(obj: Any, fld: str | None) -> str | None:
    """The field path of the first string (key or value) holding a lone UTF-16 surrogate."""
    stack: list[tuple[Any, str | None]] = [(obj, fld)]
    while stack:
        v, where = stack.pop()
        if isinstance(v, str):
            if _SURR.search(v):
                return where or "?"
        elif isinstance(v, dict):
            for k, x in reversed(list(v.items())):
                if isinstance(k, str) and _SURR.search(k):
                    return where or "?"
                stack.append((x, f"{where}.{k}" if where else str(k)))
        elif isinstance(v, (list, tuple)):
            for i in range(len(v) - 1, -1, -1):
                stack.append((v[i], f"{where}[{i}]" if where else f"[{i}]"))
    return None


def check_surrogates(path: str, line: int | None, raw: str, obj: Any, fld: str | None = None) -> None:
    """Raise LoadError when ``obj`` (parsed from ``raw``) holds a lone surrogate (``"\\ud800"``):
    such text cannot be encoded as UTF-8 and would fail later, far from its line."""
    if "\\" in raw and _SURR_ESC.search(raw):
        where = _surrogate_field(obj, fld)
        if where is not None:
            raise LoadError(
                path,
                line,
                "text holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without "
                "its pair), which is not valid Unicode",
                field=None if where == "?" else where,
            )


def loads_checked(path: str, line: int | None, raw: str, fld: str | None = None) -> Any:
    """``json.loads`` whose every failure is a one-line LoadError (never echoing the text)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise LoadError(path, line, f"invalid JSON: {e.msg} at column {e.colno}", field=fld) from None
    except RecursionError:
        raise LoadError(path, line, "JSON nested too deeply to read", field=fld) from None
    except ValueError:
        raise LoadError(path, line, DIGITS_MSG, field=fld) from None
    check_surrogates(path, line, raw, obj, fld)
    return obj


def unexpected_error(path: str, line: int | None, e: BaseException, fld: str | None = None) -> LoadError:
    """A one-line LoadError for an exception a record caused (no traceback, no file content)."""
    if isinstance(e, LoadError):
        return e
    if isinstance(e, RecursionError):
        msg = "nested too deeply to read"
    elif isinstance(e, MemoryError):
        msg = "too large to read in memory"
    elif isinstance(e, UnicodeError):
        msg = "text is not valid Unicode (a lone surrogate?)"
    elif isinstance(e, OverflowError):
        msg = "a number is too large"
    elif isinstance(e, ValueError) and "digits" in str(e):
        msg = DIGITS_MSG
    else:
        msg = f"cannot read this record ({type(e).__name__})"
    return LoadError(path, line, msg, field=fld)


# ====================================================================== value checks
def kind_of(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true/false"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def text_value(path: str, line: int | None, v: Any, fld: str) -> str:
    """A required, non-empty text value."""
    if isinstance(v, str):
        if v.strip():
            return v
        raise LoadError(path, line, "empty text (every query and passage needs text)", field=fld)
    if v is None:
        raise LoadError(path, line, "is null; expected text", field=fld)
    raise LoadError(path, line, f"expected a string, got {kind_of(v)}", field=fld)


def id_value(path: str, line: int | None, v: Any, fld: str) -> str:
    """An id: a non-empty string or an integer (kept as its decimal string)."""
    if isinstance(v, bool):
        raise LoadError(path, line, "expected an id (string or integer), got true/false", field=fld)
    if isinstance(v, int):
        try:
            return str(v)
        except ValueError:
            raise LoadError(path, line, DIGITS_MSG, field=fld) from None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str):
        s = v.strip()
        if s:
            return s
        raise LoadError(path, line, "empty id", field=fld)
    if v is None:
        raise LoadError(path, line, "is null; expected an id", field=fld)
    raise LoadError(path, line, f"expected an id (string or integer), got {kind_of(v)}", field=fld)


def as_list(path: str, line: int | None, v: Any, fld: str, what: str) -> list:
    """A list value; a string cell holding a JSON array or Python list literal is parsed."""
    if isinstance(v, list):
        return v
    if isinstance(v, tuple):
        return list(v)
    if isinstance(v, str) and v.lstrip().startswith("["):
        try:
            out = json.loads(v)
        except RecursionError:
            raise LoadError(path, line, "list nested too deeply to read", field=fld) from None
        except json.JSONDecodeError:
            try:
                out = ast.literal_eval(v.strip())
            except RecursionError:
                raise LoadError(path, line, "list nested too deeply to read", field=fld) from None
            except (ValueError, SyntaxError, MemoryError, TypeError):
                raise LoadError(
                    path, line, "cannot read the list: expected a JSON array", field=fld
                ) from None
        except ValueError:
            raise LoadError(path, line, DIGITS_MSG, field=fld) from None
        check_surrogates(path, line, v, out, fld)
        if isinstance(out, (list, tuple)):
            return list(out)
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy arrays from pandas
        out = v.tolist()
        if isinstance(out, list):
            return out
    if v is None:
        raise LoadError(path, line, f"is null; expected {what}", field=fld)
    raise LoadError(path, line, f"expected {what}, got {kind_of(v)}", field=fld)


def text_list(path: str, line: int | None, v: Any, fld: str) -> list[str]:
    if type(v) is list:  # fast path (C-level checks): a JSON list of non-blank strings
        kinds = set(map(type, v))
        if (not kinds or kinds == _STR_ONLY) and "" not in v and not any(map(str.isspace, v)):
            return v
    items = as_list(path, line, v, fld, "a list of strings")
    return [text_value(path, line, t, f"{fld}[{i}]") for i, t in enumerate(items)]


def finite(path: str, line: int | None, x: float, fld: str) -> float:
    if math.isfinite(x):
        return x
    raise LoadError(path, line, f"expected a finite number, got {'NaN' if x != x else 'infinity'}", field=fld)


def num_value(path: str, line: int | None, v: Any, fld: str) -> float:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        try:
            return finite(path, line, float(v), fld)
        except OverflowError:
            raise LoadError(path, line, "number too large", field=fld) from None
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            raise LoadError(path, line, "expected a number, got text", field=fld) from None
        return finite(path, line, x, fld)
    if v is None:
        raise LoadError(path, line, "is null; expected a number", field=fld)
    raise LoadError(path, line, f"expected a number, got {kind_of(v)}", field=fld)


def num_list(path: str, line: int | None, v: Any, fld: str, n: int | None, expect: str) -> list[float]:
    items = as_list(path, line, v, fld, "a list of numbers")
    if n is not None and len(items) != n:
        raise LoadError(path, line, f"has {plural(len(items), 'value')}, expected {n} ({expect})", field=fld)
    return [num_value(path, line, x, f"{fld}[{i}]") for i, x in enumerate(items)]


def present(v: Any) -> bool:
    """Whether an optional cell holds a value (CSV gives '' for a missing one)."""
    return v is not None and not (isinstance(v, str) and not v.strip())


def need_field(path: str, line: int | None, row: dict, key: str) -> Any:
    if key not in row:
        found = field_names(row)
        raise LoadError(path, line, f"missing required field (fields found: {found})", field=key)
    return row[key]


# ====================================================================== detection
def maybe_list(v: Any) -> bool:
    if isinstance(v, (list, tuple)):
        return True
    return isinstance(v, str) and v.lstrip().startswith("[") and v.rstrip().endswith("]")


def maybe_dict(v: Any) -> bool:
    if isinstance(v, dict):
        return True
    return isinstance(v, str) and v.lstrip().startswith("{")
