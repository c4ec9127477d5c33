"""Particle flows driven by a discriminator (thesis section 5.6, the generator-free setting).

Each step, as in the released GAN(TK)^2 code (Franceschi et al. 2022, ICML; Ayed 2022
thesis section 5.7.1):

* infinite width: the discriminator is trained from ``f_0 = 0`` for a time ``tau`` in closed
  form (:mod:`gantk.discriminators`), re-set at every step;
* finite width: one full-batch SGD step (learning rate ``disc_lr``) on the discriminator,
  which persists across steps (``reset=True`` re-initialises it at every step instead);
* particles: explicit Euler on the particle-mean loss,
  ``x_i <- x_i - eta * d/dx_i [(1/N) sum_l c(f(x_l))] = x_i - (eta/N) grad c(f)(x_i)``.

For the infinite IPM this is gradient descent with step ``eta`` on ``(tau/2) MMD_k^2``
(:func:`ntk_mmd2`): the NTK-MMD gradient flow (Prop 5.8 and Arbel et al. 2019).

The kernel of a :class:`FlowConfig` is a name, a :class:`gantk.kernels.Layer` or any
neural-tangents-style ``kernel_fn(x1, x2, get)``. :func:`make_sharded_ipm_step` splits the
particles over the devices of a :mod:`dynajax.parallel` mesh, with blocked kernel evaluation
(memory ``O(block * (N + M))`` per device; 20 000 particles in ``benchmarks/gantk.py``).
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
    "resolve_kernel", "infinite_particle_gradient", "make_sharded_ipm_step",
    "generator_mlp", "make_generator_step",
]


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    """One particle-flow setting (the released code's loss/arch configs).

    Attributes:
        loss: ``"ipm"``, ``"lsgan"`` or ``"gan"``.
        kernel: kernel name of :data:`gantk.kernels.KERNELS` (the architecture), a
            :class:`gantk.kernels.Layer`, or any callable ``kernel_fn(x1, x2, get)`` with
            neural-tangents' signature (e.g. an ``nt.stax`` kernel; infinite width only).
        get: which kernel of a Layer / callable to use (``"ntk"`` or ``"nngp"``); ``None``
            means ``"ntk"`` (names fix it themselves: ``"nngp"`` for ``"rbf"``).
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
    kernel: Any = "relu"
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
    get: str | None = None

    def __post_init__(self):
        get_loss(self.loss)
        if isinstance(self.kernel, str):
            K.get_kernel(self.kernel)
        elif not (isinstance(self.kernel, K.Layer) or callable(self.kernel)):
            raise ValueError(
                f"kernel must be a name ({', '.join(K.KERNELS)}), a gantk.kernels.Layer or a callable "
                f"kernel_fn(x1, x2, get) -> [n1, n2]; got {self.kernel!r}"
            )
        if self.get not in (None, "ntk", "nngp"):
            raise ValueError(f"get must be None, 'ntk' or 'nngp'; got {self.get!r}")
        if self.width is not None and (int(self.width) != self.width or self.width < 1):
            raise ValueError(f"width must be None (infinite) or a positive integer; got {self.width!r}")
        if self.width is not None and self.kernel == "rbf":
            raise ValueError("the RBF kernel has no finite-width network; use width=None")
        if self.width is not None and not isinstance(self.kernel, str | K.Layer):
            raise ValueError("a kernel_fn callable has no finite-width network; use width=None or a Layer")
        if self.block_size is not None and (int(self.block_size) != self.block_size or self.block_size < 1):
            raise ValueError(f"block_size must be None or a positive integer; got {self.block_size!r}")
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


def resolve_kernel(cfg: FlowConfig) -> tuple[Any, str]:
    """``(kernel, get)`` of a config: a name becomes its :class:`gantk.kernels.Layer` (finite width
    ``cfg.width``) and fixes ``get``; a Layer or callable is kept, with ``get = cfg.get or "ntk"``."""
    if isinstance(cfg.kernel, str):
        return K.get_kernel(cfg.kernel, width=cfg.width or 128)
    return cfg.kernel, cfg.get or "ntk"


def _finite(cfg: FlowConfig) -> D.FiniteDiscriminator:
    layer, _ = resolve_kernel(cfg)
    return D.FiniteDiscriminator(layer, cfg.antisymmetric)


def init_state(cfg: FlowConfig, x0: ArrayLike, *, key: Array) -> FlowState:
    """Initial state: particles ``x0 [N, d]`` and, at finite width, fresh discriminator parameters."""
    x0 = jnp.asarray(x0)
    if x0.ndim != 2:
        raise ValueError(f"x0 must be [N, d]; got {x0.shape}")
    key, sub = jax.random.split(key)
    params = () if cfg.width is None else _finite(cfg).init(sub, x0.shape[1])
    return FlowState(x0, params, key)


def _disc_kw(cfg: FlowConfig) -> dict:
    if cfg.loss == "lsgan":
        return {"method": cfg.lsgan_method, "krylov_dim": cfg.krylov_dim}
    return {} if cfg.loss == "ipm" else {"steps": cfg.ode_steps}


def infinite_particle_gradient(cfg: FlowConfig, x: Array, y: Array, kyy: Array | None = None) -> Array:
    """``grad_x c(f_tau)(x_i) [N, d]`` of the infinite-width discriminator trained on ``(x, y)``.

    For Layer kernels and the losses that need the Gram matrix ``K(S, S)`` (LSGAN, GAN), one
    fused pass gives ``k(x, S)`` with its partial derivatives (:func:`gantk.kernels.kernel_partials`);
    the Gram is assembled from it and from ``kyy = K(y, y)`` (passed in, as the target is fixed,
    or computed), using the kernel's symmetry: ``K(y, x) = K(x, y)^T``.
    """
    kernel, get = resolve_kernel(cfg)
    loss = get_loss(cfg.loss)
    if cfg.loss == "ipm" or cfg.block_size is not None or not K.is_dot_product_kernel(kernel):
        disc = D.infinite(cfg.loss, kernel, x, y, cfg.tau, get=get, block_size=cfg.block_size, **_disc_kw(cfg))
        return D.particle_gradient(loss, disc, kernel, x, get=get, block_size=cfg.block_size)
    n = x.shape[0]
    sup = D.make_support(x, y)
    k, k_q, k_a = K.kernel_partials(kernel, x, sup.points, get=get)
    kyy = K.kernel_matrix(kernel, y, y, get=get) if kyy is None else kyy
    kxx = 0.5 * (k[:, :n] + k[:, :n].T)
    gram = jnp.block([[kxx, k[:, n:]], [k[:, n:].T, kyy.astype(k.dtype)]])
    disc = D.infinite(cfg.loss, kernel, x, y, cfg.tau, get=get, gram=gram, **_disc_kw(cfg))
    f, g = K.contract_partials(x, sup.points, disc.coef, k, k_q, k_a)
    return jax.vmap(jax.grad(loss.c))(f)[:, None] * g


def make_step(cfg: FlowConfig, y: Array) -> Callable[[FlowState], FlowState]:
    """The pure step ``state -> state`` towards the fixed target ``y [M, d]``."""
    loss = get_loss(cfg.loss)

    if cfg.width is None:
        kernel, get = resolve_kernel(cfg)
        kyy = None
        if cfg.loss != "ipm" and cfg.block_size is None and K.is_dot_product_kernel(kernel):
            kyy = K.kernel_matrix(kernel, y, y, get=get)  # the target is fixed: once per flow

        def step(state: FlowState) -> FlowState:
            x = state.x
            g = infinite_particle_gradient(cfg, x, y, kyy)
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
        state = init_state(cfg, x0, key=key)

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
    layer, get = resolve_kernel(cfg)
    pk = K.as_pair_kernel(layer, get)
    loss = get_loss(cfg.loss)
    kw = _disc_kw(cfg)

    def step(theta, z, z_disc):
        x_disc = jax.lax.stop_gradient(generator.apply(theta, z_disc))
        disc = D.infinite(cfg.loss, layer, x_disc, y, cfg.tau, get=get, **kw)
        pts, coef = jax.lax.stop_gradient(disc.points), jax.lax.stop_gradient(disc.coef)

        def gen_loss(th):
            return jnp.mean(loss.c(pk(generator.apply(th, z), pts) @ coef))

        val, g = jax.value_and_grad(gen_loss)(theta)
        return jax.tree.map(lambda p, d: p - lr * d, theta, g), val

    return step


def make_sharded_ipm_step(cfg: FlowConfig, mesh, axis: str = "data") -> Callable:
    """The infinite-width IPM particle step with the particles sharded over ``mesh``'s ``axis``.

    Built with :func:`dynajax.parallel.data_parallel`: ``pstep(y, x) -> (y, x_new)`` with the
    target ``y [M, d]`` replicated (the "state") and the particles ``x [N, d]`` split over the
    devices (the "batch"; ``N`` divisible by their number). Each device gathers the ``N x d``
    particles (the discriminator's support is every particle) and evaluates the witness
    gradient for its own ``N / n_dev`` rows in row blocks of ``cfg.block_size``, so its memory
    is ``O(block_size * (N + M))``, never ``O(N * (N + M))``. Same numbers as :func:`make_step`
    up to the order of summation.

    Args:
        cfg: an infinite-width (``width=None``) ``"ipm"`` config.
        mesh: a :func:`dynajax.parallel.make_mesh` mesh.
        axis: the mesh axis the particles are split over.
    """
    from jax.sharding import PartitionSpec as P

    from dynajax import parallel as par

    if cfg.loss != "ipm" or cfg.width is not None:
        raise ValueError(f"the sharded step is the infinite-width IPM one; got loss={cfg.loss!r}, width={cfg.width!r}")
    kernel, get = resolve_kernel(cfg)

    def local(x_loc, x_all, y):
        n, m = x_all.shape[0], y.shape[0]
        coef = cfg.tau * jnp.where(jnp.arange(n + m) < n, 1.0 / n, -1.0 / m).astype(x_loc.dtype)
        _, g = K.weighted_sum_and_grad(kernel, x_loc, jnp.concatenate([x_all, y]), coef, get=get,
                                       block_size=cfg.block_size)
        return x_loc - (cfg.eta / n) * g

    def step(y, x):
        new = jax.shard_map(local, mesh=mesh, in_specs=(P(axis), P(), P()), out_specs=P(axis))(x, x, y)
        return y, new

    return par.data_parallel(step, mesh, axis)
