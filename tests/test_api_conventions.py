"""One PRNG-key convention across the public API (issue 18, item 5).

A public function or class that needs randomness takes it as a keyword-only argument:
``key`` (one JAX PRNG key) or ``keys`` (a stack of keys, one per seed or member), as in
equinox: ``def f(x, n, *, key)``. Integer seeds (``seed``) and numpy generators are
keyword-only as well. Exempt (protocols fixed by others):

* flax initializers ``init(key, shape, dtype)``, and ``init(key, example)`` / ``apply`` of
  model objects: flax modules, and the model classes that mirror them so that
  ``model.init(key, x)`` reads the same for every model (``Aphynity``, ``HiddenModel``,
  ``ContinuousClassifier``, ``StableClassifier``, ``gantk.discriminators.FiniteDiscriminator``,
  ``dynajax.transport``'s ``ResidualFlow`` and ``ModuleWiseResNet``);
* dataclass / NamedTuple fields named ``key`` (``TrainState.key``, ``gantk.flows.FlowState.key``);
* callbacks the library calls: samplers ``sample(key, step)`` given to
  :func:`dynajax.train.fit` and losses ``loss_fn(params, batch, key)`` given to
  :func:`dynajax.train.make_step`.

The public API is every name in the ``__all__`` of a ``dynajax`` or ``gantk`` module
(``dynajax.experiments`` is the reproductions, not API).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pytest

import dynajax
import gantk

# Modules not yet converted (empty: every package follows the convention).
NOT_YET_CONVERTED = ()
NOT_API = ("dynajax.experiments",)

RANDOMNESS = {"key", "keys", "rng", "rngs", "rng_key", "prng_key", "seed"}


def _is_randomness(name: str) -> bool:
    return name in RANDOMNESS or name.startswith("key_")


def _modules():
    for pkg in (dynajax, gantk):
        yield pkg
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            name = info.name
            if name.endswith("__main__") or name.startswith(NOT_API):
                continue
            if name.startswith(NOT_YET_CONVERTED):
                continue
            yield importlib.import_module(name)


def _is_record(cls) -> bool:
    """Dataclasses (flax struct ones included) and NamedTuples: their fields are exempt."""
    return dataclasses.is_dataclass(cls) or (issubclass(cls, tuple) and hasattr(cls, "_fields"))


def _is_flax_module(cls) -> bool:
    try:
        import flax.linen as nn
    except ImportError:  # pragma: no cover
        return False
    return issubclass(cls, nn.Module)


def _callables(obj, qualname):
    """``(qualname, function)`` of a public function or of a public class's own methods."""
    if inspect.isclass(obj):
        if not _is_record(obj) and not _is_flax_module(obj) and "__init__" in vars(obj):
            yield f"{qualname}.__init__", obj.__init__
        for name, member in vars(obj).items():
            if name.startswith("_") and name != "__call__":
                continue
            if name in ("init", "apply"):
                continue  # model objects mirror flax's Module.init(key, example) / apply
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if inspect.isfunction(member):
                yield f"{qualname}.{name}", member
    elif callable(obj):
        yield qualname, obj


def _is_initializer(params) -> bool:
    """flax initializers: ``init(key, shape, dtype=...)``."""
    return len(params) >= 2 and params[0].name in ("key", "rng") and params[1].name == "shape"


def public_randomness_parameters():
    """``(where, parameter)`` for every randomness parameter of the public API."""
    seen = set()
    out = []
    for mod in _modules():
        for attr in getattr(mod, "__all__", ()):
            obj = getattr(mod, attr, None)
            if obj is None or inspect.ismodule(obj):
                continue
            if getattr(obj, "__module__", "").startswith(NOT_YET_CONVERTED):
                continue  # re-exported from a module not yet converted
            for qualname, fn in _callables(obj, f"{mod.__name__}.{attr}"):
                try:
                    params = list(inspect.signature(fn).parameters.values())
                except (TypeError, ValueError):
                    continue
                if _is_initializer(params):
                    continue
                ident = (getattr(fn, "__module__", None), getattr(fn, "__qualname__", qualname))
                if ident in seen:
                    continue
                seen.add(ident)
                out.extend((qualname, p) for p in params if _is_randomness(p.name))
    return out


PARAMS = public_randomness_parameters()


def test_the_walk_finds_the_randomness_of_the_api():
    names = {where for where, _ in PARAMS}
    assert len(names) >= 40, sorted(names)  # not vacuous: systems, train, nn, arch, forecast, gantk
    assert "dynajax.train.init_state" in names
    assert any(w.endswith("sample_initial") for w in names)
    assert "dynajax.transport.random_directions" in names  # transport is walked too
    assert "dynajax.transport.bayes_logreg.load_dataset" in names


@pytest.mark.parametrize("where,param", PARAMS, ids=[f"{w}:{p.name}" for w, p in PARAMS])
def test_randomness_is_keyword_only(where, param):
    assert param.kind is inspect.Parameter.KEYWORD_ONLY, (
        f"{where}: {param.name!r} is {param.kind.description}; randomness is keyword-only "
        f"(def f(x, n, *, key)), see README 'Conventions'"
    )


def test_jax_keys_are_named_key():
    """``rng`` is kept for numpy generators only; JAX keys are ``key`` / ``keys``."""
    bad = [w for w, p in PARAMS if p.name in ("rng", "rngs", "rng_key", "prng_key")
           and "Generator" not in str(p.annotation)]
    assert not bad, bad
