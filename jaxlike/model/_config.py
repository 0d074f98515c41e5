"""Static layout of a compiled model: parameter sets, their order, bounds and constraints.

The :class:`ModelConfig` is the part of a :class:`~jaxlike.Model` that never changes between
signal hypotheses: names, slices, default inits/bounds, constraint wiring. It is hashable (it is a
static field of the model pytree), so two models with equal configs share compiled functions.
Template-derived numbers (the default auxdata of Poisson-constrained ``shapesys``, the bins that are
fixed because their uncertainty is zero) are informational here and excluded from the hash: the
model computes them from its arrays (see :meth:`Model.auxdata`, :meth:`Model.fixed_mask`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..exceptions import InvalidParameters
from ._contract import LikelihoodConfig

__all__ = ["ParamSet", "ConstraintSegment", "ModelConfig"]


@dataclass(frozen=True)
class ParamSet:
    """One named parameter set (a scalar, or one parameter per bin for shape modifiers).

    ``constraint`` is ``"normal"`` (Gaussian N(aux | θ, σ)), ``"poisson"``
    (Pois(aux | γ τ)) or ``None`` (free parameter).
    """

    name: str
    start: int
    n_parameters: int
    is_scalar: bool
    constraint: str | None
    modifier_types: tuple[str, ...]
    inits: tuple[float, ...]
    bounds: tuple[tuple[float, float], ...]
    fixed: tuple[bool, ...]
    auxdata: tuple[float, ...] | None
    sigmas: tuple[float, ...] | None = None
    factors: tuple[float, ...] | None = None

    @property
    def slice(self) -> slice:
        return slice(self.start, self.start + self.n_parameters)

    @property
    def constrained(self) -> bool:
        return self.constraint is not None

    @property
    def suggested_init(self) -> list[float]:
        return list(self.inits)

    @property
    def suggested_bounds(self) -> list[tuple[float, float]]:
        return list(self.bounds)

    @property
    def suggested_fixed(self) -> list[bool]:
        return list(self.fixed)


@dataclass(frozen=True)
class ConstraintSegment:
    """A contiguous block of constrained parameters and its auxiliary data.

    ``source`` tells where the width (normal) or rate factor (poisson) comes from:
    ``"static"`` (``values``), or ``"staterror"`` / ``"shapesys"`` with the index ``which`` of the
    modifier in its type table, computed from the templates inside the likelihood.
    ``dynamic_fixed``: bins with zero uncertainty are fixed (pyhf default) unless the user gave an
    explicit ``fixed`` configuration. ``dynamic_aux``: default auxdata from the templates
    (shapesys τ) unless the user overrode it.
    """

    kind: str
    par_start: int
    n: int
    aux_start: int
    source: str
    which: int = -1
    values: tuple[float, ...] = ()
    dynamic_fixed: bool = False
    dynamic_aux: bool = False


class ModelConfig(LikelihoodConfig):
    """Parameter layout of a model, mirroring ``pyhf.pdf._ModelConfig``.

    Attributes: ``channels``, ``channel_nbins``, ``channel_slices``, ``samples``, ``modifiers``
    (sorted ``(name, type)`` pairs), ``par_order`` (parameter-set names in pyhf order),
    ``par_map`` (name → :class:`ParamSet`), ``npars``, ``par_names`` (one per scalar parameter,
    ``name[i]`` for vector sets), ``poi_name``, ``poi_index``, ``auxdata`` (build-time defaults,
    pyhf order), ``auxdata_order``, ``nmaindata``, ``nauxdata``, ``modifier_settings``,
    ``segments`` (constraint wiring).
    """

    def __init__(
        self,
        *,
        channels,
        channel_nbins,
        samples,
        modifiers,
        paramsets,
        poi_name,
        auxdata,
        segments,
        modifier_settings,
        fixed_static,
    ):
        self.channels = list(channels)
        self.channel_nbins = dict(channel_nbins)
        self.channel_slices = {}
        start = 0
        for c in self.channels:
            self.channel_slices[c] = slice(start, start + self.channel_nbins[c])
            start += self.channel_nbins[c]
        self.samples = list(samples)
        self.modifiers = list(modifiers)
        self.par_order = [p.name for p in paramsets]
        self.par_map = {p.name: p for p in paramsets}
        self.npars = sum(p.n_parameters for p in paramsets)
        self.poi_name = poi_name
        self.poi_index = None if poi_name is None else self.par_map[poi_name].start
        self.auxdata = np.asarray(auxdata, dtype=float)
        self.auxdata_order = [p.name for p in paramsets if p.constrained]
        self.nmaindata = start
        self.nauxdata = len(self.auxdata)
        self.segments = tuple(segments)
        self.modifier_settings = modifier_settings
        self.fixed_static = tuple(bool(f) for f in fixed_static)
        self._key = self._structural_key()
        self._hash = int.from_bytes(hashlib.sha256(repr(self._key).encode()).digest()[:8], "big")

    # -- pyhf-compatible accessors -------------------------------------------------------------
    def suggested_init(self) -> np.ndarray:
        """Initial values of all parameters, in parameter order."""
        return np.concatenate([np.asarray(self.par_map[n].inits, float) for n in self.par_order])

    def suggested_bounds(self) -> np.ndarray:
        """Bounds, shape ``(npars, 2)``."""
        return np.concatenate(
            [np.asarray(self.par_map[n].bounds, float).reshape(-1, 2) for n in self.par_order]
        )

    def suggested_fixed(self) -> np.ndarray:
        """Boolean mask of parameters held constant (user ``fixed`` and zero-uncertainty bins)."""
        return np.concatenate([np.asarray(self.par_map[n].fixed, bool) for n in self.par_order])

    def par_slice(self, name: str) -> slice:
        """Slice of parameter set ``name`` in the parameter vector."""
        return self.param_set(name).slice

    def param_set(self, name: str) -> ParamSet:
        try:
            return self.par_map[name]
        except KeyError:
            raise InvalidParameters(
                f"parameter {name!r} is not in the model (parameters: {self.par_order})"
            ) from None

    @property
    def par_names(self) -> list[str]:
        """One name per scalar parameter: ``name`` for scalars, ``name[i]`` for vector sets."""
        out = []
        for n in self.par_order:
            p = self.par_map[n]
            out += [n] if p.is_scalar else [f"{n}[{i}]" for i in range(p.n_parameters)]
        return out

    @property
    def poi_names(self) -> list[str]:
        return [] if self.poi_name is None else [self.poi_name]

    def par_index(self, name: str) -> int:
        """Index of a scalar parameter given as ``name`` or ``name[i]``."""
        names = self.par_names
        if name in names:
            return names.index(name)
        raise InvalidParameters(f"parameter {name!r} is not in the model")

    # -- hashing: structure only ---------------------------------------------------------------
    def _structural_key(self):
        """What the compiled computation depends on: sizes, positions, defaults, wiring of the
        constraints — not names. Two signal patches whose modifiers differ only in name (HEPData
        grids name the signal's MC-stat shapesys after the mass point) therefore share compiled
        functions and can be stacked.

        ParamSet.sigmas/factors/auxdata/fixed are left out: where they come from the templates
        (staterror σ, shapesys τ) the model recomputes them from its arrays; where the user set
        them they are in the segments' ``values`` below.
        """
        sets = tuple(
            (p.start, p.n_parameters, p.is_scalar, p.constraint, p.inits, p.bounds)
            for p in self.par_map.values()
        )
        return (
            tuple(self.channel_nbins[c] for c in self.channels),
            len(self.samples),
            tuple(sorted(t for _, t in self.modifiers)),
            sets,
            self.poi_index,
            tuple(
                (s.kind, s.par_start, s.n, s.aux_start, s.source, s.which, s.values)
                + (s.dynamic_fixed, s.dynamic_aux)
                # user-set auxdata are read from here by Model.auxdata() inside jit
                + (() if s.dynamic_aux else tuple(self.auxdata[s.aux_start :][: s.n].tolist()),)
                for s in self.segments
            ),
            self.fixed_static,
            repr(sorted((self.modifier_settings or {}).items())),
        )

    def structural_key(self) -> tuple:
        """:meth:`_structural_key`: a tuple of numbers, strings and tuples whose ``repr`` is
        complete, so it also describes the layout across processes (the program cache of
        :mod:`jaxlike._compile`)."""
        return self._key

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        """Structural equality (see :meth:`_structural_key`); names are metadata."""
        return isinstance(other, ModelConfig) and self._key == other._key

    def same_names(self, other) -> bool:
        """Equal structure *and* identical channel, sample and parameter names."""
        return (
            self == other
            and self.channels == other.channels
            and self.samples == other.samples
            and self.par_order == other.par_order
        )

    def __repr__(self):
        return (
            f"ModelConfig(channels={self.channels}, samples={len(self.samples)}, "
            f"npars={self.npars}, poi={self.poi_name!r})"
        )
