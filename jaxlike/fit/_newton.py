r"""Box-constrained Newton minimiser for piecewise-smooth objectives, entirely inside XLA.

The objective f (2NLL) is smooth except at known *breakpoints*: α = 0 of every parameter that
enters through a piecewise interpolation (histosys code0 and normsys code1: a kink, the first
derivative jumps) and α = ±1 of histosys code2 (the curvature jumps). Between breakpoints, and
inside the box [lo, hi], f is smooth, so the box is cut into *pieces* and the minimiser runs a
projected Newton method on the piece that holds the iterate. Each iteration uses the exact
gradient g and Hessian H of the current piece:

1. *Pieces*: a parameter on a breakpoint b sits at b ± δ (δ = 1e-300 at 0, one ulp at ±1): the
   sign says which piece's formulas are evaluated, so g and H are the one-sided derivatives
   there (the objective differs from f(b) by δ·|g|, far below double precision).
2. *Active set*: a parameter is frozen for the step if it is fixed, on a bound of the box with g
   pushing outwards (projected Newton, Bertsekas 1982), or on a breakpoint with g pushing
   across it. For the last kind the derivative on the far side is evaluated: if it also
   descends across (∂⁻ > 0 coming from the right, ∂⁺ < 0 from the left) the parameter moves to
   the far piece; otherwise the subgradient condition ∂⁻ ≤ 0 ≤ ∂⁺ holds and the parameter is
   *held* there: that coordinate is optimal. A breakpoint where both sides descend (a concave
   kink, two-sided histosys: a double well) is recorded, and :func:`minimize` explores the
   other side too.
3. *Levenberg–Marquardt step* on the free block: (H + λ D) d = −g with Marquardt scaling
   D = diag(|H_ii|) (floored), solved by Cholesky; the trial point is projected onto the piece.
4. *Gain ratio* ρ = (f(x) − f(x')) / (predicted decrease of the quadratic model for the
   projected step). Accept when ρ > 1e-4 and f(x') is finite; then λ ← λ·max(1/3, 1 − (2ρ−1)³),
   else λ ← λ·ν, ν ← 2ν (Nielsen 1999). A non-PD system or a NaN trial is a rejection.
5. *Convergence*: the estimated distance to minimum EDM = ½ gᵀ H⁻¹ g over the free block
   (MINUIT's definition for an objective with up = 1) is below ``tol`` and no parameter changed
   piece. If no step can decrease f any more (λ exceeds 1e12) while EDM < ``stall_tol`` the fit
   is at the floating-point floor and also counts as converged; otherwise it is reported as not
   converged.

Where f is smooth (no breakpoints: pyhf's default codes 4/4p) steps 1–2 reduce to the classic
projected Newton method and cost nothing. The result carries a *certificate*
(:class:`MinimizeState`): the projected gradient (zero on held coordinates), EDM, the reason for
stopping, and the active set (parameters on bounds, held on breakpoints, degenerate).
``RESULTS.converged`` (status code 0) means the certificate holds: EDM finite and below
tolerance over a positive definite free block, every held coordinate satisfies its one-sided
condition (the status items are :class:`jaxlike.fit.RESULTS`).

Because it is a ``lax.while_loop`` with per-element state, the minimiser works under ``jit``
and ``vmap`` (each batch element stops when it has converged).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Bool, Float

from ..linalg import (
    ArrowheadHessian,
    free_min_eigvec,
    hess_diag,
    hess_matvec,
    hess_quad,
    hess_select,
    masked_solve,
    put,
    set_static,
    sym_eigh,
)
from ..model import autodiff_value_grad_hess
from ._control import lazy_cond
from ._results import RESULTS, STATUS, status_code

__all__ = [
    "MinimizeState", "minimize", "autodiff_fgh", "RESULTS", "STATUS", "BREAKPOINT_VALUES"
]  # fmt: skip

#: The breakpoint positions a parameter can have, in the column order of ``breaks`` masks.
BREAKPOINT_VALUES = (-1.0, 0.0, 1.0)
# offset of the one-sided representatives b ± δ: one ulp at ±1, a tiny normal number at 0
# (XLA on CPU flushes subnormals to zero, which would put −δ back on the right side)
_BREAK_DELTA = (2.3e-16, 1e-300, 2.3e-16)
# how many kinks (largest far-side slope first) are explored for a second well
_MAX_WELL_ROUNDS = 6


class MinimizeState(eqx.Module):
    """Result of :func:`minimize` and its convergence certificate (leaves are arrays, batchable).

    Attributes:
        x, f, grad, hess: end point, objective, one-sided gradient and Hessian there.
        result: a :class:`RESULTS` item (``RESULTS.converged``: the certificate holds);
            ``status`` is its integer code (a :data:`STATUS` key, 0: converged).
        edm: ½ g_Fᵀ H_FF⁻¹ g_F over the free block F (inf if H_FF is not positive definite).
        proj_grad: projected gradient — g on free coordinates, 0 on fixed ones, on bounds with
            g pointing outwards and on breakpoints where the one-sided condition holds.
        free: coordinates in the free block of the last step.
        held: coordinates held on a breakpoint (subgradient condition ∂⁻ ≤ 0 ≤ ∂⁺ met).
        at_bound: coordinates on a bound of the box with g pointing outwards.
        degenerate: free coordinates with no curvature (H_ii = 0 relative to the others).
        concave: coordinates that met a breakpoint where both sides descend (a double well);
            the other side has been explored, see ``n_local_minima``.
        n_local_minima: 2 if exploring the other side of a concave breakpoint found a second,
            different certified minimum (the lower one is returned), else 1.
    """

    x: jax.Array
    f: jax.Array
    grad: jax.Array
    hess: jax.Array
    lam: jax.Array
    nu: jax.Array
    iterations: jax.Array
    edm: jax.Array
    result: RESULTS
    free: jax.Array
    held: jax.Array
    at_bound: jax.Array
    concave: jax.Array
    crossed: jax.Array
    proj_grad: jax.Array
    degenerate: jax.Array
    n_local_minima: jax.Array

    @property
    def converged(self):
        return self.result == RESULTS.converged

    @property
    def status(self):
        """Integer status code of ``result`` (:data:`STATUS`; the stored form)."""
        return status_code(self.result)


def autodiff_fgh(fun: Callable[[Float[Array, " n"]], Float[Array, ""]]) -> Callable:
    """(value, gradient, Hessian) of a scalar JAX function by forward-over-reverse autodiff
    (:func:`jaxlike.model.autodiff_value_grad_hess`, the contract's default Hessian)."""
    return autodiff_value_grad_hess(fun)


def _damped_step(h, free, dscale, gf, lam):
    """Solve (H + λD) d = −g, raising λ (×4) until the system is positive definite, so an
    indefinite Hessian far from the minimum costs Cholesky attempts, not likelihood evaluations."""

    def cond(c):
        _, ok, _, tries = c
        return ~ok & (tries < 40)

    def body(c):
        _, _, lam_c, tries = c
        lam_c = jnp.where(tries > 0, jnp.maximum(lam_c * 4.0, 1e-6), lam_c)
        step, ok = masked_solve(h, free, lam_c * dscale, -gf)
        return step, ok, lam_c, tries + 1

    step, ok, lam_used, _ = lax.while_loop(
        cond, body, (jnp.zeros_like(gf), jnp.asarray(False), lam, jnp.asarray(0))
    )
    return step, ok, lam_used


def _bound_resolve(h, x, step, ok, free, pc, gf, damp):
    """The step re-solved for the coordinates it does not push out of their piece.

    A Newton step that crosses a bound (or a breakpoint) of some free coordinates C is clipped
    there, d_C = clip(x + d)_C − x_C; the other free coordinates F' then take the minimiser of
    the same damped quadratic model with d_C held: (H + λD)_F'F' d_F' = −(g_F' + H_F'C d_C).
    Clipping alone keeps d_F' computed for the full, unreachable move of C: its predicted
    decrease is wrong, the step is rejected and λ grows until the step is short (4–6 wasted
    likelihood evaluations for a free fit whose μ̂ < 0 ends on μ = 0). Same step when nothing
    is clipped (one extra Cholesky otherwise; under vmap both branches are evaluated)."""
    hit = free & ok & ((x + step < pc.lo) | (x + step > pc.hi))

    def resolve(h, x, step, hit, free, pc, gf, damp):
        d_c = jnp.where(hit, jnp.clip(x + step, pc.lo, pc.hi) - x, 0.0)
        rest = free & ~hit
        rhs = jnp.where(rest, -(gf + hess_matvec(h, d_c)), 0.0)
        d_rest, ok_rest = masked_solve(h, rest, damp, rhs)
        return jnp.where(ok_rest, jnp.where(rest, d_rest, d_c), step)

    def keep(h, x, step, *_):
        return step

    return lazy_cond(jnp.any(hit), resolve, keep, h, x, step, hit, free, pc, gf, damp)


class _Pieces(eqx.Module):
    """The piece of the box that holds x: bounds, and which edges are breakpoints."""

    lo: jax.Array
    hi: jax.Array
    lo_break: jax.Array  # the lower edge is a breakpoint representative b + δ
    hi_break: jax.Array
    lo_mirror: jax.Array  # b − δ: the same breakpoint seen from the piece below
    hi_mirror: jax.Array


def _pieces(x, lo, hi, breaks):
    """Piece bounds of x: the box, cut at the breakpoints (``breaks`` [P, 3] static or None)."""
    if breaks is None:
        no = jnp.zeros(x.shape, bool)
        return _Pieces(lo, hi, no, no, lo, hi)
    plo, phi = lo, hi
    lo_b = hi_b = jnp.zeros(x.shape, bool)
    lo_m, hi_m = lo, hi
    for k, (b, d) in enumerate(zip(BREAKPOINT_VALUES, _BREAK_DELTA, strict=True)):
        on = jnp.asarray(breaks[:, k])
        right, left = b + d, b - d
        below = on & (x >= right) & (right > plo) & (right < hi)
        plo = jnp.where(below, right, plo)
        lo_b = jnp.where(below, True, lo_b)
        lo_m = jnp.where(below, left, lo_m)
    for k in reversed(range(len(BREAKPOINT_VALUES))):
        b, d = BREAKPOINT_VALUES[k], _BREAK_DELTA[k]
        on = jnp.asarray(breaks[:, k])
        right, left = b + d, b - d
        above = on & (x <= left) & (left < phi) & (left > lo)
        phi = jnp.where(above, left, phi)
        hi_b = jnp.where(above, True, hi_b)
        hi_m = jnp.where(above, right, hi_m)
    return _Pieces(plo, phi, lo_b, hi_b, lo_m, hi_m)


def _snap(x, lo, hi, breaks):
    """Move coordinates lying exactly on a breakpoint to its right-hand representative b + δ
    (pyhf's α ≥ 0 branch), so every point belongs to exactly one piece."""
    x = jnp.clip(x, lo, hi)
    if breaks is None:
        return x
    for k, (b, d) in enumerate(zip(BREAKPOINT_VALUES, _BREAK_DELTA, strict=True)):
        inside = jnp.asarray(breaks[:, k]) & (x > b - d) & (x < b + d) & (b + d < hi)
        x = jnp.where(inside, b + d, x)
    return x


def _bound_flags(x, g, pc, lo, hi):
    """Where x sits on the edges of its piece.

    Returns (bound, on_break, across, x_far): ``bound`` — on a box bound with g pointing out;
    ``on_break`` — on a breakpoint edge; ``across`` — there with g pointing across it;
    ``x_far`` — x with every on-breakpoint coordinate moved to the far side's representative.
    """
    span = jnp.maximum(hi - lo, 1.0)
    at_lo = jnp.where(pc.lo_break, x <= pc.lo, x <= lo + 1e-12 * span)
    at_hi = jnp.where(pc.hi_break, x >= pc.hi, x >= hi - 1e-12 * span)
    brk_lo, brk_hi = at_lo & pc.lo_break, at_hi & pc.hi_break
    out_lo, out_hi = at_lo & (g > 0), at_hi & (g < 0)
    across = (out_lo & brk_lo) | (out_hi & brk_hi)
    bound = (out_lo & ~brk_lo) | (out_hi & ~brk_hi)
    x_far = jnp.where(brk_lo, pc.lo_mirror, jnp.where(brk_hi, pc.hi_mirror, x))
    return bound, brk_lo | brk_hi, across, x_far


def _far_side(grad, x, g, h, x_far, on_break, across, fixed, active, tol):
    """One-sided analysis at breakpoints: (cross, held, concave) masks.

    ∂ on the far side comes from one extra gradient evaluation with every on-breakpoint
    coordinate moved across (a coordinate's first derivative depends only on its own side there,
    as the pieces agree in value). ``cross``: g points across and the far side descends too;
    ``held``: g points across and the far side does not descend (∂⁻ ≤ 0 ≤ ∂⁺, optimal);
    ``concave``: both sides descend from the breakpoint (a double well). A far-side slope
    whose Newton decrease ½ ∂²/H_ii is below 10⁻³ ``tol`` is rounding noise, not descent:
    the coordinate is held (crossing would gain nothing and ping-pong on noise).
    """
    on_break = on_break & ~fixed & active
    g_far = lax.cond(jnp.any(on_break), lambda: grad(x_far), lambda: g)
    right = x > x_far  # on the right-hand representative: the far side lies below
    gain = 0.5 * g_far**2 / jnp.maximum(jnp.abs(hess_diag(h)), 1e-300)
    far_descends = on_break & jnp.where(right, g_far > 0, g_far < 0) & (gain > 1e-3 * tol)
    here_descends = on_break & jnp.where(right, g < 0, g > 0)
    across = across & on_break
    return across & far_descends, across & ~far_descends, here_descends & far_descends


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
    hd = hess_diag(h)
    flat = jnp.abs(g) <= 1e-10 * jnp.maximum(1.0, jnp.abs(f))
    escape = free & (at_lo | at_hi) & flat & (hd < 0) & (hi > lo)
    size = jnp.minimum(jnp.sqrt(2.0 / jnp.where(hd < 0, -hd, 1.0)) / (1.0 + lam), 0.1 * (hi - lo))
    return escape, jnp.where(at_lo, size, -size)


def _edm(g, h, free):
    gf = jnp.where(free, g, 0.0)
    y, ok = masked_solve(h, free, jnp.zeros_like(gf), gf)
    return jnp.where(ok, 0.5 * jnp.dot(gf, y), jnp.inf)


def _degenerate(h, free, edm):
    """Free coordinates along which the objective has no curvature.

    A coordinate with an exactly vanishing Hessian row (|H_ii| ≤ 1e-200: a parameter with no
    effect) is degenerate. If H_FF is not positive definite (EDM not finite) without such a row,
    the coordinates that carry the eigenvector of the smallest eigenvalue of H_FF (|v_i| > 0.3)
    are reported: the flat or descending combination.
    """
    zero = free & (jnp.abs(hess_diag(h)) <= 1e-200)

    def by_eigenvector(h, free):
        return free & (jnp.abs(free_min_eigvec(h, free)) > 0.3)

    def none(h, free):
        return jnp.zeros_like(free)

    need = ~jnp.isfinite(edm) & ~jnp.any(zero)
    return zero | lazy_cond(need, by_eigenvector, none, h, free)


def _initial_state(hess_shape, x0, fixed, lam0):
    """The state before the first iteration of a run from x0 (f = ∞, nothing evaluated yet).
    ``hess_shape``: the structure of fgh's Hessian (``jax.eval_shape``, traced once per
    :func:`minimize`: each trace of a model's fgh costs ~0.05 s of a first compile)."""
    n, dtype = x0.shape[0], x0.dtype
    no = jnp.zeros((n,), bool)
    return MinimizeState(
        x=x0,
        f=jnp.asarray(jnp.inf, dtype),
        grad=jnp.zeros((n,), dtype),
        hess=jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), hess_shape),
        lam=jnp.asarray(lam0, dtype),
        nu=jnp.asarray(2.0, dtype),
        iterations=jnp.asarray(-1),
        edm=jnp.asarray(jnp.inf, dtype),
        result=RESULTS.max_iterations,  # set by the first iteration
        free=~fixed,
        held=no,
        at_bound=no,
        concave=no,
        crossed=no,
        proj_grad=jnp.zeros((n,), dtype),
        degenerate=no,
        n_local_minima=jnp.asarray(1),
    )


