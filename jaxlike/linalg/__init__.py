"""Linear algebra layer: structured Hessians and vmap-safe factorisations.

Below ``model`` and ``fit``: a model builds its Hessian as a dense matrix or an
:class:`ArrowheadHessian`; the minimiser and the covariance of :mod:`jaxlike.fit` solve with it.
Nothing here knows what a likelihood is.
"""

from ._arrowhead import ArrowheadCovariance, ArrowheadHessian, ArrowLayout, covariance_diagonal
from ._dense import (
    UNROLLED_MAX,
    free_inverse,
    free_min_eigvec,
    hess_dense,
    hess_diag,
    hess_matvec,
    hess_quad,
    hess_select,
    masked_solve,
    spd_solve,
)
from ._index import put, set_static
from ._lapack import per_matrix_on_cpu, sym_eigh

__all__ = [
    "UNROLLED_MAX",
    "ArrowLayout",
    "ArrowheadCovariance",
    "ArrowheadHessian",
    "covariance_diagonal",
    "free_inverse",
    "free_min_eigvec",
    "hess_dense",
    "hess_diag",
    "hess_matvec",
    "hess_quad",
    "hess_select",
    "masked_solve",
    "per_matrix_on_cpu",
    "put",
    "set_static",
    "spd_solve",
    "sym_eigh",
]
