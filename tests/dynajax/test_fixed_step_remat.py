"""What the fixed-step rollout stores for reverse mode (``remat``) changes no value or gradient."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax import _fixed_step
from dynajax.solve import get_solver

TABLEAU = _fixed_step.tableau_of(get_solver("rk4_38"))
B, D = 5, 2
H = _fixed_step.DOTS_MIN_CONTRACTION  # hidden width: the products by w1, w2 are stored


def _field(t, y, p):
    h = jnp.tanh(y @ p["w0"] + p["b0"] + 0.1 * t)
    h = jax.nn.relu(h @ p["w1"])
    return h @ p["w2"] - 0.3 * y


def _params(key):
    k0, k1, k2 = jax.random.split(key, 3)
    return {"w0": jax.random.normal(k0, (D, H)) * 0.5, "b0": jnp.zeros(H),
            "w1": jax.random.normal(k1, (H, H)) * 0.3, "w2": jax.random.normal(k2, (H, D)) * 0.3}


def _loop_rollout(p, y0, n, substeps, interval):
    """Brute force: a Python loop of RK steps, no scan, no checkpoint."""
    h = interval / substeps
    ys, y, t = [y0], y0, 0.0
    for _ in range(n):
        for _ in range(substeps):
            y = _fixed_step.rk_step(_field, TABLEAU, jnp.float32(t), y, jnp.float32(h), p)
            t += h
        ys.append(y)
    return jnp.stack(ys)


@pytest.mark.slow
def test_rollout_values_and_gradients_equal_a_plain_loop_for_every_remat(rng):
    p = _params(rng)
    y0 = jax.random.normal(jax.random.fold_in(rng, 1), (B, D))
    target = jax.random.normal(jax.random.fold_in(rng, 2), (3, B, D))
    rollouts = {"loop": lambda p, y0: _loop_rollout(p, y0, 2, 2, 0.2)}
    for remat in ("full", "dots"):
        rollouts[remat] = functools.partial(_scan_rollout, remat=remat)

    @jax.jit
    def all_value_and_grads(p, y0):
        def loss(p, y, roll):
            return jnp.mean((roll(p, y) - target) ** 2)

        return {name: jax.value_and_grad(loss, argnums=(0, 1))(p, y0, roll) for name, roll in rollouts.items()}

    out = all_value_and_grads(p, y0)
    for remat in ("full", "dots"):
        for a, b in zip(jax.tree_util.tree_leaves(out[remat]), jax.tree_util.tree_leaves(out["loop"])):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=remat)


def _scan_rollout(p, y0, remat):
    return _fixed_step.rollout(_field, TABLEAU, y0, 0.0, 0.2, 2, 2, p, remat=remat)


def test_auto_remat_stores_wide_dot_outputs_only_within_the_budget(rng, monkeypatch):
    p, y0 = _params(rng), jnp.ones((B, D))
    jaxpr = jax.make_jaxpr(_field)(0.0, y0, p).jaxpr
    # products by w1 [H, H] and w2 [H, D] sum over H terms: [B, H] and [B, D] float32 are
    # stored; the one by w0 [D, H] sums over D = 2 terms (cheaper to recompute)
    assert _fixed_step._dot_output_bytes(jaxpr) == 4 * B * (H + D)
    # a product with a batch dimension (e.g. per-environment weights under vmap) is not stored
    batched = jax.make_jaxpr(jax.vmap(_field, in_axes=(None, 0, 0)))(
        0.0, jnp.ones((3, B, D)), jax.tree_util.tree_map(lambda a: jnp.stack([a] * 3), p)).jaxpr
    assert _fixed_step._dot_output_bytes(batched) == 0
    n_evals = 40 * 4
    assert _fixed_step.resolve_remat("auto", _field, 0.0, y0, p, n_evals) == "dots"
    monkeypatch.setattr(_fixed_step, "DOTS_BUDGET_BYTES", 4 * B * (H + D) * n_evals - 1)
    assert _fixed_step.resolve_remat("auto", _field, 0.0, y0, p, n_evals) == "full"
    assert _fixed_step.resolve_remat("dots", _field, 0.0, y0, p, n_evals) == "dots"
    monkeypatch.setattr(_fixed_step, "DOTS_MIN_CONTRACTION", H + 1)  # nothing wide enough
    monkeypatch.setattr(_fixed_step, "DOTS_BUDGET_BYTES", 2**40)
    assert _fixed_step.resolve_remat("auto", _field, 0.0, y0, p, n_evals) == "full"
    with pytest.raises(ValueError, match="unknown remat"):
        _fixed_step.resolve_remat("none", _field, 0.0, y0, p, n_evals)