def _run(fgh, grad, hess_shape, x0, lo, hi, fixed, breaks, maxiter, tol, stall_tol, lam0,
         given=None):  # fmt: skip
    """One projected-Newton run from x0 (see the module docstring); no certificate pass yet.

    ``given``: ``(x, f, g, h, use)``, the objective already evaluated at x (e.g. the end point
    of a related fit): where ``use`` and x equals the (snapped) start, the run begins with
    these values (its first iteration, the evaluation of x0, is skipped)."""
    state = _initial_state(hess_shape, _snap(x0, lo, hi, breaks), fixed, lam0)
    if given is not None:
        gx, gf, gg, gh, use = given
        use = use & jnp.all(gx == state.x) & jnp.isfinite(gf)
        known = eqx.tree_at(
            lambda s: (s.f, s.grad, s.hess, s.iterations),
            state,
            (jnp.asarray(gf, state.f.dtype), gg, gh, jnp.asarray(0)),
        )
        state = hess_select(use, known, state)

    def cond(c):
        return c[1]

    def body(c):
        s, _ = c
        first = s.iterations < 0
        pc = _pieces(s.x, lo, hi, breaks)
        bound, on_break, across, x_far = _bound_flags(s.x, s.grad, pc, lo, hi)
        if breaks is None:
            cross = held = conc = jnp.zeros_like(fixed)
        else:
            cross, held, conc = _far_side(
                grad, s.x, s.grad, s.hess, x_far, on_break, across, fixed, ~first, tol
            )
        across = across & ~fixed & ~first
        concave = s.concave | conc
        free = ~fixed & ~bound & ~across
        escape, t_in = _saddle_escape(s.x, s.f, s.grad, s.hess, lo, hi, free, s.lam)
        free = free & ~escape
        gf = jnp.where(free, s.grad, 0.0)
        dscale = jnp.abs(hess_diag(s.hess))
        dscale = jnp.maximum(
            dscale, jnp.maximum(1e-8 * jnp.max(jnp.where(free, dscale, 0.0)), 1e-12)
        )
        step, ok, lam_used = _damped_step(s.hess, free, dscale, gf, s.lam)
        # EDM of the current point from the (nearly undamped) Newton step: ½ gᵀ(H+λD)⁻¹g;
        # a point with a saddle direction on a bound is never at a minimum
        edm_here = jnp.where(ok & ~jnp.any(escape), -0.5 * jnp.dot(gf, step), jnp.inf)
        step = _bound_resolve(s.hess, s.x, step, ok, free, pc, gf, lam_used * dscale)
        step = jnp.where(escape, t_in, step)
        step = jnp.where(first, 0.0, step)
        x_new = jnp.where(free | escape, jnp.clip(s.x + step, pc.lo, pc.hi), s.x)
        x_new = jnp.where(cross, x_far, x_new)
        dx = x_new - s.x
        pred = -(jnp.dot(s.grad, dx) + 0.5 * hess_quad(s.hess, dx))
        f_new, g_new, h_new = fgh(x_new)
        finite = jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new))
        actual = s.f - f_new
        rho = actual / jnp.where(pred > 0, pred, jnp.inf)
        good = ok & finite & (actual >= 0)
        tiny = jnp.abs(actual) <= 1e-14 * (1.0 + jnp.abs(s.f))
        accept = first | (good & ((rho > 1e-4) | tiny)) | (finite & jnp.any(cross) & tiny)
        lam = jnp.where(
            first,
            s.lam,
            jnp.where(
                accept, lam_used * jnp.maximum(0.1, 1.0 - (2.0 * rho - 1.0) ** 3), lam_used * s.nu
            ),
        )
        lam = jnp.where(accept & jnp.any(cross) & ~jnp.any(free), s.lam, lam)
        lam = jnp.clip(lam, 1e-15, 1e20)
        nu = jnp.where(accept, 2.0, s.nu * 2.0)
        x = jnp.where(accept, x_new, s.x)
        f = jnp.where(accept, f_new, s.f)
        g = jnp.where(accept, g_new, s.grad)
        h = hess_select(accept, h_new, s.hess)
        it = s.iterations + 1
        # converged: the Newton step from the previous point was tiny (small λ, EDM below tol),
        # no coordinate had to change piece, and the step was taken
        edm = jnp.where(first, jnp.inf, jnp.where(lam < 1e-2, edm_here, s.edm))
        small = (edm < tol) & ~first & (s.lam < 1e-2) & ~jnp.any(cross)
        # the run ends at a non-finite start, on convergence, when no step can decrease f any
        # more (λ ≥ 1e12: converged at the floating-point floor if EDM < stall_tol) or at maxiter
        bad_start, stuck = first & ~finite, lam >= 1e12
        floor = RESULTS.where(
            (s.edm < stall_tol) & ~jnp.any(cross), RESULTS.converged, RESULTS.stalled
        )
        result = RESULTS.where(
            bad_start,
            RESULTS.nonfinite_start,
            RESULTS.where(
                small, RESULTS.converged, RESULTS.where(stuck, floor, RESULTS.max_iterations)
            ),
        )
        running = ~bad_start & ~small & ~stuck & (it < maxiter)
        return MinimizeState(
            x=x,
            f=f,
            grad=g,
            hess=h,
            lam=lam,
            nu=nu,
            iterations=it,
            edm=edm,
            result=result,
            free=free,
            held=held & ~cross,
            at_bound=bound,
            concave=concave,
            crossed=s.crossed | cross,
            proj_grad=jnp.where(free, s.grad, 0.0),
            degenerate=s.degenerate,
            n_local_minima=s.n_local_minima,
        ), running

    return lax.while_loop(cond, body, (state, jnp.asarray(True)))[0]


