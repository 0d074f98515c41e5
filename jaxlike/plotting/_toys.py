r"""Figures of toy studies: the pull distribution of a bias study, the bias, pull and coverage
of a study per mass, and the sampled test-statistic distributions of a toy-based test."""

from __future__ import annotations

import math

import numpy as np

from ..exceptions import InvalidArgument
from ._style import GREEN, axis_label, figure, output_path, save
from ._style import style as styled

__all__ = ["STAT_LABELS", "plot_study_scan", "plot_test_statistic", "plot_toy_pulls"]

#: the default mass axis label
MASS_LABEL = axis_label("m", "GeV")
#: axis labels of the test statistics (``ToyHypoTestResult.test_stat``)
STAT_LABELS = {"qtilde": r"$\tilde{q}_{\mu}$", "q": r"$q_{\mu}$", "q0": r"$q_0$"}


def _pm(value, err, digits=3) -> str:
    value, err = float(value), float(err)
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}g} ± {err:.2g}" if math.isfinite(err) else f"{value:.{digits}g}"


def _one(result, name):
    pull = np.asarray(result.pull, float)
    if pull.ndim != 1:
        raise InvalidArgument(
            f"{name}: needs the study of one model (pull [N]), got pull of shape {pull.shape}; "
            "take one mass with result.at(i)"
        )
    return pull


def plot_toy_pulls(result, path, *, bins=None, style=None, fmt=None):
    r"""The pulls (μ̂ − μ_t)/σ̂ of a :class:`~jaxlike.infer.ToyStudyResult` as a histogram
    normalised to unit area, with the unit Gaussian N(0, 1) that an unbiased estimator with
    correct uncertainties follows, and N(pull mean, pull width²) of the toys; the legend holds
    the number of toys (failed ones left out), the bias of μ̂ (relative bias where μ_t ≠ 0),
    the pull mean and width and the Hesse coverage with their MC errors.

    ``bins``: histogram bins (default ⌈√N⌉ between 5 and 60, over the finite pulls'
    range, at least [−4, 4]). ``style``: None (plain) or an mplhep style name
    (:data:`~jaxlike.plotting.STYLES`). Returns the path written (PNG or PDF by suffix or
    ``fmt``).
    """
    pull = _one(result, "plot_toy_pulls")
    finite = pull[np.isfinite(pull)]
    lo = min(-4.0, float(finite.min(initial=0.0)))
    hi = max(4.0, float(finite.max(initial=0.0)))
    auto = int(np.clip(math.ceil(math.sqrt(max(finite.size, 1))), 5, 60))
    nb = auto if bins is None else bins
    x = np.linspace(lo, hi, 400)
    mean, width = float(result.pull_mean), float(result.pull_width)
    with styled(style):
        fig, ax = figure()
        heights, _, _ = ax.hist(finite, bins=nb, range=(lo, hi), density=True,
                                histtype="stepfilled", color="#9ecae1", edgecolor="#3182bd",
                                label=f"{finite.size} toys")  # fmt: skip
        ax.plot(x, np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), "k--", label="N(0, 1)")
        if math.isfinite(mean) and math.isfinite(width) and width > 0:
            g = np.exp(-0.5 * ((x - mean) / width) ** 2) / (width * math.sqrt(2 * math.pi))
            ax.plot(x, g, color="tab:red", label="N(mean, width²)")
        mu = float(result.mu_true)
        if mu != 0 and math.isfinite(float(result.relative_bias)):
            rel = 100 * float(result.relative_bias)
            rel_err = 100 * float(result.relative_bias_err)
            bias = f"bias {_pm(result.bias, result.bias_err)} ({rel:+.3g} ± {rel_err:.2g}%)"
        else:
            bias = f"bias {_pm(result.bias, result.bias_err)}"
        cov = f"Hesse coverage {_pm(result.coverage_hesse, result.coverage_hesse_err)}"
        for text in (
            bias,
            f"pull mean {_pm(result.pull_mean, result.pull_mean_err)}",
            f"pull width {_pm(result.pull_width, result.pull_width_err)}",
            cov + f" (CL {result.cl:g})",
        ):
            ax.plot([], [], " ", label=text)
        failed = int(np.sum(np.asarray(result.n_failed)))
        if failed:
            ax.plot([], [], " ", label=f"{failed} failed toys left out")
        ax.set(xlabel=r"pull $(\hat\mu - \mu_t)/\hat\sigma$", ylabel="toys (normalised)",
               xlim=(lo, hi), title=f"$\\mu_t$ = {mu:g}")  # fmt: skip
        top = max(float(np.max(heights, initial=0.0)), 1.0 / math.sqrt(2 * math.pi))
        ax.set_ylim(0, 1.7 * top)  # room for the legend above the peak
        ax.legend(loc="upper right", fontsize="small")
        return save(fig, output_path(path, fmt))


