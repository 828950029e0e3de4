"""BatchNormalization arithmetic, in float64.

Inference BatchNormalization, per channel c on axis 1::

    y = scale[c] * (x - mean[c]) / sqrt(var[c] + epsilon) + bias[c]
      = k[c] * x + s[c],   k = scale / sqrt(var + epsilon),   s = bias - mean * k

Folding that affine map into a producer ``z = W * x + B`` whose output channel c is BN's channel c
gives ``W' = W * k`` (along the producer's output-channel axis) and ``B' = k * B + s``.
Folding it into a following convolution with no padding, ``z = conv(W, y) + B``, gives
``W' = W * k`` along W's input-channel axis and ``B'[o] = B[o] + sum(W[o, c, ...] * s[c])``.

Every function here takes and returns float64 arrays; callers cast once to the weight's dtype and
check the result with :func:`cast_checked`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Affine:
    """Per-channel ``y = k * x + s`` (float64 vectors of equal length)."""

    k: np.ndarray
    s: np.ndarray

    def then(self, after: Affine) -> Affine:
        """The map ``after(self(x))``: BN2 applied to BN1's output."""
        return Affine(after.k * self.k, after.k * self.s + after.s)


def bn_affine(scale, bias, mean, var, epsilon: float) -> Affine:
    """``k = scale / sqrt(var + epsilon)``, ``s = bias - mean * k`` in float64.

    Parameters broadcast to one channel vector (scalars are allowed, as in some old exports).
    """
    scale, bias, mean, var = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (scale, bias, mean, var))
    channels = max(a.size for a in (scale, bias, mean, var))
    scale, bias, mean, var = (np.broadcast_to(a, (channels,)) for a in (scale, bias, mean, var))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        k = scale / np.sqrt(var + np.float64(epsilon))
        s = bias - mean * k
    return Affine(k, s)


def reference_batchnorm(x, scale, bias, mean, var, epsilon: float) -> np.ndarray:
    """Plain numpy inference BatchNormalization over axis 1, in float64 (test oracle)."""
    x = np.asarray(x, dtype=np.float64)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    c = lambda a: np.asarray(a, dtype=np.float64).reshape(shape)  # noqa: E731
    return c(scale) * (x - c(mean)) / np.sqrt(c(var) + epsilon) + c(bias)


