"""Strict reading of configuration files, shared by the scan and posterior loaders.

Every check raises the exception class it is given, ``exc(path, message)`` (an
:class:`~jaxlike.exceptions.InvalidSpecification` subclass), with ``path`` naming the field:

- :func:`read_config` reads a TOML/JSON file (regular files only, size-bounded, a UTF-8 byte
  order mark accepted, duplicate JSON keys refused);
- :func:`check_keys` refuses unknown keys, suggesting the closest known one;
- :func:`number`, :func:`integer`, :func:`numbers` accept only int/float values (not bool, not
  strings), finite and in range;
- :func:`regular_file` resolves a data path against the config's folder and refuses anything
  but a regular file (FIFOs, devices, sockets, folders), before anything opens it;
- :func:`atomic_write` writes through a unique temporary file in the destination folder;
- :func:`canonical_json` and :func:`digest` are the one canonical-JSON text and hex digest of
  the package (scan identities, workspace digests, model and array digests).

Paths in configs are the user's own: relative paths resolve against the config file's folder,
absolute paths and ``..`` are allowed; only the *kind* of file is restricted.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import os
import re
import stat
import tempfile
import tomllib
from pathlib import Path

import numpy as np

__all__ = [
    "MAX_CONFIG_BYTES",
    "atomic_write",
    "canonical_json",
    "digest",
    "invalid_text",
    "check_keys",
    "directory",
    "integer",
    "join",
    "number",
    "numbers",
    "read_config",
    "regular_file",
    "unique_names",
]

#: largest configuration file read (inline spectra included)
MAX_CONFIG_BYTES = 64 * 1024 * 1024

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+\Z")


def join(path: str, key) -> str:
    """``path.key`` (``key`` quoted as ``path['...']`` when it is not a plain name)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = str(key)
    if not _PLAIN_KEY.match(key):
        return f"{path}[{_short(key)}]"
    return f"{path}.{key}" if path else key


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_keys(d: dict, known, path: str, exc, what: str = "key") -> None:
    """Raise ``exc`` at the first key of ``d`` not in ``known``: ``unknown key; did you mean
    'x'?`` (difflib's closest match), else the list of known keys."""
    known = sorted(known)
    for key in d:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        raise exc(join(path, key), f"unknown {what}; {hint}")


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def number(v, path: str, exc, *, lo=None, hi=None, lo_open=False, hi_open=False) -> float:
    """``v`` as a float: an int or float (not bool, not a string), finite, within [lo, hi]
    (``lo_open``/``hi_open``: the bound itself excluded)."""
    if not _is_number(v):
        raise exc(path, f"must be a number, got {_short(v)}")
    try:
        x = float(v)
    except OverflowError:
        x = math.inf
    if not math.isfinite(x):
        raise exc(path, f"must be a finite number, got {_short(v)}")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise exc(path, f"must be {'>' if lo_open else '>='} {lo:g}, got {_short(v)}")
    if hi is not None and (x > hi or (hi_open and x == hi)):
        raise exc(path, f"must be {'<' if hi_open else '<='} {hi:g}, got {_short(v)}")
    return x


def integer(v, path: str, exc, *, lo=None, hi=None) -> int:
    """``v`` as an int within [lo, hi]: an int, or a float with an integral value (JSON writers
    emit ``100.0``); not bool, not a string."""
    if not _is_number(v):
        raise exc(path, f"must be an integer, got {_short(v)}")
    if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
        raise exc(path, f"must be an integer, got {_short(v)}")
    n = int(v)
    if lo is not None and n < lo:
        raise exc(path, f"must be >= {lo}, got {_short(v)}")
    if hi is not None and n > hi:
        raise exc(path, f"must be <= {hi:_}, got {_short(v)}")
    return n


