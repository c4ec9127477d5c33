"""Parity with the PyTorch reference code (torch is in the [bench] extra; skipped without it)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dynajax.nn import ConvNet, SpectralConv2d, Swish

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _li_spectral_conv2d(x, weights1, weights2, modes1, modes2):
    """SpectralConv2d.forward of Li et al.'s fourier_2d.py (channels first, complex weights)."""
    b, _, h, w = x.shape
    x_ft = torch.fft.rfft2(x)
    out_ft = torch.zeros(b, weights1.shape[1], h, w // 2 + 1, dtype=torch.cfloat)
    mul = lambda a, wt: torch.einsum("bixy,ioxy->boxy", a, wt)  # noqa: E731
    out_ft[:, :, :modes1, :modes2] = mul(x_ft[:, :, :modes1, :modes2], weights1)
    out_ft[:, :, -modes1:, :modes2] = mul(x_ft[:, :, -modes1:, :modes2], weights2)
    return torch.fft.irfft2(out_ft, s=(h, w))


def test_spectral_conv2d_matches_li_et_al(rng, randn):
    m1, m2 = 3, 4
    x = randn((2, 8, 10, 3))
    layer = SpectralConv2d(5, m1, m2)
    params = jax.jit(layer.init)(rng, x)
    y = jax.jit(layer.apply)(params, x)

    def to_torch(w):  # real-stored [2, m1, m2, in, out] -> complex [in, out, m1, m2]
        w = np.asarray(w[0]) + 1j * np.asarray(w[1])
        return torch.from_numpy(w.transpose(2, 3, 0, 1).copy())

    p = params["params"]
    ref = _li_spectral_conv2d(
        torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()),
        to_torch(p["weights1"]).to(torch.cfloat),
        to_torch(p["weights2"]).to(torch.cfloat),
        m1,
        m2,
    )
    np.testing.assert_allclose(y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)


def test_circular_conv_matches_torch_padding_mode(rng, randn):
    x = randn((2, 7, 9, 3))
    model = ConvNet((4,), kernel_size=3, padding="circular")
    params = jax.jit(model.init)(rng, x)
    y = jax.jit(model.apply)(params, x)
    k = params["params"]["Conv_0"]["kernel"]  # [kh, kw, in, out]
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular")
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.asarray(k).transpose(3, 2, 0, 1).copy()))
        conv.bias.copy_(torch.from_numpy(np.array(params["params"]["Conv_0"]["bias"])))
        ref = conv(torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()))
    np.testing.assert_allclose(y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-5)


def test_swish_matches_leads_torch():
    x = np.linspace(-4, 4, 17, dtype=np.float32)
    beta = torch.tensor([0.5])
    ref = (torch.from_numpy(x) * torch.sigmoid(torch.from_numpy(x) * F.softplus(beta))) / 1.1
    y = Swish().apply({"params": {"beta": jnp.asarray(0.5)}}, jnp.asarray(x))
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-6, atol=1e-7)
