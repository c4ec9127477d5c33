"""Shared fixtures for the dynajax and gantk tests."""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

# Property tests (hypothesis): a small, derandomised run by default so that `make test`
# stays fast and reproducible; DYNAJAX_HYPOTHESIS_PROFILE=slow draws many more examples
# at random. No example database is written into the work tree.
settings.register_profile(
    "dynajax",
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "slow",
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("DYNAJAX_HYPOTHESIS_PROFILE", "dynajax"))


@pytest.fixture
def rng():
    """A fresh new-style PRNG key; tests split or fold it as they need."""
    return jax.random.key(0)


@pytest.fixture(autouse=True, scope="session")
def _isolated_dataset_cache(tmp_path_factory):
    """Generated datasets go to a per-session temporary cache, never the user's."""
    import os

    old = os.environ.get("DYNAJAX_CACHE")
    os.environ["DYNAJAX_CACHE"] = str(tmp_path_factory.mktemp("dynajax_cache"))
    # the CLI's persistent compilation cache would change the process's JAX config for the
    # tests after the first CLI test; tests/dynajax/test_compilation_cache.py tests it alone
    os.environ["DYNAJAX_COMPILATION_CACHE"] = "0"
    yield
    if old is None:
        os.environ.pop("DYNAJAX_CACHE", None)
    else:
        os.environ["DYNAJAX_CACHE"] = old


def pytest_collection_modifyitems(config, items):
    """Tests marked ``heavy`` (a minute of CPU or so) start first: with ``-n 2`` no worker is
    then left running one of them alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


def pytest_configure(config):
    config.addinivalue_line("markers", "heavy: a test of about a minute that make test keeps; it starts first")
