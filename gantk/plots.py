"""Figures: particles over the discriminator's ``c(f*)``, and Dirac-GAN gradient fields (Figs 5.1-5.7).

:func:`dirac_field` is the computation behind Figs 5.6-5.7 (Ayed 2022 thesis section 5.7.4): with
``alpha = delta_x`` and ``beta = delta_y`` (``y = e_1``), every grid point ``x`` of the plane
``span{e_1, e_2}`` (embedded in ``R^dim``) is its own fake set, and the particle moves along
``-grad c(f_tau)(x)``: ``-tau [grad_1 k(x, x) - grad_1 k(x, y)]`` for the IPM (self-term
included) and ``-2 f(x) grad f(x)`` with ``S = {x, y}`` for the LSGAN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from gantk import discriminators as D
from gantk import kernels as K

__all__ = ["dirac_field", "discriminator_surface", "plot_particles", "plot_field", "save_gif"]


def dirac_field(kernel: str, loss: str, points2d: ArrayLike, *, dim: int = 2, tau: float = 1.0) -> Array:
    """The Dirac-GAN particle velocity ``-grad c(f_tau)(x)`` at planar points ``[n, 2]``, in the plane.

    Args:
        kernel: kernel name (:data:`gantk.kernels.KERNELS`).
        loss: ``"ipm"`` or ``"lsgan"``.
        points2d: ``[n, 2]`` coordinates along ``(e_1, e_2)``.
        dim: ambient dimension (``>= 2``); the other coordinates are 0.
        tau: discriminator training time.

    Returns:
        ``[n, 2]`` velocity components along ``(e_1, e_2)`` (the velocity stays in the plane).
    """
    if dim < 2:
        raise ValueError(f"dim must be >= 2; got {dim}")
    if loss not in ("ipm", "lsgan"):
        raise ValueError(f"loss must be 'ipm' or 'lsgan'; got {loss!r}")
    layer, get = K.get_kernel(kernel)
    p = jnp.asarray(points2d)
    x = jnp.zeros((p.shape[0], dim), p.dtype).at[:, :2].set(p)
    y = jnp.zeros((1, dim), p.dtype).at[0, 0].set(1.0)

    def one(xi):
        xi = xi[None]
        disc = D.infinite(loss, layer, xi, y, tau, get=get, **({"method": "eigh"} if loss == "lsgan" else {}))
        return -D.particle_gradient(loss, disc, layer, xi, get=get)[0, :2]

    return jax.jit(jax.vmap(one))(x)


def discriminator_surface(kernel: str, loss: str, x: ArrayLike, y: ArrayLike, grid: ArrayLike,
                          tau: float = 1.0) -> Array:
    """``c(f_tau)`` of the infinite-width discriminator trained on ``(x, y)``, at ``grid [g, d]``."""
    from gantk.losses import get_loss

    layer, get = K.get_kernel(kernel)
    disc = D.infinite(loss, layer, jnp.asarray(x), jnp.asarray(y), tau, get=get)
    f, _ = D.evaluate(disc, layer, jnp.asarray(grid), get=get, block_size=1024)
    return get_loss(loss).c(f)


def plot_particles(ax, x: np.ndarray, y: np.ndarray, *, kernel: str | None = None, loss: str = "ipm",
                   tau: float = 1.0, resolution: int = 60, arrows: bool = True):
    """Target (blue), particles (red) and, for an infinite-width ``kernel``, ``c(f*)`` with ``-grad c``."""
    x, y = np.asarray(x), np.asarray(y)
    if kernel is not None:
        pts = np.concatenate([x, y])
        lo, hi = pts.min(0) - 0.5, pts.max(0) + 0.5
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution))
        grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
        c = np.asarray(discriminator_surface(kernel, loss, x, y, grid, tau)).reshape(gx.shape)
        ax.contourf(gx, gy, c, levels=30, cmap="viridis")
        if arrows:
            layer, get = K.get_kernel(kernel)
            disc = D.infinite(loss, layer, jnp.asarray(x), jnp.asarray(y), tau, get=get)
            g = np.asarray(D.particle_gradient(loss, disc, layer, jnp.asarray(x), get=get))
            ax.quiver(x[:, 0], x[:, 1], -g[:, 0], -g[:, 1], color="w", width=0.003)
    ax.scatter(y[:, 0], y[:, 1], s=4, c="tab:blue", label="target")
    ax.scatter(x[:, 0], x[:, 1], s=4, c="tab:red", label="particles")
    ax.set_aspect("equal")
    return ax


def plot_field(ax, kernel: str, loss: str, *, dim: int = 2, tau: float = 1.0, n: int = 15):
    """Quiver of :func:`dirac_field` on ``[-2, 2] x [0, 2]`` with ``y = e_1`` (Figs 5.6-5.7)."""
    gx, gy = np.meshgrid(np.linspace(-2, 2, n), np.linspace(0, 2, max(2, n // 2)))
    pts = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32)
    v = np.asarray(dirac_field(kernel, loss, pts, dim=dim, tau=tau))
    ax.quiver(pts[:, 0], pts[:, 1], v[:, 0], v[:, 1], np.log10(np.linalg.norm(v, axis=1) + 1e-12), cmap="viridis")
    ax.scatter([1.0], [0.0], c="tab:blue", s=30)
    ax.set_title(f"{loss} {kernel} (d={dim})", fontsize=9)
    ax.set_aspect("equal")
    return ax


def save_gif(snapshots: np.ndarray, y: np.ndarray, path, fps: int = 10) -> None:
    """Animation (GIF, Pillow writer) of particle snapshots ``[T, N, 2]`` over the target ``[M, 2]``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    snapshots = np.asarray(snapshots)
    fig, ax = plt.subplots(figsize=(4, 4))
    pts = np.concatenate([snapshots.reshape(-1, 2), y])
    lo, hi = np.nanmin(pts, 0) - 0.2, np.nanmax(pts, 0) + 0.2
    ax.scatter(y[:, 0], y[:, 1], s=3, c="tab:blue")
    sc = ax.scatter(snapshots[0, :, 0], snapshots[0, :, 1], s=3, c="tab:red")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])

    def update(i):
        sc.set_offsets(snapshots[i])
        return (sc,)

    anim = FuncAnimation(fig, update, frames=len(snapshots), blit=True)
    anim.save(str(path), writer=PillowWriter(fps=fps))
    plt.close(fig)
