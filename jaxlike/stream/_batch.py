"""In-memory batched map: one vmapped function over many rows, in equal padded chunks.

For N rows and a chunk limit K the rows are cut into ⌈N / K⌉ consecutive chunks of C rows
each, C = min(K, N) (or, with ``bucket``, the bucket size of ⌈N / ⌈N / K⌉⌉, see
:func:`bucket_size`); the last chunk is padded to C rows by repeating a row (the last one, or
the first with ``pad="first"``), and the padded rows' results are dropped. Every call therefore
sees the same shapes, so one trace and one XLA compilation of ``fn`` serve all chunks (and every
later call with the same C). Padding never changes a kept row: the rows of a vmapped function
are independent lanes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..exceptions import InvalidScanConfig
from ._progress import Progress

__all__ = ["BUCKET_BASE", "BUCKET_GROWTH", "batched_map", "bucket_size", "chunk_rows", "take_rows"]

#: with ``bucket=True`` batch sizes are rounded up to one of 8, 32, 128, ... (capped at the
#: chunk limit), so that products and calls of different sizes share compiled functions at
#: most 4x padding
BUCKET_BASE, BUCKET_GROWTH = 8, 4


def bucket_size(n: int, limit: int) -> int:
    """The smallest of 8, 32, 128, ... (``BUCKET_BASE · BUCKET_GROWTH^k``) that is ≥ ``n``,
    capped at ``limit`` (and at least 1)."""
    size = BUCKET_BASE
    while size < n:
        size *= BUCKET_GROWTH
    return max(1, min(size, limit))


def chunk_rows(n: int, chunk=None, *, bucket: bool = False) -> int:
    """Rows C per call for ``n`` rows with at most ``chunk`` per call (None: all in one call).

    Without ``bucket``: C = min(chunk, n). With ``bucket``: the rows are split into
    k = ⌈n / chunk⌉ calls and C = :func:`bucket_size` (⌈n / k⌉, chunk). Either way ⌈n / C⌉
    chunks of C rows cover the rows."""
    n = int(n)
    limit = n if chunk is None else chunk
    if isinstance(limit, bool) or int(limit) != limit or limit < 1:
        raise InvalidScanConfig("chunk", f"must be a positive integer, got {chunk!r}")
    limit = int(limit)
    if not bucket:
        return max(1, min(limit, n))
    calls = max(1, math.ceil(n / limit))
    return bucket_size(math.ceil(n / calls), limit)


def take_rows(tree, start: int, stop: int, size: int, pad: str = "last"):
    """Rows [start, stop) of every leaf of ``tree`` (leading axis), padded to ``size`` rows by
    repeating the last row of the slice (``pad="last"``) or row 0 of the whole batch
    (``pad="first"``). NumPy leaves stay NumPy, JAX leaves stay JAX."""
    if pad not in ("last", "first"):
        raise InvalidScanConfig("pad", f"must be 'last' or 'first', got {pad!r}")
    missing = size - (stop - start)
    if not missing:
        return jax.tree.map(lambda a: a[start:stop], tree)
    idx = np.arange(start, start + size)
    idx[stop - start :] = stop - 1 if pad == "last" else 0
    return jax.tree.map(lambda a: a[idx], tree)


def _leading(batch) -> int:
    sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(batch)}
    if not sizes or None in sizes or len(sizes) != 1 or 0 in sizes:
        raise InvalidScanConfig("batch", "every leaf needs the same, non-empty leading axis")
    return sizes.pop()


def batched_map(
    fn,
    batch,
    *,
    chunk=None,
    bucket: bool = False,
    pad: str = "last",
    to_host: bool = True,
    progress=False,
    label: str = "batch",
):
    """``fn`` over all rows of ``batch`` in equal, padded chunks; results concatenated.

    Args:
        fn: a batched function, chunk pytree (leading axis C) → pytree of arrays with leading
            axis C (typically a jitted ``jax.vmap`` of a per-row function); called once per
            chunk with identical shapes, so it compiles once.
        batch: pytree of arrays (NumPy or JAX) with a common leading axis N.
        chunk: at most this many rows per call (None: all N in one call).
        bucket: round the rows per call up to 8, 32, 128, ... (:func:`chunk_rows`), so calls
            with different N share compilations.
        pad: the padding row of the last chunk, ``"last"`` (its last row) or ``"first"``
            (row 0); padded results are dropped.
        to_host: fetch each chunk's results to NumPy (``jax.device_get``) before the next one
            is concatenated (default); ``False`` keeps JAX arrays on the device.
        progress: False, True (a :class:`~jaxlike.stream.Progress` labelled ``label`` on
            stderr) or a Progress to report rows to.

    Returns:
        ``fn``'s output pytree with a leading axis N.

    Example::

        fit = jax.jit(jax.vmap(one_fit))
        res = batched_map(fit, {"x0": inits, "data": toys}, chunk=256)
    """
    n = _leading(batch)
    size = chunk_rows(n, chunk, bucket=bucket)
    reporter = progress if isinstance(progress, Progress) else None
    if reporter is None:
        reporter = Progress(enabled=bool(progress), label=label)
    reporter.start(n)
    parts = []
    for start in range(0, n, size):
        stop = min(start + size, n)
        out = fn(take_rows(batch, start, stop, size, pad))
        if to_host:
            out = jax.device_get(out)
        else:
            out = jax.tree.map(lambda x, k=stop - start: x[:k], out)
        parts.append(out)
        reporter.update(stop - start)
    reporter.finish()
    if to_host:
        return jax.tree.map(lambda *xs: np.concatenate(xs)[:n], *parts)
    if len(parts) == 1:
        return parts[0]
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *parts)
