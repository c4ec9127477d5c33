"""`hidden-ep2d`: the scar channel is constant, windows line up with the data, tiny end-to-end run."""

import dataclasses

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.experiments import hidden_ep2d
from dynajax.forecast import hidden as hd
from dynajax.forecast.hidden_baselines import ResNet


class Affine(nn.Module):
    """A parameter-free stand-in field ``x -> 2 x + 1`` (it moves every channel)."""

    @nn.compact
    def __call__(self, x):
        return 2 * x + 1


@pytest.mark.slow
def test_scar_channel_is_constant_and_windows_line_up(rng):
    with pytest.raises(ValueError, match="padding"):
        ResNet(3, padding="ZEROS").init(rng, jnp.zeros((3, 8, 8)))
    cfg = dataclasses.replace(hidden_ep2d.QUICK, n_frames=12, T=6, horizons=(2, 4, 6))
    states = hidden_ep2d.simulate_set(rng, 2, "rectangle", 2.0, 1, cfg)  # [2, 13, 3, 24, 24]
    scar = states[:, 0, 2]
    assert states.shape == (2, 13, 3, 24, 24) and scar.sum() > 0 and (states[:, :, 2] == scar[:, None]).all()
    np.testing.assert_array_equal(states[:, :, 0] * scar[:, None], 0.0)  # v = 0 on the scar
    w = hidden_ep2d.windows(states, 10, 4, starts=(3,))
    np.testing.assert_array_equal(w["obs"][:, :, 0], states[:, 3:13, 0])
    np.testing.assert_array_equal(w["obs"][:, :, 1], states[:, 3:13, 2])  # observed: (v, scar)
    np.testing.assert_array_equal(w["x0"], states[:, 6])  # the state at the last context frame
    np.testing.assert_array_equal(w["scar"], scar)
    model = hd.HiddenModel(hidden_ep2d.ScarField(Affine()), hd.ChannelProjection([0, 2], 3), setting="canonical",
                           n_context=4, substeps=1)
    x0 = jnp.asarray(w["x0"])
    x = model.advance({"field": {}}, x0)
    np.testing.assert_array_equal(x[:, 2], scar)  # d(scar)/dt = 0: the rollout keeps the scar
    np.testing.assert_allclose(x[:, :2], 3 * x0[:, :2] + 1, rtol=1e-6)  # Euler on the other channels


def test_config_rejects_impossible_settings():
    for bad, match in (({"models": ("jt",)}, "models"), ({"horizons": (6, 30)}, "test windows"),
                       ({"T": 40}, "n_context"), ({"size": 20}, "size"), ({"train_sigma": ()}, "train_sigma"),
                       ({"teacher_decay": 2.0}, "teacher_decay")):
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(hidden_ep2d.QUICK, **bad)


@pytest.mark.slow
def test_hidden_ep2d_tiny_run(tmp_path):
    cfg = dataclasses.replace(hidden_ep2d.QUICK, n_train=2, n_val=1, n_test=2, width=4, n_blocks=1, est_width=4,
                              T=4, batch=2, steps=2, val_every=1, models=("joint",))
    res = hidden_ep2d.run(cfg, (5,), tmp_path)
    rows = {r.method: r.to_json() for r in res.rows}
    pers = rows["Persistence / rectangular"]["metrics"]
    # the front moves: persistence errors grow with the horizon
    assert 0 < pers["mse_v_6ms"]["mean"] < pers["mse_v_12ms"]["mean"] < pers["mse_v_24ms"]["mean"]
    jt = rows["EP-Net 2.0, setting 1 (JT) / complex"]
    assert jt["reference"] == {"mse_v_6ms": 4.6e-4, "mse_v_12ms": 1.9e-3, "mse_v_24ms": 6.36e-3}
    assert "mse_h_6ms" not in jt["metrics"] and jt["metrics"]["scar_abs_v"]["mean"] >= 0  # JT: no canonical h
    bands = [c for c in res.checks if c.kind == "band"]
    assert [c.reference for c in bands] == [1.8e-4, 4.45e-4, 6.8e-4]
    assert any("OOD scar shapes" in c.name for c in res.checks)
    assert (tmp_path / "hidden_ep2d_rollout.png").stat().st_size > 10_000
