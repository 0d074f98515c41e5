"""Reading JSON documents (workspaces, patches, patchsets, configs) safely.

Python's ``json`` module turns some inputs into exceptions that are not ``JSONDecodeError``
(a 5000-digit integer: ``ValueError``; 100 000 nested brackets: ``RecursionError``) and accepts
others that are not data a model can use (a lone UTF-16 surrogate ``"\\ud800"`` in a string,
which cannot be printed or written as UTF-8; the non-standard tokens ``NaN``/``Infinity``).
:func:`parse_json` turns every such input into one :class:`~jaxlike.exceptions.JaxlikeError`
naming the document (and the JSON path of the string, for surrogates):

- integers with more than 309 digits become ±inf, so the field's validator reports a
  non-finite number at its JSON path (below that, ``float(int)`` is exact or rounds);
- nesting deeper than :data:`MAX_DEPTH` is refused before decoding (a linear scan), so the
  decoder never recurses deeply;
- ``NaN``, ``Infinity`` and ``-Infinity`` are refused (RFC 8259 JSON has no such tokens);
- strings and keys must be valid Unicode (no lone surrogates).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from .._strict import invalid_text
from ..exceptions import InvalidSpecification

__all__ = ["MAX_DEPTH", "parse_json", "read_json_file"]

#: Deepest nesting of arrays/objects accepted (pyhf workspaces need 6).
MAX_DEPTH = 64

_MAX_INT_DIGITS = 309


def _depth(text: str) -> tuple[int, int]:
    """Maximum bracket depth of ``text`` outside strings, and the offset where it is reached."""
    depth = best = where = 0
    in_str = escape = False
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > best:
                best, where = depth, i
        elif ch in "]}":
            depth -= 1
    return best, where


def _int(token: str):
    digits = len(token.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        return float("-inf") if token.startswith("-") else float("inf")
    return int(token)


def _constant(token: str):
    raise ValueError(f"{token} is not a JSON value (RFC 8259 has no NaN or Infinity)")


def parse_json(text: str, source: str = "JSON document", error=InvalidSpecification) -> Any:
    """Decode the JSON ``text`` strictly (RFC 8259); ``source`` names it in error messages.

    Raises ``error(path, message)`` (an :class:`~jaxlike.exceptions.InvalidSpecification`
    subclass) for invalid JSON, nesting deeper than :data:`MAX_DEPTH`, ``NaN``/``Infinity``
    tokens and strings that are not valid Unicode. A leading UTF-8 byte-order mark is ignored.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    depth, where = _depth(text)
    if depth > MAX_DEPTH:
        raise error("", f"{source}: nested {depth} levels deep at character {where} "
                        f"(at most {MAX_DEPTH} accepted)")  # fmt: skip
    try:
        obj = json.loads(text, parse_int=_int, parse_constant=_constant)
    except json.JSONDecodeError as err:
        raise error(
            "", f"{source} is not valid JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    except (ValueError, RecursionError) as err:
        raise error("", f"{source} is not valid JSON: {err}") from None
    bad = invalid_text(obj)
    if bad is not None:
        raise error(bad, f"{source}: not valid Unicode (a lone surrogate escape)")
    return obj


def read_json_file(path: str | Path, source: str = "JSON", error=InvalidSpecification) -> Any:
    """Read and :func:`parse_json` the file at ``path`` (``"-"``: standard input).

    Only regular files (and standard input) are read: a folder, FIFO or device is refused
    before it is opened, so a special file can never block or stream forever.
    """
    name = f"{source} file '{path}'"
    try:
        if str(path) == "-":
            text = sys.stdin.read()
            name = f"{source} on standard input"
        else:
            info = os.stat(path)
            if not stat.S_ISREG(info.st_mode):
                kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
                raise error("", f"{name} is {kind}")
            text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error("", f"{name} does not exist") from None
    except UnicodeDecodeError as err:
        raise error("", f"{name} is not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise error("", f"cannot read {name}: {err.strerror or err}") from None
    return parse_json(text, name, error)
