"""Data-parallel training over a device mesh, and multi-host setup.

The recipe is plain ``jax.sharding``: a 1-D :class:`jax.sharding.Mesh` whose one axis
(``"data"``) spans the devices; the training state (parameters, optimizer state, PRNG key,
step counter, ...) is *replicated* on every device and the batch is *sharded* along its
leading (example) axis. :func:`data_parallel` compiles any pure step
``step(state, batch) -> (new_state, metrics)`` with exactly those input shardings and
replicated outputs; since the step's loss is a mean over the (global) batch, XLA inserts the
all-reduce of the gradients itself. No ``pmap``, no ``psum``: the step is written once, for
one device, and the sharded step computes the same numbers (up to the order of floating
point summation).

Example:
    >>> mesh = make_mesh()                       # every device, axis "data"
    >>> pstep = data_parallel(step, mesh)
    >>> state = replicate(state, mesh)
    >>> for batch in batches:
    ...     state, metrics = pstep(state, shard_batch(batch, mesh))

Several hosts (processes) run the *same* program: call :func:`initialize_distributed` first
on every host, build the mesh over all global devices (:func:`make_mesh` with no argument),
and let each host feed only its own slice of the global batch through :func:`global_batch`.

On a CPU-only machine, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before
JAX starts) makes XLA:CPU expose ``N`` devices, which is how this module is tested.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

__all__ = [
    "make_mesh",
    "replicated_sharding",
    "batch_sharding",
    "replicate",
    "shard_batch",
    "data_parallel",
    "initialize_distributed",
    "global_batch",
]

State = TypeVar("State")
Metrics = TypeVar("Metrics")
StepFn = Callable[[State, Any], tuple[State, Metrics]]

_XLA_HINT = (
    "On CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N in the environment "
    "before JAX starts to get N host devices."
)


# --------------------------------------------------------------------------- meshes


def make_mesh(
    n_devices: int | None = None,
    axis: str = "data",
    devices: Sequence[jax.Device] | None = None,
) -> Mesh:
    """Builds a 1-D data-parallel mesh.

    Args:
        n_devices: How many devices to use; ``None`` uses all of them. The first
            ``n_devices`` of ``devices`` are taken. In a multi-host run leave it ``None``
            so that the mesh spans every host's devices.
        axis: Name of the mesh axis (the batch is sharded along it).
        devices: The devices to choose from; defaults to ``jax.devices()`` (all global
            devices of the default backend).

    Returns:
        A :class:`jax.sharding.Mesh` of shape ``(n_devices,)`` with axis name ``axis``
        (``AxisType.Auto``, so XLA propagates shardings inside a jitted step).

    Raises:
        ValueError: If ``n_devices`` is not a positive integer, exceeds the number of
            available devices, ``devices`` is empty, or ``axis`` is not a non-empty string.
    """
    if not isinstance(axis, str) or not axis:
        raise ValueError(f"axis must be a non-empty string, got {axis!r}.")
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices is empty: a mesh needs at least one device.")
    if n_devices is None:
        n_devices = len(devices)
    if isinstance(n_devices, bool) or not isinstance(n_devices, int | np.integer):
        raise ValueError(f"n_devices must be an int or None, got {n_devices!r}.")
    n_devices = int(n_devices)
    if n_devices < 1:
        raise ValueError(f"n_devices must be >= 1, got {n_devices}.")
    if n_devices > len(devices):
        raise ValueError(
            f"Asked for a mesh of {n_devices} devices but only {len(devices)} "
            f"{'is' if len(devices) == 1 else 'are'} available "
            f"({devices[0].platform}). {_XLA_HINT}"
        )
    return Mesh(np.asarray(devices[:n_devices]), (axis,), axis_types=(AxisType.Auto,))


def _check_axis(mesh: Mesh, axis: str) -> None:
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
    if axis not in mesh.axis_names:
        raise ValueError(f"axis {axis!r} is not an axis of the mesh {tuple(mesh.axis_names)}.")


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding that holds a full copy of an array on every device of ``mesh``."""
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}.")
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, axis: str = "data") -> NamedSharding:
    """The sharding that splits an array's leading axis across the mesh axis ``axis``."""
    _check_axis(mesh, axis)
    return NamedSharding(mesh, PartitionSpec(axis))


