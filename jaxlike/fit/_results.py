"""Outcome of a fit: :class:`RESULTS`, the one definition of the minimiser's status.

``RESULTS`` is an :class:`equinox.Enumeration` (as in optimistix): the minimiser computes its
status with ``RESULTS.where`` and compares items, and a non-converged fit can raise with the
item's text (:func:`raise_if_failed`). Its items are numbered in declaration order, and that
number is the integer *status code* stored by results and files (``FitResult.status``, the
``status`` column of a scan's HDF5 file, JSON documents): 0 converged, 1 maximum iterations,
2 stalled, 3 non-finite start, 4 degenerate, 5 Hessian not positive definite. The codes are
public and stable: a new item goes at the end. :data:`STATUS` is the derived
{code: text} mapping.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Int

from ..exceptions import FitNotConverged

__all__ = ["RESULTS", "STATUS", "as_result", "status_code", "status_text", "raise_if_failed"]


class RESULTS(eqx.Enumeration):
    """Status of a fit (code = position: 0 ``converged`` … 5 ``not_positive_definite``)."""

    converged = "converged"
    max_iterations = "maximum iterations reached"
    stalled = "stalled above tolerance"
    nonfinite_start = "objective not finite at the starting point"
    degenerate = "degenerate: a parameter has no effect on the objective (flat direction)"
    not_positive_definite = "Hessian not positive definite at the end point (saddle or ridge)"


_TREEDEF = jax.tree_util.tree_structure(RESULTS.converged)


def as_result(code: Int[ArrayLike, "*batch"]) -> RESULTS:
    """The :class:`RESULTS` item of an integer status code (array or int; batched codes give a
    batched item)."""
    return jax.tree_util.tree_unflatten(_TREEDEF, [jnp.asarray(code, jnp.int32)])


def status_code(result: RESULTS) -> Int[Array, "*batch"]:
    """The integer status code of a :class:`RESULTS` item (the stored form, default int dtype)."""
    return jnp.asarray(jax.tree_util.tree_leaves(result)[0], dtype=int)


#: {code: text} of every :class:`RESULTS` item, derived from it (for stored integer codes)
# (NumPy codes: building it must not start a JAX backend at import, which would forbid
# ``jax.distributed.initialize()`` afterwards)
STATUS = {
    i: RESULTS[jax.tree_util.tree_unflatten(_TREEDEF, [np.asarray(i, np.int32)])]
    for i in range(len(RESULTS))
}


def status_text(code) -> str:
    """Text of a concrete integer status code ("unknown" for a code outside :data:`STATUS`)."""
    return STATUS.get(int(code), "unknown")


def raise_if_failed(result, code, what: str = "fit"):
    """``throw=True`` of the fits: raise if the status ``code`` is not converged.

    Concrete codes raise :class:`~jaxlike.exceptions.FitNotConverged` naming the status text
    (every batch element's); traced ones (under ``jit``/``vmap``) thread an
    :func:`equinox.error_if` on ``result``. Returns ``result``.
    """
    if isinstance(code, jax.core.Tracer):
        item = as_result(code)
        return item.error_if(result, item != RESULTS.converged)
    codes = np.asarray(code).reshape(-1)
    bad = sorted({int(c) for c in codes if int(c) != 0})
    if bad:
        texts = "; ".join(status_text(c) for c in bad)
        raise FitNotConverged(f"the {what} did not converge: {texts}", status=bad[0])
    return result
