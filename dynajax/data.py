"""Trajectory datasets: arrays + metadata, deterministic generation, an on-disk cache.

A :class:`TrajectoryDataset` holds ``states [n_traj, n_time, *state_shape]`` on the host
(numpy), the save ``times [n_time]``, per-trajectory physical ``params`` and environment ids,
the split name and the generating configuration. :func:`cached` memoises a generator on
disk under a key made of every generating parameter: files are written atomically, carry
a checksum of their arrays, and are regenerated (with a warning) when stale or corrupt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dynajax._io import atomic_write_bytes

__all__ = ["TrajectoryDataset", "cached", "cache_dir", "digits_splits", "map_in_batches", "SPLITS"]

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class TrajectoryDataset:
    """Trajectories of one system and split.

    Attributes:
        states: ``[n_traj, n_time, *state_shape]``.
        times: ``[n_time]`` save times (the first is the initial time).
        params: physical parameters per trajectory, each ``[n_traj]``.
        env: ``[n_traj]`` integer environment ids (all 0 for single-environment data).
        split: ``"train"``, ``"val"`` or ``"test"``.
        system: name of the generating system.
        config: the JSON-serialisable generating configuration (seed, sizes, options).
    """

    states: np.ndarray
    times: np.ndarray
    params: Mapping[str, np.ndarray]
    env: np.ndarray
    split: str
    system: str
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; allowed: {', '.join(SPLITS)}")
        if self.states.ndim < 2:
            raise ValueError(f"states must be [n_traj, n_time, ...], got shape {self.states.shape}")
        n, t = self.states.shape[:2]
        if self.times.shape != (t,):
            raise ValueError(f"times must have shape ({t},), got {self.times.shape}")
        if self.env.shape != (n,):
            raise ValueError(f"env must have shape ({n},), got {self.env.shape}")
        for k, v in self.params.items():
            if np.shape(v) != (n,):
                raise ValueError(f"params[{k!r}] must have shape ({n},), got {np.shape(v)}")

    @property
    def n_traj(self) -> int:
        return self.states.shape[0]

    @property
    def n_time(self) -> int:
        return self.states.shape[1]

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.states.shape[2:]

    @property
    def n_env(self) -> int:
        return int(self.env.max()) + 1 if self.env.size else 0

    def subset(self, index) -> TrajectoryDataset:
        """The trajectories selected by ``index`` (an index array, mask or slice)."""
        index = np.arange(self.n_traj)[index]
        return dataclasses.replace(
            self,
            states=self.states[index],
            params={k: v[index] for k, v in self.params.items()},
            env=self.env[index],
        )

    def by_env(self) -> np.ndarray:
        """States grouped by environment, ``[n_env, n_per_env, n_time, *state_shape]``.

        Raises:
            ValueError: if the environments do not hold equally many trajectories.
        """
        counts = np.bincount(self.env, minlength=self.n_env)
        if np.any(counts != counts[0]):
            raise ValueError(f"environments hold different numbers of trajectories: {counts.tolist()}")
        order = np.argsort(self.env, kind="stable")
        return self.states[order].reshape(self.n_env, counts[0], *self.states.shape[1:])

    def to_jax(self, dtype=jnp.float32) -> jax.Array:
        """The states as a JAX array of ``dtype`` (float32 for training by default)."""
        return jnp.asarray(self.states, dtype=dtype)

    # -- serialisation -------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"states": self.states, "times": self.times, "env": self.env}
        arrays.update({f"params/{k}": np.asarray(v) for k, v in self.params.items()})
        return arrays

    def checksum(self) -> str:
        """SHA-256 of the arrays (names, dtypes, shapes and bytes)."""
        h = hashlib.sha256()
        for name, a in sorted(self._arrays().items()):
            a = np.ascontiguousarray(a)
            h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        """Writes an ``.npz`` (arrays + metadata + checksum) atomically."""
        meta = {"split": self.split, "system": self.system, "config": self.config,
                "checksum": self.checksum()}
        buf = io.BytesIO()
        np.savez(buf, **self._arrays(), __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> TrajectoryDataset:
        """Reads a file written by :meth:`save`.

        Raises:
            ValueError: if the file is unreadable or its checksum does not match.
        """
        try:
            with np.load(Path(path)) as f:
                meta = json.loads(f["__meta__"].tobytes().decode())
                params = {k[len("params/"):]: f[k] for k in f.files if k.startswith("params/")}
                ds = cls(states=f["states"], times=f["times"], params=params, env=f["env"],
                         split=meta["split"], system=meta["system"], config=meta["config"])
        except Exception as e:  # truncated zip, missing keys, bad JSON, ...
            raise ValueError(f"cannot read dataset file {path}: {e}") from e
        if ds.checksum() != meta["checksum"]:
            raise ValueError(f"dataset file {path} is corrupt: checksum mismatch")
        return ds


def cache_dir() -> Path:
    """The dataset cache: ``$DYNAJAX_CACHE`` or ``~/.cache/dynajax``."""
    return Path(os.environ.get("DYNAJAX_CACHE", Path.home() / ".cache" / "dynajax"))


def _key_json(key: Mapping[str, Any]) -> str:
    def default(o):
        if isinstance(o, (np.generic, np.ndarray)):
            return o.tolist()
        raise TypeError(f"cache key values must be JSON-serialisable, got {type(o).__name__}")

    return json.dumps(key, sort_keys=True, default=default)


def cached(
    generate: Callable[[], TrajectoryDataset],
    cache_key: Mapping[str, Any],
    *,
    directory: str | os.PathLike | None = None,
    enabled: bool = True,
) -> TrajectoryDataset:
    """Returns ``generate()``, memoised on disk under ``cache_key``.

    Args:
        generate: builds the dataset (deterministically from what ``cache_key`` holds).
        cache_key: every generating parameter (system, split, seed, sizes, physical parameters,
            a generator version), JSON-serialisable. The file name hashes it and the file
            stores it: a file whose key or checksum does not match is regenerated.
        directory: cache directory (default :func:`cache_dir`).
        enabled: ``False`` skips the cache entirely.
    """
    if not enabled:
        return generate()
    key_json = _key_json(cache_key)
    digest = hashlib.sha256(key_json.encode()).hexdigest()[:20]
    prefix = "-".join(str(cache_key[k]) for k in ("system", "split") if k in cache_key)
    path = Path(directory or cache_dir()) / f"{prefix}-{digest}.npz"
    if path.exists():
        try:
            ds = TrajectoryDataset.load(path)
            if _key_json(ds.config.get("cache_key", {})) == key_json:
                return ds
            reason = "it was generated with other parameters"
        except ValueError as e:
            reason = str(e)
        warnings.warn(f"regenerating cached dataset {path.name}: {reason}", stacklevel=2)
    ds = generate()
    ds = dataclasses.replace(ds, config={**ds.config, "cache_key": json.loads(key_json)})
    ds.save(path)
    return ds


def map_in_batches(
    fn: Callable[[Any], Any], xs: Any, batch_size: int, *, desc: str | None = None
) -> Any:
    """``jax.jit(fn)`` over the leading axis of ``xs`` in batches, with a progress bar.

    ``fn`` maps a batch (pytree with leading axis ``<= batch_size``) to a pytree with the
    same leading axis; outputs come back to the host as numpy and are concatenated. The last
    batch is padded so only one program is compiled. ``desc`` names the progress bar (none
    when ``None`` or for a single batch).
    """
    n = jax.tree_util.tree_leaves(xs)[0].shape[0]
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    jitted = jax.jit(fn)
    starts = range(0, n, batch_size)
    if desc is not None and len(starts) > 1:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=desc, unit="batch", leave=False)
    outs = []
    for s in starts:
        chunk = jax.tree_util.tree_map(lambda x: x[s : s + batch_size], xs)
        m = jax.tree_util.tree_leaves(chunk)[0].shape[0]
        if m < batch_size and n > batch_size:
            chunk = jax.tree_util.tree_map(
                lambda x: np.concatenate([x, np.repeat(x[-1:], batch_size - m, axis=0)]), chunk
            )
        out = jax.device_get(jitted(chunk))
        outs.append(jax.tree_util.tree_map(lambda y: np.asarray(y)[:m], out))
    return jax.tree_util.tree_map(lambda *ys: np.concatenate(ys), *outs)


def digits_splits(
    n_test: int = 797, n_val: int = 200, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1797 images, shipped with the package) in fixed splits.

    Pixels are scaled to ``[0, 1]``; one permutation drawn from ``seed`` assigns the first
    ``n_test`` images to the test set, the next ``n_val`` to validation and the rest to the
    training pool (from which experiments draw their training subsets).

    Returns:
        ``(pool_x [n_pool, 64], pool_y [n_pool], val_x [n_val, 64], val_y, test_x [n_test,
        64], test_y)``, float32 images and int32 labels, ``n_pool = 1797 - n_test - n_val``.

    Raises:
        ValueError: negative sizes or ``n_test + n_val >= 1797`` (an empty pool).
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    n = len(d.target)
    if n_test < 0 or n_val < 0 or n_test + n_val >= n:
        raise ValueError(f"need n_test, n_val >= 0 and n_test + n_val < {n}, got {n_test}, {n_val}")
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int32)
    perm = np.random.default_rng(seed).permutation(n)
    test, val, pool = perm[:n_test], perm[n_test:n_test + n_val], perm[n_test + n_val:]
    return x[pool], y[pool], x[val], y[val], x[test], y[test]
