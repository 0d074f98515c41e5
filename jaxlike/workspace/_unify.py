"""One layout for many signal patches: the basis of batched HEPData-grid scans.

A HEPData likelihood "pallet" is a background-only workspace plus one JSON patch per signal
hypothesis. The patches add a signal sample whose name (and the names of its MC-stat modifiers)
carry the mass point, and different mass points carry different subsets of systematics.
Compiled separately, every patch is a new model and a new XLA compilation.

:func:`unify_patches` rewrites the patched specs so that all of them have the same structure:

1. the sample(s) a patch adds are renamed to ``signal_name`` (and the substring is replaced in
   their modifier names, e.g. ``shape_mcstat_<sample>_SRlow`` → ``shape_mcstat_signal_SRlow``);
2. every channel gets the signal sample (zero yields where a patch has none there);
3. every signal sample carries the union of the signal modifiers of its channel; a modifier a
   patch lacks is added in its *neutral* form: normsys hi = lo = 1, histosys hi = lo = nominal,
   shapesys uncertainties 0 (their γ are then fixed at 1, as pyhf does for such bins).

Neutral modifiers do not change the expected yields. Their parameters still carry their
constraint terms, which are constant at the fitted value (α̂ = 0, γ = 1): 2NLL values of a
unified model differ from the patch's own model by that constant, test statistics, CLs and
limits do not. Modifiers that cannot be neutralised (normfactor, shapefactor, lumi, and
staterror, whose σ depends on all samples carrying it) raise
:class:`~jaxlike.exceptions.InvalidPatch` when a patch lacks them on an existing signal sample;
on a zero-yield signal sample every modifier is neutral.
"""

from __future__ import annotations

from ..exceptions import InvalidPatch

__all__ = ["unify_patches"]

_NEUTRALISABLE = ("normsys", "histosys", "shapesys")


def _added_samples(bkg_spec, spec):
    known = {(c["name"], s["name"]) for c in bkg_spec["channels"] for s in c["samples"]}
    return {
        s["name"]
        for c in spec["channels"]
        for s in c["samples"]
        if (c["name"], s["name"]) not in known
    }


def _rename(spec, old_names, new):
    for c in spec["channels"]:
        for s in c["samples"]:
            if s["name"] in old_names:
                old = s["name"]
                s["name"] = new
                for m in s.get("modifiers") or []:
                    if m["type"] in _NEUTRALISABLE and old in m["name"]:
                        m["name"] = m["name"].replace(old, new)


def _neutral(mtype, nominal):
    if mtype == "normsys":
        return {"hi": 1.0, "lo": 1.0}
    if mtype == "histosys":
        return {"hi_data": list(nominal), "lo_data": list(nominal)}
    if mtype in ("shapesys", "staterror"):
        return [0.0] * len(nominal)
    return None


def unify_patches(workspace, patches, signal_name="signal"):
    """Patched workspace specs (dicts) that all compile to one model layout.

    Args:
        workspace: the background-only :class:`~jaxlike.Workspace`.
        patches: a list of patches (lists of RFC 6902 operations or ``Patch`` objects), each
            adding one signal hypothesis.
        signal_name: common name given to the sample each patch adds.

    Returns:
        A list of workspace specs, one per patch, with identical channels, samples and
        modifiers (see the module docstring for the neutral completion).
    """
    bkg = workspace.to_dict()
    specs = []
    for i, patch in enumerate(patches):
        spec = workspace.patch([patch]).to_dict()
        added = _added_samples(bkg, spec)
        if not added:
            raise InvalidPatch(f"patches[{i}]", "the patch adds no sample to the workspace")
        _rename(spec, added, signal_name)
        specs.append(spec)
    union = {}  # channel -> {(name, type): first modifier seen}
    nbins = {c["name"]: len(c["samples"][0]["data"]) for c in bkg["channels"]}
    for spec in specs:
        for c in spec["channels"]:
            for s in c["samples"]:
                if s["name"] == signal_name:
                    for m in s.get("modifiers") or []:
                        union.setdefault(c["name"], {}).setdefault((m["name"], m["type"]), m)
    for i, spec in enumerate(specs):
        for c in spec["channels"]:
            signal = next((s for s in c["samples"] if s["name"] == signal_name), None)
            fresh = signal is None
            if fresh:
                signal = {"name": signal_name, "data": [0.0] * nbins[c["name"]], "modifiers": []}
                c["samples"].append(signal)
            have = {(m["name"], m["type"]) for m in signal["modifiers"]}
            for name, mtype in sorted(set(union.get(c["name"], {})) - have):
                if not fresh and mtype not in _NEUTRALISABLE:
                    raise InvalidPatch(
                        f"patches[{i}]",
                        f"{mtype} {name!r} is missing from the signal in channel {c['name']!r}; "
                        "only normsys, histosys and shapesys can be completed neutrally",
                    )
                signal["modifiers"].append(
                    {"name": name, "type": mtype, "data": _neutral(mtype, signal["data"])}
                )
    return specs
