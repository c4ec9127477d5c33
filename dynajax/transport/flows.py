"""Wasserstein gradient flows of particle measures: explicit Euler / Langevin and SW-JKO.

Measures are uniform particle clouds ``x [n, d]``. Two families of schemes are offered:

* **Particle flows** (explicit Euler in Wasserstein space, :func:`particle_flow`): every
  particle follows the Wasserstein gradient of ``F(mu) = int V dmu + 1/2 int int W(x-y)
  dmu dmu + T int mu log mu``,

      x_i <- x_i - step * (grad V(x_i) + (1/n) sum_j grad W(x_i - x_j)) + sqrt(2 step T) z_i,

  the entropy term being carried by Langevin noise (the unadjusted Langevin algorithm, ULA,
  when ``T > 0``). With ``V = -log p`` and ``T = 1`` the flow samples ``p``.
* **SW-JKO** (:func:`sw_jko`, Bonet, Courty, Septier & Drumetz 2021): the JKO step with the
  sliced-Wasserstein distance, ``mu_{k+1} = argmin_x SW_2^2(x, x_k) + 2 h F(x)``, solved over
  the particle positions by ``n_inner`` Adam steps from ``x_k`` with fresh projections per step.
  ``F`` is any differentiable functional ``x [n, d] -> scalar`` (e.g. from
  :func:`potential_energy`, :func:`interaction_energy`, their sums). Note ``SW_2^2`` is about
  ``W_2^2 / d``, so a SW-JKO step of size ``h`` moves roughly like a Wasserstein step of
  size ``h d`` on isotropic problems.

The sphere versions (:func:`particle_flow_sphere`, :func:`ssw_jko`, Bonet et al. 2023) keep
the particles on ``S^{d-1}``: Riemannian gradients (Euclidean gradient projected on the
tangent space) with retraction by normalisation, and the spherical sliced-Wasserstein JKO with
a projection back on the sphere after every inner step. :func:`sphere_sliced_descent` is the
flow of a sliced distance to a target known by samples (Bonet et al. 2023, Sec. 5.1).

All loops are ``lax.scan`` loops compiled once per call; a Python loop over compiled chunks
drives the (optional) tqdm progress bar and the snapshots. Randomness is derived by
``jax.random.fold_in`` from the step index, so results do not depend on the chunking.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from dynajax.transport.sliced import (
    SPHERE_TOL,
    random_directions,
    random_stiefel,
    sliced_wasserstein,
    spherical_sliced_wasserstein,
)

__all__ = [
    "Functional",
    "interaction_energy",
    "kl_to_target",
    "particle_flow",
    "particle_flow_sphere",
    "potential_energy",
    "ssw_jko",
    "sphere_sliced_descent",
    "sw_jko",
]


# ---------------------------------------------------------------------------------------------
# functionals
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Functional:
    """A functional of a uniform particle measure, ``F(x) = mean_i V(x_i) + 1/(2 n^2) sum_ij W(x_i - x_j)``.

    Calling it on ``x [n, d]`` returns the scalar value (the entropy part, if
    ``temperature > 0``, is *not* included: particles carry no density; particle flows realise
    it by Langevin noise). Functionals add: ``potential_energy(V) + interaction_energy(W)``.

    Attributes:
      V: potential ``[d] -> scalar`` or None.
      W: interaction kernel ``[d] -> scalar`` (even, ``W(z) = W(-z)``) or None.
      temperature: weight ``T`` of the entropy ``T int mu log mu`` (0 for none).
    """

    V: Callable | None = None
    W: Callable | None = None
    temperature: float = 0.0

    def __call__(self, x):
        """Value on ``x [n, d]`` (without the entropy term), a scalar."""
        x = jnp.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"expected particles of shape [n, d], got {x.shape}")
        val = jnp.zeros((), jnp.result_type(x.dtype, jnp.float32))
        if self.V is not None:
            val = val + jnp.mean(jax.vmap(self.V)(x))
        if self.W is not None:
            diff = x[:, None, :] - x[None, :, :]
            w = jax.vmap(jax.vmap(self.W))(diff)
            val = val + 0.5 * jnp.mean(w)
        return val

    def __add__(self, other: Functional) -> Functional:
        if not isinstance(other, Functional):
            return NotImplemented
        return Functional(
            V=_add_fns(self.V, other.V),
            W=_add_fns(self.W, other.W),
            temperature=self.temperature + other.temperature,
        )

    def flow_kwargs(self) -> dict:
        """Keyword arguments for :func:`particle_flow`: ``dict(V=..., W=..., temperature=...)``."""
        return {"V": self.V, "W": self.W, "temperature": self.temperature}


def _add_fns(f, g):
    if f is None:
        return g
    if g is None:
        return f
    return lambda z: f(z) + g(z)


def potential_energy(V: Callable) -> Functional:
    """``F(x) = (1/n) sum_i V(x_i)`` for a potential ``V: [d] -> scalar``."""
    return Functional(V=V)


def interaction_energy(W: Callable) -> Functional:
    """``F(x) = 1/(2 n^2) sum_ij W(x_i - x_j)`` for an even kernel ``W: [d] -> scalar``."""
    return Functional(W=W)


def kl_to_target(log_density: Callable) -> Functional:
    """``KL(mu || p)`` up to a constant, for a target ``p`` known up to normalisation.

    ``KL(mu || p) = int V dmu + int mu log mu + const`` with ``V = -log p``: returned as a
    :class:`Functional` with ``V = -log_density`` and ``temperature = 1``. Calling it gives
    the potential part ``-mean log p(x_i)`` only; ``particle_flow(x0, **F.flow_kwargs(), ...)``
    adds the entropy by Langevin noise and so samples ``p`` (ULA).

    Args:
      log_density: ``[d] -> scalar`` unnormalised log-density of the target.
    """
    return Functional(V=lambda z: -log_density(z), temperature=1.0)


# ---------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------
def _check_particles(x0, name="x0", sphere=False):
    x0 = jnp.asarray(x0)
    if x0.ndim != 2 or x0.shape[0] == 0 or x0.shape[1] == 0:
        raise ValueError(
            f"{name}: expected a non-empty particle array [n, d], got shape {x0.shape}"
        )
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.float32)
    if not bool(jnp.all(jnp.isfinite(x0))):
        raise ValueError(f"{name}: particles contain NaN or inf")
    if sphere:
        if x0.shape[1] < 2:
            raise ValueError(f"{name}: the sphere needs d >= 2, got d={x0.shape[1]}")
        dev = float(
            jnp.max(jnp.abs(jnp.sum(x0.astype(jnp.float32) ** 2, axis=-1) - 1.0))
        )
        if dev > SPHERE_TOL:
            raise ValueError(
                f"{name}: points are not on the unit sphere (max | |x|^2 - 1 | = {dev:.3g} > {SPHERE_TOL})"
            )
    return x0


def _positive(name, v):
    if not (isinstance(v, (int, float)) or jnp.ndim(v) == 0) or not float(v) > 0:
        raise ValueError(f"{name} must be a positive number, got {v!r}")


def _count(name, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def _check_finite(x, where):
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(
            f"particles became NaN or inf {where}: the scheme diverged (reduce the step size)"
        )


def _bar(total, progress, desc):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


# ---------------------------------------------------------------------------------------------
# (a) particle flows by explicit Euler / Langevin
# ---------------------------------------------------------------------------------------------
def _drift_fn(grad_V, V, W):
    """Euclidean drift ``grad V(x_i) + (1/n) sum_j grad W(x_i - x_j)`` on ``[n, d]``."""
    if grad_V is None and V is not None:
        grad_V = jax.grad(V)
    grad_W = jax.grad(W) if W is not None else None

    def drift(x):
        g = jnp.zeros_like(x)
        if grad_V is not None:
            g = g + jax.vmap(grad_V)(x)
        if grad_W is not None:
            diff = x[:, None, :] - x[None, :, :]
            g = g + jnp.mean(jax.vmap(jax.vmap(grad_W))(diff), axis=1)
        return g

    return drift


def _run_flow(x0, step_fn, n_steps, snapshot_every, progress, desc):
    """Run ``x <- step_fn(x, k)`` for ``k = 0..n_steps-1`` in compiled chunks; snapshots."""
    every = n_steps if snapshot_every is None else snapshot_every
    _count("snapshot_every", every)

    def chunk(x, start, length):
        def body(x, k):
            return step_fn(x, start + k), None

        x, _ = jax.lax.scan(body, x, jnp.arange(length))
        return x

    chunk = jax.jit(chunk, static_argnums=2)
    snaps = [x0]
    x, done = x0, 0
    bar = _bar(n_steps, progress, desc)
    try:
        while done < n_steps:
            length = min(every, n_steps - done)
            x = chunk(x, jnp.asarray(done, jnp.int32), length)
            done += length
            _check_finite(x, f"by step {done}")
            snaps.append(x)
            if bar is not None:
                bar.update(length)
    finally:
        if bar is not None:
            bar.close()
    return x, jnp.stack(snaps)


def _check_flow_args(grad_V, V, W, step, n_steps, key, temperature):
    _positive("step", step)
    _count("n_steps", n_steps)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature > 0 and key is None:
        raise ValueError("temperature > 0 (Langevin noise) needs a PRNG key=")
    if grad_V is None and V is None and W is None and temperature == 0:
        raise ValueError(
            "nothing drives the flow: pass grad_V, V, W or temperature > 0"
        )
    for name, f in (("grad_V", grad_V), ("V", V), ("W", W)):
        if f is not None and not callable(f):
            raise TypeError(f"{name} must be callable, got {type(f).__name__}")


def _check_drift_shape(drift, x0):
    try:
        out = jax.eval_shape(drift, jax.ShapeDtypeStruct(x0.shape, x0.dtype))
    except TypeError as e:  # a per-particle field of the wrong size fails to broadcast
        raise ValueError(
            f"the gradient field does not map particles of dimension {x0.shape[1]} to vectors of the same shape: {e}"
        ) from None
    if out.shape != x0.shape:
        raise ValueError(
            f"the gradient field returns shape {out.shape[1:]} per particle for particles of dimension {x0.shape[1]}"
        )


def particle_flow(
    x0,
    grad_V: Callable | None = None,
    V: Callable | None = None,
    W: Callable | None = None,
    *,
    step: float,
    n_steps: int,
    key=None,
    temperature: float = 0.0,
    snapshot_every: int | None = None,
    progress: bool = False,
):
    """Wasserstein gradient flow of particles by explicit Euler (ULA when ``temperature > 0``).

    ``x_i <- x_i - step (grad V(x_i) + (1/n) sum_j grad W(x_i - x_j)) + sqrt(2 step T) z_i``,
    with ``z_i ~ N(0, I)`` drawn from ``fold_in(key, k)`` at step ``k``.

    Args:
      x0: initial particles ``[n, d]``.
      grad_V: gradient of the potential, ``[d] -> [d]`` (takes precedence over ``V``).
      V: potential ``[d] -> scalar`` (differentiated by ``jax.grad`` if ``grad_V`` is None).
      W: even interaction kernel ``[d] -> scalar``; its gradient is averaged over all pairs
        (``O(n^2 d)`` memory per step).
      step: step size ``> 0``.
      n_steps: number of steps ``>= 1``.
      key: PRNG key, required when ``temperature > 0``.
      temperature: entropy weight ``T >= 0``.
      snapshot_every: record the particles every this many steps (default: only the end).
      progress: show a tqdm bar over steps.

    Returns:
      ``(x, snapshots)``: final particles ``[n, d]`` and snapshots ``[n_snap, n, d]`` at steps
      ``0, s, 2s, ..., n_steps`` (``n_snap = 1 + ceil(n_steps / s)``; the last one is ``x``).

    Raises:
      ValueError: non-positive step, ``n_steps < 1``, bad shapes, NaN particles (initially or
        after divergence), missing key with ``temperature > 0``.
    """
    x0 = _check_particles(x0)
    _check_flow_args(grad_V, V, W, step, n_steps, key, temperature)
    drift = _drift_fn(grad_V, V, W)
    _check_drift_shape(drift, x0)
    sigma = math.sqrt(2.0 * step * temperature)

    def step_fn(x, k):
        x_new = x - step * drift(x)
        if temperature > 0:
            x_new = x_new + sigma * jax.random.normal(
                jax.random.fold_in(key, k), x.shape, x.dtype
            )
        return x_new

    return _run_flow(x0, step_fn, n_steps, snapshot_every, progress, "particle flow")


def _normalize(x):
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def _tangent(x, g):
    """Project ``g [n, d]`` on the tangent spaces of the sphere at ``x [n, d]``."""
    return g - jnp.sum(g * x, axis=-1, keepdims=True) * x


def particle_flow_sphere(
    x0,
    grad_V: Callable | None = None,
    V: Callable | None = None,
    W: Callable | None = None,
    *,
    step: float,
    n_steps: int,
    key=None,
    temperature: float = 0.0,
    snapshot_every: int | None = None,
    progress: bool = False,
):
    """Riemannian particle gradient flow on ``S^{d-1}`` (Langevin when ``temperature > 0``).

    ``x_i <- normalize(x_i - step P_{x_i} g_i + sqrt(2 step T) P_{x_i} z_i)`` where ``g_i`` is
    the Euclidean drift of :func:`particle_flow` (``grad V``, ``V`` and ``W`` are those of the
    ambient ``R^d``, e.g. ``V(x) = -kappa <x, mu>`` for a von Mises-Fisher target) and
    ``P_x = I - x x^T`` projects on the tangent space; the retraction is the normalisation.

    Args:
      x0: initial particles ``[n, d]`` on the unit sphere (``| |x|^2 - 1 | <= 1e-4``).
      grad_V, V, W, step, n_steps, key, temperature, snapshot_every, progress: as in
        :func:`particle_flow`.

    Returns:
      ``(x, snapshots)``: final particles ``[n, d]`` (unit norm) and snapshots
      ``[n_snap, n, d]`` as in :func:`particle_flow`.

    Raises:
      ValueError: as :func:`particle_flow`, and for points off the sphere or ``d < 2``.
    """
    x0 = _check_particles(x0, sphere=True)
    x0 = _normalize(x0)
    _check_flow_args(grad_V, V, W, step, n_steps, key, temperature)
    drift = _drift_fn(grad_V, V, W)
    _check_drift_shape(drift, x0)
    sigma = math.sqrt(2.0 * step * temperature)

    def step_fn(x, k):
        v = -step * drift(x)
        if temperature > 0:
            v = v + sigma * jax.random.normal(
                jax.random.fold_in(key, k), x.shape, x.dtype
            )
        return _normalize(x + _tangent(x, v))

    return _run_flow(x0, step_fn, n_steps, snapshot_every, progress, "sphere flow")


# ---------------------------------------------------------------------------------------------
# (b), (d) SW-JKO and SSW-JKO over particle positions
# ---------------------------------------------------------------------------------------------
def _jko(
    x0, F, *, h, n_outer, n_inner, lr, n_proj, key, distance, project, progress, desc
):
    _positive("h", h)
    _positive("lr", lr)
    _count("n_outer", n_outer)
    _count("n_inner", n_inner)
    _count("n_proj", n_proj)
    if key is None:
        raise ValueError("the JKO scheme draws random projections: pass a PRNG key=")
    if not callable(F):
        raise TypeError(
            f"F must be a callable x [n, d] -> scalar, got {type(F).__name__}"
        )
    out = jax.eval_shape(F, jax.ShapeDtypeStruct(x0.shape, x0.dtype))
    if out.shape != ():
        raise ValueError(f"F must return a scalar, got shape {out.shape}")
    opt = optax.adam(lr)

    def outer(xk, k):
        xk = jax.lax.stop_gradient(xk)
        kk = jax.random.fold_in(key, k)

        def loss(y, j):
            return distance(y, xk, jax.random.fold_in(kk, j)) + 2.0 * h * F(y)

        def inner(carry, j):
            y, state = carry
            g = jax.grad(loss)(y, j)
            upd, state = opt.update(g, state, y)
            y = project(optax.apply_updates(y, upd))
            return (y, state), None

        (y, _), _ = jax.lax.scan(inner, (xk, opt.init(xk)), jnp.arange(n_inner))
        return y

    outer = jax.jit(outer)
    snaps = [x0]
    x = x0
    bar = _bar(n_outer, progress, desc)
    try:
        for k in range(n_outer):
            x = outer(x, jnp.asarray(k, jnp.int32))
            _check_finite(x, f"at outer step {k + 1}")
            snaps.append(x)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return x, jnp.stack(snaps)


def sw_jko(
    x0,
    F: Callable,
    *,
    h: float,
    n_outer: int,
    n_inner: int,
    lr: float,
    n_proj: int,
    key,
    p: float = 2.0,
    progress: bool = False,
):
    """Sliced-Wasserstein JKO scheme over particle positions (Bonet et al. 2021).

    ``x_{k+1} = argmin_x SW_p^p(x, x_k) + 2 h F(x)``, each argmin approximated by ``n_inner``
    Adam steps (``optax.adam(lr)``) from ``x_k``; inner step ``j`` of outer step ``k`` uses
    ``n_proj`` fresh directions drawn from ``fold_in(fold_in(key, k), j)``.

    Args:
      x0: initial particles ``[n, d]``.
      F: differentiable functional ``x [n, d] -> scalar`` (e.g. :func:`potential_energy`).
      h: JKO time step ``> 0``.
      n_outer: number of JKO steps ``>= 1``.
      n_inner: Adam steps per JKO step ``>= 1``.
      lr: Adam learning rate ``> 0``.
      n_proj: projections per inner step ``>= 1``.
      key: PRNG key.
      p: SW exponent (2 for the JKO scheme of the paper).
      progress: show a tqdm bar over outer steps.

    Returns:
      ``(x, snapshots)``: final particles ``[n, d]`` and snapshots ``[n_outer + 1, n, d]``
      (``x0`` then every outer step).

    Raises:
      ValueError: non-positive ``h``/``lr``, counts ``< 1``, bad shapes, NaN particles, missing
        key, ``F`` not returning a scalar.
    """
    x0 = _check_particles(x0)
    d = x0.shape[1]

    def distance(y, xk, k):
        th = random_directions(n_proj, d, y.dtype, key=k)
        return sliced_wasserstein(y, xk, p=p, projections=th)

    return _jko(
        x0,
        F,
        h=h,
        n_outer=n_outer,
        n_inner=n_inner,
        lr=lr,
        n_proj=n_proj,
        key=key,
        distance=distance,
        project=lambda y: y,
        progress=progress,
        desc="SW-JKO",
    )


def ssw_jko(
    x0,
    F: Callable,
    *,
    h: float,
    n_outer: int,
    n_inner: int,
    lr: float,
    n_proj: int,
    key,
    p: float = 2.0,
    progress: bool = False,
):
    """Spherical sliced-Wasserstein JKO scheme on ``S^{d-1}`` (Bonet et al. 2023).

    As :func:`sw_jko` with ``SSW_p^p`` (:func:`~dynajax.transport.sliced.spherical_sliced_wasserstein`,
    random 2-frames per inner step) and the particles normalised back onto the sphere after
    every Adam step.

    Args:
      x0: initial particles ``[n, d]`` on the unit sphere.
      F: differentiable functional ``x [n, d] -> scalar``, evaluated on unit vectors.
      h, n_outer, n_inner, lr, n_proj, key, p, progress: as in :func:`sw_jko`.

    Returns:
      ``(x, snapshots)``: final particles ``[n, d]`` (unit norm) and snapshots
      ``[n_outer + 1, n, d]``.

    Raises:
      ValueError: as :func:`sw_jko`, and for points off the sphere or ``d < 2``.
    """
    x0 = _normalize(_check_particles(x0, sphere=True))
    d = x0.shape[1]

    def distance(y, xk, k):
        U = random_stiefel(n_proj, d, y.dtype, key=k)
        return spherical_sliced_wasserstein(y, xk, p=p, projections=U)

    return _jko(
        x0,
        F,
        h=h,
        n_outer=n_outer,
        n_inner=n_inner,
        lr=lr,
        n_proj=n_proj,
        key=key,
        distance=distance,
        project=_normalize,
        progress=progress,
        desc="SSW-JKO",
    )


# ---------------------------------------------------------------------------------------------
# sliced-Wasserstein flow to a sampled target on the sphere
# ---------------------------------------------------------------------------------------------
def sphere_sliced_descent(
    x0,
    target_sampler: Callable,
    *,
    spherical: bool,
    n_steps: int,
    n_proj: int,
    lr: float,
    key,
):
    """Riemannian gradient descent of ``D(x, y)^2`` on ``S^{d-1}`` towards a target known by samples.

    Bonet et al. (ICLR 2023, "Spherical sliced-Wasserstein", Sec. 5.1): at step ``j`` a fresh
    target minibatch ``y = target_sampler(k_y)`` and fresh projections (keys from
    ``fold_in(key, j)``) give the loss ``D(x, y)^2``; its Euclidean gradient ``g [n, d]`` is
    projected on the tangent spaces and the particles move by
    ``x <- normalize(x - lr * n * P_x g)`` (the gradient of a sliced cost w.r.t. one particle
    is ``O(1/n)``, hence the step ``lr * n``). ``D^2`` is

    * ``spherical=True``: ``SSW_2^2`` with random 2-frames, in radians (``(2 pi)^2`` times
      :func:`~dynajax.transport.sliced.spherical_sliced_wasserstein`'s circle-of-length-one cost);
    * ``spherical=False``: the Euclidean ``SW_2^2`` of ``R^d`` with random directions, followed by
      the same retraction (the paper's "SW after projection" baseline).

    Args:
      x0: initial particles ``[n, d]`` on the unit sphere (``d >= 2``).
      target_sampler: ``key -> [m, d]`` unit vectors (a jax-traceable sampler; ``m == n``
        selects the exact cyclic-matching path of SSW).
      spherical: SSW (True) or SW after projection (False).
      n_steps: number of steps ``>= 1``.
      n_proj: projections per step ``>= 1``.
      lr: step size ``> 0`` (multiplied by ``n``).
      key: PRNG key.

    Returns:
      Final particles ``[n, d]`` (unit norm).

    Raises:
      ValueError: points off the sphere, counts ``< 1``, a non-positive ``lr``, NaN particles
        after the flow (divergence).
    """
    x0 = _normalize(_check_particles(x0, sphere=True))
    _count("n_steps", n_steps)
    _count("n_proj", n_proj)
    _positive("lr", lr)
    if not callable(target_sampler):
        raise TypeError(f"target_sampler must be callable key -> [m, d], got {type(target_sampler).__name__}")
    n, d = x0.shape

    def loss(x, y, k):
        if spherical:  # circle of length one -> radians: (2 pi)^2
            return (2 * jnp.pi) ** 2 * spherical_sliced_wasserstein(
                x, y, projections=random_stiefel(n_proj, d, x.dtype, key=k))
        return sliced_wasserstein(x, y, projections=random_directions(n_proj, d, x.dtype, key=k))

    @jax.jit
    def run(x0):
        def body(x, j):
            ky, kp = jax.random.split(jax.random.fold_in(key, j))
            g = jax.grad(loss)(x, target_sampler(ky), kp)
            return _normalize(x - lr * n * _tangent(x, g)), None

        return jax.lax.scan(body, x0, jnp.arange(n_steps))[0]

    x = run(x0)
    _check_finite(x, f"after {n_steps} steps")
    return x
