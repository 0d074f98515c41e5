"""Per-type modifier tables: the dynamic arrays of a model and their static wiring.

Every modifier type is stored as stacked arrays of shape ``[n_modifiers, n_samples, n_bins]``
(a mask, plus up/down templates or uncertainties where the type has them). The wiring maps each
modifier (and, for per-bin types, each bin) to an index in the parameter vector; an index equal to
``npars`` points at a constant 1 appended to the parameters, i.e. "no parameter here".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..exceptions import InvalidModel
from ._modifiers import TEMPLATE_TYPES
from ._reweight import build_groups, parse_reweight

__all__ = ["Wiring", "build_tables", "staterror_sigmas_np", "shapesys_factors_np"]


@dataclass(frozen=True)
class Wiring:
    """Static (hashable) parameter indices of each modifier type and the interpolation codes."""

    normfactor: tuple[int, ...]
    lumi: tuple[int, ...]
    normsys: tuple[int, ...]
    histosys: tuple[int, ...]
    shapefactor: tuple[tuple[int, ...], ...]
    shapesys: tuple[tuple[int, ...], ...]
    staterror: tuple[tuple[int, ...], ...]
    shapesys_bins: tuple[tuple[int, ...], ...]
    staterror_bins: tuple[tuple[int, ...], ...]
    normsys_code: str
    histosys_code: str
    direct_slots: tuple[tuple[int, ...], ...] = ()
    shape: tuple[int, int] = (0, 0)

    def direct_index(self):
        """[K, samples, bins] parameter indices of the direct multiplicative factors
        (normfactor, lumi, shapefactor, shapesys, staterror); ``npars`` means "none"."""
        return np.asarray(self.direct_slots, dtype=np.int32).reshape((-1,) + self.shape)


def staterror_sigmas_np(nominal, mask, unc):
    """Barlow–Beeston-lite relative uncertainty per bin, pyhf convention.

    σ_b = sqrt(Σ_s δ_sb²) / Σ_{s carrying} ν⁰_sb, and σ_b = 0 where the summed nominal is 0.
    ``mask``/``unc``: [n_samples, n_bins] for one staterror modifier.
    """
    carry = mask.any(axis=1)
    total = (nominal * carry[:, None]).sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    rel2 = np.where(total > 0, ((unc / safe) ** 2).sum(axis=0), 0.0)
    return np.sqrt(rel2)


def shapesys_factors_np(nominal, mask, unc):
    """Poisson constraint factors τ_b = (ν⁰_b / δ_b)² of a shapesys modifier, 1 in masked bins.

    Returns (tau, valid) per bin; bins with ν⁰ ≤ 0 or δ ≤ 0 are invalid (parameter fixed at 1).
    """
    nom = (nominal * mask).sum(axis=0)
    delta = (unc * mask).sum(axis=0)
    valid = (nom > 0) & (delta > 0)
    tau = np.where(valid, nom**2 / np.where(valid, delta, 1.0) ** 2, 1.0)
    return tau, valid


class _Tables:
    def __init__(self, layout, codes):
        self.layout, self.codes = layout, codes
        S, B = layout.S, layout.B
        self.names = {t: [n for n, tt in layout.modifiers if tt == t] for t in _TYPES}
        self.nominal = np.zeros((S, B))
        shape = {t: (len(self.names[t]), S, B) for t in _TYPES}
        self.mask = {t: np.zeros(shape[t], bool) for t in _TYPES}
        self.hi = {"normsys": np.ones(shape["normsys"]), "histosys": np.zeros(shape["histosys"])}
        self.lo = {"normsys": np.ones(shape["normsys"]), "histosys": np.zeros(shape["histosys"])}
        self.unc = {t: np.zeros(shape[t]) for t in ("shapesys", "staterror")}
        self.reweight = {}  # modifier name -> [(sample index, bin slice, parsed data, path)]
        self._fill()

    def _add_reweight(self, mod, si, bins, path, nbins):
        parsed = parse_reweight(mod.get("data"), f"{path}.data", nbins)
        occ = self.reweight.setdefault(mod["name"], [])
        if occ and occ[0][2][-1] != parsed[-1]:
            raise InvalidModel(
                f"{path}.data",
                f"reweight {mod['name']!r} has a different rate, null, edges, nodes or inputs "
                f"than at {occ[0][3]} (one name = one rate; use distinct names)",
            )
        occ.append((si, bins, parsed, path))

    def index(self, mtype, name):
        return self.names[mtype].index(name)

    def _fill(self):
        lay = self.layout
        pos = {t: {n: i for i, n in enumerate(self.names[t])} for t in _TYPES}
        for c, si, sample, spath in lay.walk():
            bins = lay.bins(c)
            nom = np.asarray(sample["data"], float)
            self.nominal[si, bins] = nom
            for t in ("histosys",):
                self.hi[t][:, si, bins] = nom
                self.lo[t][:, si, bins] = nom
            for mi, mod in enumerate(sample.get("modifiers") or []):
                if mod["type"] == "reweight":
                    self._add_reweight(mod, si, bins, f"{spath}.modifiers[{mi}]", lay.nbins[c])
                    continue
                t, m = mod["type"], pos[mod["type"]][mod["name"]]
                path = f"{spath}.modifiers[{mi}].data"
                self.mask[t][m, si, bins] = True
                data = mod.get("data")
                if t == "normsys":
                    hi, lo = _ratio(data, "hi", path), _ratio(data, "lo", path)
                    self.hi[t][m, si, bins], self.lo[t][m, si, bins] = hi, lo
                elif t == "histosys":
                    if not isinstance(data, dict):
                        raise InvalidModel(
                            path, "histosys needs {'hi_data': [...], 'lo_data': [...]}"
                        )
                    self.hi[t][m, si, bins] = _vec(
                        data.get("hi_data"), f"{path}.hi_data", lay.nbins[c]
                    )
                    self.lo[t][m, si, bins] = _vec(
                        data.get("lo_data"), f"{path}.lo_data", lay.nbins[c]
                    )
                elif t in ("shapesys", "staterror"):
                    unc = _vec(data, path, lay.nbins[c])
                    if (unc < 0).any():
                        raise InvalidModel(
                            f"{path}[{int(np.argmax(unc < 0))}]", "negative uncertainty"
                        )
                    self.unc[t][m, si, bins] = unc

    def _per_bin_bins(self, mtype, name):
        m = self.index(mtype, name)
        masks = [row for row in self.mask[mtype][m] if row.any()]
        for row in masks[1:]:
            if not np.array_equal(row, masks[0]):
                raise InvalidModel(
                    "channels", f"{mtype} {name!r} covers different bins in different samples"
                )
        return m, np.flatnonzero(masks[0])

    def staterror_defaults(self, name):
        m, bins = self._per_bin_bins("staterror", name)
        sig = staterror_sigmas_np(
            self.nominal, self.mask["staterror"][m], self.unc["staterror"][m]
        )[bins]
        fixed = sig == 0
        return np.where(fixed, 1.0, sig), fixed

    def shapesys_defaults(self, name):
        m, bins = self._per_bin_bins("shapesys", name)
        with np.errstate(over="ignore", under="ignore"):
            tau, valid = shapesys_factors_np(
                self.nominal, self.mask["shapesys"][m], self.unc["shapesys"][m]
            )
        bad = valid & ~((tau >= np.finfo(float).tiny) & (tau < np.inf))
        if bad[bins].any():
            b = int(np.flatnonzero(bad[bins])[0])
            raise InvalidModel(
                "channels",
                f"shapesys {name!r} bin {b}: τ = (nominal / uncertainty)² = "
                f"{float(tau[bins][b]):g} is not a positive float64 (an uncertainty of "
                f"{float(self.unc['shapesys'][m].sum(axis=0)[bins][b]):g} on a yield of "
                f"{float((self.nominal * self.mask['shapesys'][m]).sum(axis=0)[bins][b]):g})",
            )
        return tau[bins], ~valid[bins]

    def leaves(self, config):
        """Keyword arguments for :class:`Model`: dynamic arrays and the static wiring."""
        import jax

        npars, lay = config.npars, self.layout
        start = {n: p.start for n, p in config.par_map.items()}

        def scalar(t):
            return tuple(start[n] for n in self.names[t])

        def per_bin(t):
            rows, bins_out = [], []
            for m, n in enumerate(self.names[t]):
                idx = np.full(lay.B, npars, dtype=int)
                if t == "shapefactor":
                    for c in lay.channels:
                        if self.mask[t][m][:, lay.bins(c)].any():
                            idx[lay.bins(c)] = start[n] + np.arange(lay.nbins[c])
                    bins = ()
                else:
                    _, b = self._per_bin_bins(t, n)
                    idx[b] = start[n] + np.arange(len(b))
                    bins = tuple(int(x) for x in b)
                rows.append(tuple(int(x) for x in idx))
                bins_out.append(bins)
            return tuple(rows), tuple(bins_out)

        slots = _direct_slots(self, lay, start, npars, scalar, per_bin)
        shapefactor, _ = per_bin("shapefactor")
        shapesys, shapesys_bins = per_bin("shapesys")
        staterror, staterror_bins = per_bin("staterror")
        wiring = Wiring(
            normfactor=scalar("normfactor"),
            lumi=scalar("lumi"),
            normsys=scalar("normsys"),
            histosys=scalar("histosys"),
            shapefactor=shapefactor,
            shapesys=shapesys,
            staterror=staterror,
            shapesys_bins=shapesys_bins,
            staterror_bins=staterror_bins,
            normsys_code=self.codes["normsys"],
            histosys_code=self.codes["histosys"],
            direct_slots=tuple(tuple(int(x) for x in k.ravel()) for k in slots),
            shape=(lay.S, lay.B),
        )
        # device_put, not jnp.asarray: jax 0.10 stages a NumPy array through a small compiled
        # identity per shape and dtype (5-8 of them per model, ~15-30 ms each, cache or not)
        arr = jax.device_put
        return dict(
            reweight=build_groups(self.reweight, config.par_map, lay.S, lay.B),
            wiring=wiring,
            nominal=arr(self.nominal),
            masks={t: arr(self.mask[t]) for t in _TYPES},
            normsys_lo=arr(self.lo["normsys"]),
            normsys_hi=arr(self.hi["normsys"]),
            histosys_lo=arr(self.lo["histosys"]),
            histosys_hi=arr(self.hi["histosys"]),
            shapesys_unc=arr(self.unc["shapesys"]),
            staterror_unc=arr(self.unc["staterror"]),
        )


def _direct_slots(tables, lay, start, npars, scalar, per_bin):
    """Pack the direct factors into K slots per (sample, bin): K = the largest number of such
    modifiers acting on one (sample, bin), usually 1-3, so the product is K gathers."""
    per_sb = [[[] for _ in range(lay.B)] for _ in range(lay.S)]
    for t in ("normfactor", "lumi"):
        for m, p in enumerate(scalar(t)):
            for s_, b in zip(*np.nonzero(tables.mask[t][m]), strict=True):
                per_sb[s_][b].append(p)
    for t in ("shapefactor", "shapesys", "staterror"):
        rows, _ = per_bin(t)
        for m, row in enumerate(rows):
            for s_, b in zip(*np.nonzero(tables.mask[t][m]), strict=True):
                per_sb[s_][b].append(row[b])
    k = max([1] + [len(x) for r in per_sb for x in r])
    slots = np.full((k, lay.S, lay.B), npars, dtype=int)
    for s_ in range(lay.S):
        for b in range(lay.B):
            for i, p in enumerate(per_sb[s_][b]):
                slots[i, s_, b] = p
    return slots


_TYPES = TEMPLATE_TYPES


def _vec(values, path, n):
    if not isinstance(values, list | tuple):
        raise InvalidModel(path, "must be a list of numbers")
    arr = np.asarray(values, dtype=float)
    if arr.shape != (n,):
        raise InvalidModel(path, f"has {arr.size} bins, expected {n}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InvalidModel(f"{path}[{bad[0]}]", f"value {arr[bad[0]]} is not finite")
    return arr


def _ratio(data, key, path):
    if not isinstance(data, dict) or key not in data:
        raise InvalidModel(path, "normsys needs {'hi': x, 'lo': y}")
    v = float(data[key])
    if not np.isfinite(v) or v <= 0:
        raise InvalidModel(f"{path}.{key}", f"normsys {key} = {v} must be a positive finite ratio")
    with np.errstate(over="ignore"):  # an overflow is the answer, reported below
        coef = v * np.log(v) ** 2  # the code-4 coefficients hold v·ln²v
    if not np.isfinite(coef):
        raise InvalidModel(
            f"{path}.{key}",
            f"normsys {key} = {v:g} is too large: its interpolation "
            "coefficients (v·ln²v) overflow float64",
        )
    return v


def build_tables(layout, codes):
    """Fill the per-type arrays from the sorted layout (see module docstring)."""
    return _Tables(layout, codes)
