"""Learning dynamics from trajectories: APHYNITY, LEADS, partially observed (hidden-state) models.

Submodules: :mod:`~dynajax.forecast.aphynity` (physics + minimal neural correction),
:mod:`~dynajax.forecast.leads` (shared dynamics + per-environment corrections),
:mod:`~dynajax.forecast.hidden` (hidden-state ODEs from partial observations) and
:mod:`~dynajax.forecast.baselines`.
"""
