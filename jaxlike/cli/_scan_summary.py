"""The summary of ``jaxlike scan``: the JSON document, its table and the stderr report.

A summary holds the timing (:func:`common`), the convergence of the hypotheses with the
checks that failed (:func:`convergence`), the strongest and weakest limits per CL level
(:func:`limits`, from the reliable hypotheses only) and, for patch scans, the hypotheses whose
limits lie above the search range. :func:`summary_text` prints it as a table,
:func:`report` adds the one-line note (limits above the range) and warning (hypotheses that
did not converge, naming the checks) on standard error.
"""

from __future__ import annotations

import sys

import numpy as np

from ._format import table
from ._limit_range import rerun_hint

__all__ = [
    "common",
    "convergence",
    "limits",
    "mass_checks",
    "report",
    "summary_text",
    "toy_summary",
]

_SHOWN = 5  # hypotheses named in messages


def report(s: dict) -> None:
    """The stderr lines after the summary: limits above the search range (a note), and the
    hypotheses that did not converge with the checks that failed (a warning; exit 3)."""
    coord, where = s["coordinate"], s["output"]
    high = s.get("above_range")
    if high:
        names = ", ".join(map(_fmt, high["first"])) + (", ..." if high["count"] > _SHOWN else "")
        print(
            f"jaxlike scan: note: limit > poi_max = {high['poi_max']:g} for {high['count']} of "
            f"{s['hypotheses']} hypotheses ({coord} {names}): CLs is still above α there, so "
            f"their limits are NaN in {where} and left out of the strongest/weakest limits; "
            f"{rerun_hint(high['suggested_poi_max'], high['poi_max'])}",
            file=sys.stderr,
        )
    bad = s["not_converged"]
    if bad["count"]:
        checks = "; ".join(bad.get("checks") or map(_fmt, bad["first"]))
        print(
            f"jaxlike scan: warning: {bad['count']} of {s['hypotheses']} hypotheses did not "
            f"converge ({coord} {checks}{', ...' if bad['count'] > _SHOWN else ''}); their "
            f"results are written to {where} but unreliable",
            file=sys.stderr,
        )


def toy_summary(results, coords, cl, coord_name, toys) -> dict:
    """The toy limits (strongest/weakest, as :func:`limits`) and the smallest toy p0."""
    view = {"ul_obs": results["ul_obs_toys"], "ul_exp": results["ul_exp_toys"]}
    if "ul_obs_toys_phys" in results:
        view |= {"ul_obs_phys": results["ul_obs_toys_phys"],
                 "ul_exp_phys": results["ul_exp_toys_phys"]}  # fmt: skip
    if "ul_obs_toys_coupling" in results:
        view |= {"ul_obs_coupling": results["ul_obs_toys_coupling"],
                 "ul_exp_coupling": results["ul_exp_toys_coupling"]}  # fmt: skip
    out = {"toys": dict(toys), "toy_limits": limits(view, coords, cl, coord_name)}
    p0 = np.asarray(results["p0_toys"], float)
    if np.any(np.isfinite(p0)):
        i = int(np.nanargmin(p0))
        c = coords[i] if isinstance(coords[i], str) else float(coords[i])
        err = float(np.asarray(results["p0_toys_err"], float)[i])
        out["min_p0_toys"] = {coord_name: c, "p0": float(p0[i]), "err": err}
    return out


def common(out, kind, coords, timing) -> dict:
    """The fields every scan summary starts with: kind, coordinate name, results file, number
    of hypotheses (computed, resumed) and the timing (``timing`` from ``_execute``)."""
    seconds, computing, computed, resumed = timing
    return {
        "kind": kind,
        "coordinate": "mass" if kind == "mass" else "patch",
        "output": str(out),
        "hypotheses": int(len(coords)),
        "computed": int(computed),
        "resumed": int(resumed),
        "seconds": round(seconds, 3),
        "compute_seconds": round(computing, 3),
        "hypotheses_per_second": computed / computing if computed and computing > 0 else None,
    }