def _certify(grad, st, lo, hi, fixed, breaks, tol, stall_tol):
    """Recompute the active set at the end point and the certificate: EDM over the free block,
    projected gradient, held/at-bound/degenerate coordinates, final status."""
    pc = _pieces(st.x, lo, hi, breaks)
    bound, on_break, across, x_far = _bound_flags(st.x, st.grad, pc, lo, hi)
    if breaks is None:
        cross = held = jnp.zeros_like(fixed)
    else:
        cross, held, _ = _far_side(
            grad, st.x, st.grad, st.hess, x_far, on_break, across, fixed, True, tol
        )
    free = ~fixed & ~bound & ~held
    edm = _edm(st.grad, st.hess, free)
    degenerate = _degenerate(st.hess, free, edm)
    pgrad = jnp.where(free, st.grad, 0.0)
    flat = jnp.any(degenerate & (jnp.abs(hess_diag(st.hess)) <= 1e-200))
    result = st.result
    # a converged run is demoted, first failing check first: a piece change is pending, a flat
    # direction, H_FF not positive definite, EDM above the stall tolerance
    for failed, item in (
        (jnp.any(cross), RESULTS.stalled),
        (flat, RESULTS.degenerate),
        (~jnp.isfinite(edm), RESULTS.not_positive_definite),
        (edm > stall_tol, RESULTS.stalled),
    ):
        result = RESULTS.where((result == RESULTS.converged) & failed, item, result)
    return eqx.tree_at(
        lambda s: (s.edm, s.free, s.held, s.at_bound, s.proj_grad, s.degenerate, s.result),
        st,
        (edm, free, held, bound, pgrad, degenerate, result),
    )


