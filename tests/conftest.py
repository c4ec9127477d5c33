"""Shared fixtures for the dynajax and gantk tests."""

import jax
import pytest


@pytest.fixture
def rng():
    """A fresh new-style PRNG key; tests split or fold it as they need."""
    return jax.random.key(0)
