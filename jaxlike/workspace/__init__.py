"""Workspaces: validated pyhf JSON specifications, JSON patches and patchsets.

A :class:`Workspace` holds channels, observations and measurements exactly as pyhf's
schema 1.0.0 describes them; it is plain Python data (no JAX). Patches (RFC 6902) and
HEPData patchsets turn a background-only workspace into signal hypotheses.

Example:
    >>> from jaxlike.workspace import Workspace, load_patch  # doctest: +SKIP
    >>> ws = Workspace.load("BkgOnly.json").patch(load_patch("patch.json"))  # doctest: +SKIP
"""

from ._counting import abcd_nominal, counting_workspace
from ._json import parse_json, read_json_file
from ._patch import Patch, PatchSet, apply_patch, digest, load_patch
from ._unify import unify_patches
from ._validate import validate_patch_operations, validate_workspace
from ._workspace import Workspace

__all__ = [
    "Workspace",
    "PatchSet",
    "Patch",
    "apply_patch",
    "counting_workspace",
    "abcd_nominal",
    "load_patch",
    "parse_json",
    "read_json_file",
    "digest",
    "validate_workspace",
    "validate_patch_operations",
    "unify_patches",
]
