"""Indexed updates without XLA scatters.

On the CPU, XLA expands every ``scatter`` (what ``x.at[i].set(v)`` lowers to) into a while
loop of its own, which its loop passes then visit one by one: ~8 ms of compilation per
scatter in a small program (jax 0.10.2, 2 cores). The minimiser's global search moved one
coordinate at a time that way, in six places of a first fit's program. The forms here give the
same numbers as the scatter, bit for bit, as an elementwise select (no loop):

- :func:`put`: x with x[…, i] = v for one index i (traced or not):
  ``where(arange(n) == i, v, x)``;
- :func:`set_static`: x with x[index] = values for a static 1-D NumPy index without repeats:
  a gather of [values, 0] by each element's position in ``index``, and a select.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["put", "set_static"]


def put(x, i, v):
    """``x`` with ``x[..., i] = v`` for a scalar index i (traced: 0 ≤ i < n; a Python int may
    count from the end) and v broadcastable to ``x[..., i]``: a select against
    ``arange(n) == i``, the same numbers as ``x.at[..., i].set(v)`` without a scatter."""
    x = jnp.asarray(x)
    if isinstance(i, int | np.integer) and i < 0:
        i = i + x.shape[-1]
    # v broadcasts against x[..., i] (as for .at): a trailing axis lines it up with x's rows
    return jnp.where(jnp.arange(x.shape[-1]) == i, jnp.asarray(v, x.dtype)[..., None], x)


def set_static(x, index, values):
    """``x`` with ``x[index] = values`` along the first axis, for a static 1-D NumPy ``index``
    without repeats: element j takes ``values[k]`` where ``index[k] = j`` (a static gather),
    the others keep x. The same numbers as ``x.at[index].set(values)`` without a scatter."""
    x = jnp.asarray(x)
    index = np.asarray(index).reshape(-1)
    n = x.shape[0]
    index = np.where(index < 0, index + n, index)
    if np.unique(index).size != index.size:
        raise ValueError("set_static: the index repeats an element")
    pos = np.full(n, index.size, dtype=np.int32)  # position in ``index``, or the appended 0
    pos[index] = np.arange(index.size)
    rest = x.shape[1:]
    v = jnp.broadcast_to(jnp.asarray(values, x.dtype), (index.size,) + rest)
    v = jnp.concatenate([v, jnp.zeros((1,) + rest, x.dtype)])
    hit = (pos < index.size).reshape((n,) + (1,) * len(rest))
    return jnp.where(hit, v[pos], x)