def _far_wells(value, st, fixed, breaks):
    """Kinks at α = 0 whose far side may hold another minimum: (mask, far-side slope).

    For each coordinate i with a kink at 0 that ended off its kink (not held), the one-sided
    derivative of f along e_i just across the kink (α_i = ∓δ, the other coordinates at the end
    point) is evaluated by a forward-mode directional derivative. If it descends away from the
    kink, the interpolation has a concave kink there and a second well may exist on that side.
    """
    idx = np.flatnonzero(breaks[:, 1])
    xi = st.x[idx]
    live = ~fixed[idx] & ~st.held[idx] & (jnp.abs(xi) > 1e-290)
    far = -jnp.sign(xi) * 1e-300

    def slope(i, v):
        x = put(st.x, i, v)
        e = put(jnp.zeros_like(x), i, 1.0)
        return jax.jvp(value, (x,), (e,))[1]

    g = jax.vmap(slope)(jnp.asarray(idx), far)
    down = live & jnp.where(xi > 0, g > 0, g < 0)
    mask = set_static(jnp.zeros(st.x.shape, bool), idx, down)
    return mask, set_static(jnp.zeros(st.x.shape, st.x.dtype), idx, jnp.abs(g))


#: λ₀ of the second, heavily damped run from the starting point (a path close to steepest
#: descent in Marquardt scaling, which often ends in a different basin than Newton's)
_DAMPED_LAM0 = 10.0
#: grid points per parameter of the coordinate probe, and how many probe restarts at most
_PROBE_POINTS = 41  # step (hi − lo)/40: 0.25 on pyhf's α box [−5, 5], so 0 and ±1 are on it
_MAX_PROBE_ROUNDS = 3
#: ``search=None`` (the default) runs the probe, the damped run and the sweep run for at most
#: this many probed parameters. Their cost grows with the number of parameters (the sweep is
#: sequential in them): on the ATLAS ERJR likelihood (46 scalar parameters) they made a
#: hypothesis test ~100× slower (1.3 s instead of 0.013 s). ``search=True`` forces them.
SEARCH_MAX_PARS = 32


