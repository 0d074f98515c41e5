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

__all__ = [
    "RESULTS",
    "STATUS",
    "as_result",
    "result_repr",
    "status_code",
    "status_text",
    "raise_if_failed",
]


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


# -- readable results ------------------------------------------------------------------------------

#: arrays up to this many values are printed in full by :func:`result_repr`
REPR_FULL = 6
_LINE = 100


def _dtype(a) -> str:
    kind = {"b": "bool", "f": "f", "i": "i", "u": "u", "c": "c"}.get(a.dtype.kind, str(a.dtype))
    return kind if kind == "bool" else f"{kind}{8 * a.dtype.itemsize}"


def _shape(a) -> str:
    return f"{_dtype(a)}[{','.join(map(str, a.shape))}]"


def _num(x, digits=4) -> str:
    if isinstance(x, bool | np.bool_):
        return str(bool(x))
    if isinstance(x, np.integer | int):
        return str(int(x))
    return f"{float(x):.{digits}g}"


def _status(a) -> str:
    """Status codes spelled out: ``0 (converged)``, or the count of each status in a batch."""
    if a.ndim == 0:
        return f"{int(a)} ({status_text(a)})"
    codes, counts = np.unique(a, return_counts=True)
    parts = [f"{n}× {status_text(c)}" for c, n in zip(codes, counts, strict=True)]
    return "[" + ", ".join(parts) + "]"


def _array(name: str, a) -> str:
    a = np.asarray(a)
    if name == "status" and a.dtype.kind in "iu":
        return _status(a)
    if a.ndim == 0:
        return _num(a.item(), 6)
    if a.dtype.kind == "b" and a.size > REPR_FULL:
        return f"{_shape(a)}: {int(a.sum())} of {a.size} True"
    if a.size <= REPR_FULL:
        return "[" + ", ".join(_num(x) for x in a.reshape(-1).tolist()) + "]"
    if a.ndim == 1:
        head = ", ".join(_num(x) for x in a[:3].tolist())
        return f"{_shape(a)} [{head}, …, {_num(a[-1].item())}]"
    finite = a[np.isfinite(a)] if a.dtype.kind in "fc" else a.reshape(-1)
    text = f"{_shape(a)}"
    if finite.size:
        text += f" in [{_num(finite.min())}, {_num(finite.max())}]"
    if finite.size < a.size:
        text += f", {a.size - finite.size} NaN"
    return text


def _value(name: str, v) -> str | None:
    """The text of one field (None: leave the field out)."""
    if v is None:
        return None
    if isinstance(v, jax.core.Tracer):
        return f"{_shape(v)} (traced)"
    if isinstance(v, RESULTS):
        return _status(np.asarray(status_code(v)))
    if isinstance(v, np.ndarray | jax.Array | np.generic):
        return _array(name, v)
    if isinstance(v, bool | int | float | str):
        return _num(v, 6) if isinstance(v, float) else repr(v)
    if isinstance(v, tuple | list) and all(isinstance(x, str) for x in v):
        if len(v) <= 4:
            return repr(tuple(v))
        return f"({', '.join(repr(x) for x in v[:3])}, … {len(v)} names)"
    if isinstance(v, dict):
        text = repr(v)
        return text if len(text) <= 60 else f"{{…{len(v)} keys}}"
    if isinstance(v, tuple | list):
        return f"({len(v)} items)"
    shape = getattr(v, "shape", None)  # e.g. a factored covariance, a nested result
    return f"{type(v).__name__}{list(shape) if shape is not None else '(…)'}"


def result_repr(obj) -> str:
    """A readable ``repr`` of a result dataclass or :class:`equinox.Module`: scalars as numbers,
    short arrays (up to :data:`REPR_FULL` values) in full, longer ones as dtype and shape with
    their first and last values (matrices: their range), boolean masks as counts, ``status``
    codes spelled out (``status=0 (converged)``), ``None`` fields left out, traced values (under
    ``jit``/``vmap``) as dtype and shape. Only the text changes: results stay pytrees and are
    traced as before. Used as ``__repr__`` of the public result classes.

    Example::

        >>> jaxlike.fit(model, data)  # doctest: +SKIP
        FitResult(
            bestfit=f64[33] [0.748, 1.02, 0.981, …, 1],
            uncertainties=f64[33] [0.326, 0.0391, 0.0483, …, 0.0398],
            covariance=f64[33,33] in [-0.0123, 0.106],
            twice_nll=87.2992,
            converged=True,
            status=0 (converged),
            ...
        )
    """
    import dataclasses

    parts = []
    for f in dataclasses.fields(obj):
        if not f.repr:
            continue
        text = _value(f.name, getattr(obj, f.name, None))
        if text is not None:
            parts.append(f"{f.name}={text}")
    name = type(obj).__name__
    one = f"{name}({', '.join(parts)})"
    if len(one) <= _LINE:
        return one
    return f"{name}(\n" + "".join(f"    {p},\n" for p in parts) + ")"
