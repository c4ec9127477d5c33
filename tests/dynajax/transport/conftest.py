"""Fixtures of the transport tests."""

import jax
import pytest


@pytest.fixture
def x64():
    """float64 for the whole process during a test. POT's host solves and the host sorts run in
    callbacks on other threads, where the thread-local ``jax.enable_x64`` context does not reach
    (their float64 results would be refused as float32)."""
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)
