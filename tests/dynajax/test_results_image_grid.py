"""``results.save_image_grid``: one row per panel, one column per step, a PNG on disk."""

import matplotlib.image
import numpy as np

from dynajax.experiments.results import save_image_grid


def test_image_grid_layout(tmp_path):
    frames = np.random.default_rng(0).random((6, 8, 8))
    wide = save_image_grid([("a", frames, {}), ("b", frames, {"cmap": "gray"})], [0, 1, 2, 3, 5], tmp_path / "w.png")
    tall = save_image_grid([(str(i), frames, {}) for i in range(5)], [0, 5], tmp_path / "t.png", "title", "+{} ms")
    assert (wide, tall) == ("w.png", "t.png")
    (hw, ww), (ht, wt) = (matplotlib.image.imread(tmp_path / f).shape[:2] for f in (wide, tall))
    assert ww > 2 * hw and ht > 2 * wt  # 2 rows x 5 steps is wide, 5 rows x 2 steps is tall