def plot_study_scan(results, masses, path, *, xlabel=MASS_LABEL, style=None, fmt=None):
    r"""Bias, pulls and coverage of a toy study per mass
    (:class:`~jaxlike.scan.MassToyStudyResult`), three panels over ``masses`` [H]:

    - the relative bias (μ̂ − μ_t)/μ_t in % with its MC error (the bias in units of μ where
      any μ_t is 0), around the zero line;
    - the pull mean with its error (points) and the band mean ± pull width, around 0 and ±1;
    - the Hesse and profile-likelihood coverages with binomial errors and the nominal CL.

    ``xlabel``: the mass axis label (``"name [unit]"``); ``style``: None (plain) or an mplhep
    style name (:data:`~jaxlike.plotting.STYLES`). Returns the path written (PNG or PDF by
    suffix or ``fmt``)."""
    x = np.asarray(masses, float).reshape(-1)
    get = {k: np.asarray(getattr(results, k), float).reshape(-1) for k in (
        "mu_true", "bias", "bias_err", "relative_bias", "relative_bias_err", "pull_mean",
        "pull_mean_err", "pull_width", "coverage_hesse", "coverage_hesse_err",
        "coverage_profile", "coverage_profile_err",
    )}  # fmt: skip
    if any(v.size != x.size for v in get.values()):
        raise InvalidArgument(f"masses: {x.size} values, the results hold another number")
    relative = bool(np.all(get["mu_true"] != 0))
    marker = "o" if x.size < 60 else None
    with styled(style):
        fig, axes = figure((8, 9), nrows=3, sharex=True)
        a0, a1, a2 = axes
        if relative:
            y, e, label = 100 * get["relative_bias"], 100 * get["relative_bias_err"], "bias [%]"
        else:
            y, e, label = get["bias"], get["bias_err"], r"bias $\langle\hat\mu\rangle - \mu_t$"
        a0.errorbar(x, y, yerr=e, fmt="k-", marker=marker, ms=3, capsize=0, label="bias")
        a0.axhline(0, color="grey", lw=0.8)
        a0.set(ylabel=label)
        pm, w = get["pull_mean"], get["pull_width"]
        a1.fill_between(x, pm - w, pm + w, color=GREEN, alpha=0.6, lw=0, label="mean ± width")
        a1.errorbar(x, pm, yerr=get["pull_mean_err"], fmt="k-", marker=marker, ms=3,
                    label="pull mean")  # fmt: skip
        for level, ls in ((0, "-"), (1, "--"), (-1, "--")):
            a1.axhline(level, color="grey", lw=0.8, ls=ls)
        a1.set(ylabel="pull")
        a1.legend(loc="best", fontsize="small")
        cl = float(results.cl)
        for name, color, ls, mk in (("hesse", "tab:blue", "--", "s"),
                                    ("profile", "tab:red", "-", "o")):  # fmt: skip
            a2.errorbar(x, get[f"coverage_{name}"], yerr=get[f"coverage_{name}_err"], ls=ls,
                        color=color, marker=mk if marker else None, ms=4, mfc="none",
                        label=f"{name} coverage")  # fmt: skip
        a2.axhline(cl, color="k", ls="--", lw=1, label=f"nominal {cl:g}")
        a2.set(ylabel="coverage", xlabel=xlabel)
        a2.legend(loc="best", fontsize="small")
        if x.size > 1:
            pad = 0.02 * (x.max() - x.min())
            a2.set_xlim(x.min() - pad, x.max() + pad)
        return save(fig, output_path(path, fmt))


