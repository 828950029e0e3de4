"""BN math against plain numpy, no ONNX involved."""

import numpy as np
import pytest

from bnfold import bnmath


def _conv2d(x, w, b, group=1):
    """Direct NCHW convolution, stride 1, no padding (float64)."""
    n, c_in, h, wd = x.shape
    c_out, cpg, kh, kw = w.shape
    out = np.zeros((n, c_out, h - kh + 1, wd - kw + 1))
    opg = c_out // group
    for o in range(c_out):
        g = o // opg
        xs = x[:, g * cpg:(g + 1) * cpg]
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                out[:, o, i, j] = np.einsum("nchw,chw->n", xs[:, :, i:i + kh, j:j + kw], w[o])
        out[:, o] += b[o]
    return out


def _conv_transpose2d(x, w, b, group=1):
    """Direct ConvTranspose, stride 1, no padding: W is (C_in, C_out/group, kh, kw)."""
    n, c_in, h, wd = x.shape
    _, opg, kh, kw = w.shape
    c_out = opg * group
    ipg = c_in // group
    out = np.zeros((n, c_out, h + kh - 1, wd + kw - 1))
    for ci in range(c_in):
        g = ci // ipg
        for j in range(opg):
            for i in range(h):
                for k in range(wd):
                    out[:, g * opg + j, i:i + kh, k:k + kw] += x[:, ci, i, k][:, None, None] * w[ci, j]
    return out + b[None, :, None, None]


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def _stats(rng, c):
    return (rng.uniform(0.5, 1.5, c), rng.normal(0, 0.3, c), rng.normal(0, 0.5, c),
            rng.uniform(0.01, 2, c))


def test_affine_matches_reference_batchnorm(rng):
    """k*x + s equals scale*(x-mean)/sqrt(var+eps)+bias."""
    scale, bias, mean, var = _stats(rng, 5)
    x = rng.normal(size=(2, 5, 3, 3))
    aff = bnmath.bn_affine(scale, bias, mean, var, 1e-3)
    got = aff.k[None, :, None, None] * x + aff.s[None, :, None, None]
    np.testing.assert_allclose(got, bnmath.reference_batchnorm(x, scale, bias, mean, var, 1e-3), rtol=1e-12)


@pytest.mark.parametrize("group", [1, 2, 4])
def test_conv_fold_equals_conv_then_bn(rng, group):
    """Conv(W', B') == BN(Conv(W, B)) for grouped convolutions."""
    c_in, c_out = 4, 8
    x = rng.normal(size=(2, c_in, 5, 5))
    w = rng.normal(size=(c_out, c_in // group, 3, 3))
    b = rng.normal(size=c_out)
    st = _stats(rng, c_out)
    w2, b2 = bnmath.fold_into_conv(w, b, bnmath.bn_affine(*st, 1e-5))
    np.testing.assert_allclose(_conv2d(x, w2, b2, group),
                               bnmath.reference_batchnorm(_conv2d(x, w, b, group), *st, 1e-5), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("group", [1, 2])
def test_convtranspose_fold_scales_axis1_per_group(rng, group):
    """ConvTranspose(W', B') == BN(ConvTranspose(W, B)), output channel on W's axis 1."""
    c_in, c_out = 4, 6
    x = rng.normal(size=(1, c_in, 3, 3))
    w = rng.normal(size=(c_in, c_out // group, 2, 2))
    b = rng.normal(size=c_out)
    st = _stats(rng, c_out)
    w2, b2 = bnmath.fold_into_convtranspose(w, b, bnmath.bn_affine(*st, 1e-5), group)
    np.testing.assert_allclose(_conv_transpose2d(x, w2, b2, group),
                               bnmath.reference_batchnorm(_conv_transpose2d(x, w, b, group), *st, 1e-5),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("c_shape", [None, (), (6,), (1, 6), (3, 1), (3, 6)])
def test_gemm_fold(rng, trans_b, c_shape):
    """alpha*A@op(W') + C' == BN(alpha*A@op(W) + beta*C) for every C shape."""
    a = rng.normal(size=(3, 4))
    w = rng.normal(size=(6, 4) if trans_b else (4, 6))
    alpha, beta = 0.7, 1.9
    c = None if c_shape is None else rng.normal(size=c_shape)
    st = _stats(rng, 6)
    y = alpha * a @ (w.T if trans_b else w) + (0 if c is None else beta * c)
    w2, c2 = bnmath.fold_into_gemm(w, c, bnmath.bn_affine(*st, 1e-5), trans_b=trans_b, beta=beta)
    y2 = alpha * a @ (w2.T if trans_b else w2) + c2
    np.testing.assert_allclose(y2, bnmath.reference_batchnorm(y, *st, 1e-5), rtol=1e-10)


def test_forward_conv_fold(rng):
    """Conv(W', B')(x) == Conv(W, B)(BN(x)) without padding, grouped."""
    group, c_in, c_out = 2, 4, 6
    x = rng.normal(size=(1, c_in, 5, 5))
    w = rng.normal(size=(c_out, c_in // group, 3, 3))
    b = rng.normal(size=c_out)
    st = _stats(rng, c_in)
    w2, b2 = bnmath.fold_forward_into_conv(w, b, bnmath.bn_affine(*st, 1e-5), group)
    np.testing.assert_allclose(_conv2d(x, w2, b2, group),
                               _conv2d(bnmath.reference_batchnorm(x, *st, 1e-5), w, b, group), rtol=1e-10)


def test_chain_composition(rng):
    """Affine.then composes BN2 after BN1."""
    x = rng.normal(size=(2, 3, 2, 2))
    s1, s2 = _stats(rng, 3), _stats(rng, 3)
    aff = bnmath.bn_affine(*s1, 1e-5).then(bnmath.bn_affine(*s2, 1e-3))
    want = bnmath.reference_batchnorm(bnmath.reference_batchnorm(x, *s1, 1e-5), *s2, 1e-3)
    np.testing.assert_allclose(aff.k[None, :, None, None] * x + aff.s[None, :, None, None], want, rtol=1e-12)


def test_cast_checked_flags_float16_overflow():
    """A value beyond float16's range is reported, not silently turned into inf."""
    _, ok = bnmath.cast_checked(np.array([1.0, 7e4]), np.dtype(np.float16))
    assert not ok
    out, ok = bnmath.cast_checked(np.array([1.0, 6e4]), np.dtype(np.float16))
    assert ok and out.dtype == np.float16
