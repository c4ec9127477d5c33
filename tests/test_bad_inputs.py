"""Bad input at the public entry points: every call below must raise a ``ValueError`` or
``TypeError`` that names the offending argument, never return a number or fail inside.

The cases are generated: for each function, each argument gets the bad values of its kind
(NaN/inf/empty/wrong-rank arrays, zero/negative/fractional sizes, impossible tolerances,
unknown names). ``python tests/test_bad_inputs.py`` prints the tally by outcome (clear error,
unclear error, silent return), the count the closing note of the reliability issue quotes.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":  # run as a script: the packages, not tests/dynajax, come first
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dynajax.transport as T
from dynajax.solve import integrate
from gantk import kernels as K

X = np.random.default_rng(0).normal(size=(6, 2)).astype(np.float32)
Y = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)
S = X / np.linalg.norm(X, axis=1, keepdims=True)  # on the circle S^1
KEY = jax.random.key(0)


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], object]
    names: tuple[str, ...]  # the message must name one of these


def _with_nan(a):
    a = np.array(a, copy=True)
    a.flat[1] = np.nan
    return a


def _with_inf(a):
    a = np.array(a, copy=True)
    a.flat[0] = np.inf
    return a


# bad point clouds [n, d] (the message names the cloud)
BAD_CLOUDS = {"nan": _with_nan, "inf": _with_inf, "rank1": lambda a: a[:, 0], "rank3": lambda a: a[None],
              "empty": lambda a: a[:0], "wrong_d": lambda a: np.concatenate([a, a[:, :1]], 1)}
# bad weights for a cloud of n points
BAD_WEIGHTS = {"negative": lambda n: np.r_[-1.0, np.full(n - 1, 2.0 / (n - 1))],
               "nan": lambda n: np.r_[np.nan, np.full(n - 1, 1.0 / (n - 1))],
               "zero_sum": lambda n: np.zeros(n), "wrong_len": lambda n: np.full(n + 1, 1.0 / (n + 1)),
               "rank2": lambda n: np.full((n, 1), 1.0 / n)}
BAD_P = {"zero": 0.0, "half": 0.5, "negative": -1.0, "nan": math.nan, "inf": math.inf}
BAD_SIZE = {"zero": 0, "negative": -1, "fraction": 2.5}
BAD_POSITIVE = {"zero": 0.0, "negative": -1.0, "nan": math.nan, "inf": math.inf}


def _distance_cases() -> list[Case]:
    dists = {
        "sliced_wasserstein": (T.sliced_wasserstein, X, Y, {"key": KEY}),
        "max_sliced_wasserstein": (T.max_sliced_wasserstein, X, Y, {"key": KEY, "n_steps": 5}),
        "spherical_sliced_wasserstein": (T.spherical_sliced_wasserstein, S, S[:5], {"key": KEY}),
        "sinkhorn_divergence": (T.sinkhorn_divergence, X, Y, {"epsilon": 0.5}),
        "exact_w2": (T.exact_w2, X, Y, {}),
        "energy_distance": (T.energy_distance, X, Y, {}),
        "mmd2": (T.mmd2, X, Y, {}),
    }
    cases = []
    for name, (fn, x, y, kw) in dists.items():
        for bad, make in BAD_CLOUDS.items():
            if name == "spherical_sliced_wasserstein" and bad == "wrong_d":
                continue  # a point of S^2 beside S^1: covered by the unit-norm check below
            cases.append(Case(f"{name}-x-{bad}", lambda fn=fn, x=x, y=y, kw=kw, m=make: fn(m(x), y, **kw), ("x", "y")))
            cases.append(Case(f"{name}-y-{bad}", lambda fn=fn, x=x, y=y, kw=kw, m=make: fn(x, m(y), **kw), ("x", "y")))
        if name != "mmd2":
            for bad, make in BAD_WEIGHTS.items():
                cases.append(Case(f"{name}-a-{bad}", lambda fn=fn, x=x, y=y, kw=kw, m=make: fn(x, y, m(len(x)), **kw), ("a",)))
                cases.append(Case(f"{name}-b-{bad}", lambda fn=fn, x=x, y=y, kw=kw, m=make: fn(x, y, None, m(len(y)), **kw), ("b",)))
    for name in ("sliced_wasserstein", "max_sliced_wasserstein", "spherical_sliced_wasserstein"):
        fn, x, y, kw = dists[name]
        for bad, p in BAD_P.items():
            cases.append(Case(f"{name}-p-{bad}", lambda fn=fn, x=x, y=y, kw=kw, p=p: fn(x, y, p=p, **kw), ("p",)))
        for bad, n in BAD_SIZE.items():
            cases.append(Case(f"{name}-n_proj-{bad}", lambda fn=fn, x=x, y=y, kw=kw, n=n: fn(x, y, **{**kw, "n_proj": n}), ("n_proj",)))
        cases.append(Case(f"{name}-no-key", lambda fn=fn, x=x, y=y: fn(x, y), ("key", "projections")))
        cases.append(Case(f"{name}-projections-nan", lambda fn=fn, x=x, y=y: fn(x, y, projections=_with_nan(np.eye(2))),
                          ("projections",)))
    cases.append(Case("spherical_sliced_wasserstein-x-off-sphere", lambda: T.spherical_sliced_wasserstein(2 * S, S, key=KEY), ("x",)))
    for bad, eps in BAD_POSITIVE.items():
        cases.append(Case(f"sinkhorn-epsilon-{bad}", lambda e=eps: T.sinkhorn(X, Y, epsilon=e), ("epsilon",)))
        if bad != "zero":  # threshold 0: run max_iterations, a valid request
            cases.append(Case(f"sinkhorn-threshold-{bad}", lambda e=eps: T.sinkhorn(X, Y, threshold=e), ("threshold",)))
    for bad, n in BAD_SIZE.items():
        cases.append(Case(f"sinkhorn-max_iterations-{bad}", lambda n=n: T.sinkhorn(X, Y, max_iterations=n), ("max_iterations",)))
    for bad, bw in BAD_POSITIVE.items():
        cases.append(Case(f"mmd2-bandwidths-{bad}", lambda bw=bw: T.mmd2(X, Y, bw), ("bandwidths",)))
    return cases


def _one_d_cases() -> list[Case]:
    u, v = X[:, 0], Y[:, 0]
    cases = []
    for name, fn in (("wasserstein_1d", T.wasserstein_1d), ("wasserstein_circle", T.wasserstein_circle)):
        uu, vv = (u, v) if name == "wasserstein_1d" else (np.mod(u, 1.0), np.mod(v, 1.0))
        for bad, make in {"nan": _with_nan, "inf": _with_inf, "empty": lambda a: a[:0]}.items():
            cases.append(Case(f"{name}-u-{bad}", lambda fn=fn, m=make, uu=uu, vv=vv: fn(m(uu), vv), ("u",)))
            cases.append(Case(f"{name}-v-{bad}", lambda fn=fn, m=make, uu=uu, vv=vv: fn(uu, m(vv)), ("v",)))
        for bad, make in BAD_WEIGHTS.items():
            if bad == "rank2":
                continue
            cases.append(Case(f"{name}-u_weights-{bad}", lambda fn=fn, m=make, uu=uu, vv=vv: fn(uu, vv, m(len(uu))), ("u_weights",)))
        for bad, p in BAD_P.items():
            cases.append(Case(f"{name}-p-{bad}", lambda fn=fn, p=p, uu=uu, vv=vv: fn(uu, vv, p=p), ("p",)))
    return cases


def _gaussian_cases() -> list[Case]:
    m, s = np.zeros(2), np.eye(2)
    bad_cov = {"negative_definite": -np.eye(2), "non_symmetric": np.array([[1.0, 0.5], [0.0, 1.0]]),
               "nan": _with_nan(np.eye(2)), "wrong_shape": np.eye(3), "rank1": np.ones(2)}
    cases = []
    for name, fn in (("gaussian_w2", T.gaussian_w2), ("gaussian_monge_map", T.gaussian_monge_map)):
        for bad, c in bad_cov.items():
            cases.append(Case(f"{name}-s1-{bad}", lambda fn=fn, c=c: fn(m, c, m, s), ("s1",)))
            cases.append(Case(f"{name}-s2-{bad}", lambda fn=fn, c=c: fn(m, s, m, c), ("s2",)))
        for bad, mm in {"nan": _with_nan(m), "wrong_d": np.zeros(3), "rank2": np.zeros((2, 1))}.items():
            cases.append(Case(f"{name}-m1-{bad}", lambda fn=fn, mm=mm: fn(mm, s, m, s), ("m1",)))
            cases.append(Case(f"{name}-m2-{bad}", lambda fn=fn, mm=mm: fn(m, s, mm, s), ("m2",)))
    cases.append(Case("gaussian_monge_map-s1-singular", lambda: T.gaussian_monge_map(m, np.diag([1.0, 0.0]), m, s), ("s1",)))
    return cases


def _integrate_cases() -> list[Case]:
    f = lambda t, y, args: -y  # noqa: E731
    y0, ts = jnp.ones(2), jnp.linspace(0.0, 1.0, 5)
    cases = []
    for bad, dt in {"zero": 0.0, "negative": -0.1, "nan": math.nan, "inf": math.inf}.items():
        cases.append(Case(f"integrate-dt0-{bad}", lambda dt=dt: integrate(f, y0, ts, solver="rk4", dt0=dt), ("dt0",)))
    for bad, tol in {"negative": -1.0, "nan": math.nan, "inf": math.inf}.items():
        cases.append(Case(f"integrate-rtol-{bad}", lambda tol=tol: integrate(f, y0, ts, rtol=tol, atol=1e-6), ("rtol",)))
        cases.append(Case(f"integrate-atol-{bad}", lambda tol=tol: integrate(f, y0, ts, rtol=1e-3, atol=tol), ("atol",)))
    for bad, n in BAD_SIZE.items():
        cases.append(Case(f"integrate-max_steps-{bad}", lambda n=n: integrate(f, y0, ts, max_steps=n), ("max_steps",)))
    for bad, t in {"decreasing": ts[::-1], "nan": jnp.array([0.0, jnp.nan, 1.0]), "rank2": ts[:, None],
                   "empty": ts[:0]}.items():
        cases.append(Case(f"integrate-ts-{bad}", lambda t=t: integrate(f, y0, t), ("ts",)))
    cases.append(Case("integrate-y0-nan", lambda: integrate(f, jnp.array([1.0, jnp.nan]), ts), ("y0",)))
    cases.append(Case("integrate-solver-unknown", lambda: integrate(f, y0, ts, solver="rk5"), ("solver",)))
    cases.append(Case("integrate-adjoint-unknown", lambda: integrate(f, y0, ts, adjoint="reverse"), ("adjoint",)))
    cases.append(Case("integrate-backend-unknown", lambda: integrate(f, y0, ts, backend="cuda"), ("backend",)))
    cases.append(Case("integrate-t0-after-ts", lambda: integrate(f, y0, ts, t0=0.5), ("t0",)))
    return cases


def _gantk_cases() -> list[Case]:
    kf = K.kernel_fn(K.mlp("relu", 2, 16))
    cases = []
    for bad, make in BAD_CLOUDS.items():
        if bad == "empty":
            continue  # an empty Gram matrix is a valid answer
        cases.append(Case(f"kernel_fn-x1-{bad}", lambda m=make: kf(m(X), Y, "ntk"), ("x1", "x2", "inputs")))
        cases.append(Case(f"kernel_matrix-x2-{bad}", lambda m=make: K.kernel_matrix("relu", X, m(Y)), ("x1", "x2", "inputs")))
    cases.append(Case("kernel_fn-get-unknown", lambda: kf(X, Y, "nngp2"), ("get",)))
    cases.append(Case("kernel_matrix-kernel-unknown", lambda: K.kernel_matrix("relu6", X, Y), ("kernel",)))
    for bad, n in BAD_SIZE.items():
        cases.append(Case(f"kernel_matrix-block_size-{bad}", lambda n=n: K.kernel_matrix("relu", X, Y, block_size=n), ("block_size",)))
        cases.append(Case(f"mlp-depth-{bad}", lambda n=n: K.mlp("relu", n, 16), ("depth",)))
        cases.append(Case(f"mlp-width-{bad}", lambda n=n: K.mlp("relu", 2, n), ("width",)))
        cases.append(Case(f"Dense-out_dim-{bad}", lambda n=n: K.Dense(n), ("out_dim",)))
    for bad, v in {"negative": -1.0, "nan": math.nan, "inf": math.inf}.items():
        cases.append(Case(f"Dense-W_std-{bad}", lambda v=v: K.Dense(4, W_std=v), ("W_std",)))
        cases.append(Case(f"Dense-b_std-{bad}", lambda v=v: K.Dense(4, b_std=v), ("b_std",)))
    cases.append(Case("mlp-activation-unknown", lambda: K.mlp("swish2"), ("activation",)))
    cases.append(Case("Dense-parameterization-unknown", lambda: K.Dense(4, parameterization="mup"), ("parameterization",)))
    return cases


def _learning_cases() -> list[Case]:
    """Systems, datasets, training, networks and models: sizes, names and data."""
    import optax

    from dynajax import arch, forecast, nn, systems, train

    pend = systems.get_system("pendulum")
    cases = [Case("get_system-unknown", lambda: systems.get_system("pendulm"), ("name", "pendulm")),
             Case("generate-split-unknown", lambda: pend.generate("validation", n_traj=2, cache=False), ("split",)),
             Case("generate-solver-unknown", lambda: pend.generate("train", n_traj=2, solver="rk5", cache=False), ("solver",))]
    for bad, n in BAD_SIZE.items():
        cases.append(Case(f"generate-n_traj-{bad}", lambda n=n: pend.generate("train", n_traj=n, cache=False), ("n_traj",)))
    for bad, v in BAD_POSITIVE.items():
        cases.append(Case(f"generate-dt-{bad}", lambda v=v: pend.generate("train", n_traj=2, dt=v, cache=False), ("dt",)))
        cases.append(Case(f"generate-horizon-{bad}", lambda v=v: pend.generate("train", n_traj=2, horizon=v, cache=False),
                          ("horizon",)))

    opt = optax.sgd(0.1)
    step = train.make_step(lambda p, b, k: (jnp.mean((b[0] @ p - b[1]) ** 2), {}), opt)
    state = train.init_state(jnp.zeros(2), opt, key=KEY)
    data = (X, X[:, 0])

    def fit(**kw):
        return train.fit(step, state, kw.pop("data", data), **{"n_steps": 10, "progress": False, **kw})

    for bad, n in BAD_SIZE.items():
        for arg in ("n_steps", "chunk_size", "batch_size", "patience"):
            if (arg, bad) != ("n_steps", "zero"):  # n_steps=0 is valid: the initial state comes back
                cases.append(Case(f"fit-{arg}-{bad}", lambda arg=arg, n=n: fit(**{arg: n}), (arg,)))
    cases.append(Case("fit-batch_size-too-large", lambda: fit(batch_size=7), ("batch_size",)))
    cases.append(Case("fit-data-empty", lambda: fit(data=(X[:0], X[:0, 0])), ("data",)))
    cases.append(Case("fit-data-ragged", lambda: fit(data=(X, X[:5, 0])), ("data",)))
    cases.append(Case("fit-patience-without-validate", lambda: fit(patience=2), ("patience", "validate")))
    cases.append(Case("scan_fit-eval_every-missing", lambda: train.scan_fit(step, state, data, n_steps=10, evaluate=lambda p: {}),
                      ("eval_every",)))
    cases.append(Case("Uzawa-tau-negative", lambda: train.Uzawa(1.0, -1.0), ("tau",)))
    cases.append(Case("Uzawa-every-zero", lambda: train.Uzawa(1.0, 1.0, every=0), ("every",)))

    cases += [Case("get_activation-unknown", lambda: nn.get_activation("relu7"), ("activation", "relu7")),
              Case("get_initializer-unknown", lambda: nn.get_initializer("xavier_magic"), ("initializer", "xavier_magic")),
              Case("MLP-features-empty", lambda: nn.MLP(()).init(KEY, X), ("features",)),
              Case("MLP-features-zero", lambda: nn.MLP((4, 0)).init(KEY, X), ("features",)),
              Case("ConvNet-padding-unknown", lambda: nn.ConvNet((2,), padding="mirror").init(KEY, jnp.ones((1, 4, 4, 1))),
                   ("padding",)),
              Case("FNO2d-modes-zero", lambda: nn.FNO2d(0, 4, 1).init(KEY, jnp.ones((1, 8, 8, 1))), ("modes",))]
    for bad, n in BAD_SIZE.items():
        cases.append(Case(f"sample_ball-n-{bad}", lambda n=n: arch.sample_ball(n, 2, key=KEY), ("n",)))
        cases.append(Case(f"sample_sphere-d-{bad}", lambda n=n: arch.sample_sphere(4, n, key=KEY), ("d",)))
        cases.append(Case(f"init_layers-depth-{bad}", lambda n=n: arch.init_layers("resnet", n, 4, key=KEY), ("depth",)))
    cases += [Case("init_layers-kind-unknown", lambda: arch.init_layers("lstm", 2, 4, key=KEY), ("kind",)),
              Case("ContinuousClassifier-solver-unknown",
                   lambda: arch.ContinuousClassifier(2, solver="rk5").init(KEY, X), ("solver",)),
              Case("ContinuousClassifier-adjoint-unknown",
                   lambda: arch.ContinuousClassifier(2, adjoint="reverse").init(KEY, X), ("adjoint",)),
              Case("StableClassifier-kind-unknown", lambda: arch.StableClassifier("lstm", 2).init(KEY, X), ("kind",)),
              Case("make_model-variant-unknown", lambda: forecast.make_model("leads2", nn.MLP((2,)), 2, 0.1), ("variant",)),
              Case("LeadsModel-n_env-zero", lambda: forecast.LeadsModel(nn.MLP((2,)), 0, 0.1), ("n_env",)),
              Case("LeadsModel-dt-negative", lambda: forecast.LeadsModel(nn.MLP((2,)), 2, -0.1), ("dt",)),
              Case("LeadsModel-solver-unknown", lambda: forecast.LeadsModel(nn.MLP((2,)), 2, 0.1, solver="rk5"), ("solver",)),
              Case("Aphynity-solver-unknown", lambda: forecast.Aphynity(network=nn.MLP((2,)), solver="rk5"), ("solver",)),
              Case("Aphynity-substeps-zero", lambda: forecast.Aphynity(network=nn.MLP((2,)), substeps=0), ("substeps",))]
    return cases


CASES = (_distance_cases() + _one_d_cases() + _gaussian_cases() + _integrate_cases() + _gantk_cases()
         + _learning_cases())

# Traced values (under jit) reach the checks as tracers: equinox.error_if raises when the program
# runs, with the eager message inside a JaxRuntimeError.
f_decay = lambda t, y, args: -y  # noqa: E731
TRACED = [
    Case("jit-sinkhorn-epsilon", lambda: jax.jit(lambda e: T.sinkhorn(X, Y, epsilon=e).cost)(-1.0), ("epsilon",)),
    Case("jit-sliced-p", lambda: jax.jit(lambda p: T.sliced_wasserstein(X, Y, p=p, key=KEY))(0.5), ("p",)),
    Case("jit-sliced-a", lambda: jax.jit(lambda a: T.sliced_wasserstein(X, Y, a, key=KEY))(-jnp.ones(6) / 6), ("a",)),
    Case("jit-gaussian_w2-s1", lambda: jax.jit(lambda s: T.gaussian_w2(jnp.zeros(2), s, jnp.zeros(2), jnp.eye(2)))(-jnp.eye(2)),
         ("s1",)),
    Case("jit-mmd2-bandwidths", lambda: jax.jit(lambda b: T.mmd2(X, Y, b))(-1.0), ("bandwidths",)),
    Case("jit-integrate-dt0", lambda: jax.jit(lambda dt: integrate(f_decay, jnp.ones(2), np.linspace(0.0, 1.0, 3),
                                                                   solver="rk4", dt0=dt))(-0.1), ("dt0",)),
    Case("vmap-wasserstein_1d-u_weights", lambda: jax.vmap(lambda w: T.wasserstein_1d(X[:, 0], Y[:, 0], w))(
        -jnp.ones((2, 6))), ("u_weights",)),
]


def outcome(case: Case, clear_types: tuple[type[Exception], ...] = (ValueError, TypeError)) -> str:
    """``clear`` (an error of ``clear_types`` naming the argument), ``unclear`` (another error
    or no name) or ``silent`` (a value came back)."""
    try:
        out = case.call()
        jax.block_until_ready(out)
    except clear_types as e:
        return "clear" if any(n in str(e) for n in case.names) else f"unclear: {type(e).__name__}: {e}"
    except Exception as e:  # noqa: BLE001  the probe reports what a user would have seen
        return f"unclear: {type(e).__name__}: {e}"
    return "silent"


@pytest.mark.parametrize("case", TRACED, ids=lambda c: c.id)
def test_traced_bad_input_gives_the_eager_message(case):
    assert outcome(case, clear_types=(Exception,)) == "clear"  # JaxRuntimeError wraps the message


def test_there_are_at_least_300_probes():
    assert len(CASES) >= 300 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_by_name(case):
    assert outcome(case) == "clear"


if __name__ == "__main__":  # the tally
    tally: dict[str, int] = {}
    for c in CASES + TRACED:
        o = outcome(c, clear_types=(Exception,) if c in TRACED else (ValueError, TypeError))
        tally[o.split(":")[0]] = tally.get(o.split(":")[0], 0) + 1
        if o != "clear":
            print(f"{c.id}: {o[:160]}", file=sys.stderr)
    print(len(CASES) + len(TRACED), "probes:", tally)
