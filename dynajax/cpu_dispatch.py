"""Synchronous CPU dispatch for processes allowed a single core.

With JAX's asynchronous CPU dispatch (its default), a computation holding a
:func:`jax.pure_callback` can hang for good when the process may use one core only
(``taskset -c 0``, a container limited to one CPU): XLA:CPU then has one worker thread, the
callback runs on it and waits for the host copy of its arguments, which needs a free worker
(jax-ml/jax#25861 reports the same hang). dynajax's host kernels are such callbacks: sorts
and circle angles of the sliced distances, the exact OT plans computed by POT. The
``dynajax`` command therefore runs CPU computations inline on such processes; in a notebook
or script pinned to one core, call :func:`use_sync_dispatch_on_one_core` before the first
JAX computation::

    import dynajax
    dynajax.use_sync_dispatch_on_one_core()
"""

from __future__ import annotations

import os

import jax


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def use_sync_dispatch_on_one_core() -> bool:
    """Turns JAX's asynchronous CPU dispatch off if this process may use a single core.

    It only takes effect before JAX creates its CPU client (the first computation).

    Returns:
        Whether dispatch is now synchronous because of it.
    """
    if usable_cores() > 1:
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True