def mass_checks(results, masses, cl, toys: bool) -> list[list[str]]:
    """Per mass, the checks that failed: the free and background-only fits, the limit search
    at each CL level, the toy limit search."""
    n = len(masses)
    fit = np.asarray(results["fit_converged"], bool)
    lim = np.asarray(results["limit_converged"], bool).reshape(n, -1)
    toy = (np.asarray(results["toy_limit_converged"], bool).reshape(n, -1).all(axis=1) if toys
           else np.ones(n, bool))  # fmt: skip
    out = []
    for i in range(n):
        failed = [] if fit[i] else ["the free or background-only fit did not converge"]
        failed += [f"the {100 * c:g}% CL limit search did not converge"
                   for c, good in zip(cl, lim[i], strict=True) if not good]  # fmt: skip
        failed += [] if toy[i] else ["the toy limit search did not converge"]
        out.append(failed)
    return out


def convergence(ok, coords, checks=None) -> dict:
    """``converged_fraction`` and ``not_converged`` (count, first coordinates and, given the
    per-hypothesis ``checks`` that failed, the first of them as text)."""
    bad = np.flatnonzero(~ok)
    first = [coords[i] if isinstance(coords[i], str) else float(coords[i]) for i in bad[:_SHOWN]]
    out = {"count": int(bad.size), "first": first}
    if checks is not None:
        out["checks"] = [
            f"{_fmt(c)}: {'; '.join(checks[i])}" for c, i in zip(first, bad, strict=False)
        ]
    return {"converged_fraction": float(ok.mean()) if ok.size else 1.0, "not_converged": out}


