"""Optimal transport: OT costs and plans (ott-jax), sliced distances, diagnostics, flows."""