def _probe(value, st, lo, hi, fixed, probe):
    """Coordinate probe of a certified end point: f along each probed coordinate over its whole
    range (a uniform grid of :data:`_PROBE_POINTS` values, both bounds included), the others
    held. Returns (found, x): whether some grid point is lower than f(x̂) by more than
    1e-7 + 1e-13 |f|, and the lowest such point. It catches minima a local method cannot see
    from x̂: the far well of a double well, a constrained minimum on a bound (a normalisation
    driven to 0), at the cost of #probed × grid evaluations of f (no derivatives)."""
    idx, grid, pts = _probe_points(st, lo, hi, probe)
    return _probe_pick(jax.vmap(value)(pts), st, fixed, idx, grid)


def _probe_points(st, lo, hi, probe):
    """The grid of :func:`_probe`: (idx, grid [k, G], points [k·G, n])."""
    idx = np.flatnonzero(probe)
    t = jnp.linspace(0.0, 1.0, _PROBE_POINTS, dtype=st.x.dtype)
    grid = lo[idx, None] + t[None, :] * (hi[idx] - lo[idx])[:, None]  # [k, G]
    pts = jax.vmap(lambda i, row: jax.vmap(lambda v: put(st.x, i, v))(row))(jnp.asarray(idx), grid)
    return idx, grid, pts.reshape(-1, st.x.shape[0])


def _probe_pick(vals, st, fixed, idx, grid):
    """(found, x, f) of :func:`_probe` from the objective on its grid points (flat [k·G])."""
    vals = vals.reshape(grid.shape)
    vals = jnp.where(fixed[idx, None] | ~jnp.isfinite(vals), jnp.inf, vals)
    k = jnp.argmin(vals)
    i, j = k // _PROBE_POINTS, k % _PROBE_POINTS
    best = vals.reshape(-1)[k]
    found = best < st.f - (1e-7 + 1e-13 * jnp.abs(st.f))
    return found, put(st.x, jnp.asarray(idx)[i], grid[i, j]), best


#: half-width of the eigen-direction probe, in standard deviations along each direction, and
#: how many of the softest directions also get probe points relaxed by one Newton step
_EIGEN_PROBE_SIGMAS = 6.0
_EIGEN_RELAX_DIRECTIONS = 3


