"""The ``jaxlike`` command line: ``cls``, ``fit``, ``limit``, ``inspect``, ``scan``, ``toys``,
``plot`` and ``example``.

It mirrors ``pyhf``'s CLI where the two overlap (``jaxlike cls ws.json -p patch.json``
prints the same JSON as ``pyhf cls``). Run it as ``jaxlike ...`` or ``python -m jaxlike ...``,
or call :func:`main` with a list of arguments.
"""

from ._main import main

__all__ = ["main"]
