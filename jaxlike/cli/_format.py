"""Plain-text tables for the command line (no third-party dependency)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["table", "band"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """Format ``rows`` under ``headers`` as aligned columns separated by two spaces.

    ``align`` holds one character per column, ``"<"`` (left) or ``">"`` (right); extra ones are
    ignored, missing entries are left-aligned. A dashed rule separates the header from the rows.

    Example:
        >>> print(table(["name", "value"], [["mu", "1.0"]], "<>"))
        name  value
        ----  -----
        mu      1.0
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    align = align[: len(headers)].ljust(len(headers), "<")

    def line(values: Sequence[str]) -> str:
        parts = [f"{v:{a}{w}}" for v, a, w in zip(values, align, widths, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def band(values: Sequence[float], fmt: str = ".4g") -> str:
    """Describe a 5-point band ``[-2σ, -1σ, median, +1σ, +2σ]`` in one line.

    Example:
        >>> band([0.1, 0.2, 0.3, 0.4, 0.5])
        'median 0.3, 1σ [0.2, 0.4], 2σ [0.1, 0.5]'
    """
    m2, m1, med, p1, p2 = (format(float(v), fmt) for v in values)
    return f"median {med}, 1σ [{m1}, {p1}], 2σ [{m2}, {p2}]"
