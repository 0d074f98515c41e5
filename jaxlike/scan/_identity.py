"""The identity of a stored scan: what a resume is checked against (see
:func:`jaxlike.stream.check_resume`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..stream import check_resume

__all__ = ["ScanIdentity"]


@dataclass(frozen=True)
class ScanIdentity:
    """Configuration, hypotheses and model digest a scan stores in its file.

    Attributes:
        config: the configuration stored (the user's, plus the keys in ``added``).
        hypotheses: ``{name: array [H, ...]}`` the scan runs over.
        digest: a function returning the model digest (computed only when needed).
        added: configuration keys the scan function adds to the user's.
    """

    config: dict
    hypotheses: dict
    digest: Callable[[], str]
    added: tuple[str, ...] = ()

    def check_resume(self, path, *, hint="pass overwrite=True or another file"):
        """The resume rule before compiling (:func:`jaxlike.stream.check_resume`): refuse a
        file of another configuration, model or hypotheses; return the results of a file that
        is already complete, else None."""
        return check_resume(
            path, self.config, self.hypotheses, self.digest, added=self.added, hint=hint
        )
