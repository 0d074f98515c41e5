"""``jaxlike posterior``: NUTS posterior of a configured analysis (see jaxlike.jobs.posterior)."""

from __future__ import annotations

import argparse
import json
import sys

from ._io import nonneg_int, positive_int

EXIT_NOT_CONVERGED = 3
RHAT_MAX = 1.01


def add_parser(subs) -> argparse.ArgumentParser:
    """Register ``jaxlike posterior`` on the subcommand action ``subs``."""
    p = subs.add_parser(
        "posterior",
        help="NUTS posterior of a configured analysis (e.g. the Belle II WET reinterpretation)",
        description="Sample the posterior of the model in CONFIG (TOML/JSON: [model], [sampler], "
        "[priors], [report], [[variant]]; see jaxlike/jobs/posterior.py) with NumPyro NUTS. "
        "For the Belle II B+ -> K+ nu nu WET reinterpretation, 'jaxlike belle2-wet DIR -o "
        "wet_workspace.json --posterior-config wet_posterior.json' writes the workspace and "
        "the configuration (uniform priors on C_V, C_S, C_T in [0, 20] plus the "
        "truncated-normal and uniform-in-C^2 variants). "
        "Writes posterior*.h5, summary.json and corner*.png.",
        epilog="exit codes: 0 success, 2 bad input, 3 MLE not converged or R-hat >= 1.01 or "
        "divergent transitions (results still written)",
    )
    p.add_argument("config", metavar="CONFIG", help="posterior configuration (TOML or JSON)")
    p.add_argument("-o", "--output", metavar="DIR", default="posterior", help="output folder")
    p.add_argument("--chains", type=positive_int, help="number of chains")
    p.add_argument("--warmup", type=positive_int, help="warmup iterations per chain")
    p.add_argument("--samples", type=positive_int, help="draws per chain")
    p.add_argument("--seed", type=nonneg_int, help="PRNG seed")
    p.add_argument("--no-variants", action="store_true", help="skip the prior variants")
    p.add_argument("--json", action="store_true", help="print summary.json to stdout")
    return p


def cmd_posterior(args) -> int:
    """``jaxlike posterior CONFIG``: run the posterior job, print its summary."""
    from ..jobs import load_posterior_config, read_posterior_config, run_posterior_job

    load_posterior_config(args.config)  # validate before anything else
    config = args.config
    if args.no_variants:
        config = dict(read_posterior_config(config), variant=[])
    overrides = {
        k: v
        for k, v in {
            "num_chains": args.chains,
            "num_warmup": args.warmup,
            "num_samples": args.samples,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    say = None if args.json else (lambda msg: print(msg, file=sys.stderr))
    summary = run_posterior_job(config, args.output, overrides=overrides, progress=say)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for name, post in summary["posteriors"].items():
            print(f"[{name}]")
            for e in post["parameters"].values():
                hd = "  ".join(
                    f"{k[4:]}%: [{v[0]:.3g}, {v[1]:.3g}]"
                    for k, v in e.items()
                    if k.startswith("hdi_")
                )
                print(f"  {e['quantity']:>6}  mode {e['mode']:.3g}  {hd}  R-hat {e['rhat']:.4f}")
        print(f"written to {args.output}/")
    reasons = []
    if not summary["mle"]["converged"]:
        reasons.append(f"MLE not converged ({summary['mle']['status']})")
    for name, post in summary["posteriors"].items():
        if post["divergences"] > 0:
            reasons.append(f"{name}: {post['divergences']} divergent transitions")
        worst = [(k, e["rhat"]) for k, e in post["parameters"].items() if not e["rhat"] < RHAT_MAX]
        reasons += [f"{name}: R-hat({k}) = {r:.4f} >= {RHAT_MAX}" for k, r in worst]
    if reasons:
        print(f"jaxlike: warning: {'; '.join(reasons)}", file=sys.stderr)
        return EXIT_NOT_CONVERGED
    return 0