# ------------------------------------------------------------------- placing data


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places a full copy of every leaf of ``tree`` on every device of ``mesh``.

    Use it for the training state (parameters, optimizer state, PRNG keys, counters).
    New-style typed PRNG keys (``jax.random.key``) are supported. In a multi-host run every
    process must pass the same values (same program, same seed); each keeps its local copies.

    Args:
        tree: Any pytree of arrays (or array-likes: numpy arrays, Python scalars).
        mesh: The device mesh.

    Returns:
        The same pytree of ``jax.Array``s, each with sharding ``NamedSharding(mesh, P())``.
    """
    return _put(tree, replicated_sharding(mesh))


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _put_leaf(x: Any, sharding: NamedSharding) -> jax.Array:
    """``jax.device_put`` that also works for multi-process (not fully addressable) shardings.

    A fully addressable value (numpy, scalar, or an array on this host's devices) is taken
    as the *global* value, which every process must hold identically.
    """
    if isinstance(x, jax.Array):
        if x.sharding.is_equivalent_to(sharding, x.ndim):
            return x
        if sharding.is_fully_addressable or not x.is_fully_addressable:
            return jax.device_put(x, sharding)
        if _is_key(x):
            data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(np.asarray(x), sharding)
    return jax.device_put(x, sharding)


def _put(tree: PyTree, sharding: NamedSharding) -> PyTree:
    return jax.tree_util.tree_map(lambda x: _put_leaf(x, sharding), tree)


def _leading_size(batch: PyTree, what: str) -> int:
    """Checks that every leaf has the same leading (example) axis and returns its size."""
    shapes = [np.shape(leaf) for leaf in jax.tree_util.tree_leaves(batch)]
    if not shapes:
        raise ValueError(f"{what} has no array leaves.")
    if all(shape and shape[0] == shapes[0][0] for shape in shapes):
        return shapes[0][0]
    # Slow path, for the error message only.
    sizes = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(batch)[0]:
        shape = np.shape(leaf)
        name = jax.tree_util.keystr(path) or "<root>"
        if len(shape) == 0:
            raise ValueError(
                f"{what} leaf {name} is a scalar; every batch leaf needs a leading example "
                "axis. Put shared, non-batched values in the state or close over them."
            )
        sizes[name] = shape[0]
    raise ValueError(
        f"{what} leaves disagree on the leading (example) axis size: {sizes}. Every batch "
        "leaf must have the examples on axis 0; put shared, non-batched values (a time "
        "grid, say) in the state or close over them."
    )


def _n_shards(mesh: Mesh, axis: str) -> int:
    return int(mesh.shape[axis])


def shard_batch(batch: PyTree, mesh: Mesh, axis: str = "data") -> PyTree:
    """Splits every leaf of ``batch`` along its leading axis across the mesh axis ``axis``.

    ``batch`` is the *global* batch. In a multi-host run each host usually holds only its
    own examples: use :func:`global_batch` there (``shard_batch`` would need the identical
    global batch on every host).

    Args:
        batch: Pytree of arrays of shape ``(B, ...)``, all with the same ``B``.
        mesh: The device mesh.
        axis: The mesh axis to shard over.

    Returns:
        The same pytree of ``jax.Array``s with sharding ``NamedSharding(mesh, P(axis))``:
        device ``i`` holds examples ``[i * B / n, (i + 1) * B / n)``.

    Raises:
        ValueError: If a leaf is a scalar, the leaves disagree on ``B``, or ``B`` is not
            divisible by the number of devices along ``axis``.
    """
    sharding = batch_sharding(mesh, axis)
    size = _leading_size(batch, "batch")
    n = _n_shards(mesh, axis)
    if size % n:
        raise ValueError(
            f"The batch's leading size {size} is not divisible by the {n} devices of mesh "
            f"axis {axis!r}; use a batch size that is a multiple of {n}."
        )
    return _put(batch, sharding)


# -------------------------------------------------------------------- the step


def data_parallel(
    step: StepFn,
    mesh: Mesh,
    axis: str = "data",
    donate_state: bool = False,
) -> StepFn:
    """Compiles ``step`` for data parallelism on ``mesh``.

    The returned function has the signature of ``step``. It is ``jax.jit(step)`` with
    ``in_shardings=(replicated, batch-sharded)`` and ``out_shardings=(replicated,
    replicated)``: every device holds the whole state and ``B / n`` examples; because the
    step's loss is a mean over the batch, XLA all-reduces the gradients, and the new state
    and the metrics come back replicated. ``step`` must be a pure function of
    ``(state, batch)``; the state may hold any pytree, typed PRNG keys included.

    Before the compiled call, the wrapper checks that every batch leaf has the same
    leading size and that it is divisible by the number of devices (a clear ``ValueError``
    instead of an XLA error), and places inputs that are not yet on the mesh (numpy arrays,
    arrays committed to one device) as :func:`replicate` and :func:`shard_batch` would,
    so that every call reuses one compiled program. In a multi-process run the batch must
    come from :func:`global_batch` (anything else raises ``ValueError``). The checks cost
    a few microseconds per leaf; the bare compiled function is the ``.jitted`` attribute
    (and ``.lower`` lowers it ahead of time), for inputs already placed with
    :func:`replicate` and :func:`shard_batch`.

    Args:
        step: ``step(state, batch) -> (new_state, metrics)``, written for one device.
        mesh: The device mesh.
        axis: The mesh axis the batch is sharded over; the state is replicated over every
            mesh axis.
        donate_state: Donate the input state's buffers to the output (saves one copy of
            the state in device memory; the caller must not reuse the input state).

    Returns:
        The data-parallel step.

    Raises:
        ValueError: If ``axis`` is not an axis of ``mesh`` (at construction) or the batch
            is malformed (at call time).
    """
    if not callable(step):
        raise ValueError(f"step must be callable, got {type(step).__name__}.")
    repl = replicated_sharding(mesh)
    bsh = batch_sharding(mesh, axis)
    n = _n_shards(mesh, axis)
    jitted = jax.jit(
        step,
        in_shardings=(repl, bsh),
        out_shardings=(repl, repl),
        donate_argnums=(0,) if donate_state else (),
    )
    multi_process = mesh.is_multi_process

    def check_global(x: Any) -> Any:
        if not (isinstance(x, jax.Array) and x.sharding.is_equivalent_to(bsh, x.ndim)):
            raise ValueError(
                "In a multi-process run the batch must be a global array sharded over the "
                f"mesh axis {axis!r}: build it from each host's examples with "
                "global_batch(local_batch, mesh)."
            )
        return x

    @functools.wraps(step)
    def parallel_step(state, batch):
        size = _leading_size(batch, "batch")
        if size % n:
            raise ValueError(
                f"The batch's leading size {size} is not divisible by the {n} devices of "
                f"mesh axis {axis!r}; use a batch size that is a multiple of {n}."
            )
        # Placing every input (a no-op for arrays already placed) keeps one compiled program.
        state = _put(state, repl)
        if multi_process:
            jax.tree_util.tree_map(check_global, batch)
        else:
            batch = _put(batch, bsh)
        return jitted(state, batch)

    parallel_step.jitted = jitted  # type: ignore[attr-defined]
    parallel_step.lower = jitted.lower  # type: ignore[attr-defined]
    parallel_step.mesh = mesh  # type: ignore[attr-defined]
    return parallel_step


# --------------------------------------------------------------------- multi-host


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Environment variable {name}={raw!r} is not an integer.") from None


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto_detect: bool = False,
    **kwargs: Any,
) -> bool:
    """Connects the processes of a multi-host run (a thin wrapper of ``jax.distributed``).

    Call it on every host, first thing, before any other JAX call (JAX refuses to
    initialise the distributed runtime once a backend is up).

    Arguments left ``None`` are read from the environment: ``JAX_COORDINATOR_ADDRESS``
    (``"host:port"`` of process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``.

    Decisions, so that the same script runs on a laptop and on a cluster:

    * Nothing given (arguments and environment) and ``auto_detect=False``: a
      single-process run; nothing is done and ``False`` is returned.
    * ``num_processes == 1``: also a single-process run; nothing is done, ``False``.
    * Already initialised (``jax.distributed.is_initialized()``): nothing is done,
      ``True`` (idempotent).
    * ``auto_detect=True`` (or a ``cluster_detection_method`` keyword): unset values are
      left to JAX's cluster detection (Slurm, Open MPI, Cloud TPU, mpi4py).
    * Otherwise all three values are required and validated, then
      ``jax.distributed.initialize`` is called and ``True`` returned.

    Args:
        coordinator_address: ``"host:port"`` of process 0, reachable from every host.
        num_processes: Total number of processes (usually one per host).
        process_id: This process's index in ``0 .. num_processes - 1``.
        auto_detect: Let JAX detect unset values from the cluster environment.
        **kwargs: Passed on to ``jax.distributed.initialize`` (``local_device_ids``,
            ``initialization_timeout``, ``cluster_detection_method``, ...).

    Returns:
        Whether the JAX distributed runtime is active after the call.

    Raises:
        ValueError: If the values are partial or inconsistent (a missing coordinator,
            ``process_id`` outside ``[0, num_processes)``, a non-integer environment value);
            from JAX, if ``auto_detect`` finds no cluster environment.
        RuntimeError: From JAX, if a JAX backend was already initialised in this process.
    """
    if jax.distributed.is_initialized():
        return True
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None:
        num_processes = _env_int("JAX_NUM_PROCESSES")
    if process_id is None:
        process_id = _env_int("JAX_PROCESS_ID")
    auto_detect = auto_detect or kwargs.get("cluster_detection_method") is not None

    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
        if value is not None and not is_int:
            raise ValueError(f"{name} must be an int, got {value!r}.")
    num_processes = None if num_processes is None else int(num_processes)
    process_id = None if process_id is None else int(process_id)
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}.")
    if num_processes is not None and process_id is not None:
        if not 0 <= process_id < num_processes:
            raise ValueError(
                f"process_id must be in [0, {num_processes}) for num_processes={num_processes}, "
                f"got {process_id}."
            )

    if num_processes == 1:
        return False
    if coordinator_address is None and num_processes is None and process_id is None:
        if not auto_detect:
            return False
    elif not auto_detect:
        missing = [
            f"{arg} (or ${env})"
            for arg, env, value in (
                ("coordinator_address", "JAX_COORDINATOR_ADDRESS", coordinator_address),
                ("num_processes", "JAX_NUM_PROCESSES", num_processes),
                ("process_id", "JAX_PROCESS_ID", process_id),
            )
            if value is None
        ]
        if missing:
            raise ValueError(
                "A multi-process run needs coordinator_address, num_processes and process_id; "
                f"missing: {', '.join(missing)}. Pass auto_detect=True to let JAX read them "
                "from Slurm / Open MPI / Cloud TPU."
            )
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        **kwargs,
    )
    return True


def _local_shards_along(mesh: Mesh, axis: str) -> int:
    """Number of distinct positions along ``axis`` held by this process's devices."""
    index = mesh.axis_names.index(axis)
    me = jax.process_index()
    local = np.vectorize(lambda d: d.process_index == me, otypes=[bool])(mesh.devices)
    return len(np.unique(np.argwhere(local)[:, index]))


def global_batch(local_batch: PyTree, mesh: Mesh, axis: str = "data") -> PyTree:
    """Assembles a globally sharded batch from each process's local examples.

    In a multi-host run every process loads only its own ``B_local`` examples (e.g. with
    ``process_index`` / ``process_count`` as the data shard); this builds, with
    ``jax.make_array_from_process_local_data``, the global ``(B_local * n_processes, ...)``
    arrays sharded along ``axis``, ready for a :func:`data_parallel` step. Process ``p``'s
    examples become the ``p``-th block of the global batch. In a single-process run it is
    the same as :func:`shard_batch`.

    Args:
        local_batch: Pytree of host-local arrays of shape ``(B_local, ...)``, all with the
            same ``B_local``, which must be the same on every process.
        mesh: The global device mesh (e.g. ``make_mesh()`` after
            :func:`initialize_distributed`).
        axis: The mesh axis to shard over.

    Returns:
        The pytree of global ``jax.Array``s with sharding ``NamedSharding(mesh, P(axis))``.

    Raises:
        ValueError: If a leaf is a scalar, the leaves disagree on ``B_local``, or ``B_local``
            is not divisible by this process's number of devices along ``axis``.
    """
    sharding = batch_sharding(mesh, axis)
    size = _leading_size(local_batch, "local_batch")
    n_local = _local_shards_along(mesh, axis)
    if n_local == 0:
        raise ValueError(f"This process (index {jax.process_index()}) has no device in the mesh.")
    if size % n_local:
        raise ValueError(
            f"The local batch's leading size {size} is not divisible by this process's "
            f"{n_local} devices along mesh axis {axis!r}; use a multiple of {n_local}."
        )
    def make(x):
        x = x if isinstance(x, np.ndarray | jax.Array) else np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree_util.tree_map(make, local_batch)