def limits(results, coords, cl, coord_name, reliable=None, excluded=None) -> list[dict]:
    """Strongest (smallest) and weakest observed limit per CL level, physical units if any.

    ``reliable`` [H, ncl]: only these hypotheses are candidates (the others' limits lie above
    the search range or did not converge); ``excluded``: per level, the counts of hypotheses
    left out and why, stored in the entry."""
    obs, exp, units = results["ul_obs"], results["ul_exp"], "mu"
    if "ul_obs_phys" in results and not np.allclose(
        results["ul_obs_phys"], obs, rtol=1e-12, equal_nan=True
    ):
        obs, exp, units = results["ul_obs_phys"], results["ul_exp_phys"], "physical"
    sets = [("", obs, exp)]
    if "ul_obs_coupling" in results:  # a [physics] parameter: its extremes too
        sets.append(("_coupling", results["ul_obs_coupling"], results["ul_exp_coupling"]))
    out = [{"cl": float(level), "units": units} for level in cl]
    for suffix, o, e in sets:
        o = np.asarray(o, float).reshape(len(coords), -1)
        e = np.asarray(e, float).reshape(len(coords), o.shape[1], -1)
        if reliable is not None:
            o = np.where(reliable, o, np.nan)
        for j, entry in enumerate(out):
            if excluded is not None:
                entry["excluded"] = excluded[j]
            if not np.any(np.isfinite(o[:, j])):
                continue
            for what, i in (("strongest", np.nanargmin(o[:, j])),
                            ("weakest", np.nanargmax(o[:, j]))):  # fmt: skip
                c = coords[i] if isinstance(coords[i], str) else float(coords[i])
                med = float(np.sort(e[i, j])[e.shape[2] // 2])
                entry[what + suffix] = {coord_name: c, "obs": float(o[i, j]), "exp_median": med}
    return out


def summary_text(s: dict) -> str:
    """The summary as a two-column table."""
    rate, coord = s["hypotheses_per_second"], s["coordinate"]
    rows = [
        ["results", s["output"]],
        ["hypotheses", f"{s['hypotheses']} ({s['computed']} computed, {s['resumed']} resumed)"],
        ["time", f"{s['seconds']:.1f} s"],
    ]
    if rate:
        rows[-1][1] += f" ({s['compute_seconds']:.1f} s computing, {rate:.3g} hypotheses/s)"
    if s.get("skipped"):
        rows.append(["skipped files", ", ".join(s["skipped"])])
    bad = s["not_converged"]
    conv = f"{100 * s['converged_fraction']:.4g}%"
    if bad["count"]:
        conv += f" ({bad['count']} not: {coord} " + ", ".join(map(_fmt, bad["first"]))
        conv += ", ...)" if bad["count"] > _SHOWN else ")"
    rows.append(["converged", conv])
    if "above_range" in s:
        a = s["above_range"]
        text = f"{a['count']} hypotheses ({coord} " + ", ".join(map(_fmt, a["first"]))
        text += ", ...)" if a["count"] > _SHOWN else ")"
        rows.append([f"limit > poi_max = {a['poi_max']:g}",
                     f"{text}; {rerun_hint(a['suggested_poi_max'], a['poi_max'])}"])  # fmt: skip
    if "envelope" in s:
        e = s["envelope"]
        wins = ", ".join(f"{n} {c}" for n, c in e["chosen_for_limit"].items())
        how = (
            f"discrete profiling, penalty {e['penalty']:g}/parameter"
            if e["method"] == "profile"
            else "conservative (smallest Z, least stringent limit)"
        )
        rows.append(["background envelope", f"{len(e['models'])} models, {how}"])
        rows.append(["chosen for the limit", wins])
    for sp in s.get("spurious", []):
        where = f" ({sp['segment']})" if "segment" in sp else ""
        at = "x" if "segment" in sp else "mass"  # a segment's hypotheses are its fit variable
        for fit in sp["models"]:
            rows_fit = [r for r in sp["table"] if r["fit"] == fit and r["truth"] != fit]
            if not rows_fit:
                continue
            worst = max(rows_fit, key=lambda r: r["max_abs_ratio"])
            text = (f"max |μ̂/σ| {worst['max_abs_ratio']:.2f} (truth {worst['truth']}, at {at} "
                    f"{_fmt(worst['at_mass'])}), median ≤ "
                    f"{max(r['median_abs_ratio'] for r in rows_fit):.2f}")  # fmt: skip
            rows.append([f"spurious signal{where}, fit {fit}", text])
        if not sp["converged"]:
            rows.append([f"spurious signal{where}", "some fits did not converge (see --json)"])
    if "max_significance" in s:
        z = s["max_significance"]
        text = f"{z['z']:.3g} at mass {_fmt(z['mass'])} (p0 {z['p0']:.3g})"
        rows.append(["largest local Z", text])
    if "excluded" in s:
        e = s["excluded"]
        text = f"{e['observed']} observed, {e['expected']} expected (CLs < {e['alpha']:g})"
        rows.append([f"excluded at μ = {e['test_poi']:g}", text])
    kind = "CLs+b" if s.get("rule") == "clsb" else ""
    for key, label in (("limits", "limit"), ("toy_limits", "toy limit")):
        for entry in s.get(key, []):
            units = " (physical units)" if entry["units"] == "physical" else ""
            for what in ("strongest", "weakest", "strongest_coupling", "weakest_coupling"):
                if what in entry:
                    lim = entry[what]
                    text = f"{lim['obs']:.4g} at {coord} {_fmt(lim[coord])}"
                    on = " on the coupling" if what.endswith("_coupling") else ""
                    text += f" (expected {lim['exp_median']:.4g}){'' if on else units}"
                    name = f"{what.split('_')[0]} {100 * entry['cl']:g}% CL {kind} {label}{on}"
                    rows.append([name.replace("  ", " "), text])
            left = {k: v for k, v in entry.get("excluded", {}).items() if v}
            if left:
                why = {"above_range": "limit > poi_max", "not_converged": "not converged"}
                text = ", ".join(f"{v} ({why[k]})" for k, v in left.items())
                rows.append([f"left out of the {100 * entry['cl']:g}% CL {label}s", text])
    if "min_p0_toys" in s:
        p = s["min_p0_toys"]
        t = s["toys"]
        text = f"{p['p0']:.3g} ± {p['err']:.2g} at {coord} {_fmt(p[coord])} ({t['ntoys']} toys)"
        rows.append(["smallest toy p0", text])
    rows += [["plot", plot] for plot in s.get("plots", [])]
    return table(["scan", "summary"], rows, "<<")


def _fmt(x) -> str:
    return x if isinstance(x, str) else f"{x:.6g}"
