"""``jaxlike scan WORKSPACE --patchset FILE | --patches DIR``: patch scans of HEPData grids.

The background-only workspace plus one signal patch per hypothesis, scanned by
:func:`jaxlike.scan.patch_scan`. ``--patches DIR`` takes every patch file of a folder and
skips (and names) the JSON files that are not patches: the background-only workspace that
HEPData ships beside them (``BkgOnly.json``), a patchset, anything else.

After the scan, hypotheses whose limit search did not converge are checked
(:func:`jaxlike.cli._limit_range.check_limits`): a limit above the search range (CLs still
above α at μ_max) is reported as such, with a ``--poi-max`` that would bracket it, and is not a
convergence failure; a genuine failure names the check that failed and exits 3. The strongest
and weakest limits of the summary come from the hypotheses whose every limit lies in range.
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import numpy as np

from ._io import CliError, load_workspace, read_json
from ._scan_summary import common, limits, toy_summary

__all__ = ["patch_scan_command", "read_patch_folder"]

_SHOWN = 5  # hypotheses named in messages


def _kind(doc) -> str | None:
    """What a JSON document is when it is not a patch (None: a patch, to be validated)."""
    if isinstance(doc, list):
        return None
    if isinstance(doc, dict):
        if "channels" in doc:
            return "a workspace"
        if "patches" in doc:
            return "a patchset"
        if "patch" in doc:
            return None
    return "not a patch"


def read_patch_folder(folder: Path, workspace, workspace_path: str):
    """``(PatchSet, skipped)`` of the patch files in ``folder`` (``*.json``, name order).

    Each file is a JSON list of RFC 6902 operations or one patchset entry ``{"metadata",
    "patch"}``; files that are no patch (the workspace ``workspace_path`` itself, any other
    workspace, a patchset, other JSON) are skipped and listed in ``skipped`` as ``"NAME (what
    it is)"``. Names and coordinates follow :func:`jaxlike.scan.load_patch_folder` (``patch.``
    dropped, ``ERJR_100p0_20p0`` → 100.0, 20.0), so a scan file of either resumes with the
    other. An invalid patch is a :class:`CliError` naming its file.
    """
    from ..exceptions import InvalidPatch
    from ..scan import patch_name_values
    from ..workspace import PatchSet, digest, load_patch

    if not folder.is_dir():
        raise CliError(f"--patches {folder}: no such folder of patch files")
    own = Path(workspace_path).resolve() if workspace_path != "-" else None
    files, ops, skipped, patchsets = [], [], [], []
    for f in sorted(folder.glob("*.json")):
        if own is not None and f.resolve() == own:
            skipped.append(f"{f.name} (the workspace)")
            continue
        doc = read_json(str(f), "patch")
        kind = _kind(doc)
        if kind is not None:
            skipped.append(f"{f.name} ({kind})")
            patchsets += [f] if kind == "a patchset" else []
            continue
        try:
            ops.append(load_patch(doc))
        except InvalidPatch as err:
            raise CliError(f"{f}: {err}") from None
        files.append(f)
    if not files:
        hint = f"; pass the patchset with --patchset {patchsets[0]}" if patchsets else ""
        seen = f" (skipped {', '.join(skipped)})" if skipped else ""
        raise CliError(f"--patches {folder}: no patch files{seen}{hint}")
    stems = [re.sub(r"\W", "_", f.stem.removeprefix("patch.")) for f in files]
    values, labels = patch_name_values(stems)
    entries = [{"metadata": {"name": n, "values": v}, "patch": o}
               for n, v, o in zip(stems, values, ops, strict=True)]  # fmt: skip
    meta = {
        "description": f"patch files in {folder}",
        "digests": {"sha256": digest(workspace.to_dict(), "sha256")},
        "labels": labels,
    }
    try:
        return PatchSet({"metadata": meta, "patches": entries, "version": "1.0.0"}), skipped
    except InvalidPatch as err:
        raise CliError(f"--patches {folder}: {err}") from None


def _load_patchset(args, workspace):
    """``(PatchSet, source, skipped files)`` of ``--patches``/``--patchset``."""
    from ..exceptions import InvalidPatch
    from ..workspace import PatchSet

    if args.patches is not None:
        ps, skipped = read_patch_folder(Path(args.patches), workspace, args.config)
        if skipped:
            print(f"jaxlike scan: note: --patches {args.patches}: skipped "
                  f"{', '.join(skipped)}", file=sys.stderr)  # fmt: skip
        return ps, "patches", skipped
    if not Path(args.patchset).is_file():
        raise CliError(f"{args.patchset}: no such patchset file")
    try:
        ps = PatchSet.load(args.patchset)
    except InvalidPatch as err:
        raise CliError(f"{args.patchset}: {err}") from None
    for p in ps:
        if any(isinstance(v, str) for v in p.values):
            raise CliError(f"{args.patchset}: patch {p.name} has non-numeric values {p.values}")
    try:
        ps.verify(workspace)
    except InvalidPatch as err:
        print(f"jaxlike scan: warning: {args.patchset}: {err}", file=sys.stderr)
    return ps, "patchset", []


def _check_hypotheses(workspace, patches, results, cl, mu_max, rule):
    """Per hypothesis: (above [H, ncl, 6], failure texts {index: [...]}, suggested μ_max).

    Hypotheses whose CLs test or toy limits did not converge are failures as stored; those
    whose asymptotic limit search did not converge are checked with
    :func:`~jaxlike.cli._limit_range.check_limits` on their unified model (as scanned)."""
    from ..workspace import Workspace, unify_patches
    from ._limit_range import check_limits, limit_range

    n, ncl = np.shape(results["ul_obs"])
    above, failed, suggestions = np.zeros((n, ncl, 6), bool), {}, []
    cls_ok = np.asarray(results["cls_converged"], bool)
    lim_ok = np.asarray(results["limit_converged"], bool).reshape(n, ncl)
    for i in np.flatnonzero(~cls_ok):
        failed.setdefault(i, []).append("a fit of the CLs test did not converge")
    if "toy_limit_converged" in results and results["toy_limit_converged"] is not None:
        toy_ok = np.asarray(results["toy_limit_converged"], bool).reshape(n, -1).all(axis=1)
        for i in np.flatnonzero(~toy_ok):
            failed.setdefault(i, []).append("the toy limit search did not converge")
    todo = np.flatnonzero(~lim_ok.all(axis=1))
    if todo.size:
        specs = unify_patches(workspace, list(patches))
        for i in todo:
            ws = Workspace(specs[i])
            model = ws.model()
            top = limit_range(model, mu_max)
            check = check_limits(
                model, ws.data(model), results["ul_obs"][i], results["ul_exp"][i], lim_ok[i],
                cl, top, rule=rule,
            )  # fmt: skip
            above[i] = check.above
            if check.failed:
                failed.setdefault(i, []).extend(check.failed)
            if check.above.any():
                suggestions.append(check.suggestion)
    suggestion = max(suggestions) if suggestions and np.all(np.isfinite(suggestions)) else np.nan
    return above, failed, suggestion, top if todo.size else None


def _reliability(summary, results, names, cl, args, workspace, patches):
    """Add ``above_range`` and the per-hypothesis checks to ``summary``; return the mask of
    hypotheses whose limits are all in range and converged [H, ncl] and the failure mask."""
    above, failed, suggestion, top = _check_hypotheses(
        workspace, patches, results, cl, args.poi_max, args.rule
    )
    bad = np.zeros(len(names), bool)
    bad[list(failed)] = True
    ok = ~bad
    checks = [f"{names[i]}: {'; '.join(failed[i])}" for i in sorted(failed)[:_SHOWN]]
    summary.update(
        converged_fraction=float(ok.mean()) if ok.size else 1.0,
        not_converged={"count": int(bad.sum()),
                       "first": [names[i] for i in np.flatnonzero(bad)[:_SHOWN]],
                       "checks": checks},
    )  # fmt: skip
    out_of_range = above.any(axis=(1, 2))
    if out_of_range.any():
        summary["above_range"] = {
            "poi_max": top,
            "count": int(out_of_range.sum()),
            "first": [names[i] for i in np.flatnonzero(out_of_range)[:_SHOWN]],
            "suggested_poi_max": float(suggestion),
        }
    reliable = ok[:, None] & ~above.any(axis=2)
    return reliable, bad


def patch_scan_command(args):
    """``(summary, exit code)`` of ``jaxlike scan WORKSPACE --patchset/--patches``."""
    import jaxlike.scan as js

    from ._scan import EXIT_NOT_CONVERGED, _execute, _output, _resume_shortcut, toy_args

    cl = tuple(args.cl or (0.95,))
    if not all(0.0 < x < 1.0 for x in cl):
        raise CliError(f"--cl must lie between 0 and 1, not {', '.join(f'{x:g}' for x in cl)}")
    test_poi = 1.0 if args.test_poi is None else float(args.test_poi)
    if args.poi_max is not None and not args.poi_max > 0:
        raise CliError(f"--poi-max must be positive, not {args.poi_max:g}")
    workspace = load_workspace(args.config)
    patches, source, skipped = _load_patchset(args, workspace)
    out = _output(args.output, args)
    names = [p.name for p in patches]
    ident = {"source": source, "labels": list(patches.labels)}
    toys = toy_args(args)
    identity = js.patch_scan_identity(
        workspace, patches, cl=cl, test_poi=test_poi, poi_max=args.poi_max, config=ident,
        rule=args.rule, toys=toys,
    )  # fmt: skip
    shortcut = _resume_shortcut(out, identity) if args.resume else None
    fn = functools.partial(
        js.patch_scan, workspace, patches, cl=cl, test_poi=test_poi, config=ident,
        poi_max=args.poi_max, rule=args.rule, toys=toys,
    )  # fmt: skip
    results, timing = _execute(fn, len(names), shortcut, args, out)
    summary = common(out, "patches", names, timing)
    if skipped:
        summary["skipped"] = skipped
    reliable, bad = _reliability(summary, results, names, cl, args, workspace, patches)
    alpha = 1.0 - cl[0]
    cls_exp = np.sort(np.asarray(results["cls_exp"], float), axis=1)[:, 2]
    summary["excluded"] = {
        "test_poi": test_poi,
        "alpha": round(alpha, 12),
        "observed": int(np.sum(np.asarray(results["cls_obs"]) < alpha)),
        "expected": int(np.sum(cls_exp < alpha)),
    }
    excluded = [
        {"above_range": int(np.sum(~reliable[:, j] & ~bad)), "not_converged": int(bad.sum())}
        for j in range(len(cl))
    ]
    summary["limits"] = limits(results, names, cl, "patch", reliable, excluded)
    summary["rule"] = args.rule
    if toys is not None:
        summary.update(toy_summary(results, names, cl, "patch", toys))
    return summary, (EXIT_NOT_CONVERGED if bad.any() else 0)