def plot_test_statistic(result, path, *, bins=50, style=None, fmt=None):
    r"""The sampled test-statistic distributions of a toy-based test
    (:class:`~jaxlike.infer.ToyHypoTestResult`): histograms of the toys at the tested μ
    (``q_sb``) and at μ_A (``q_b``; μ_A = 0, or 1 for q0), failed toys (NaN) left out, on a
    logarithmic axis, the observed value q_obs as a vertical line and the tails q ≥ q_obs
    shaded, whose fractions are

    .. math::
        CL_{s+b} = P(q \ge q_{obs} \mid \mu), \quad CL_b = P(q \ge q_{obs} \mid \mu_A), \quad
        CL_s = CL_{s+b}/CL_b

    (given in the legend with their MC errors; for q0 p0 = CL_{s+b}). The axis is named after
    the statistic (q̃_μ, q_μ or q_0). ``style``: None (plain) or an mplhep style name
    (:data:`~jaxlike.plotting.STYLES`). Returns the path written (PNG or PDF by suffix or
    ``fmt``)."""
    ts = str(result.test_stat)
    name = STAT_LABELS.get(ts, ts)
    q_sb = np.asarray(result.q_sb, float).reshape(-1)
    q_b = np.asarray(result.q_b, float).reshape(-1)
    q_sb, q_b = q_sb[np.isfinite(q_sb)], q_b[np.isfinite(q_b)]
    q_obs, mu = float(result.q_obs), float(result.mu)
    mu_a = 1.0 if ts == "q0" else 0.0
    top = max(float(np.max(q_sb, initial=0.0)), float(np.max(q_b, initial=0.0)), q_obs, 1.0)
    edges = np.linspace(0.0, 1.02 * top, int(bins) + 1)
    err = {k: getattr(result, f"{k}_obs_err", None) for k in ("clsb", "clb", "cls")}

    def text(k, label):
        v = float(getattr(result, f"{k}_obs"))
        e = err[k]
        return f"{label} = {_pm(v, float(e)) if e is not None else f'{v:.3g}'}"

    with styled(style):
        fig, ax = figure()
        for q, color, label in ((q_sb, "tab:red", f"toys at μ = {mu:g}"),
                                (q_b, "tab:blue", f"toys at μ = {mu_a:g}")):  # fmt: skip
            if q.size == 0:
                continue
            ax.hist(q, bins=edges, histtype="step", color=color, lw=1.5,
                    label=f"{label} ({q.size})")  # fmt: skip
            tail = q[q >= q_obs]
            if tail.size:
                ax.hist(tail, bins=edges, histtype="stepfilled", color=color, alpha=0.25)
        ax.axvline(q_obs, color="k", lw=1.5, label=f"observed {name} = {q_obs:.3g}")
        if ts == "q0":
            ax.plot([], [], " ", label=text("clsb", "$p_0$"))
        else:
            for k, label in (("clsb", "CL$_{s+b}$"), ("clb", "CL$_b$"), ("cls", "CL$_s$")):
                ax.plot([], [], " ", label=text(k, label))
        ax.set_yscale("log")
        ax.set(xlabel=name, ylabel="toys", xlim=(0.0, edges[-1]))
        ax.set_ylim(bottom=0.5)
        ax.legend(loc="upper right", fontsize="small")
        return save(fig, output_path(path, fmt))
