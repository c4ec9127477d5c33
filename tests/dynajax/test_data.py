"""TrajectoryDataset, the checksummed on-disk cache and batched generation."""

import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.data import TrajectoryDataset, cached, map_in_batches


def make(n=4, t=5, split="train", seed=0):
    rng = np.random.default_rng(seed)
    return TrajectoryDataset(
        states=rng.normal(size=(n, t, 2)),
        times=np.linspace(0.0, 2.0, t),
        params={"omega": rng.uniform(size=n)},
        env=np.arange(n) % 2,
        split=split,
        system="toy",
        config={"seed": seed},
    )


def test_shapes_subset_and_by_env():
    ds = make(n=6)
    assert (ds.n_traj, ds.n_time, ds.state_shape, ds.n_env) == (6, 5, (2,), 2)
    sub = ds.subset(ds.env == 1)
    assert sub.n_traj == 3 and np.all(sub.env == 1)
    np.testing.assert_array_equal(sub.params["omega"], ds.params["omega"][1::2])
    grouped = ds.by_env()
    assert grouped.shape == (2, 3, 5, 2)
    np.testing.assert_array_equal(grouped[1], ds.states[1::2])
    assert ds.to_jax().dtype == jnp.float32


def test_by_env_needs_balanced_environments():
    ds = make(n=5)
    with pytest.raises(ValueError, match="different numbers of trajectories"):
        ds.by_env()


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(split="dev"), "unknown split 'dev'"),
        (dict(times=np.zeros(3)), "times must have shape"),
        (dict(env=np.zeros(2, int)), "env must have shape"),
        (dict(params={"omega": np.zeros(2)}), r"params\['omega'\] must have shape"),
        (dict(states=np.zeros(3)), r"states must be \[n_traj, n_time"),
    ],
)
def test_validation(change, match):
    ds = make()
    kwargs = dict(states=ds.states, times=ds.times, params=ds.params, env=ds.env,
                  split=ds.split, system=ds.system) | change
    with pytest.raises(ValueError, match=match):
        TrajectoryDataset(**kwargs)


def test_save_load_roundtrip_and_checksum(tmp_path):
    ds = make()
    ds.save(tmp_path / "d.npz")
    back = TrajectoryDataset.load(tmp_path / "d.npz")
    for name in ("states", "times", "env"):
        np.testing.assert_array_equal(getattr(back, name), getattr(ds, name))
    np.testing.assert_array_equal(back.params["omega"], ds.params["omega"])
    assert (back.split, back.system, dict(back.config)) == ("train", "toy", {"seed": 0})
    assert back.checksum() == ds.checksum() != make(seed=1).checksum()


def test_load_detects_corruption(tmp_path):
    path = tmp_path / "d.npz"
    make().save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # truncated
    with pytest.raises(ValueError, match="cannot read dataset file"):
        TrajectoryDataset.load(path)


def test_cache_hits_misses_and_regenerates(tmp_path):
    calls = []

    def gen(seed):
        def run():
            calls.append(seed)
            return make(seed=seed)
        return run

    key = {"system": "toy", "split": "train", "seed": 0, "version": 1}
    a = cached(gen(0), key, directory=tmp_path)
    b = cached(gen(0), key, directory=tmp_path)  # from disk
    assert calls == [0]
    np.testing.assert_array_equal(a.states, b.states)
    assert b.config["cache_key"] == key
    cached(gen(1), {**key, "seed": 1}, directory=tmp_path)  # another key, another file
    assert calls == [0, 1] and len(list(tmp_path.glob("toy-train-*.npz"))) == 2

    (path,) = [p for p in tmp_path.glob("*.npz") if TrajectoryDataset.load(p).config["cache_key"]["seed"] == 0]
    path.write_bytes(path.read_bytes()[:100])  # corrupt: regenerate, loudly
    with pytest.warns(UserWarning, match="regenerating cached dataset"):
        c = cached(gen(0), key, directory=tmp_path)
    assert calls == [0, 1, 0]
    np.testing.assert_array_equal(c.states, a.states)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached(gen(0), key, directory=tmp_path)  # healthy again: no warning, no call
    assert calls == [0, 1, 0]


def test_cache_disabled_and_bad_keys(tmp_path):
    n = []
    gen = lambda: n.append(1) or make()  # noqa: E731
    cached(gen, {"a": 1}, directory=tmp_path, enabled=False)
    cached(gen, {"a": 1}, directory=tmp_path, enabled=False)
    assert len(n) == 2 and not list(tmp_path.iterdir())
    with pytest.raises(TypeError, match="JSON-serialisable"):
        cached(gen, {"a": object()}, directory=tmp_path)


def test_map_in_batches_matches_direct_call():
    xs = {"a": np.arange(10.0), "b": np.arange(20.0).reshape(10, 2)}
    out = map_in_batches(lambda x: x["a"][:, None] * x["b"], xs, batch_size=4, desc="test")
    np.testing.assert_array_equal(out, xs["a"][:, None] * xs["b"])
    assert map_in_batches(lambda x: 2 * x, np.ones(3), batch_size=8).shape == (3,)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        map_in_batches(lambda x: x, np.ones(3), batch_size=0)
