"""`hidden-ep2d`: the scar channel is constant, windows line up with the data, tiny end-to-end run."""

import json

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.experiments import hidden_ep2d, reproduce
from dynajax.forecast import hidden as hd
from dynajax.forecast.hidden_baselines import ResNet


class Affine(nn.Module):
    """A parameter-free stand-in field ``x -> 2 x + 1`` (it moves every channel)."""

    @nn.compact
    def __call__(self, x):
        return 2 * x + 1


def test_scar_channel_is_constant_and_windows_line_up(rng, monkeypatch):
    with pytest.raises(ValueError, match="padding"):
        ResNet(3, padding="ZEROS").init(rng, jnp.zeros((3, 8, 8)))
    monkeypatch.setitem(hidden_ep2d.DATA, "n_frames", 12)
    states = hidden_ep2d.simulate_set(rng, 2, "rectangle", 2.0, 1)  # [2, 13, 3, 24, 24]
    scar = states[:, 0, 2]
    assert scar.sum() > 0 and (states[:, :, 2] == scar[:, None]).all()
    np.testing.assert_array_equal(states[:, :, 0] * scar[:, None], 0.0)  # v = 0 on the scar
    w = hidden_ep2d.windows(states, 10, starts=(3,))
    np.testing.assert_array_equal(w["obs"][:, :, 0], states[:, 3:13, 0])
    np.testing.assert_array_equal(w["obs"][:, :, 1], states[:, 3:13, 2])  # observed: (v, scar)
    np.testing.assert_array_equal(w["x0"], states[:, 6])  # the state at the last context frame
    model = hd.HiddenModel(hidden_ep2d.ScarField(Affine()), hd.ChannelProjection([0, 2], 3), setting="canonical",
                           n_context=4, substeps=1)
    x0 = jnp.asarray(w["x0"])
    x = model.advance({"field": {}}, x0)
    np.testing.assert_array_equal(x[:, 2], scar)  # d(scar)/dt = 0: the rollout keeps the scar
    np.testing.assert_allclose(x[:, :2], 3 * x0[:, :2] + 1, rtol=1e-6)  # Euler on the other channels


@pytest.mark.slow
def test_hidden_ep2d_tiny_run(tmp_path, monkeypatch):
    tiny = dict(hidden_ep2d.SIZES["quick"], n_train=2, n_val=2, n_test=2, width=4, n_blocks=1, est_width=4,
                batch=2, steps=2, val_every=1, models=("canonical",))
    monkeypatch.setitem(hidden_ep2d.SIZES, "quick", tiny)
    m = reproduce("hidden-ep2d", scale="quick", seeds=1, out=tmp_path)
    out = tmp_path / "hidden-ep2d"
    assert json.loads((out / "metrics.json").read_text())["experiment"] == "hidden-ep2d"
    rows = {r["method"]: r for r in m["rows"]}
    pers = rows["Persistence / rectangular"]["metrics"]
    # the front moves: persistence errors grow with the horizon
    assert 0 < pers["mse_v_6ms"]["mean"] < pers["mse_v_12ms"]["mean"] < pers["mse_v_24ms"]["mean"]
    assert rows["Setting 2 (X0 = (v, h) given) / rectangular"]["metrics"]["scar_abs_v"]["mean"] >= 0
    names = {c["name"] for c in m["checks"]}
    assert any("OOD scar shapes" in n for n in names)
    assert (out / "hidden_ep2d_rollout.png").stat().st_size > 10_000
