"""``gantk-fields``: thesis Figures 5.6-5.7, Dirac-GAN gradient fields of each kernel in 2-D and 512-D.

With ``alpha = delta_x``, ``beta = delta_y`` (``y = e_1``), infinite width, ``tau = 1`` and
float32, the particle velocity at ``x = y + r e`` (``e`` radial ``e_1`` or tangential ``e_2``)
is measured for the IPM (:func:`gantk.plots.dirac_field`), and the quantitative properties of
specs/gantk.md section 3 are checked: the ReLU-with-bias NTK keeps a non-vanishing pull near
``y`` (cusp), no-bias / sigmoid / RBF pulls vanish linearly; far from ``y`` ReLU gradients
grow and RBF ones shrink; sigmoid magnitudes are ~1e3-1e4 smaller; every move points to ``y``.
Reference values are the spec author's float32 measurements (not thesis numbers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynajax.experiments.registry import register
from dynajax.experiments.results import Check, Result, Row, save_figure

SIZES = {"quick": {"grid": 15}, "full": {"grid": 25}}
RADII = (0.01, 0.1, 1.0, 3.0)
CASES = (("relu", 2), ("relu-nobias", 2), ("sigmoid", 2), ("rbf", 2), ("relu", 512), ("rbf", 512))
# specs/gantk.md section 3 (radial, float32, tau = 1)
# specs/gantk.md section 3, float32 measurements, except the 512-D ReLU cell at r = 0.01: the
# spec's float32 2.3e-3 lies in the "dead zone" where q11 q22 - q12^2 cancels to 0 in float32
# (an artefact of float32 arccos/sqrt, per the spec), and its float64 value is 0.013. gantk's
# float32 angles (polynomial arctan2, gantk.kernels) avoid the dead zone, so we compare with
# the float64 value there.
REFERENCE = {
    ("relu", 2): (0.22, 0.24, 0.43, 0.86),
    ("relu-nobias", 2): (2.5e-3, 2.5e-2, 0.25, 0.75),
    ("sigmoid", 2): (1.8e-6, 1.7e-5, 9.8e-5, 1.1e-4),
    ("rbf", 2): (5e-3, 5e-2, 0.39, 0.16),
    ("relu", 512): (1.3e-2, 1.3e-2, 1.4e-2, 1.5e-2),
    ("rbf", 512): (2e-5, 2e-4, 2e-3, 5.8e-3),
}


def measure(kernel: str, dim: int) -> dict[str, float]:
    """|move| and cos(move, y - x) at ``x = y + r e`` for the radii, radial and tangential."""
    from gantk.plots import dirac_field

    pts = []
    for r in RADII:
        pts += [[1.0 + r, 0.0], [1.0, r]]
    pts = np.asarray(pts, np.float32)
    v = np.asarray(dirac_field(kernel, "ipm", pts, dim=dim), np.float64)
    to_y = np.array([1.0, 0.0]) - pts
    cos = np.sum(v * to_y, 1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(to_y, axis=1) + 1e-30)
    out = {}
    for i, r in enumerate(RADII):
        out[f"radial_r{r:g}"] = float(np.linalg.norm(v[2 * i]))
        out[f"tangential_r{r:g}"] = float(np.linalg.norm(v[2 * i + 1]))
    out["min_cos_to_y"] = float(cos.min())
    return out


@register("gantk-fields", "Thesis Figs 5.6-5.7: Dirac-GAN gradient fields per kernel in 2-D and 512-D, with quantitative checks",
          default_seeds=1)
def run(scale: str, seeds: int, out_dir: Path) -> Result:
    res = {case: measure(*case) for case in CASES}
    rows = []
    for (kernel, dim), vals in res.items():
        ref = {f"radial_r{r:g}": v for r, v in zip(RADII, REFERENCE[(kernel, dim)])}
        rows.append(Row(f"IPM {kernel} d={dim}", {k: [v] for k, v in vals.items()}, ref))

    def rad(case, r):
        return res[case][f"radial_r{r:g}"]

    checks = [
        Check("every IPM move points towards y (cos > 0.9)", all(v["min_cos_to_y"] > 0.9 for v in res.values()),
              ", ".join(f"{k[0]} d={k[1]}: {v['min_cos_to_y']:.3f}" for k, v in res.items())),
        Check("ReLU+bias keeps a non-vanishing pull near y (|v(0.01)| > 0.5 |v(0.1)|, d=2)",
              rad(("relu", 2), 0.01) > 0.5 * rad(("relu", 2), 0.1),
              f"{rad(('relu', 2), 0.01):.3g} vs {rad(('relu', 2), 0.1):.3g}"),
        Check("no-bias (radial), sigmoid and RBF pulls vanish near y (|v(0.01)| < 0.2 |v(0.1)|, d=2)",
              all(rad((k, 2), 0.01) < 0.2 * rad((k, 2), 0.1) for k in ("relu-nobias", "sigmoid", "rbf")),
              ", ".join(f"{k}: {rad((k, 2), 0.01):.2g}/{rad((k, 2), 0.1):.2g}" for k in ("relu-nobias", "sigmoid", "rbf"))),
        Check("far from y, ReLU IPM gradients grow and RBF ones shrink (r = 1 -> 3, d=2)",
              rad(("relu", 2), 3) > rad(("relu", 2), 1) and rad(("rbf", 2), 3) < rad(("rbf", 2), 1),
              f"relu {rad(('relu', 2), 1):.3g} -> {rad(('relu', 2), 3):.3g}; rbf {rad(('rbf', 2), 1):.3g} -> {rad(('rbf', 2), 3):.3g}"),
        Check("sigmoid magnitudes are >= 1e3 times smaller than ReLU's (d=2, all r)",
              all(rad(("sigmoid", 2), r) * 1e3 <= rad(("relu", 2), r) for r in RADII),
              ", ".join(f"r={r:g}: {rad(('relu', 2), r) / max(rad(('sigmoid', 2), r), 1e-30):.2g}x" for r in RADII)),
        Check("in 512-D ReLU pulls exceed RBF's at every radius", all(rad(("relu", 512), r) > rad(("rbf", 512), r) for r in RADII),
              ", ".join(f"r={r:g}: {rad(('relu', 512), r):.2g} vs {rad(('rbf', 512), r):.2g}" for r in RADII)),
    ]
    within = [f"{k[0]} d={k[1]} r={r:g}: {rad(k, r):.2g} vs {ref:.2g}" for k in CASES
              for r, ref in zip(RADII, REFERENCE[k]) if not (ref / 3 <= rad(k, r) <= 3 * ref)]
    checks.append(Check("radial magnitudes within 3x of the spec's measurements (float64 in the float32 dead zone)", not within,
                        "all within 3x" if not within else "; ".join(within)))
    figs = [_figure(dim, SIZES[scale]["grid"], out_dir) for dim in (2, 512)]
    return Result(rows=rows, checks=checks, figures=figs,
                  notes=("IPM and LSGAN fields drawn on [-2, 2] x [0, 2] with y = e_1 (arrows: -grad c, colour: log10 |move|). "
                         "The spec's float32 512-D value at r = 0.01 (2.3e-3) comes from a cancellation 'dead zone' of "
                         "its implementation; its float64 value is 0.013. gantk's kernels (bit-for-bit with "
                         "neural-tangents in float64) give ~0.014 in float32 here, i.e. no dead zone at that radius."))


def _figure(dim: int, grid: int, out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gantk.plots import plot_field

    kernels = ("relu", "relu-nobias", "sigmoid", "rbf")
    fig, axes = plt.subplots(2, 4, figsize=(16, 5), squeeze=False)
    for i, loss in enumerate(("ipm", "lsgan")):
        for j, k in enumerate(kernels):
            plot_field(axes[i, j], k, loss, dim=dim, n=grid)
    return save_figure(fig, Path(out_dir) / f"fields_d{dim}.png")
