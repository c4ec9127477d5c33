"""Module-wise (layer-wise) training with a transport regulariser, "TRGL" (thesis §4.10).

A network is an encoder (module 0) followed by ``K`` modules of ``M`` residual blocks; module
``k`` has an auxiliary head ``F_k`` and is trained on its own loss (eq. 4.21)

    ``L_k = CE(F_k(T_k(z_{k-1})), y) + (1 / (2 tau_k)) sum_m E||r_m||^2``

with its input ``z_{k-1} = G_{k-1}(x)`` detached (the proximal / minimizing-movement step of
eq. 4.16 in the W2 metric). ``tau_k`` is halved for the first half of the modules
(:func:`trgl_taus`); ``tau = inf`` is the greedy baseline (4.15) without the penalty.

* parallel mode: one forward pass per batch, every module updated from its own loss
  (:func:`module_losses` returns the per-module losses; their sum has exactly the per-module
  gradients because inputs are detached);
* sequential mode: module ``k`` trained alone for a stage, then frozen
  (``module_losses(..., active=k)`` keeps only module ``k``'s loss).

Parameters: ``{"enc": ..., "enc_head": ..., "flows": [K, M, ...] stacked, "heads": [K, ...]}``.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PyTree

from dynajax.transport.least_action import ResidualFlow, transport_penalty

__all__ = ["ModuleWiseResNet", "trgl_taus"]


def trgl_taus(tau: float, n_modules: int) -> np.ndarray:
    """``tau / 2`` for the first ``n_modules // 2`` modules, ``tau`` after (``[K]``).

    ``tau = inf`` (no penalty) gives ``inf`` everywhere.
    """
    if n_modules < 1:
        raise ValueError(f"n_modules must be >= 1, got {n_modules}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0 (inf for no penalty), got {tau}")
    half = n_modules // 2
    return np.array([tau / 2] * half + [tau] * (n_modules - half), np.float32)


@dataclasses.dataclass(frozen=True)
class ModuleWiseResNet:
    """Encoder + ``K`` residual modules with auxiliary heads.

    Attributes:
        encoder: linen module ``[n, ...] -> [n, d]``.
        flow: the :class:`ResidualFlow` of one module (``M = flow.n_blocks`` blocks).
        head: linen module ``[n, d] -> [n, classes]`` (one copy per module and one for the
            encoder).
        n_modules: ``K``.
        reduction: of the transport penalty (see
            :func:`dynajax.transport.least_action.transport_penalty`).
    """

    encoder: nn.Module
    flow: ResidualFlow
    head: nn.Module
    n_modules: int
    reduction: str = "batch_mean"

    def init(self, key: Array, x: Array) -> PyTree:
        ke, kh, kf, khs = jax.random.split(key, 4)
        enc = self.encoder.init(ke, x)["params"]
        z = self.encoder.apply({"params": enc}, x)
        flows = jax.vmap(lambda k: self.flow.init(k, z))(jax.random.split(kf, self.n_modules))
        heads = jax.vmap(lambda k: self.head.init(k, z)["params"])(
            jax.random.split(khs, self.n_modules))
        return {"enc": enc, "enc_head": self.head.init(kh, z)["params"], "flows": flows,
                "heads": heads}

    def module_losses(
        self,
        params: PyTree,
        x: Array,
        y: Int[Array, " n"],
        taus: Float[Array, " K"],
        *,
        detach: bool = True,
    ) -> tuple[Float[Array, " K1"], dict[str, Array]]:
        """Per-module losses ``[K + 1]`` (index 0: the encoder's CE) and diagnostics.

        Returns:
            ``(losses [K + 1], {"ce": [K + 1], "transport": [K], "logits": [K + 1, n, C]})``.
        """
        z = self.encoder.apply({"params": params["enc"]}, x)
        logits0 = self.head.apply({"params": params["enc_head"]}, z)

        def module(zk, inp):
            fp, hp = inp
            zin = jax.lax.stop_gradient(zk) if detach else zk
            tz, res, _ = self.flow.residuals(fp, zin)
            logits = self.head.apply({"params": hp}, tz)
            pen = transport_penalty(res, self.reduction)
            return tz, (logits, pen)

        _, (logits, pens) = jax.lax.scan(module, z, (params["flows"], params["heads"]))
        all_logits = jnp.concatenate([logits0[None], logits], 0)
        ce = jax.vmap(lambda lg: optax.softmax_cross_entropy_with_integer_labels(lg, y).mean())(
            all_logits)
        weight = jnp.where(jnp.isinf(taus), 0.0, 1.0 / (2.0 * jnp.where(jnp.isinf(taus), 1.0, taus)))
        losses = ce + jnp.concatenate([jnp.zeros(1), weight * pens])
        return losses, {"ce": ce, "transport": pens, "logits": all_logits}

    def loss(self, params, x, y, taus, active: Array | None = None) -> tuple[Array, dict]:
        """Parallel mode (``active=None``): sum of every module's loss; sequential mode:
        the loss of module ``active`` (0 = encoder) only."""
        losses, aux = self.module_losses(params, x, y, taus)
        if active is None:
            return jnp.sum(losses), aux
        return losses[active], aux

    def accuracies(self, params, x, y) -> Float[Array, " K1"]:
        """Test accuracy of every auxiliary head ``F_k(G_k(x))``, ``[K + 1]``."""
        taus = jnp.full((self.n_modules,), math.inf)
        _, aux = self.module_losses(params, x, y, taus)
        return jnp.mean(jnp.argmax(aux["logits"], -1) == y[None], axis=-1)
