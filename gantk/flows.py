"""Particle flows driven by a discriminator (thesis section 5.6, the generator-free setting).

Each step (specs/gantk.md 1.7):

* infinite width: the discriminator is trained from ``f_0 = 0`` for a time ``tau`` in closed
  form (:mod:`gantk.discriminators`), re-set at every step;
* finite width: one full-batch SGD step (learning rate ``disc_lr``) on the discriminator,
  which persists across steps (``reset=True`` re-initialises it at every step instead);
* particles: explicit Euler on the particle-mean loss,
  ``x_i <- x_i - eta * d/dx_i [(1/N) sum_l c(f(x_l))] = x_i - (eta/N) grad c(f)(x_i)``.

For the infinite IPM this is gradient descent with step ``eta`` on ``(tau/2) MMD_k^2``
(:func:`ntk_mmd2`): the NTK-MMD gradient flow (Prop 5.8 and Arbel et al. 2019).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from gantk import discriminators as D
from gantk import kernels as K
from gantk.losses import get_loss

__all__ = [
    "FlowConfig", "FlowState", "ntk_mmd2", "init_state", "make_step", "make_flow", "run_flow",
    "generator_mlp", "make_generator_step",
]


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """One particle-flow setting (the released code's loss/arch configs).

    Attributes:
        loss: ``"ipm"``, ``"lsgan"`` or ``"gan"``.
        kernel: kernel name of :data:`gantk.kernels.KERNELS` (the architecture).
        width: ``None`` for the infinite-width discriminator, else the finite width.
        tau: infinite-width training time.
        eta: particle step size (``eta / N`` per particle).
        disc_lr: finite-width discriminator learning rate.
        reset: finite width: re-initialise the discriminator at every step.
        antisymmetric: finite width: antisymmetric initialisation (``f_0 = 0``).
        lsgan_method: closed-form evaluation (``"krylov"``, ``"eigh"``, ``"rk4"``).
        krylov_dim: Lanczos steps of the ``"krylov"`` method.
        ode_steps: RK4 steps of the any-loss ODE (``"gan"``).
        block_size: row block of kernel evaluations (``None``: unblocked).
    """

    loss: str = "ipm"
    kernel: str = "relu"
    width: int | None = None
    tau: float = 1.0
    eta: float = 1000.0
    disc_lr: float = 0.01
    reset: bool = False
    antisymmetric: bool = True
    lsgan_method: str = "krylov"
    krylov_dim: int = 32
    ode_steps: int = 50
    block_size: int | None = None

    def __post_init__(self):
        get_loss(self.loss)
        K.get_kernel(self.kernel)
        if self.width is not None and (int(self.width) != self.width or self.width < 1):
            raise ValueError(f"width must be None (infinite) or a positive integer; got {self.width!r}")
        if self.width is not None and self.kernel == "rbf":
            raise ValueError("the RBF kernel has no finite-width network; use width=None")
        for name in ("tau", "eta", "disc_lr"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
        if self.lsgan_method not in D.LSGAN_METHODS:
            raise ValueError(f"lsgan_method must be one of {D.LSGAN_METHODS}; got {self.lsgan_method!r}")


class FlowState(NamedTuple):
    """Particles ``x [N, d]``, finite discriminator parameters (``()`` at infinite width), PRNG key."""

    x: Array
    params: Any
    key: Array


def ntk_mmd2(kernel, x: ArrayLike, y: ArrayLike, *, get: str = "ntk") -> Float[Array, ""]:
    """``MMD_k^2(x, y) = mean k(x, x') + mean k(y, y') - 2 mean k(x, y)`` (V-statistic) for any kernel."""
    kxx = K.kernel_matrix(kernel, x, x, get=get)
    kyy = K.kernel_matrix(kernel, y, y, get=get)
    kxy = K.kernel_matrix(kernel, x, y, get=get)
    return jnp.mean(kxx) + jnp.mean(kyy) - 2 * jnp.mean(kxy)


def _finite(cfg: FlowConfig) -> D.FiniteDiscriminator:
    layer, _ = K.get_kernel(cfg.kernel, width=cfg.width)
    return D.FiniteDiscriminator(layer, cfg.antisymmetric)


def init_state(cfg: FlowConfig, x0: ArrayLike, key: Array) -> FlowState:
    """Initial state: particles ``x0 [N, d]`` and, at finite width, fresh discriminator parameters."""
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(f"x0 must be [N, d]; got {x0.shape}")
    key, sub = jax.random.split(key)
    params = () if cfg.width is None else _finite(cfg).init(sub, x0.shape[1])
    return FlowState(x0, params, key)


def make_step(cfg: FlowConfig, y: Array) -> Callable[[FlowState], FlowState]:
    """The pure step ``state -> state`` towards the fixed target ``y [M, d]``."""
    n_get = K.get_kernel(cfg.kernel)[1]
    layer = K.get_kernel(cfg.kernel)[0]
    loss = get_loss(cfg.loss)

    if cfg.width is None:
        def disc_kw():
            if cfg.loss == "lsgan":
                return {"method": cfg.lsgan_method, "krylov_dim": cfg.krylov_dim}
            if cfg.loss == "ipm":
                return {}
            return {"steps": cfg.ode_steps}

        def step(state: FlowState) -> FlowState:
            x = state.x
            disc = D.infinite(cfg.loss, layer, x, y, cfg.tau, get=n_get, block_size=cfg.block_size, **disc_kw())
            g = D.particle_gradient(loss, disc, layer, x, get=n_get, block_size=cfg.block_size)
            return state._replace(x=x - (cfg.eta / x.shape[0]) * g)

        return step

    fd = _finite(cfg)

    def step(state: FlowState) -> FlowState:
        x, params, key = state
        if cfg.reset:
            key, sub = jax.random.split(key)
            params = fd.init(sub, x.shape[1])
        params = fd.sgd_step(loss, params, x, y, cfg.disc_lr)
        g = fd.particle_gradient(loss, params, x)
        return FlowState(x - (cfg.eta / x.shape[0]) * g, params, key)

    return step


def make_flow(cfg: FlowConfig, steps: int, snapshot_every: int) -> Callable:
    """A pure, jit/vmap-able ``flow(x0, y, key) -> (x_final [N, d], snapshots [S, N, d])``.

    ``S = steps // snapshot_every`` snapshots, taken after steps ``snapshot_every, 2 * snapshot_every, ...``.
    """
    if steps < 1 or snapshot_every < 1 or steps % snapshot_every:
        raise ValueError(f"steps ({steps}) must be a positive multiple of snapshot_every ({snapshot_every})")

    def flow(x0, y, key):
        step = make_step(cfg, y)
        state = init_state(cfg, x0, key)

        def chunk(s, _):
            s = jax.lax.fori_loop(0, snapshot_every, lambda i, t: step(t), s)
            return s, s.x

        state, snaps = jax.lax.scan(chunk, state, None, length=steps // snapshot_every)
        return state.x, snaps

    return flow


def run_flow(cfg: FlowConfig, x0: ArrayLike, y: ArrayLike, steps: int, *, key: Array | None = None,
             snapshot_every: int | None = None) -> tuple[Array, Array]:
    """Runs ``steps`` particle steps (jit-compiled); returns ``(x_final, snapshots)``."""
    snapshot_every = steps if snapshot_every is None else snapshot_every
    key = jax.random.key(0) if key is None else key
    flow = jax.jit(make_flow(cfg, steps, snapshot_every))
    return flow(jnp.asarray(x0), jnp.asarray(y), key)


def generator_mlp(out_dim: int, width: int = 512, depth: int = 3) -> K.Layer:
    """The released code's generator: ReLU MLP without bias, NTK parameterisation (``--generator``)."""
    return K.mlp("relu", depth, width, 1.0, None, out_dim=out_dim)


def make_generator_step(cfg: FlowConfig, y: Array, generator: K.Layer, lr: float = 1.0) -> Callable:
    """One generator-training step with an infinite-width discriminator (section 5.6, eq. 5.3).

    ``step(theta, z, z_disc) -> (theta', loss)``: the discriminator is trained (closed form /
    ODE, ``f_0 = 0``) on the fake batch ``g(z_disc)`` and ``y``; then plain SGD with step
    ``lr`` on ``mean_i c(f(g(z_i)))``, with the discriminator's support and coefficients held
    fixed (alternating-optimisation gradient), the gradient flowing through ``g(z)`` into the
    kernel's first argument.
    """
    if cfg.width is not None:
        raise ValueError("generator training is implemented for the infinite-width discriminator (width=None)")
    layer, get = K.get_kernel(cfg.kernel)
    pk = K.as_pair_kernel(layer, get)
    loss = get_loss(cfg.loss)
    kw = {"method": cfg.lsgan_method, "krylov_dim": cfg.krylov_dim} if cfg.loss == "lsgan" else (
        {} if cfg.loss == "ipm" else {"steps": cfg.ode_steps})

    def step(theta, z, z_disc):
        x_disc = jax.lax.stop_gradient(generator.apply(theta, z_disc))
        disc = D.infinite(cfg.loss, layer, x_disc, y, cfg.tau, get=get, **kw)
        pts, coef = jax.lax.stop_gradient(disc.points), jax.lax.stop_gradient(disc.coef)

        def gen_loss(th):
            return jnp.mean(loss.c(pk(generator.apply(th, z), pts) @ coef))

        val, g = jax.value_and_grad(gen_loss)(theta)
        return jax.tree.map(lambda p, d: p - lr * d, theta, g), val

    return step
