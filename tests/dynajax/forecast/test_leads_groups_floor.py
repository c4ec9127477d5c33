"""The One-For-All floor of the Table 3.15 grouping experiment (within-group variance)."""

import itertools

import jax
import numpy as np
import pytest

from dynajax.experiments.leads_lv_groups import one_for_all_floor


def _states(key):
    x = np.array(jax.random.normal(key, (8, 3, 5, 2)), np.float64)
    x[:, :, 0] = x[:1, :, 0]  # initial states shared across environments
    return x


def test_floor_is_the_best_group_constant_prediction(rng):
    k_x, k_p = jax.random.split(rng)
    x = _states(k_x)
    noise = 0.1 * np.asarray(jax.random.normal(k_p, (5, 8, *x.shape[1:])))
    for m in (1, 2, 4, 8):
        g = x.reshape(8 // m, m, *x.shape[1:])
        floor = one_for_all_floor(x, m)
        mean = g.mean(1, keepdims=True)
        assert np.isclose(np.mean((np.broadcast_to(mean, g.shape) - g) ** 2), floor)
        for dn in noise[:, : 8 // m, None]:  # any other prediction shared by a group does worse
            pred = mean + dn
            assert np.mean((np.broadcast_to(pred, g.shape) - g) ** 2) > floor
    # consecutive groups are nested, so by the law of total variance the floor cannot fall with m
    floors = [one_for_all_floor(x, m) for m in (1, 2, 4, 8)]
    assert floors[0] == 0.0 and all(a <= b + 1e-12 for a, b in itertools.pairwise(floors))


def test_floor_rejects_bad_inputs(rng):
    x = _states(rng)
    with pytest.raises(ValueError, match="divide 8"):
        one_for_all_floor(x, 3)
    with pytest.raises(ValueError, match="n_env >= 8"):
        one_for_all_floor(x[:4], 2)
    y = x.copy()
    y[1, 0, 0] += 1.0
    with pytest.raises(ValueError, match="shared"):
        one_for_all_floor(y, 2)