def _along(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def fold_bias(b, aff: Affine) -> np.ndarray:
    """``B' = k * B + s`` for a per-channel bias (None means zero)."""
    if b is None:
        return aff.s.copy()
    return aff.k * np.asarray(b, dtype=np.float64).reshape(-1) + aff.s


def fold_gemm_bias(c, aff: Affine, beta: float) -> np.ndarray:
    """Gemm's ``C' = k * (beta * C) + s`` for use with ``beta = 1``; C broadcasts against (N,)."""
    if c is None:
        return aff.s.copy()
    c = np.asarray(c, dtype=np.float64) * np.float64(beta)
    if c.ndim <= 1:
        return aff.k * c + aff.s
    return aff.k[None, :] * c + aff.s[None, :]  # (M, N), (M, 1) or (1, N)


def out_channel_scale(w_shape, op: str, k: np.ndarray, group: int = 1, trans_b: bool = False) -> np.ndarray:
    """``k`` shaped to broadcast against a weight (or a block of its leading rows).

    ``op``: ``conv`` (W is (C_out, C_in/group, k...): output channel on axis 0),
    ``convtranspose`` (W is (C_in, C_out/group, k...): output channel on axis 1 within each
    group), ``gemm`` (W is (K, N), or (N, K) with transB) or ``matmul`` (W is (K, N)).
    """
    ndim = len(w_shape)
    if op == "conv":
        return k.reshape((-1,) + (1,) * (ndim - 1))
    if op == "convtranspose":
        scale = convtranspose_out_scale(k, w_shape[0], group)
        return scale.reshape(scale.shape + (1,) * (ndim - 2))
    if op == "gemm" and trans_b:
        return k[:, None]
    return k[None, :]


def convtranspose_out_scale(k: np.ndarray, c_in: int, group: int) -> np.ndarray:
    """Expand per-output-channel ``k`` to ConvTranspose W's (C_in, C_out/group) layout.

    Input channel i belongs to group ``i // (C_in/group)``, and W[i, j] feeds output channel
    ``group_index * (C_out/group) + j``.
    """
    per_group_out = k.size // group
    group_of_input = np.arange(c_in) // (c_in // group)
    cols = group_of_input[:, None] * per_group_out + np.arange(per_group_out)[None, :]
    return k[cols]


def fold_into_conv(w, b, aff: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Conv weight (C_out, C_in/group, k...): output channel is axis 0."""
    w = np.asarray(w, dtype=np.float64)
    return w * out_channel_scale(w.shape, "conv", aff.k), fold_bias(b, aff)


def fold_into_convtranspose(w, b, aff: Affine, group: int) -> tuple[np.ndarray, np.ndarray]:
    """ConvTranspose weight (C_in, C_out/group, k...): output channel is axis 1 within a group."""
    w = np.asarray(w, dtype=np.float64)
    return w * out_channel_scale(w.shape, "convtranspose", aff.k, group), fold_bias(b, aff)


def fold_into_gemm(w, c, aff: Affine, *, trans_b: bool, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Gemm ``Y = alpha * A @ op(W) + beta * C``; output column n is BN's channel n.

    Returns ``(W', C')`` for a Gemm with the same alpha and ``beta = 1``:
    ``C' = k * (beta * C) + s``, broadcast to C's shape against (N,).
    """
    w = np.asarray(w, dtype=np.float64)
    return w * out_channel_scale(w.shape, "gemm", aff.k, trans_b=trans_b), fold_gemm_bias(c, aff, beta)


def fold_into_matmul(w, b, aff: Affine) -> tuple[np.ndarray, np.ndarray]:
    """MatMul ``Y = X @ W (+ b)`` with W (K, N): BN's channel is Y's last axis."""
    w = np.asarray(w, dtype=np.float64)
    return w * out_channel_scale(w.shape, "matmul", aff.k), fold_bias(b, aff)


def fold_forward_into_conv(w, b, aff: Affine, group: int) -> tuple[np.ndarray, np.ndarray]:
    """BN before a Conv with no padding: scale W's input channels and absorb the shift.

    W is (C_out, C_in/group, k...); output channel o reads input channels of group
    ``o // (C_out/group)``. Exact only without padding (padding would see shifted zeros).
    """
    w = np.asarray(w, dtype=np.float64)
    c_out, c_in_per_group = w.shape[0], w.shape[1]
    groups_of_out = np.arange(c_out) // (c_out // group)
    in_idx = groups_of_out[:, None] * c_in_per_group + np.arange(c_in_per_group)[None, :]
    k_in = aff.k[in_idx]
    s_in = aff.s[in_idx]
    extra = (1,) * (w.ndim - 2)
    w_new = w * k_in.reshape(k_in.shape + extra)
    shift = (w * s_in.reshape(s_in.shape + extra)).reshape(c_out, -1).sum(axis=1)
    b = np.zeros(c_out) if b is None else np.asarray(b, dtype=np.float64)
    return w_new, b + shift


def dtype_max(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).max)


def cast_checked(values: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, bool]:
    """Cast float64 ``values`` to ``dtype``; the flag says every element stayed finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(values).astype(dtype)
    finite = bool(np.isfinite(out).all()) if out.size else True
    return out, finite


def would_overflow(peak_magnitudes: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Channels whose largest folded magnitude is not finite once cast to ``dtype``."""
    with np.errstate(over="ignore", invalid="ignore"):
        cast = np.asarray(peak_magnitudes, dtype=np.float64).astype(dtype).astype(np.float64)
    return ~np.isfinite(cast)
