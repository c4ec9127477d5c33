import jax
import pytest


@pytest.fixture
def rng():
    return jax.random.key(0)
