"""unify_patches: all HEPData signal patches compile to one layout and give the same CLs."""

import json

import jax
import numpy as np
import pytest
from conftest import DATA

import jaxlike
from jaxlike.exceptions import InvalidPatch
from jaxlike.workspace import unify_patches

ERJR = DATA / "atlas_erjr"
# three patches with different systematics subsets; 100p0_40p0 has no signal in CRlow
NAMES = ["patch.ERJR_100p0_20p0.json", "patch.ERJR_100p0_30p0.json", "patch.ERJR_100p0_40p0.json"]


@pytest.fixture(scope="module")
def erjr():
    ws = jaxlike.Workspace.load(ERJR / "BkgOnly.json")
    patches = [json.loads((ERJR / n).read_text()) for n in NAMES]
    return ws, patches


def test_patches_differ_in_layout_without_unification(erjr):
    ws, patches = erjr
    models = [ws.model(patches=[p]) for p in patches]
    assert len({(m.config, m.wiring) for m in models}) == len(models)


def test_unified_models_share_layout_and_reproduce_each_patch(erjr):
    ws, patches = erjr
    specs = unify_patches(ws, patches)
    models = [jaxlike.Workspace(s).model() for s in specs]
    assert len({(m.config, m.wiring) for m in models}) == 1
    assert all(m.config.same_names(models[0].config) for m in models)
    datas = [jaxlike.Workspace(s).data(m) for s, m in zip(specs, models, strict=True)]
    stacked = jaxlike.stack_models(models)
    batched = jax.vmap(lambda m, d: jaxlike.hypotest(1.0, d, m))(stacked, np.stack(datas))
    for k, patch in enumerate(patches):
        own = ws.model(patches=[patch])
        ref = jaxlike.hypotest(1.0, ws.data(own), own)
        # neutral modifiers leave the expected yields untouched
        np.testing.assert_allclose(
            models[k].expected_actualdata(models[k].config.suggested_init()),
            own.expected_actualdata(own.config.suggested_init()),
            rtol=1e-13,
        )
        np.testing.assert_allclose(batched.cls_obs[k], ref.cls_obs, rtol=1e-9)
        np.testing.assert_allclose(batched.cls_exp[k], ref.cls_exp, rtol=1e-9, atol=1e-12)
    # the published value for this patch (converged pyhf): CLs_obs = 0.5734
    assert abs(float(batched.cls_obs[2]) - 0.5734) < 5e-4


def test_missing_normfactor_cannot_be_neutralised(erjr):
    ws, patches = erjr
    broken = json.loads(json.dumps(patches[0]))
    for op in broken:
        op["value"]["modifiers"] = [
            m for m in op["value"]["modifiers"] if m["type"] != "normfactor"
        ]
    with pytest.raises(InvalidPatch, match="normfactor 'mu_SIG'"):
        unify_patches(ws, [patches[1], broken])


def test_patch_adding_nothing_is_rejected(erjr):
    ws, _ = erjr
    with pytest.raises(InvalidPatch, match=r"patches\[0\]"):
        unify_patches(ws, [[]])