def numbers(v, path: str, exc, *, max_size: int | None = None, **bounds) -> list[float]:
    """A non-nested list (or tuple) of numbers, each checked by :func:`number` (``path[i]`` on
    error)."""
    if not isinstance(v, list | tuple):
        raise exc(path, f"must be a list of numbers, got {_short(v)}")
    if max_size is not None and len(v) > max_size:
        raise exc(path, f"has {len(v):_} entries, more than the limit of {max_size:_}")
    return [number(x, f"{path}[{i}]", exc, **bounds) for i, x in enumerate(v)]


def _fileinfo(path: Path, field: str, exc, *, what="file"):
    try:
        return os.stat(path)
    except OSError as err:
        raise exc(field, f"cannot read {what} {str(path)!r}: {err.strerror}") from None


def regular_file(name, field: str, exc, base=None, *, max_bytes: int | None = None) -> Path:
    """``name`` resolved against ``base`` (absolute names stay absolute), checked with
    ``os.stat`` to be a regular file (not a FIFO, device, socket or folder) before anything
    opens it, and at most ``max_bytes`` long."""
    p = Path(name)
    if base is not None and not p.is_absolute():
        p = Path(base) / p
    st = _fileinfo(p, field, exc)
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise exc(field, f"{str(p)!r} is {kind}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise exc(field, f"{str(p)!r} is {st.st_size:_} bytes, more than the limit {max_bytes:_}")
    return p


def directory(name, field: str, exc, base=None) -> Path:
    """``name`` resolved against ``base``, checked to be an existing folder."""
    p = Path(name)
    if base is not None and not p.is_absolute():
        p = Path(base) / p
    if not stat.S_ISDIR(_fileinfo(p, field, exc, what="folder").st_mode):
        raise exc(field, f"{str(p)!r} is not a folder")
    return p


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def read_config(path, exc, what: str = "config", field: str | None = None) -> dict:
    """Parse the TOML (``.toml``) or JSON file ``path`` into a dict.

    Only a regular file of at most :data:`MAX_CONFIG_BYTES` is opened (``os.stat`` first: a
    FIFO or device is refused, never opened); it is decoded as UTF-8 with an optional byte
    order mark; JSON objects may not repeat a key. Errors raise ``exc(field, message)``, one
    line; without ``field`` the message names the file instead."""
    p = Path(path)
    where, name = ("", f"{what} {str(p)!r}") if field is None else (field, "")
    toml = p.suffix.lower() == ".toml"
    fmt = p.suffix[1:] if toml else (p.suffix[1:] or "JSON")

    def fail(message):
        raise exc(where, f"{name} {message}" if name else message)

    try:
        st = os.stat(p)
    except OSError as err:
        fail(f"cannot read: {err.strerror}")
    if not stat.S_ISREG(st.st_mode):
        fail("is a folder" if stat.S_ISDIR(st.st_mode) else "is not a regular file")
    if st.st_size > MAX_CONFIG_BYTES:
        fail(f"is {st.st_size:_} bytes, more than the limit of {MAX_CONFIG_BYTES:_}")
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        fail(f"cannot read: {err.strerror}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        fail(f"is not UTF-8 text ({err.reason} at byte {err.start})")
    try:
        cfg = tomllib.loads(text) if toml else json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as err:  # TOMLDecodeError and JSONDecodeError included
        fail(f"is not valid {fmt}: {'too deeply nested' if type(err) is RecursionError else err}")
    if not isinstance(cfg, dict):
        fail(f"must be a table/object, not {type(cfg).__name__}")
    bad = invalid_text(cfg)
    if bad is not None:
        raise exc(bad, "not valid Unicode (a lone surrogate escape)")
    return cfg


def invalid_text(obj, path: str = "") -> str | None:
    """JSON path of the first string or key that is not valid Unicode (a lone UTF-16
    surrogate such as ``"\\ud800"``: it cannot be printed, written or used as a file name)."""
    stack = [(obj, path)]
    while stack:
        node, where = stack.pop()
        items = ()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return where.encode("utf-8", "backslashreplace").decode() or "<top level>"
        elif isinstance(node, dict):
            items = [(f"{where}.{k}" if where else str(k), v) for k, v in node.items()]
            items += [(where or "<top level>", k) for k in node]
        elif isinstance(node, list):
            items = [(f"{where}[{i}]", v) for i, v in enumerate(node)]
        stack.extend((v, w) for w, v in items)
    return None


_UMASK: list[int] = []


def _umask() -> int:
    """The process umask, read once (reading it means setting it, so not on every write)."""
    if not _UMASK:
        mask = os.umask(0o022)
        os.umask(mask)
        _UMASK.append(mask)
    return _UMASK[0]


def atomic_write(path, write) -> Path:
    """Call ``write(tmp)`` on a fresh temporary file in ``path``'s folder (same suffix, so a
    writer choosing the format by suffix still works), then rename it onto ``path``
    (``os.replace``). The name is unique (``tempfile.mkstemp``, created exclusively), so
    concurrent writers never share it and a planted file or symlink is never followed; the
    temporary is removed if anything fails. The file gets the usual umask permissions."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder)
    tmp = Path(name)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        fd = -1
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    return path


def unique_names(names, key=str.lower) -> list[str]:
    """``names`` made unique (compared by ``key``: case-insensitively by default, as on macOS
    and Windows file systems): a repeated name gets ``-2``, ``-3``, ... appended (skipping any
    suffix that is itself taken). The first occurrence keeps its name."""
    taken = {key(n) for n in names}
    seen, out = set(), []
    for n in names:
        candidate, i = n, 1
        while key(candidate) in seen or (i > 1 and key(candidate) in taken):
            i += 1  # a suffixed name must not be another input name either
            candidate = f"{n}-{i}"
        seen.add(key(candidate))
        out.append(candidate)
    return out


def _plain_json(obj):
    """``json.dumps`` ``default``: NumPy scalars and arrays as Python numbers and lists."""
    if isinstance(obj, np.generic | np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def canonical_json(obj, *, style: str = "compact") -> str:
    """The canonical JSON text of ``obj``: keys sorted, NumPy scalars/arrays as numbers/lists.

    ``style="compact"`` (scan identities): no whitespace (separators ``,`` and ``:``), ASCII
    escapes, NaN and infinities refused (``ValueError``). ``style="pyhf"`` (workspace digests,
    identical to ``pyhf.utils.digest``): the default separators ``, `` and ``: ``, non-ASCII
    characters kept (``ensure_ascii=False``). A value that is not JSON raises ``TypeError``.
    Two objects with the same canonical JSON are the same document."""
    if style == "compact":
        kw = {"separators": (",", ":"), "allow_nan": False}
    elif style == "pyhf":
        kw = {"ensure_ascii": False}
    else:
        raise ValueError(f"unknown canonical JSON style {style!r} (compact or pyhf)")
    return json.dumps(obj, sort_keys=True, default=_plain_json, **kw)


def digest(*parts, algorithm: str = "sha256") -> str:
    """Hex digest (``hashlib.new(algorithm)``) of the concatenation of ``parts``, each:

    - a ``str``: its UTF-8 bytes (e.g. the text of :func:`canonical_json`);
    - ``bytes``: as is;
    - an array (anything else ``np.asarray`` accepts): the text ``f"{dtype}{shape}"`` (UTF-8),
      then its C-order bytes, so arrays of other dtype or shape never collide.

    ``digest(text)`` = sha256(text), ``digest(a, b)`` = sha256(header(a) ‖ a ‖ header(b) ‖ b)."""
    h = hashlib.new(algorithm)
    for part in parts:
        if isinstance(part, str):
            h.update(part.encode("utf8"))
        elif isinstance(part, bytes):
            h.update(part)
        else:
            a = np.ascontiguousarray(np.asarray(part))
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()
