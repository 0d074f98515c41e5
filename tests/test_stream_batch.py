"""jaxlike.stream: the in-memory batched map, the compile cache and the digest helpers."""

from __future__ import annotations

import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxlike  # noqa: F401  (float64)
from jaxlike._strict import canonical_json, digest
from jaxlike.exceptions import InvalidScanConfig
from jaxlike.stream import batched_map, bucket_size, chunk_rows, compiled, tree_digest


def test_chunk_rows_and_buckets():
    assert chunk_rows(300, 256, bucket=True) == 256
    assert chunk_rows(9, 8, bucket=True) == 8
    assert chunk_rows(5, 256, bucket=True) == 8
    assert chunk_rows(9, 8) == 8 and chunk_rows(3, None) == 3 and chunk_rows(3, 10) == 3
    assert [bucket_size(n, 1000) for n in (1, 8, 9, 33, 129)] == [8, 8, 32, 128, 512]
    with pytest.raises(InvalidScanConfig):
        chunk_rows(3, 0)


@pytest.mark.parametrize(("chunk", "bucket", "pad", "host"), [
    (None, False, "last", True), (4, False, "last", False), (4, True, "first", True),
])  # fmt: skip
def test_batched_map_compiles_once_and_drops_padding(chunk, bucket, pad, host):
    shapes = []

    @jax.jit
    def fn(rows):
        shapes.append(rows["x"].shape)  # runs at trace time only
        return {"y": rows["x"] * 2.0 + rows["z"][:, 0]}

    x = np.arange(11.0)
    z = np.stack([x, -x], 1)
    out = batched_map(fn, {"x": x, "z": z}, chunk=chunk, bucket=bucket, pad=pad, to_host=host)
    np.testing.assert_array_equal(np.asarray(out["y"]), 3.0 * x)
    assert len(shapes) == 1  # one trace (hence one compilation) for all chunks
    assert isinstance(out["y"], np.ndarray) == host


def test_compiled_is_a_bounded_lru():
    built = []

    def build(v):
        built.append(v)
        return lambda: v

    assert compiled(("t", 1), lambda: build(1))() == 1
    assert compiled(("t", 1), lambda: build(2))() == 1  # cached
    assert built == [1]


def test_digests_are_unchanged():
    # sha256 of the compact canonical JSON (scan identities) and pyhf's workspace digest
    assert canonical_json({"b": 1, "a": [np.float64(2.5)]}) == '{"a":[2.5],"b":1}'
    assert digest('{"toy":1}') == hashlib.sha256(b'{"toy":1}').hexdigest()
    ws = {"a": 2.0, "b": 3.0, "c": 1.0}
    assert digest(canonical_json(ws, style="pyhf")) == (
        "a38f6093800189b79bc22ef677baf90c75705af2cfc7ff594159eca54eaa7928"
    )
    a = np.arange(3.0)
    h = hashlib.sha256(b"float64(3,)" + a.tobytes()).hexdigest()
    assert digest(a) == h
    t1, t2 = tree_digest({"a": jnp.arange(3.0)}), tree_digest({"a": jnp.arange(3.0) + 1})
    assert t1 != t2 and t1 == tree_digest({"a": np.arange(3.0)})