def _eigen_probe(value, st, lo, hi, fixed, extra=None):
    """Probe along the eigenvectors of the Hessian at a certified end point: for each
    eigenvector v_k of H restricted to the free parameters (eigenvalue w_k of 2NLL), f at
    x̂ + s v_k for :data:`_PROBE_POINTS` values of s in ±:data:`_EIGEN_PROBE_SIGMAS` σ_k,
    σ_k = √(2 / w_k) (capped at the widest probed range), each point clipped to the box.
    Where parameters are strongly correlated (two normalisations on near-identical shapes, a
    normsys pulling with them), the other well of a double well lies along a soft eigen-
    direction, not along a coordinate: the coordinate probe cannot see it from x̂ (moving one
    coordinate alone climbs the steep direction). All free parameters take part (``probe``
    only switches the search on). Same return as :func:`_probe`. Dense Hessians only (a
    structured arrowhead Hessian keeps the coordinate probe).

    ``extra``: further points [E, n] evaluated in the same batch (the coordinate probe's
    grid: the objective is then traced and compiled once for both); their values are
    returned as a fourth item."""
    n = st.x.shape[0]  # one direction per parameter: per-bin γ relax with the others
    h = st.hess
    free = ~fixed
    both = free[:, None] & free[None, :]
    scale = jnp.max(jnp.where(free, jnp.abs(jnp.diagonal(h)), 0.0)) + 1.0
    a = jnp.where(both, h, 0.0) + jnp.diag(jnp.where(free, 0.0, 1e6 * scale))
    w, v = sym_eigh(a)
    usable = (w > 1e-12 * scale) & (w < 1e5 * scale) & jnp.all(jnp.isfinite(v), axis=0)
    span = jnp.max(jnp.where(free, hi - lo, 0.0))
    half = jnp.minimum(_EIGEN_PROBE_SIGMAS * jnp.sqrt(2.0 / jnp.where(usable, w, 1.0)), span)
    t = jnp.linspace(-1.0, 1.0, _PROBE_POINTS, dtype=st.x.dtype)

    def point(c, s):
        return jnp.clip(st.x + v[:, c] * s, lo, hi)

    pts = jax.vmap(lambda c: jax.vmap(lambda s: point(c, s))(t * half[c]))(jnp.arange(n))
    flat = pts.reshape(-1, n)  # [n·G, n]
    # along the softest directions, relax the others by one Newton step of the quadratic
    # model at x̂ (the gradient at the probe point, H's other eigenpairs): the far well of a
    # curved valley is off the straight eigen-line by more than its depth
    m = min(_EIGEN_RELAX_DIRECTIONS, n)
    soft = jnp.argsort(jnp.where(usable, w, jnp.inf))[:m]
    sel = pts[soft]  # [m, G, n]
    grads = jax.vmap(jax.vmap(jax.grad(value)))(sel)  # [m, G, n]
    c = grads @ v  # gradient in eigen coordinates
    keep = usable[None, :] & (jnp.arange(n)[None, :] != soft[:, None])  # [m, n]
    step_e = jnp.where(keep[:, None, :], -c / jnp.where(usable, w, 1.0), 0.0)
    step = step_e @ v.T  # [m, G, n]
    relaxed = jnp.clip(sel + jnp.where(jnp.isfinite(step), step, 0.0), lo, hi).reshape(-1, n)
    # one batch of the objective for the eigen-line points, the relaxed points and ``extra``:
    # one compiled copy of the objective instead of two or three
    batch = [flat, relaxed] if extra is None else [flat, relaxed, extra]
    all_first = jax.vmap(value)(jnp.concatenate(batch))
    n_eig, n_rel = n * _PROBE_POINTS, m * _PROBE_POINTS
    vals = all_first[:n_eig].reshape(n, _PROBE_POINTS)  # [n, G]
    vals = jnp.where(usable[:, None] & jnp.isfinite(vals), vals, jnp.inf)
    rvals = all_first[n_eig : n_eig + n_rel].reshape(m, _PROBE_POINTS)
    rvals = jnp.where(usable[soft][:, None] & jnp.isfinite(rvals), rvals, jnp.inf)
    all_pts = jnp.concatenate([flat, relaxed])
    all_vals = jnp.concatenate([vals.reshape(-1), rvals.reshape(-1)])
    j = jnp.argmin(all_vals)
    best = all_vals[j]
    found = best < st.f - (1e-7 + 1e-13 * jnp.abs(st.f))
    if extra is None:
        return found, all_pts[j], best
    return found, all_pts[j], best, all_first[n_eig + n_rel :]


def _sweep(value, x, lo, hi, fixed, probe, passes=2):
    """Coordinate-descent start: ``passes`` Gauss–Seidel sweeps over the probed coordinates,
    each set in turn to the lowest of its :data:`_PROBE_POINTS` grid values over [lo, hi] (or
    kept, if none is lower), the others held. Evaluations of f only. From the starting point
    this lands in the basin the separate 1-D profiles prefer, which is often not the one the
    Newton path from the same start falls into (products of normalisations and extreme
    interpolations make several)."""
    idx = jnp.asarray(np.tile(np.flatnonzero(probe), passes))
    t = jnp.linspace(0.0, 1.0, _PROBE_POINTS, dtype=x.dtype)

    def step(k, y):
        i = idx[k]
        grid = jnp.concatenate([lo[i] + t * (hi[i] - lo[i]), y[i][None]])
        vals = jax.vmap(lambda v: value(put(y, i, v)))(grid)
        vals = jnp.where(jnp.isfinite(vals), vals, jnp.inf)
        vals = put(vals, _PROBE_POINTS, vals[_PROBE_POINTS] - 1e-12)  # keeping y[i] wins ties
        return jnp.where(fixed[i], y, put(y, i, grid[jnp.argmin(vals)]))

    return lax.fori_loop(0, idx.shape[0], step, x)


