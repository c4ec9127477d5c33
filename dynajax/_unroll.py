"""When to unroll a loop: XLA:CPU runs convolutions inside a rolled loop many times slower.

Measured on 2 CPU cores (jax 0.10), a 32x32 ConvNet neural ODE (8 states, 10 RK4 steps):
the gradient through a rolled ``lax.scan`` rollout takes 32.9 s against 2.48 s unrolled, and
:func:`dynajax.train.fit` steps take 20.5 s each inside a rolled ``lax.scan`` over steps
against 3.0 s as a loop of one compiled step (even a scan of length 1 is slow). On GPU/TPU,
and for fields without convolutions on any backend, rolled loops are as fast and compile
far quicker.

``unroll="auto"`` (the default of :func:`dynajax.solve.integrate` and
:func:`dynajax.train.fit`) applies :func:`should_unroll` to the traced loop body.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

AUTO = "auto"


def _jaxprs_in(value):
    if hasattr(value, "eqns"):
        yield value
    elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
        yield value.jaxpr
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _jaxprs_in(v)


def _has_conv(jaxpr) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            return True
        for v in eqn.params.values():
            if any(_has_conv(j) for j in _jaxprs_in(v)):
                return True
    return False


def contains_convolution(fn: Callable, *args) -> bool:
    """Whether ``fn(*args)`` traces to a program with a convolution (sub-jaxprs included)."""
    return _has_conv(jax.make_jaxpr(fn)(*args).jaxpr)


def should_unroll(fn: Callable, *args, backend: str | None = None) -> bool:
    """The automatic rule: unroll loops over ``fn`` iff on CPU and ``fn`` convolves."""
    backend = jax.default_backend() if backend is None else backend
    return backend == "cpu" and contains_convolution(fn, *args)


def check(unroll) -> None:
    """Raises ``ValueError`` unless ``unroll`` is ``"auto"``, a bool or an int ``>= 1``."""
    if unroll == AUTO or isinstance(unroll, bool):
        return
    if not isinstance(unroll, int) or unroll < 1:
        raise ValueError(f"unroll must be an int >= 1, a bool or 'auto', got {unroll!r}")


def resolve(unroll: int | bool | str, fn: Callable, *args) -> int | bool:
    """``unroll`` itself, or for ``"auto"`` ``True``/``1`` by :func:`should_unroll`."""
    check(unroll)
    if unroll == AUTO:
        return True if should_unroll(fn, *args) else 1
    return unroll
