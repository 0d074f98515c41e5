"""Dense LAPACK calls (Cholesky, eigh) that are safe under ``jax.vmap`` on every backend.

Under ``vmap`` JAX lowers ``jnp.linalg.cholesky`` and ``jnp.linalg.eigh`` on the CPU to
jaxlib's batched LAPACK kernels (``dpotrf``, ``dsyevd``), which split the batch over XLA's
intra-op thread pool and wait on a blocking counter; in jaxlib 0.10 that wait can deadlock when
several such kernels run at once inside a vmapped ``while_loop`` (seen on 2-core machines: the
process sits idle forever in ``ParallelBatchMap``). :func:`per_matrix_on_cpu` gives a function
of matrices a batching rule that avoids them: on the CPU a batch is processed matrix by matrix
with ``lax.map`` (one unbatched LAPACK call each; for the ≤ few-hundred-parameter systems of a
fit this costs microseconds per matrix), on accelerators with the native batched kernel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["per_matrix_on_cpu", "sym_eigh"]


def per_matrix_on_cpu(fn):
    """``fn`` (array arguments → tuple of arrays) with the batching rule of this module: under
    ``vmap`` on the CPU, ``lax.map`` over the batch (an enclosing vmap lands here again, as the
    mapped body calls the wrapped function), elsewhere ``vmap(fn)``. Unbatched arguments are
    broadcast. Every output is batched."""
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        args = tuple(
            a if batched else jnp.broadcast_to(a, (axis_size,) + jnp.shape(a))
            for a, batched in zip(args, in_batched, strict=True)
        )
        if jax.default_backend() == "cpu":
            out = lax.map(lambda xs: wrapped(*xs), args)
        else:
            out = jax.vmap(fn)(*args)
        return out, jax.tree.map(lambda _: True, out)

    functools.update_wrapper(wrapped, fn, assigned=("__doc__", "__name__", "__qualname__"))
    return wrapped


@per_matrix_on_cpu
def sym_eigh(a):
    """Eigen-decomposition (w, v) of a symmetric matrix (``jnp.linalg.eigh``), vmap-safe."""
    w, v = jnp.linalg.eigh(a)
    return w, v
