"""Data of the GAN(TK)^2 experiments: 8 Gaussians, image densities (rendered), sklearn digits.

Nothing is downloaded. GeomLoss' ``density_a/b.png`` and ``A.png/B.png`` are replaced by
images rendered here with matplotlib (letters in DejaVu Sans Bold; the "density" pair is a
crescent-like blob and a ring with a bar, drawn with patches of graded darkness), then sampled
as in the released code: a pixel with probability proportional to its darkness, coordinates in
``[-1, 1]^2``, plus Gaussian noise of std ``1 / image size``.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["eight_gaussians", "render_letter", "render_density", "sample_image", "image_pair", "digits", "DATASETS", "load"]


def eight_gaussians(n: int, radius: float = 5.0, std: float = 0.5, *, seed: int) -> np.ndarray:
    """``n`` points ``[n, 2]`` from 8 Gaussians at angles ``2 pi k / 8``, radius 5, std 0.5."""
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 8, n)
    centres = radius * np.stack([np.cos(2 * np.pi * k / 8), np.sin(2 * np.pi * k / 8)], 1)
    return (centres + std * rng.normal(size=(n, 2))).astype(np.float32)


def _canvas(size: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=size)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.axis("off")
    return fig, ax


def _darkness(fig) -> np.ndarray:
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float64)[..., :3] / 255.0
    return 1.0 - rgba.mean(-1)


@functools.lru_cache(maxsize=8)
def render_letter(letter: str, size: int = 64) -> np.ndarray:
    """Darkness ``[size, size]`` in ``[0, 1]`` of a bold capital letter (row 0 is the top)."""
    if len(letter) != 1:
        raise ValueError(f"letter must be one character; got {letter!r}")
    fig, ax = _canvas(size)
    ax.text(0, 0, letter, ha="center", va="center", fontsize=0.8 * size, fontweight="bold", family="DejaVu Sans")
    return _darkness(fig)


@functools.lru_cache(maxsize=8)
def render_density(which: str, size: int = 64) -> np.ndarray:
    """Darkness ``[size, size]`` of the synthetic "density" images ``"a"`` (source) and ``"b"`` (target)."""
    from matplotlib.patches import Ellipse, Rectangle, Wedge

    fig, ax = _canvas(size)
    if which == "a":
        ax.add_patch(Wedge((0.0, 0.0), 0.75, 40, 320, width=0.35, color="k", alpha=0.9))
        ax.add_patch(Ellipse((0.35, 0.0), 0.35, 0.6, color="k", alpha=0.5))
    elif which == "b":
        ax.add_patch(Wedge((0.0, 0.1), 0.6, 0, 360, width=0.2, color="k", alpha=0.7))
        ax.add_patch(Rectangle((-0.7, -0.85), 1.4, 0.25, color="k", alpha=0.95))
    else:
        raise ValueError(f"which must be 'a' or 'b'; got {which!r}")
    return _darkness(fig)


def sample_image(img: np.ndarray, n: int, *, seed: int) -> np.ndarray:
    """``n`` points ``[n, 2]`` in ``[-1, 1]^2``: pixels drawn proportionally to darkness, plus noise."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 2 or img.shape[0] != img.shape[1] or img.min() < 0 or img.sum() <= 0:
        raise ValueError("img must be a square non-negative [s, s] array with positive mass")
    s = img.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.choice(s * s, size=n, p=(img / img.sum()).ravel())
    r, c = np.divmod(idx, s)
    pts = np.stack([(c + 0.5) / s * 2 - 1, 1 - (r + 0.5) / s * 2], 1)
    return (pts + rng.normal(size=pts.shape) / s).astype(np.float32)


def image_pair(name: str, n: int, m: int, size: int = 64, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Source ``[n, 2]`` and target ``[m, 2]`` for ``"density"`` (a -> b) or ``"ab"`` (A -> B)."""
    if name == "density":
        src, tgt = render_density("a", size), render_density("b", size)
    elif name == "ab":
        src, tgt = render_letter("A", size), render_letter("B", size)
    else:
        raise ValueError(f"name must be 'density' or 'ab'; got {name!r}")
    return sample_image(src, n, seed=2 * seed), sample_image(tgt, m, seed=2 * seed + 1)


def digits(n: int | None = None, *, seed: int = 0) -> np.ndarray:
    """scikit-learn's 8x8 digits as ``[n, 64]`` vectors scaled to ``[-1, 1]`` (random subset of ``n``)."""
    from sklearn.datasets import load_digits

    x = load_digits().images.reshape(-1, 64) / 16.0 * 2 - 1
    if n is not None:
        if not 1 <= n <= len(x):
            raise ValueError(f"n must be in [1, {len(x)}]; got {n}")
        x = x[np.random.default_rng(seed).choice(len(x), n, replace=False)]
    return x.astype(np.float32)


DATASETS = ("8gaussians", "density", "ab", "digits")


def load(name: str, n: int, m: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(source particles [n, d], target [m, d])`` of a dataset of :data:`DATASETS`.

    ``8gaussians`` and ``digits`` start the particles from ``N(0, I)``.
    """
    if name == "8gaussians":
        return np.random.default_rng(10_000 + seed).normal(size=(n, 2)).astype(np.float32), eight_gaussians(m, seed=seed)
    if name in ("density", "ab"):
        return image_pair(name, n, m, seed=seed)
    if name == "digits":
        y = digits(m, seed=seed)
        return np.random.default_rng(10_000 + seed).normal(size=(n, 64)).astype(np.float32), y
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
