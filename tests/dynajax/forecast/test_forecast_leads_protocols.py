"""LEADS table protocols: every variant on the same data (Table 3.14), adaptation rows (Table 3.13)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.forecast import leads
from dynajax.forecast.leads_baselines import adaptation_rows, compare_variants

DT = 0.25


def _data(rng, rates, n_traj=2):
    """Exact trajectories of du/dt = a_e u, ``[n_env, n_traj, 6, 1]``."""
    u0 = jax.random.uniform(rng, (len(rates), n_traj, 1, 1), minval=1.0, maxval=2.0)
    ts = DT * jnp.arange(6)
    return u0 * jnp.exp(jnp.asarray(rates)[:, None, None, None] * ts[None, None, :, None])


def _net():
    return nn.Dense(1, use_bias=False, kernel_init=nn.initializers.zeros)


def _keys(rng, n=2):
    return jax.vmap(lambda s: jax.random.fold_in(rng, s))(jnp.arange(n))


@pytest.mark.slow
def test_compare_variants_one_field_cannot_fit_several_rates(rng):
    x = _data(rng, [-0.2, -0.8, -1.4])
    out = compare_variants(("one_for_all", "leads_no_min"), _net(), x, x, [x], dt=DT, n_steps=300, keys=_keys(rng),
                           gbml_steps=100, chunk_size=100, lr=3e-2)
    assert set(out) == {"one_for_all", "leads_no_min", "gbml"}
    (ofa,), (nomin,), (gbml,) = (out[k][2] for k in ("one_for_all", "leads_no_min", "gbml"))
    assert ofa.shape == nomin.shape == (2, 3)
    # one shared rate leaves the extreme environments unfitted; per-environment fields fit them all
    assert nomin.mean() < 1e-2 * ofa.mean()
    # GBML-like starts from One-For-All and fine-tunes per environment: better on every seed
    assert np.all(gbml.mean(-1) < ofa.mean(-1))
    with pytest.raises(ValueError, match="one_for_all"):
        compare_variants(("leads",), _net(), x, x, [x], dt=DT, n_steps=1, keys=_keys(rng), gbml_steps=1)


@pytest.mark.slow
def test_adaptation_rows(rng):
    train, test = _data(rng, [-0.3, -0.9], n_traj=1), _data(jax.random.fold_in(rng, 1), [-0.3, -0.9], n_traj=4)
    keys = _keys(rng)
    f = jax.vmap(lambda k: leads.init_params(leads.make_model("leads", _net(), 2, DT), train[0, 0, 0], key=k)["f"])(keys)
    f = jax.tree_util.tree_map(lambda w: w - 0.6, f)  # a pretrained f: rate -0.6 shared by the new environments
    rows = adaptation_rows(_net(), f, train, test, (1, 50, 200), dt=DT, keys=keys, lr=3e-2, lam=1e3)
    assert set(rows) == {"f_only", "from_scratch", "frozen_f"}
    assert all(v.shape == (2, 3) for v in rows.values())
    # f alone never trains; with f frozen, the new g_e improve on it
    np.testing.assert_array_equal(rows["f_only"][:, 0], rows["f_only"][:, 2])
    assert np.all(rows["frozen_f"][:, 2] < 0.1 * rows["f_only"][:, 2])
    # starting from the shared rate beats starting from zero at the first step
    assert np.all(rows["frozen_f"][:, 0] < rows["from_scratch"][:, 0])
