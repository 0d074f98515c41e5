"""Parametric models for mass scans: a binned likelihood in a sliding fit window whose signal
peak (Gaussian or double-sided Crystal Ball) depends on the mass hypothesis, with polynomial,
exponential or template backgrounds, peaking components, vetoes and Gaussian systematics.

- :class:`WindowModel`: the likelihood of one hypothesis (fit/inference protocol);
  :func:`padded_background`, :func:`stack_backgrounds`: models of different background
  families and orders in one array layout (one vmapped fit for all of them).
- :class:`MassScan`: the hypothesis-independent inputs; ``scan.window_model(m)``.
- :func:`hypothesis_results`: fit, local significance and CLs limits at one mass (vmappable).
- :class:`Envelope` (:func:`background_envelope`): several background models per hypothesis,
  combined by discrete profiling or the conservative rule (:func:`envelope_results`);
  :func:`spurious_signal`: the spurious-signal (bias) table of such a family.
- :func:`load_config`, :func:`build_mass_scan`: TOML/JSON scan configurations, validated;
  :func:`plot_labels`: the axis labels of their figures (``[plot]``, :data:`PLOT_LABELS`);
  :func:`physics_labels`: the physics parameter g = k(m) σ^p that limits are also given in
  (``[physics]``).
"""

from ._config import (
    PLOT_LABELS,
    build_mass_scan,
    load_config,
    physics_labels,
    plot_labels,
    scan_masses,
    scan_rule,
)
from ._envelope import (
    ENVELOPE_FIELDS,
    ENVELOPE_METHODS,
    Envelope,
    background_envelope,
    envelope_results,
)
from ._model import (
    BACKGROUNDS,
    SIGNAL_SHAPES,
    WindowConfig,
    WindowModel,
    padded_background,
    ranged_order,
    stack_backgrounds,
)
from ._scan import (
    RESULT_FIELDS,
    MassScan,
    hypothesis_results,
    hypothesis_significance,
    window_results,
)
from ._spurious import SpuriousSignal, spurious_signal, spurious_signal_at

__all__ = [
    "ENVELOPE_FIELDS",
    "ENVELOPE_METHODS",
    "Envelope",
    "background_envelope",
    "SpuriousSignal",
    "spurious_signal",
    "spurious_signal_at",
    "envelope_results",
    "BACKGROUNDS",
    "PLOT_LABELS",
    "RESULT_FIELDS",
    "SIGNAL_SHAPES",
    "MassScan",
    "WindowConfig",
    "WindowModel",
    "padded_background",
    "ranged_order",
    "stack_backgrounds",
    "window_results",
    "build_mass_scan",
    "hypothesis_results",
    "hypothesis_significance",
    "load_config",
    "plot_labels",
    "physics_labels",
    "scan_masses",
    "scan_rule",
]
