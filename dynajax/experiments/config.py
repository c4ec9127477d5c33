"""Typed experiment configurations: one frozen dataclass per experiment, overridable by name.

An experiment declares ``@dataclasses.dataclass(frozen=True, kw_only=True)`` subclass of
:class:`ExperimentConfig` holding every size and setting of its protocol, and registers a
``quick`` and a ``full`` instance (``full`` is the paper's protocol; ``demo`` and ``gpu``
where they exist). ``dynajax reproduce NAME --set field=value`` goes through
:func:`override`; seeds go through :func:`seed_keys`, so that seed ``s`` draws the same
numbers whatever the other seeds of the run (``--seed-offset``).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """Settings shared by every experiment.

    Attributes:
        seeds: number of training seeds when ``--seeds`` is not given.
    """

    seeds: int = 1


def config_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """``cfg`` as a JSON-ready dict (tuples become lists)."""
    return dataclasses.asdict(cfg)


def _coerce(name: str, text: str, current: Any) -> Any:
    """Parses ``text`` as a Python literal of the type of ``current``."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = text  # a bare word: a string
    kind = type(current)
    if current is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple and isinstance(value, list):
        return tuple(value)
    if kind is tuple and not isinstance(value, (list, tuple, dict, set)):
        return (value,)
    raise ValueError(f"--set {name}={text}: {name} holds a {kind.__name__} (now {current!r}), "
                     f"got {type(value).__name__} {value!r}")


def override(cfg: ExperimentConfig, assignments: Sequence[str]) -> ExperimentConfig:
    """``cfg`` with fields replaced by ``"field=value"`` assignments (Python literals).

    Raises:
        ValueError: a malformed assignment, an unknown field (the message lists the known
            ones) or a value of another type than the field's.
    """
    fields = {f.name for f in dataclasses.fields(cfg)}
    changes: dict[str, Any] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--set expects field=value, got {item!r}")
        if name not in fields:
            raise ValueError(f"--set {item}: {type(cfg).__name__} has no field {name!r}; "
                             f"fields: {', '.join(sorted(fields))}")
        changes[name] = _coerce(name, text.strip(), getattr(cfg, name))
    return dataclasses.replace(cfg, **changes)


def seed_values(n: int, offset: int = 0) -> tuple[int, ...]:
    """The seeds ``offset .. offset + n - 1``.

    Raises:
        ValueError: ``n < 1`` or ``offset < 0``.
    """
    if n < 1:
        raise ValueError(f"seeds must be >= 1, got {n}")
    if offset < 0:
        raise ValueError(f"seed offset must be >= 0, got {offset}")
    return tuple(range(offset, offset + n))


def seed_keys(seeds: Sequence[int], stream: int = 0) -> jax.Array:
    """One PRNG key per seed, ``[len(seeds)]``; seed ``s`` gets the same key in any run.

    Args:
        seeds: the run's seed values.
        stream: separates independent uses of the same seed (data vs. initialisation, ...).
    """
    base = jax.random.key(stream)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.asarray(seeds, jnp.uint32))
