"""Checkpoints: a pytree serialised by equinox, its metadata and extra arrays, in one atomic file.

The file is an ``.npz`` archive holding ``tree`` (the leaves, written by
:func:`equinox.tree_serialise_leaves`; PRNG keys as their key data), ``meta`` (JSON: format,
leaf count, a hash of the tree's structure, shapes and dtypes, and the caller's fingerprint)
and ``extra/NAME`` arrays (e.g. a metric history). It is written to a temporary file and
renamed, so a crash leaves the previous checkpoint intact. Equinox's serialisation was
chosen over orbax-checkpoint: one file instead of a directory, and the faster of the two for
the per-chunk checkpoints of :func:`dynajax.train.fit`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from dynajax._io import atomic_write_bytes

FORMAT = 2


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _leaf_spec(x) -> str:
    if _is_key(x):
        return f"key<{jax.random.key_impl(x)}>{tuple(x.shape)}"
    return f"{np.asarray(x).dtype}{tuple(np.shape(x))}"


def tree_fingerprint(tree: PyTree) -> str:
    """A hash of ``tree``'s structure (its treedef, with dict keys and module names) and of
    every leaf's shape and dtype; equal for two trees a checkpoint can move between."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    text = str(treedef) + "|" + ",".join(_leaf_spec(x) for x in leaves)
    return hashlib.sha256(text.encode()).hexdigest()


def _save_leaf(f, x) -> None:
    if _is_key(x):
        np.save(f, np.asarray(jax.random.key_data(x)))
    else:
        eqx.default_serialise_filter_spec(f, x)


def save_checkpoint(path: str | os.PathLike, tree: PyTree, extra: dict[str, np.ndarray] | None = None,
                    *, fingerprint: str | None = None) -> None:
    """Writes ``tree`` to ``path`` atomically: a crash leaves the old file intact.

    Args:
        path: the checkpoint file.
        tree: any pytree of arrays (JAX arrays, PRNG keys, numpy arrays and scalars).
        extra: arrays stored beside it (e.g. a metric history), read back by name.
        fingerprint: the caller's identity of what wrote it (e.g. a hash of the model and
            training configuration); :func:`load_checkpoint` refuses a different one.
    """
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree, filter_spec=_save_leaf)
    meta = {"format": FORMAT, "leaves": len(jax.tree_util.tree_leaves(tree)),
            "structure": tree_fingerprint(tree), "fingerprint": fingerprint}
    arrays = {"tree": np.frombuffer(buf.getvalue(), np.uint8),
              "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8)}
    arrays.update({f"extra/{k}": np.asarray(v) for k, v in (extra or {}).items()})
    out = io.BytesIO()
    np.savez(out, **arrays)
    atomic_write_bytes(path, out.getvalue())


def _read(path: Path) -> tuple[dict, bytes, dict[str, np.ndarray]]:
    try:
        with np.load(path) as f:
            if "meta" not in f.files or "tree" not in f.files:
                raise ValueError(f"{path} is not a dynajax checkpoint (no meta/tree entries)")
            meta = json.loads(f["meta"].tobytes())
            data = f["tree"].tobytes()
            extra = {k[len("extra/"):]: f[k] for k in f.files if k.startswith("extra/")}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError, ValueError) as e:
        if isinstance(e, ValueError) and "not a dynajax checkpoint" in str(e):
            raise
        raise ValueError(f"checkpoint {path} is corrupted or truncated ({type(e).__name__}: {e}); "
                         "delete it to start over") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} has format {meta.get('format')}, this version reads {FORMAT}")
    return meta, data, extra


def load_checkpoint(path: str | os.PathLike, like: PyTree, *, with_extra: bool = False,
                    fingerprint: str | None = None) -> PyTree | tuple[PyTree, dict[str, np.ndarray]]:
    """Reads a checkpoint written by :func:`save_checkpoint` into the structure of ``like``.

    Returns the tree, or ``(tree, extra)`` with ``with_extra=True``.

    Raises:
        ValueError: the file is corrupted or truncated, or does not match ``like`` (leaf
            count, structure, shapes, dtypes), or was written with another ``fingerprint``.
    """
    path = Path(path)
    meta, data, extra = _read(path)
    like_leaves = jax.tree_util.tree_leaves(like)
    if meta["leaves"] != len(like_leaves):
        raise ValueError(f"checkpoint {path} holds {meta['leaves']} arrays but the state has {len(like_leaves)}")
    if fingerprint is not None and meta["fingerprint"] != fingerprint:
        raise ValueError(f"checkpoint {path} was written by a different model or configuration "
                         f"(fingerprint {str(meta['fingerprint'])[:12]}, this run {fingerprint[:12]}); "
                         "use another checkpoint path, or delete it to start over")
    if meta["structure"] != tree_fingerprint(like):
        raise ValueError(f"checkpoint {path} does not match the state: its structure, shapes or dtypes "
                         "differ (another model or optimiser wrote it)")

    def load_leaf(f, x):
        if _is_key(x):
            return jax.random.wrap_key_data(jnp.asarray(np.load(f)), impl=jax.random.key_impl(x))
        return eqx.default_deserialise_filter_spec(f, x)

    try:
        tree = eqx.tree_deserialise_leaves(io.BytesIO(data), like, filter_spec=load_leaf)
    except Exception as e:  # equinox reports a leaf mismatch as a RuntimeError
        raise ValueError(f"checkpoint {path} does not match the state: {e}") from e
    return (tree, extra) if with_extra else tree
