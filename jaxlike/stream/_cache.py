"""One bounded cache of built (traced or compiled) functions, keyed by an explicit identity.

``jax.jit`` caches compilations per Python function object, so a function rebuilt on every
call (a fresh ``jax.vmap`` closure over a model) is compiled again every time. :func:`compiled`
keeps the last :data:`MAX_ENTRIES` built functions, least recently used first out, keyed by a
tuple the caller makes from everything the function depends on (a content digest of the model
and data, the static settings), never by ``id()`` of a mutable object.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["MAX_ENTRIES", "clear_compiled", "compiled"]

#: built functions kept at most (all callers together); each may hold a model and its
#: compiled executables
MAX_ENTRIES = 16

_ENTRIES: OrderedDict = OrderedDict()
_LOCK = threading.Lock()


def compiled(key, build):
    """The function cached under ``key``, else ``build()`` stored under it.

    ``key`` must be hashable and name everything the built function depends on (e.g.
    ``("mass_scan", model_digest, cl)``); start it with the caller's name so keys of different
    callers never meet. The cache is a least-recently-used dict of at most
    :data:`MAX_ENTRIES` entries. ``build`` runs outside the lock (it may trace or compile)."""
    with _LOCK:
        if key in _ENTRIES:
            _ENTRIES.move_to_end(key)
            return _ENTRIES[key]
    fn = build()
    with _LOCK:
        fn = _ENTRIES.setdefault(key, fn)
        _ENTRIES.move_to_end(key)
        while len(_ENTRIES) > MAX_ENTRIES:
            _ENTRIES.popitem(last=False)
    return fn


def clear_compiled() -> None:
    """Empty the cache (frees the models and compilations it holds)."""
    with _LOCK:
        _ENTRIES.clear()
