"""The modifier table: every HistFactory modifier type jaxlike knows, in one place.

Validation (:mod:`jaxlike.workspace`), the model builder (:mod:`jaxlike.model._build`), the
template tables (:mod:`jaxlike.model._tables`) and ``jaxlike inspect`` all read this table; a
new modifier type starts with a row here (see ``docs/architecture.md``).

Columns, per type (pyhf's defaults where pyhf has the type):

- ``constraint``: the constraint term of its parameters: ``"normal"`` (Gaussian
  N(a | θ, σ)), ``"poisson"`` (Pois(a | γτ)), None (free), or ``"rate"`` (declared by the rate
  of a ``reweight`` modifier, see :class:`jaxlike.model.RateParameter`);
- ``per_bin``: one parameter per bin of the channel (γ_b) instead of one scalar;
- ``effect``: ``"multiplicative"`` (a factor on the sample's yield), ``"additive"`` (a shift
  of the nominal template) or ``"reweight"`` (a factor from a rate ratio);
- ``data``: the JSON form of the modifier's ``data``: ``"null"``, ``"ratios"`` ({hi, lo}),
  ``"templates"`` ({hi_data, lo_data}), ``"uncertainties"`` (absolute, one per bin) or
  ``"rate"`` ({rate, null, edges, map, inputs?, nodes?});
- ``init``, ``bounds``: the default initial value and bounds of each parameter (None where
  the measurement or the modifier data decide, as for lumi and staterror).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModifierType", "MODIFIERS", "MODIFIER_TYPES", "TEMPLATE_TYPES"]


@dataclass(frozen=True)
class ModifierType:
    """One row of the modifier table (see the module docstring for the columns)."""

    name: str
    constraint: str | None
    per_bin: bool
    effect: str
    data: str
    init: float | None = None
    bounds: tuple[float, float] | None = None

    @property
    def constraint_label(self) -> str:
        """pyhf's name of the constraint (``jaxlike inspect`` prints it)."""
        return {
            None: "unconstrained",
            "normal": "constrained_by_normal",
            "poisson": "constrained_by_poisson",
            "rate": "defined_by_rate",
        }[self.constraint]


MODIFIERS: dict[str, ModifierType] = {
    m.name: m
    for m in (
        ModifierType("histosys", "normal", False, "additive", "templates", 0.0, (-5.0, 5.0)),
        ModifierType("lumi", "normal", False, "multiplicative", "null"),
        ModifierType("normfactor", None, False, "multiplicative", "null", 1.0, (0.0, 10.0)),
        ModifierType("normsys", "normal", False, "multiplicative", "ratios", 0.0, (-5.0, 5.0)),
        ModifierType("reweight", "rate", False, "reweight", "rate"),
        ModifierType("shapefactor", None, True, "multiplicative", "null", 1.0, (0.0, 10.0)),
        ModifierType(
            "shapesys", "poisson", True, "multiplicative", "uncertainties", 1.0, (1e-10, 10.0)
        ),  # fmt: skip
        ModifierType("staterror", "normal", True, "multiplicative", "uncertainties"),
    )
}

#: all modifier types, sorted (pyhf's order of parameter sets within one name)
MODIFIER_TYPES: tuple[str, ...] = tuple(sorted(MODIFIERS))
#: the types held in the template tables of a model (all but the rate-defined reweight)
TEMPLATE_TYPES: tuple[str, ...] = tuple(
    t for t in MODIFIER_TYPES if MODIFIERS[t].effect != "reweight"
)
