"""Particle flows, data, metrics and the gantk CLI."""

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gantk import data, flows, metrics
from gantk.cli import main


def test_ipm_step_is_gradient_descent_on_half_mmd_and_flow_decreases_mmd():
    x0, y = data.load("8gaussians", 24, 24, seed=0)
    x0, y = jnp.asarray(x0), jnp.asarray(y)
    cfg = flows.FlowConfig("ipm", "relu", tau=0.5, eta=48.0)

    @jax.jit
    def check(x):
        step = flows.make_step(cfg, y)
        x1 = step(flows.init_state(cfg, x, key=jax.random.key(0))).x
        ref = x - cfg.eta * jax.grad(lambda z: 0.5 * cfg.tau * flows.ntk_mmd2("relu", z, y))(x)
        return x1, ref

    x1, ref = check(x0)
    np.testing.assert_allclose(x1, ref, rtol=1e-4, atol=1e-5)
    _, snaps = flows.run_flow(cfg, x0, y, 40, snapshot_every=10)
    mmd = jax.jit(jax.vmap(lambda x: flows.ntk_mmd2("relu", x, y)))(jnp.concatenate([x0[None], snaps]))
    assert np.all(np.diff(np.asarray(mmd)) < 0), mmd
    assert metrics.half_w2(snaps[-1], y) < 0.5 * metrics.half_w2(x0, y)


def test_generator_step_descends_the_generator_loss(rng):
    y = jnp.asarray(data.eight_gaussians(8, seed=0))
    gen = flows.generator_mlp(2, width=16, depth=1)
    _, theta = gen.init(rng, 4)
    z = jax.random.normal(jax.random.fold_in(rng, 1), (8, 4))
    step = jax.jit(flows.make_generator_step(flows.FlowConfig("ipm", "relu"), y, gen, lr=1e-2))
    theta1, l0 = step(theta, z, z)
    _, l1 = step(theta1, z, z)  # same batches: the loss of the updated generator is lower
    assert float(l1) < float(l0)


def test_data_sets():
    y = data.eight_gaussians(4000, seed=0)
    r = np.linalg.norm(y, axis=1)
    assert abs(np.median(r) - 5.0) < 0.1
    angles = np.mod(np.round(np.arctan2(y[:, 1], y[:, 0]) / (np.pi / 4)), 8)
    assert np.all(np.bincount(angles.astype(int), minlength=8) > 400)
    a, b = data.image_pair("ab", 500, 400, seed=0)
    assert a.shape == (500, 2) and b.shape == (400, 2)
    assert np.all(np.abs(a) < 1.2) and metrics.half_w2(a[:400], b) > 1e-3
    da, db = data.render_density("a"), data.render_density("b")
    assert da.shape == (64, 64) and 0 <= da.min() and da.max() <= 1 and np.abs(da - db).sum() > 10
    d = data.digits(50, seed=0)
    assert d.shape == (50, 64) and d.min() >= -1 and d.max() <= 1
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("mnist", 3, 3, seed=0)


def test_half_w2_of_a_shift():
    x = np.random.default_rng(0).normal(size=(50, 2))
    assert abs(metrics.half_w2(x, x + np.array([0.3, 0.4])) - 0.125) < 1e-9


@pytest.mark.slow
def test_cli_kernel_and_resumable_flow(tmp_path, capsys):
    assert main(["kernel", "--kernel", "relu", "--points", "0,0", "1,0"]) == 0
    assert "2.25" in capsys.readouterr().out
    args = ["flow", "--loss", "ipm", "--kernel", "rbf", "--data", "8gaussians", "--n", "12", "--steps", "20",
            "--snapshot-every", "10", "--no-gif", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    assert main([*args[:9], "--steps", "30", *args[11:], "--resume"]) == 0
    with open(tmp_path / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [10, 20, 30]
    assert (tmp_path / "final.png").exists()
    assert main(["flow", "--kernel", "rbf", "--width", "64", "--out", str(tmp_path)]) == 2


def _flow_args(out, *extra):
    return ["flow", "--loss", "ipm", "--kernel", "rbf", "--data", "8gaussians", "--n", "12",
            "--snapshot-every", "10", "--no-gif", "--quiet", "--out", str(out), *extra]


def test_cli_flow_never_overwrites_and_resumes_only_the_same_run(tmp_path, capsys):
    assert main(_flow_args(tmp_path, "--steps", "20")) == 0
    before = (tmp_path / "metrics.csv").read_bytes()
    assert main(_flow_args(tmp_path, "--steps", "20")) == 2  # no --resume: refused, nothing touched
    assert "--resume" in capsys.readouterr().err
    assert (tmp_path / "metrics.csv").read_bytes() == before
    assert main(_flow_args(tmp_path, "--steps", "30", "--tau", "2", "--resume")) == 2
    assert "--tau 2.0 (checkpoint: 1.0)" in capsys.readouterr().err
    (tmp_path / "metrics.csv").write_text(before.decode().splitlines(keepends=True)[0] + before.decode().splitlines(keepends=True)[1])
    assert main(_flow_args(tmp_path, "--steps", "30", "--resume")) == 2  # truncated log: refused
    assert "truncated" in capsys.readouterr().err
    (tmp_path / "checkpoint.npz").write_bytes(b"PK\x03\x04 cut")
    (tmp_path / "metrics.csv").write_bytes(before)
    assert main(_flow_args(tmp_path, "--steps", "30", "--resume")) == 2
    assert "corrupted or truncated" in capsys.readouterr().err


@pytest.mark.parametrize("setting", [["--kernel", "rbf"], ["--kernel", "relu", "--width", "16", "--reset"]],
                         ids=["infinite", "finite"])
def test_cli_flow_resume_is_exact(tmp_path, setting):
    # a re-initialised finite discriminator draws from the PRNG key every step: resuming restores it
    common = [*setting, "--steps"]
    assert main(_flow_args(tmp_path / "a", *common, "20")) == 0
    assert main(_flow_args(tmp_path / "b", *common, "10")) == 0
    assert main(_flow_args(tmp_path / "b", *common, "20", "--resume")) == 0
    a, b = (np.load(tmp_path / d / "snapshots.npz")["snapshots"] for d in ("a", "b"))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("flag, value", [("--snapshot-every", "0"), ("--n", "-3"), ("--eta", "nan"),
                                         ("--tau", "0"), ("--block-size", "0")])
def test_cli_flow_refuses_impossible_values(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        main([*_flow_args(tmp_path, "--steps", "20"), flag, value])
    assert e.value.code == 2 and "positive" in capsys.readouterr().err
