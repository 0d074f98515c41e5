"""Box-constrained damped Newton minimiser that runs entirely inside XLA.

Each iteration uses the exact gradient g and Hessian H of the objective f (2NLL):

1. *Active set*: parameters that are fixed, or sit on a bound with the gradient pushing
   outwards, are frozen for this step (projected Newton, Bertsekas 1982).
2. *Levenberg–Marquardt step* on the free block: (H + λ D) d = −g with Marquardt scaling
   D = diag(|H_ii|) (floored), solved by Cholesky; the trial point is projected onto the box.
3. *Gain ratio* ρ = (f(x) − f(x')) / (predicted decrease of the quadratic model for the
   projected step). Accept when ρ > 1e-4 and f(x') is finite; then λ ← λ·max(1/3, 1 − (2ρ−1)³),
   else λ ← λ·ν, ν ← 2ν (Nielsen 1999). A non-PD system or a NaN trial is a rejection.
4. *Convergence*: the estimated distance to minimum EDM = ½ gᵀ H⁻¹ g over the free block
   (MINUIT's definition for an objective with up = 1) is below ``tol``. If no step can decrease
   f any more (λ exceeds 1e12) while EDM < ``stall_tol`` the fit is at the floating-point floor
   and also counts as converged; otherwise it is reported as not converged.

Because it is a ``lax.while_loop`` with per-element state, the minimiser works under ``jit``
and ``vmap`` (each batch element stops when it has converged).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from ._linalg import spd_solve

__all__ = ["MinimizeState", "minimize", "autodiff_fgh", "STATUS"]

STATUS = {
    0: "converged",
    1: "maximum iterations reached",
    2: "stalled above tolerance",
    3: "objective not finite at the starting point",
}


class MinimizeState(eqx.Module):
    """Result of :func:`minimize` (all leaves are arrays, batchable)."""

    x: jax.Array
    f: jax.Array
    grad: jax.Array
    hess: jax.Array
    lam: jax.Array
    nu: jax.Array
    iterations: jax.Array
    edm: jax.Array
    status: jax.Array  # -1 running, else a STATUS key
    free: jax.Array  # parameters not frozen by the active set at the last step

    @property
    def converged(self):
        return self.status == 0


def _value_grad_hess(fun, x):
    def grad_aux(y):
        v, g = jax.value_and_grad(fun)(y)
        return g, (v, g)

    h, (v, g) = jax.jacfwd(grad_aux, has_aux=True)(x)
    return v, g, 0.5 * (h + h.T)


def _masked_system(h, free, diag_add):
    """H restricted to the free block, identity on the frozen block, plus diag_add."""
    both = free[:, None] & free[None, :]
    hm = jnp.where(both, h, 0.0)
    return hm + jnp.diag(jnp.where(free, diag_add, 1.0))


def _solve(a, b):
    """Cholesky solve; returns (x, ok)."""
    return spd_solve(a, b)


def _damped_step(h, free, dscale, gf, lam):
    """Solve (H + λD) d = −g, raising λ (×4) until the system is positive definite, so an
    indefinite Hessian far from the minimum costs Cholesky attempts, not likelihood evaluations."""

    def cond(c):
        _, ok, _, tries = c
        return ~ok & (tries < 40)

    def body(c):
        _, _, lam_c, tries = c
        lam_c = jnp.where(tries > 0, jnp.maximum(lam_c * 4.0, 1e-6), lam_c)
        step, ok = _solve(_masked_system(h, free, lam_c * dscale), -gf)
        return step, ok, lam_c, tries + 1

    step, ok, lam_used, _ = lax.while_loop(
        cond, body, (jnp.zeros_like(gf), jnp.asarray(False), lam, jnp.asarray(0))
    )
    return step, ok, lam_used


def _free_set(x, g, lo, hi, fixed):
    span = jnp.maximum(hi - lo, 1.0)
    at_lo = x <= lo + 1e-12 * span
    at_hi = x >= hi - 1e-12 * span
    pushing_out = (at_lo & (g > 0)) | (at_hi & (g < 0))
    return ~fixed & ~pushing_out


def _saddle_escape(x, f, g, h, lo, hi, free, lam):
    """Bound-stationary saddle directions and the inward step that leaves them.

    A parameter on a bound with zero gradient and negative curvature (H_ii < 0) sits on a
    stationary point that is not a minimum: along e_i pointing inwards,
    f(x + t e_i) ≈ f(x) + ½ H_ii t² decreases. This happens when a parameter enters only
    squared (a rate ∝ C², started or pushed to C = 0): Newton steps cannot leave it because
    the gradient vanishes. Those parameters take the step t = ±sqrt(2 / |H_ii|) / (1 + λ)
    (an expected decrease of 1 in f, shrunk by the damping when trials are rejected), capped at
    a tenth of the range, while the others take the Levenberg–Marquardt step.
    """
    span = jnp.maximum(hi - lo, 1.0)
    at_lo = x <= lo + 1e-12 * span
    at_hi = x >= hi - 1e-12 * span
    hd = jnp.diagonal(h)
    flat = jnp.abs(g) <= 1e-10 * jnp.maximum(1.0, jnp.abs(f))
    escape = free & (at_lo | at_hi) & flat & (hd < 0) & (hi > lo)
    size = jnp.minimum(jnp.sqrt(2.0 / jnp.where(hd < 0, -hd, 1.0)) / (1.0 + lam), 0.1 * (hi - lo))
    return escape, jnp.where(at_lo, size, -size)


def _edm(g, h, free):
    gf = jnp.where(free, g, 0.0)
    y, ok = _solve(_masked_system(h, free, 0.0), gf)
    return jnp.where(ok, 0.5 * jnp.dot(gf, y), jnp.inf)


def autodiff_fgh(fun):
    """(value, gradient, Hessian) of a scalar JAX function by forward-over-reverse autodiff."""
    return lambda x: _value_grad_hess(fun, x)


def minimize(fgh, x0, lo, hi, fixed, *, maxiter=200, tol=1e-10, stall_tol=1e-6, lam0=1e-4):
    """Minimise f over the box [lo, hi] with ``fixed`` parameters held at ``x0``.

    ``fgh(x)`` returns (f, ∇f, ∇²f) — e.g. :func:`autodiff_fgh` of any pure JAX function, or the
    structured Hessian of a model (:func:`jaxlike.model.value_grad_hess`). It is traced once:
    the first loop iteration evaluates the starting point, later ones a trial step (this halves
    compile time compared with evaluating x0 outside the loop).
    Returns a :class:`MinimizeState`.
    """
    x0 = jnp.clip(jnp.asarray(x0), lo, hi)
    n, dtype = x0.shape[0], x0.dtype
    state = MinimizeState(
        x=x0,
        f=jnp.asarray(jnp.inf, dtype),
        grad=jnp.zeros((n,), dtype),
        hess=jnp.eye(n, dtype=dtype),
        lam=jnp.asarray(lam0, dtype),
        nu=jnp.asarray(2.0, dtype),
        iterations=jnp.asarray(-1),
        edm=jnp.asarray(jnp.inf, dtype),
        status=jnp.asarray(-1),
        free=~fixed,
    )

    def cond(s):
        return s.status < 0

    def body(s):
        first = s.iterations < 0
        free = _free_set(s.x, s.grad, lo, hi, fixed)
        escape, t_in = _saddle_escape(s.x, s.f, s.grad, s.hess, lo, hi, free, s.lam)
        free = free & ~escape
        gf = jnp.where(free, s.grad, 0.0)
        dscale = jnp.abs(jnp.diag(s.hess))
        dscale = jnp.maximum(
            dscale, jnp.maximum(1e-8 * jnp.max(jnp.where(free, dscale, 0.0)), 1e-12)
        )
        step, ok, lam_used = _damped_step(s.hess, free, dscale, gf, s.lam)
        # EDM of the current point from the (nearly undamped) Newton step: ½ gᵀ(H+λD)⁻¹g;
        # a point with a saddle direction on a bound is never at a minimum
        edm_here = jnp.where(ok & ~jnp.any(escape), -0.5 * jnp.dot(gf, step), jnp.inf)
        step = jnp.where(escape, t_in, step)
        step = jnp.where(first, 0.0, step)
        x_new = jnp.where(free | escape, jnp.clip(s.x + step, lo, hi), s.x)
        dx = x_new - s.x
        pred = -(jnp.dot(s.grad, dx) + 0.5 * dx @ s.hess @ dx)
        f_new, g_new, h_new = fgh(x_new)
        finite = jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new))
        actual = s.f - f_new
        rho = actual / jnp.where(pred > 0, pred, jnp.inf)
        good = ok & finite & (actual >= 0)
        accept = first | (good & ((rho > 1e-4) | (jnp.abs(actual) <= 1e-14 * (1.0 + jnp.abs(s.f)))))
        lam = jnp.where(
            first,
            s.lam,
            jnp.where(
                accept, lam_used * jnp.maximum(0.1, 1.0 - (2.0 * rho - 1.0) ** 3), lam_used * s.nu
            ),
        )
        lam = jnp.clip(lam, 1e-15, 1e20)
        nu = jnp.where(accept, 2.0, s.nu * 2.0)
        x = jnp.where(accept, x_new, s.x)
        f = jnp.where(accept, f_new, s.f)
        g = jnp.where(accept, g_new, s.grad)
        h = jnp.where(accept, h_new, s.hess)
        it = s.iterations + 1
        # converged: the Newton step from the previous point was tiny (small λ, EDM below tol)
        # and the step was taken; or EDM of the new point (checked next iteration).
        edm = jnp.where(first, jnp.inf, jnp.where(lam < 1e-2, edm_here, s.edm))
        small = (edm < tol) & ~first & (s.lam < 1e-2)
        status = jnp.where(
            first & ~finite,
            3,
            jnp.where(
                small,
                0,
                jnp.where(
                    lam >= 1e12,
                    jnp.where(s.edm < stall_tol, 0, 2),
                    jnp.where(it >= maxiter, 1, -1),
                ),
            ),
        )
        return MinimizeState(
            x=x,
            f=f,
            grad=g,
            hess=h,
            lam=lam,
            nu=nu,
            iterations=it,
            edm=edm,
            status=status,
            free=_free_set(x, g, lo, hi, fixed),
        )

    st = lax.while_loop(cond, body, state)
    return eqx.tree_at(lambda s: s.edm, st, _edm(st.grad, st.hess, st.free))
