"""Finite-difference Laplacians on 2-D grids, with the boundary handlings the papers use.

Every operator acts on the last two axes of ``u`` (``[..., H, W]``), so one call serves a
single field, a channels-first state ``[C, H, W]`` or a batch ``[B, C, H, W]``.

Stencils (``stencil=``):

``"5pt"``
    The second-order five-point Laplacian, i.e. the three-point second difference
    ``(1, -2, 1) / dx**2`` along each axis. Symbol
    ``-(2/dx**2) * ((1 - cos(kx dx)) + (1 - cos(ky dx)))``; error ``O(dx**2)``.
    APHYNITY's reaction-diffusion field (periodic) and its wave *model* (``"valid"``).
``"9pt"``
    The nine-point Laplacian of the LEADS Gray-Scott code (Patra-Karttunen weights):
    centre ``-3``, edge neighbours ``1/2``, corner neighbours ``1/4``, over ``dx**2``.
    Symbol ``(-3 + cos(kx dx) + cos(ky dx) + cos(kx dx) cos(ky dx)) / dx**2``; error
    ``O(dx**2)`` (it equals the five-point stencil on modes along one axis).
``"4th"``
    The fourth-order five-point-per-axis stencil ``(-1/12, 4/3, -5/2, 4/3, -1/12) / dx**2``
    along each axis: APHYNITY's wave *data*. Symbol
    ``-(1/dx**2) * sum_axes (5/2 - (8/3) cos(k dx) + (1/6) cos(2 k dx))``; error ``O(dx**4)``.

Boundaries (``boundary=``):

``"periodic"``
    Circular wrap-around, with ``jnp.roll``.
``"neumann"``
    Null flux on a cell-centred grid: ghost cells mirror the field about the edge
    (``u[-1] = u[0]``, ``u[-2] = u[1]``; numpy's ``"symmetric"`` padding). The operator is
    a symmetric, negative semi-definite matrix, and the cosine modes
    ``cos(pi m (j + 1/2) / N)`` are its eigenvectors with the periodic symbol.
``"valid"``
    The stencil is applied where it fits in both directions (a ``valid`` 2-D convolution)
    and the result is zero-padded back to ``[H, W]``: the whole Laplacian is zero on a frame
    of ``r`` pixels (``r`` the stencil radius). This is the APHYNITY wave model
    (``F.conv2d`` without padding, then ``F.pad``).
``"axis_valid"``
    Each axis' second difference is computed where its 1-D stencil fits *along that axis*
    and is zero within ``r`` pixels of that axis' two edges; the two are then summed. This
    is the APHYNITY wave data generator (``state_xx[2:-2, :] = ...``,
    ``state_zz[:, 2:-2] = ...``), which the paper calls "null Neumann boundary conditions".
    (Not defined for the nine-point stencil, whose corner terms mix the axes.)

Neither ``"valid"`` nor ``"axis_valid"`` is a symmetric operator, so the semi-discrete wave
equation with them conserves no energy; use ``"periodic"`` or ``"neumann"`` for that.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Float

__all__ = [
    "BOUNDARIES",
    "STENCILS",
    "check_grid",
    "laplacian",
    "laplacian_4th",
    "laplacian_5pt",
    "laplacian_9pt",
    "stencil_order",
    "stencil_radius",
    "symbol",
]

# 1-D second-difference weights (offset -> weight) of the separable stencils.
_AXIS_WEIGHTS = {
    "5pt": {-1: 1.0, 0: -2.0, 1: 1.0},
    "4th": {-2: -1.0 / 12, -1: 4.0 / 3, 0: -5.0 / 2, 1: 4.0 / 3, 2: -1.0 / 12},
}
# 2-D weights of the nine-point stencil: (offset_row, offset_col) -> weight.
_NINE_POINT = {
    (0, 0): -3.0,
    **{o: 0.5 for o in ((1, 0), (-1, 0), (0, 1), (0, -1))},
    **{o: 0.25 for o in ((1, 1), (1, -1), (-1, 1), (-1, -1))},
}

STENCILS = ("5pt", "9pt", "4th")
BOUNDARIES = ("periodic", "neumann", "valid", "axis_valid")
_RADIUS = {"5pt": 1, "9pt": 1, "4th": 2}
_ORDER = {"5pt": 2, "9pt": 2, "4th": 4}


def _check_stencil(stencil: str) -> None:
    if stencil not in STENCILS:
        raise ValueError(f"unknown stencil {stencil!r}; allowed: {', '.join(STENCILS)}")


def stencil_radius(stencil: str) -> int:
    """How many neighbours the stencil reaches along an axis (1, or 2 for ``"4th"``)."""
    _check_stencil(stencil)
    return _RADIUS[stencil]


def stencil_order(stencil: str) -> int:
    """Order of consistency: the truncation error is ``O(dx**order)``."""
    _check_stencil(stencil)
    return _ORDER[stencil]


def check_grid(shape: tuple[int, ...], stencil: str = "5pt", boundary: str = "periodic") -> None:
    """Raises ``ValueError`` unless ``shape[-2:]`` is a grid the stencil fits on.

    Every axis needs at least ``2 r + 1`` points (``r`` the stencil radius): below that a
    periodic stencil would wrap onto itself and a ``valid`` one would leave no interior.
    """
    _check_stencil(stencil)
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; allowed: {', '.join(BOUNDARIES)}")
    if stencil == "9pt" and boundary == "axis_valid":
        raise ValueError("boundary 'axis_valid' is defined for separable stencils only (5pt, 4th)")
    if len(shape) < 2:
        raise ValueError(f"a Laplacian needs a 2-D field [..., H, W], got shape {tuple(shape)}")
    need = 2 * _RADIUS[stencil] + 1
    h, w = shape[-2:]
    if h < need or w < need:
        raise ValueError(
            f"grid {h}x{w} is too small for the {stencil!r} stencil: each axis needs at least {need} points"
        )


def _shift(u, offset: int, axis: int):
    """``out[..., i, ...] = u[..., i + offset, ...]`` (periodic)."""
    return jnp.roll(u, -offset, axis=axis)


def _axis_second_difference(u, weights: dict[int, float], axis: int, boundary: str):
    """The 1-D stencil along ``axis`` (-2 or -1), undivided by ``dx**2``."""
    n = u.shape[axis]
    r = max(weights)
    if boundary == "periodic":
        return sum(w * _shift(u, o, axis) for o, w in weights.items())
    if boundary == "neumann":
        pad = [(0, 0)] * u.ndim
        pad[axis] = (r, r)
        up = jnp.pad(u, pad, mode="symmetric")
        return sum(w * lax.slice_in_dim(up, r + o, r + o + n, axis=axis) for o, w in weights.items())
    if boundary == "axis_valid":
        inner = sum(w * lax.slice_in_dim(u, r + o, n - r + o, axis=axis) for o, w in weights.items())
        pad = [(0, 0)] * u.ndim
        pad[axis] = (r, r)
        return jnp.pad(inner, pad)
    raise AssertionError(boundary)


def laplacian(
    u: Float[ArrayLike, "*batch H W"],
    dx: float | ArrayLike = 1.0,
    *,
    stencil: str = "5pt",
    boundary: str = "periodic",
) -> Float[Array, "*batch H W"]:
    """The discrete Laplacian of ``u`` over its last two axes.

    Args:
        u: field(s), ``[..., H, W]``; axis ``-2`` is ``x`` (rows), axis ``-1`` is ``y``.
        dx: grid spacing (the same along both axes).
        stencil: ``"5pt"``, ``"9pt"`` or ``"4th"`` (see the module docstring).
        boundary: ``"periodic"``, ``"neumann"``, ``"valid"`` or ``"axis_valid"``.

    Returns:
        ``[..., H, W]``, same dtype as ``u``.

    Raises:
        ValueError: unknown stencil or boundary, or a grid too small for the stencil.
    """
    u = jnp.asarray(u)
    check_grid(u.shape, stencil, boundary)
    return _laplacian(u, jnp.asarray(dx, u.dtype), stencil, boundary)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _laplacian(u, dx, stencil: str, boundary: str):
    # one compiled program per (shape, stencil, boundary): cheap eager calls; inlined under jit
    scale = 1.0 / dx**2
    if boundary == "valid":
        r = _RADIUS[stencil]
        h, w = u.shape[-2:]
        weights = _NINE_POINT if stencil == "9pt" else _separable_2d(stencil)
        inner = sum(
            wt * u[..., r + i : h - r + i, r + j : w - r + j] for (i, j), wt in weights.items()
        )
        pad = [(0, 0)] * (u.ndim - 2) + [(r, r), (r, r)]
        return jnp.pad(inner, pad) * scale
    if stencil == "9pt":
        if boundary == "neumann":
            up = jnp.pad(u, [(0, 0)] * (u.ndim - 2) + [(1, 1), (1, 1)], mode="symmetric")
            h, w = u.shape[-2:]
            out = sum(
                wt * up[..., 1 + i : 1 + i + h, 1 + j : 1 + j + w] for (i, j), wt in _NINE_POINT.items()
            )
        else:  # periodic
            out = sum(
                wt * _shift(_shift(u, i, -2), j, -1) for (i, j), wt in _NINE_POINT.items()
            )
        return out * scale
    weights = _AXIS_WEIGHTS[stencil]
    out = _axis_second_difference(u, weights, -2, boundary) + _axis_second_difference(
        u, weights, -1, boundary
    )
    return out * scale


def _separable_2d(stencil: str) -> dict[tuple[int, int], float]:
    """The 2-D weights of a separable stencil (sum of its two 1-D second differences)."""
    out: dict[tuple[int, int], float] = {}
    for o, w in _AXIS_WEIGHTS[stencil].items():
        out[(o, 0)] = out.get((o, 0), 0.0) + w
        out[(0, o)] = out.get((0, o), 0.0) + w
    return out


def laplacian_5pt(u, dx=1.0, *, boundary: str = "periodic") -> Array:
    """Second-order five-point Laplacian (3-point per axis); see :func:`laplacian`."""
    return laplacian(u, dx, stencil="5pt", boundary=boundary)


def laplacian_9pt(u, dx=1.0, *, boundary: str = "periodic") -> Array:
    """Nine-point Laplacian of the LEADS Gray-Scott code; see :func:`laplacian`."""
    return laplacian(u, dx, stencil="9pt", boundary=boundary)


def laplacian_4th(u, dx=1.0, *, boundary: str = "periodic") -> Array:
    """Fourth-order five-point-per-axis Laplacian; see :func:`laplacian`."""
    return laplacian(u, dx, stencil="4th", boundary=boundary)


def symbol(stencil: str, kx: ArrayLike, ky: ArrayLike, dx: float = 1.0) -> np.ndarray:
    """The Fourier symbol: ``L exp(i(kx x + ky y)) = symbol * exp(i(kx x + ky y))``.

    Exact for periodic (and, on cosine modes, Neumann) boundaries. Tends to
    ``-(kx**2 + ky**2)`` as ``dx -> 0`` at order :func:`stencil_order`.
    """
    _check_stencil(stencil)
    a = np.asarray(kx, dtype=float) * dx
    b = np.asarray(ky, dtype=float) * dx
    if stencil == "9pt":
        return (-3.0 + np.cos(a) + np.cos(b) + np.cos(a) * np.cos(b)) / dx**2
    weights = _AXIS_WEIGHTS[stencil]

    def axis(t):
        return sum(w * np.cos(o * t) for o, w in weights.items())

    return (axis(a) + axis(b)) / dx**2
