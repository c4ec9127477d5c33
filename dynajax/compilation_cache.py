"""JAX's persistent compilation cache under the dynajax cache directory.

A second run of the same program (another seed, a rerun of an experiment, a notebook
restarted) then loads its compiled XLA executables from disk instead of compiling again.
The ``dynajax`` command turns it on for every run; in a notebook, one call does it::

    import dynajax
    dynajax.enable_compilation_cache()          # $DYNAJAX_CACHE/jax-compile, or a path
"""

from __future__ import annotations

import os
from pathlib import Path

import jax


def enable_compilation_cache(path: str | os.PathLike | None = None, *, min_compile_seconds: float = 0.5) -> Path:
    """Turns on JAX's persistent compilation cache and returns its directory.

    Args:
        path: the cache directory; default ``$JAX_COMPILATION_CACHE_DIR`` if set, else
            ``jax-compile`` under :func:`dynajax.data.cache_dir` (``$DYNAJAX_CACHE`` or
            ``~/.cache/dynajax``).
        min_compile_seconds: programs compiling faster than this are not stored.

    Raises:
        ValueError: the directory cannot be created or written, or a negative time.
    """
    from dynajax._io import ensure_writable_dir
    from dynajax.data import cache_dir

    if not min_compile_seconds >= 0:
        raise ValueError(f"min_compile_seconds must be >= 0, got {min_compile_seconds}")
    if path is None:
        path = os.environ.get("JAX_COMPILATION_CACHE_DIR") or cache_dir() / "jax-compile"
    path = ensure_writable_dir(path)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
