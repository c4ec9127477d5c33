"""Networks of the partially observed models (thesis sec. 2.5.2) and their ablations.

* :class:`ResNet`: the vector field ``F_theta`` (strided downsampling, residual blocks,
  bilinear upsampling + convolution, orthogonal init); ``skip=False`` is the "ResNet No Skip"
  ablation; with ``HiddenModel(method="direct")`` it is the direct map ``X_i -> X_{i+1}``.
* :class:`UNet`: the estimator ``g_theta`` (3 "double conv" steps, LeakyReLU(0.1), U-Net skips)
  and the "UNET" ablation (as a direct map).
* :class:`PKnI` (de Bezenac, Pajot, Gallinari 2018), trained by :func:`fit_pkni` and rolled
  out by :func:`pkni_forecast`.
* :func:`fit_restructuring`: the small regressor from jointly trained states to canonical
  states (Prop. 2.2), fitted on a few full-state sequences.

All modules take channels-first ``[..., C, H, W]`` (the :mod:`dynajax.systems` convention)
and use circular padding (periodic domains) unless ``padding="REFLECT"`` (no-flux walls, e.g.
the cardiac slab) or ``"SAME"`` (zeros).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from dynajax.nn import ConvNet, get_activation, orthogonal
from dynajax.train import FitResult, init_state, make_step
from dynajax.train import fit as train_fit

__all__ = ["PKnI", "ResNet", "UNet", "fit_pkni", "fit_restructuring", "gaussian_warp", "pkni_forecast", "pkni_penalty"]


PADDINGS = ("CIRCULAR", "REFLECT", "SAME")


def _check_input(padding: str, H: int, W: int, levels: int, name: str) -> None:
    """Raises ``ValueError`` for an unknown padding or a grid not divisible by ``2 ** levels``."""
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; allowed: {', '.join(PADDINGS)}")
    if H % 2**levels or W % 2**levels:
        raise ValueError(f"the grid {H}x{W} must be divisible by 2 ** {name} = {2 ** levels}")


def _conv(features, stride=1, gain=1.0, name=None, padding="CIRCULAR"):
    return nn.Conv(features, (3, 3), strides=stride, padding=padding,
                   kernel_init=orthogonal(gain), name=name)


def _upsample(h):
    *lead, H, W, C = h.shape
    return jax.image.resize(h, (*lead, 2 * H, 2 * W, C), "bilinear")


class ResNet(nn.Module):
    """ResNet vector field: conv, ``n_down`` stride-2 convs, ``n_blocks`` residual blocks
    (conv-act-conv, plus the input when ``skip``), ``n_down`` (bilinear x2 + conv), then a
    full-resolution head on the upsampled features concatenated with the first layer's
    ([interp.]: the thesis gives no head; without it, fine-scale transport of the observed
    field has to pass the coarse grid) and an output conv with orthogonal gain ``out_gain``
    (small: ``F ~ 0`` at the start, the flow starts near the identity).

    Attributes:
        out_channels: output channels (``d`` for a vector field).
        width: channels of every hidden layer.
        n_down: stride-2 downsamplings (the grid must be divisible by ``2 ** n_down``).
        n_blocks: residual blocks at the coarsest resolution.
        skip: residual skips in the blocks and the full-resolution concatenation.
        out_gain: gain of the orthogonal init of the output conv.
        padding: ``"CIRCULAR"`` (periodic), ``"REFLECT"`` or ``"SAME"`` (zeros).
        activation: a :func:`dynajax.nn.get_activation` name: ``"relu"`` (the thesis' ResNet),
            or a smooth one such as ``"gelu"``.
    """

    out_channels: int
    width: int = 32
    n_down: int = 2
    n_blocks: int = 3
    skip: bool = True
    out_gain: float = 0.1
    padding: str = "CIRCULAR"
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: Float[Array, "... C H W"]) -> Float[Array, "... out H W"]:
        H, W = x.shape[-2:]
        _check_input(self.padding, H, W, self.n_down, "n_down")
        act = get_activation(self.activation)
        h0 = act(_conv(self.width, padding=self.padding)(jnp.moveaxis(x, -3, -1)))
        h = h0
        for _ in range(self.n_down):
            h = act(_conv(self.width, stride=2, padding=self.padding)(h))
        for _ in range(self.n_blocks):
            r = _conv(self.width, padding=self.padding)(act(_conv(self.width, padding=self.padding)(h)))
            h = act(h + r) if self.skip else act(r)
        for _ in range(self.n_down):
            h = act(_conv(self.width, padding=self.padding)(_upsample(h)))
        if self.skip:
            h = jnp.concatenate([h, h0], axis=-1)
        h = act(_conv(self.width, padding=self.padding)(h))
        out = _conv(self.out_channels, gain=self.out_gain, padding=self.padding)(h)
        return jnp.moveaxis(out, -1, -3)


class UNet(nn.Module):
    """U-Net: ``depth`` double-conv steps down (3x3 stride 2, then 3x3 stride 1, LeakyReLU
    0.1; no BatchNorm), bilinear upsampling with skip concatenations, a conv output.

    Attributes:
        out_channels: output channels.
        width: channels at full resolution (doubled at each level).
        depth: levels (the grid must be divisible by ``2 ** depth``).
        out_gain: gain of the orthogonal init of the output conv.
        padding: ``"CIRCULAR"`` (periodic), ``"REFLECT"`` or ``"SAME"`` (zeros).
    """

    out_channels: int
    width: int = 16
    depth: int = 3
    out_gain: float = 1.0
    padding: str = "CIRCULAR"

    @nn.compact
    def __call__(self, x: Float[Array, "... C H W"]) -> Float[Array, "... out H W"]:
        H, W = x.shape[-2:]
        _check_input(self.padding, H, W, self.depth, "depth")
        act = lambda z: nn.leaky_relu(z, 0.1)
        h = act(_conv(self.width, padding=self.padding)(jnp.moveaxis(x, -3, -1)))
        skips = [h]
        for i in range(self.depth):
            w = self.width * 2 ** (i + 1)
            h = act(_conv(w, padding=self.padding)(act(_conv(w, stride=2, padding=self.padding)(h))))
            skips.append(h)
        for i in reversed(range(self.depth)):
            h = _upsample(h)
            h = act(_conv(self.width * 2**i, padding=self.padding)(jnp.concatenate([h, skips[i]], axis=-1)))
        out = _conv(self.out_channels, gain=self.out_gain, padding=self.padding)(h)
        return jnp.moveaxis(out, -1, -3)


def fit_restructuring(
    inputs: Float[Array, "N d H W"],
    targets: Float[Array, "N c H W"],
    *,
    key: Array,
    width: int = 32,
    n_layers: int = 3,
    n_steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 32,
):
    """Fits a small circular ConvNet ``inputs -> targets`` (MSE, Adam, minibatches).

    The thesis' restructuring experiment: inputs are jointly trained (setting 1) states,
    targets the canonical states of the same frames, from a few full-state sequences.

    Returns:
        ``apply(x [..., d, H, W]) -> [..., c, H, W]``, the fitted regressor.
    """
    if inputs.shape[0] != targets.shape[0] or inputs.ndim != 4 or targets.ndim != 4:
        raise ValueError(f"need inputs [N, d, H, W] and targets [N, c, H, W], got {inputs.shape}, {targets.shape}")
    net = ConvNet((*([width] * (n_layers - 1)), targets.shape[1]), padding="circular", activation="gelu")
    to_last = lambda a: jnp.moveaxis(a, -3, -1)
    k_init, k_run = jax.random.split(key)
    params = net.init(k_init, to_last(inputs[:1]))
    opt = optax.adam(optax.cosine_decay_schedule(lr, n_steps))
    step = make_step(lambda p, b, k: (jnp.mean((net.apply(p, to_last(b["x"])) - to_last(b["y"])) ** 2), {}), opt)
    res = train_fit(step, init_state(params, opt, key=k_run), {"x": inputs, "y": targets}, n_steps=n_steps,
                    chunk_size=n_steps, batch_size=min(batch_size, inputs.shape[0]), progress=False)
    fitted = res.state.params
    return lambda x: jnp.moveaxis(net.apply(fitted, to_last(x)), -1, -3)


def gaussian_warp(image: Float[Array, "... H W"], w: Float[Array, "... 2 H W"], diffusion: float = 0.25):
    """PKnI's transport step (de Bezenac et al. 2018): ``I'(x) = sum_y k(x - w(x) - y) I(y)``.

    ``k`` is a Gaussian of variance ``2 D dt`` (``diffusion = D dt``, in pixels^2), the
    displacement ``w`` is in pixels per step (``w[0]`` along axis -2, ``w[1]`` along -1), the
    domain periodic (minimum-image distances) and the weights of each ``x`` sum to 1. Cost
    ``O((HW)^2)`` per image: meant for small grids.
    """
    if not diffusion > 0:
        raise ValueError(f"diffusion must be > 0, got {diffusion!r}")
    H, W = image.shape[-2:]
    if w.shape[-3:] != (2, H, W):
        raise ValueError(f"w must be [..., 2, {H}, {W}], got {w.shape}")
    gi, gj = jnp.meshgrid(jnp.arange(H, dtype=image.dtype), jnp.arange(W, dtype=image.dtype), indexing="ij")
    src_i = (gi - w[..., 0, :, :]).reshape(*w.shape[:-3], H * W, 1)  # departure points of each x
    src_j = (gj - w[..., 1, :, :]).reshape(*w.shape[:-3], H * W, 1)
    di = (src_i - gi.reshape(-1) + H / 2) % H - H / 2
    dj = (src_j - gj.reshape(-1) + W / 2) % W - W / 2
    logits = -(di**2 + dj**2) / (4 * diffusion)
    weights = jax.nn.softmax(logits, axis=-1)  # [..., HW (x), HW (y)]
    out = jnp.einsum("...xy,...y->...x", weights, image.reshape(*image.shape[:-2], H * W))
    return out.reshape(image.shape)


class PKnI(nn.Module):
    """PKnI baseline: a UNet estimates a displacement field from the last ``K`` frames, the
    next frame is :func:`gaussian_warp` of the last one. Its hidden state is the displacement.

    ``__call__(frames [..., K, H, W], n_steps) -> (pred [n_steps, ..., H, W], w [n_steps, ..., 2, H, W])``.
    """

    width: int = 16
    depth: int = 3
    diffusion: float = 0.25

    @nn.compact
    def __call__(self, frames, n_steps: int):
        net = UNet(2, width=self.width, depth=self.depth, out_gain=0.1)
        preds, ws = [], []
        for _ in range(n_steps):  # a Python loop: convolutions, CPU (see hidden.should_unroll)
            w = net(frames)
            nxt = gaussian_warp(frames[..., -1, :, :], w, self.diffusion)
            frames = jnp.concatenate([frames[..., 1:, :, :], nxt[..., None, :, :]], axis=-3)
            preds.append(nxt)
            ws.append(w)
        return jnp.stack(preds), jnp.stack(ws)


def pkni_penalty(w: Float[Array, "... 2 H W"], div: float = 1.0, magnitude: float = 1e-3, smooth: float = 1e-2):
    """PKnI's regulariser: ``div ||div w||^2 + magnitude ||w||^2 + smooth ||grad w||^2``
    (periodic forward differences, means over pixels)."""
    dx = lambda a, ax: jnp.roll(a, -1, axis=ax) - a
    divergence = dx(w[..., 0, :, :], -2) + dx(w[..., 1, :, :], -1)
    grad_sq = sum(dx(w, ax) ** 2 for ax in (-2, -1))
    return div * jnp.mean(divergence**2) + magnitude * jnp.mean(w**2) + smooth * jnp.mean(grad_sq)


def fit_pkni(
    net: PKnI,
    train_windows: dict,
    val_windows: dict,
    *,
    key: Array,
    n_context: int,
    steps: int,
    lr: float,
    batch_size: int,
    val_every: int,
    penalty: float = 1.0,
) -> FitResult:
    """Trains :class:`PKnI` on single-channel windows with :func:`dynajax.train.fit`.

    The loss is the mean over examples and steps of the squared error of the ``T`` predicted
    frames (sum over pixels) plus ``penalty`` times :func:`pkni_penalty` of the displacements;
    Adam with a cosine decay from ``lr``; the best parameters on the validation fit term.

    Args:
        net: the PKnI module.
        key: PRNG key (initialisation and minibatches).
        train_windows: ``{"obs": [N, K + T, 1, H, W], ...}`` (e.g. from
            :func:`dynajax.forecast.hidden.windows`).
        val_windows: the same layout.
        n_context: ``K``, the frames the displacement estimator sees.
        steps, lr, batch_size, val_every: optimiser steps, initial rate, minibatch,
            steps between validations.
        penalty: weight of :func:`pkni_penalty`.
    """
    K = n_context
    T = train_windows["obs"].shape[1] - K
    if T < 1 or val_windows["obs"].shape[1] != K + T or train_windows["obs"].shape[2] != 1:
        raise ValueError(f"need single-channel windows of the same length > n_context = {K}; got "
                         f"{train_windows['obs'].shape} and {val_windows['obs'].shape}")

    def loss(p, batch, key=None):
        frames = batch["obs"][:, :, 0]
        pred, w = net.apply(p, frames[:, :K], T)
        fit = jnp.mean(jnp.sum((pred - jnp.moveaxis(frames[:, K:], 1, 0)) ** 2, axis=(-2, -1)))
        return fit + penalty * pkni_penalty(w), {"fit": fit}

    k_init, k_state = jax.random.split(key)
    params = jax.jit(net.init, static_argnums=2)(k_init, jnp.asarray(train_windows["obs"][:1, :K, 0]), 1)
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps))
    data, val = (jax.tree_util.tree_map(jnp.asarray, w) for w in (train_windows, val_windows))
    return train_fit(make_step(loss, opt), init_state(params, opt, key=k_state), data, n_steps=steps,
                     chunk_size=val_every, batch_size=batch_size, validate=lambda p: loss(p, val)[1]["fit"],
                     progress=False)


def pkni_forecast(net: PKnI, params, context: Float[Array, "B K H W"], n_steps: int):
    """PKnI rollout from ``K`` context frames, one compiled step in a Python loop.

    Returns:
        ``(frames [n_steps + 1, B, 1, H, W], w [n_steps + 1, B, 2, H, W])`` (NumPy): the last
        context frame then the predictions, and the displacement that produced each frame
        (zero at index 0; ``w_i`` moved frame ``i - 1`` to frame ``i``).
    """
    one = jax.jit(lambda p, f: net.apply(p, f, 1))
    frames = jnp.asarray(context)
    preds, ws = [frames[:, -1]], [jnp.zeros((frames.shape[0], 2, *frames.shape[-2:]), frames.dtype)]
    for _ in range(n_steps):
        pred, w = one(params, frames)
        frames = jnp.concatenate([frames[:, 1:], pred[0][:, None]], axis=1)
        preds.append(pred[0])
        ws.append(w[0])
    return np.asarray(jnp.stack(preds))[:, :, None], np.asarray(jnp.stack(ws))
