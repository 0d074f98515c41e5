"""Array annotations shared by the public signatures of the fit and inference layers
(jaxtyping; documentation only, no runtime checking)."""

from __future__ import annotations

from jaxtyping import ArrayLike, Bool, Float

__all__ = ["Bounds", "Data", "Fixed", "Pars", "Scalar"]

#: a parameter vector θ in the model's order
Pars = Float[ArrayLike, " npars"]
#: per-parameter (lower, upper) bounds
Bounds = Float[ArrayLike, "npars 2"]
#: parameters held constant: a boolean mask or {name: value}
Fixed = Bool[ArrayLike, " npars"] | dict[str, float]
#: a data vector: main observations followed by the auxiliary data
Data = Float[ArrayLike, " ndata"]
#: one number (a POI value)
Scalar = Float[ArrayLike, ""]