def minimize(
    fgh: Callable,
    x0: Float[ArrayLike, " n"],
    lo: Float[ArrayLike, " n"],
    hi: Float[ArrayLike, " n"],
    fixed: Bool[ArrayLike, " n"],
    *,
    breaks: Bool[np.ndarray, "n 3"] | None = None,
    starts: Float[ArrayLike, "k n"] | None = None,
    probe: Bool[np.ndarray, " n"] | None = None,
    value: Callable[[Float[Array, " n"]], Float[Array, ""]] | None = None,
    search: bool | None = None,
    maxiter: int = 200,
    tol: float = 1e-10,
    stall_tol: float = 1e-6,
    lam0: float = 1e-4,
    given: tuple | None = None,
) -> MinimizeState:
    """Minimise f over the box [lo, hi] with ``fixed`` parameters held at ``x0``.

    ``fgh(x)`` returns (f, ∇f, ∇²f) — e.g. :func:`autodiff_fgh` of any pure JAX function, or the
    structured Hessian of a model (:func:`jaxlike.model.value_grad_hess`). It is traced once
    inside the loop (the first iteration evaluates the starting point, later ones a trial step).
    ``breaks``: static boolean array [n, 3] marking, per parameter, breakpoints of f at
    α = −1, 0, +1 (:data:`BREAKPOINT_VALUES`), or None for a smooth objective.

    One run of the projected Newton method finds a local minimum. The likelihoods of
    HistFactory are not convex (products of normalisations and interpolated factors, two-sided
    histosys making double wells, normalisations that a bound makes optimal at 0), so further
    runs look for a lower one, each one certified, the lowest certified minimum kept:

    1. *Coordinate probe* (``probe``, a static mask of parameters; default: all):
       f along each probed coordinate over its range from the best point (see :func:`_probe`)
       and along each eigenvector of the probed Hessian block (:func:`_eigen_probe`: wells
       along correlated directions); the lowest lower grid point is a restart. At most
       :data:`_MAX_PROBE_ROUNDS` such restarts.
    2. *Double wells* at kinks: a kink at 0 whose far side descends from the kink (or met
       concave on the way) is explored, the coordinate mirrored (largest far-side slope
       first). Each new best point makes every other kink a candidate again: a greedy descent
       over the sign patterns of the kinked coordinates, up to ``min(3 #kinks, 18)`` runs.
    3. *Other starts*: a heavily damped run from ``x0`` (λ₀ = :data:`_DAMPED_LAM0`, a path near
       steepest descent), a run from the coordinate-descent point of ``x0`` (:func:`_sweep`,
       probed coordinates), then every row of ``starts`` ([K, n], e.g. the results of related
       fits; fixed coordinates are taken from ``x0``, rows with a NaN are skipped).

    1. and the damped and sweep runs of 3. run with ``search=True``, and by default
    (``search=None``) for at most :data:`SEARCH_MAX_PARS` probed parameters (larger models keep
    2. and ``starts``). ``search=False`` skips them always (a continuation from a nearby minimum,
    e.g. the fits of a limit search warm-started from the previous μ). A run that did not
    converge is first retried once from its end point. ``n_local_minima`` is
    2 if a different certified minimum was found (the lower one is returned). Returns a
    :class:`MinimizeState` (the certificate).

    ``value(x)``: f alone (default ``fgh(x)[0]``), for the probes, the coordinate descent and
    the kink slopes, which need no Hessian; where it is given, its reverse-mode gradient also
    gives the far-side slopes of :func:`_far_side` (a smaller program than another fgh).

    ``given=(x, f, g, h)``: the objective's values at a point x (e.g. the end point of a
    related fit, ``st.x, st.f, st.grad, st.hess``). Where x equals the start x0 (after x0 is
    clipped to the box and moved off breakpoints) and f is finite, the run from x0 starts
    with them instead of an iteration that evaluates fgh(x0); elsewhere they are ignored. The
    same run, one iteration shorter: where many small fits run (the toys), an iteration's
    bookkeeping costs more than the evaluation.
    """
    x0 = jnp.asarray(x0)
    n = x0.shape[0]
    lo, hi, fixed = jnp.asarray(lo, x0.dtype), jnp.asarray(hi, x0.dtype), jnp.asarray(fixed)
    if breaks is not None:
        breaks = np.asarray(breaks, bool).reshape(n, len(BREAKPOINT_VALUES))
        if not breaks.any():
            breaks = None
    probe = np.full(n, True) if probe is None else np.asarray(probe, bool).reshape(n)
    if search is None:
        search = bool(probe.sum() <= SEARCH_MAX_PARS)
    search = bool(search) and bool(probe.any())
    probe = probe & search
    # the far-side slopes at kinks (:func:`_far_side`): reverse-mode ∇f where f is given on
    # its own, a smaller program than a second copy of fgh (its Hessian is never used there)
    grad = (lambda x: fgh(x)[1]) if value is None else jax.grad(value)
    if value is None:
        value = lambda x: fgh(x)[0]  # noqa: E731
    hess_shape = jax.eval_shape(lambda: fgh(x0)[2])
    slots = []
    if search:  # the damped run from x0, the run from its coordinate-descent point
        slots.append(x0[None])
        if probe.any():
            slots.append(_sweep(value, x0, lo, hi, fixed, probe)[None])
    # (a starting point with a non-finite objective is the caller's error, reported as
    # RESULTS.nonfinite_start by round 0, not repaired by a search slot that happens to
    # overwrite the bad coordinate: those slots are skipped then)
    n_search = sum(a.shape[0] for a in slots)
    if starts is not None:
        starts = jnp.asarray(starts, x0.dtype).reshape(-1, n)
        ok = jnp.all(jnp.isfinite(starts), axis=1, keepdims=True)
        slots.append(jnp.where(ok, jnp.where(fixed, x0, starts), jnp.nan))
    n_slots = sum(a.shape[0] for a in slots)
    if not slots:
        slots = [jnp.full((1, n), jnp.nan, x0.dtype)]
    slots = jnp.concatenate(slots)  # slot 0: the damped run from x0 (with search)
    lam_slots = jnp.full((slots.shape[0],), lam0, x0.dtype)
    if search:
        lam_slots = put(lam_slots, 0, _DAMPED_LAM0)

    def run(x, lam, first):
        known = None if given is None else (*given, first)
        st = _run(fgh, grad, hess_shape, x, lo, hi, fixed, breaks, maxiter, tol, stall_tol, lam,
                  known)  # fmt: skip
        return _certify(grad, st, lo, hi, fixed, breaks, tol, stall_tol)

    kinks0 = 0 if breaks is None else int(breaks[:, 1].sum())
    # round 0 is the run from x0; then at most this many further runs
    rounds = min(3 * kinks0, 3 * _MAX_WELL_ROUNDS) + _MAX_PROBE_ROUNDS + slots.shape[0] + 1
    finite_slot = jnp.all(jnp.isfinite(slots), axis=1) & (jnp.arange(slots.shape[0]) < n_slots)
    search_slot = jnp.arange(slots.shape[0]) < n_search

    def far(st):
        if breaks is None:
            return jnp.zeros_like(fixed), jnp.zeros(st.x.shape, st.x.dtype)
        w, slope = _far_wells(value, st, fixed, breaks)
        return w | st.concave, slope

    def next_start(best, tried, slot, probes, retried, bad_start):
        """(any, x1, λ₀, tried', slot', probes', retried') of the next run, by priority:
        retry a failed run, probe restart, kink mirror, next slot without a NaN (rows with a
        NaN are skipped without a run)."""
        retry = ~best.converged & ~retried
        if probe.any() and isinstance(best.hess, ArrowheadHessian):
            has_probe, x_probe, _ = _probe(value, best, lo, hi, fixed, probe)
        elif probe.any():  # both probes' points in one batch of the objective
            idx, grid, cpts = _probe_points(best, lo, hi, probe)
            has_eig, x_eig, f_eig, cvals = _eigen_probe(value, best, lo, hi, fixed, extra=cpts)
            has_probe, x_probe, f_probe = _probe_pick(cvals, best, fixed, idx, grid)
            take = has_eig & (~has_probe | (f_eig < f_probe))
            x_probe = jnp.where(take, x_eig, x_probe)
            has_probe = has_probe | has_eig
        if probe.any():
            has_probe = has_probe & (probes < _MAX_PROBE_ROUNDS) & best.converged
        else:
            has_probe, x_probe = jnp.asarray(False), best.x
        w, slope = far(best)
        cand = w & ~tried
        i = jnp.argmax(jnp.where(cand, slope, -1.0))
        has_kink = jnp.any(cand)
        flip = cand & (jnp.arange(n) == i) & has_kink
        x_kink = jnp.where(flip, -best.x, best.x)
        ahead = finite_slot & ~(bad_start & search_slot) & (jnp.arange(slots.shape[0]) >= slot)
        s = jnp.argmax(ahead)  # the next usable slot
        in_slots = jnp.any(ahead)
        use_probe = ~retry & has_probe
        use_kink = ~retry & ~has_probe & has_kink
        use_slot = ~retry & ~has_probe & ~has_kink & in_slots
        x1 = jnp.where(retry, best.x, jnp.where(use_probe, x_probe,
                       jnp.where(use_kink, x_kink, slots[s])))  # fmt: skip
        lam = jnp.where(use_slot, lam_slots[s], jnp.asarray(lam0, x0.dtype))
        return (
            retry | has_probe | has_kink | in_slots,
            x1,
            lam,
            tried | jnp.where(use_kink, flip, False),
            jnp.where(use_slot, s + 1, slot),
            probes + jnp.where(use_probe, 1, 0),
            retried | retry,
        )

    def cond(c):
        return (c[2] <= rounds) & c[4][0]

    def body(c):
        best, tried_before, k, nmin, (_, x1, lam, tried, slot, probes, retried), bad0 = c
        # one traced run serves every round (round 0: the run from x0, whose result is taken
        # as it is), which halves the compiled program against a separate first run
        first = k == 0
        st = run(x1, lam, first)
        bad0 = bad0 | (first & (st.result == RESULTS.nonfinite_start))
        ok1, ok2 = best.converged, st.converged
        # a certified run replaces a failed one, except a degenerate one (degenerate or not
        # positive definite: a valley, not a point) that it does not undercut: ending the same
        # valley on a bound certifies one point of many, and the degeneracy must stay reported
        deg = (best.result == RESULTS.degenerate) | (best.result == RESULTS.not_positive_definite)
        lower = st.f < best.f - 1e-9 * (1.0 + jnp.abs(best.f))
        better = first | (ok2 & ~ok1 & (~deg | lower)) | ((ok1 == ok2) & (st.f < best.f - 1e-12))
        other = (
            ~first
            & ok1
            & ok2
            & (jnp.abs(st.f - best.f) > 1e-6)
            & (jnp.max(jnp.abs(st.x - best.x)) > 1e-4)
        )
        its = jnp.where(first, 0, best.iterations) + st.iterations
        new = hess_select(better, st, best)
        new = eqx.tree_at(lambda s: s.iterations, new, its)
        # a new best point: every kink is a candidate again, except the one just flipped (a
        # greedy descent over the sign patterns of the kinked coordinates)
        tried = jnp.where(better & ~first, tried & ~tried_before, tried)
        nxt = next_start(new, tried, slot, probes, retried, bad0)
        return new, tried, k + 1, jnp.where(other, 2, nmin), nxt, bad0

    no = jnp.zeros_like(fixed)
    lam_first = jnp.asarray(lam0, x0.dtype)
    # the state before round 0 (never used as a result: round 0 replaces it)
    blank = _initial_state(hess_shape, x0, fixed, lam_first)
    z = jnp.asarray(0)
    init = (blank, no, z, jnp.asarray(1),
            (jnp.asarray(True), x0, lam_first, no, z, z, jnp.asarray(False)),
            jnp.asarray(False))  # fmt: skip
    best, _, _, nmin, _, _ = lax.while_loop(cond, body, init)
    return eqx.tree_at(lambda s: s.n_local_minima, best, nmin)
