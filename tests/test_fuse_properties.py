"""Property-based fold tests: random Conv / ConvTranspose / Gemm / MatMul configurations and
dtypes, compared in onnxruntime with every graph optimization off. The meta-tests at the end
break the fold on purpose and check these properties catch it."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from builders import NP_TO_ONNX, bn_node, make_model, tensor, vinfo
from foldcheck import fold_and_check

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _stats(rng, c, dtype, eps):
    return [
        tensor("bn.scale", rng.uniform(0.3, 2.0, c) * rng.choice([-1, 1], c), dtype),
        tensor("bn.bias", rng.normal(0, 0.5, c), dtype),
        tensor("bn.mean", rng.normal(0, 1.0, c), dtype),
        tensor("bn.var", rng.uniform(eps * 0.1, 3.0, c), dtype),
    ]


@st.composite
def conv_configs(draw):
    ndim = draw(st.integers(1, 3))
    group = draw(st.sampled_from([1, 2, 3]))
    c_in = group * draw(st.integers(1, 3))
    c_out = group * draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(ndim)]
    strides = [draw(st.integers(1, 2)) for _ in range(ndim)]
    dilations = [draw(st.integers(1, 2)) for _ in range(ndim)]
    transpose = draw(st.booleans())
    # ConvTranspose crops by its pads: keep them within the effective kernel.
    limits = [((k - 1) * d if transpose else 1) for k, d in zip(kernel, dilations)] * 2
    pads = [draw(st.integers(0, min(1, lim))) for lim in limits]
    spatial = [draw(st.integers(k * d + 1, k * d + 4)) for k, d in zip(kernel, dilations)]
    return dict(ndim=ndim, group=group, c_in=c_in, c_out=c_out, kernel=kernel, strides=strides,
                dilations=dilations, pads=pads, spatial=spatial, bias=draw(st.booleans()),
                transpose=transpose, dtype=draw(st.sampled_from([np.float32, np.float16])),
                eps=draw(st.sampled_from([1e-5, 1e-3, 0.1])), seed=draw(st.integers(0, 2**16)))


def build_conv(cfg) -> tuple:
    rng = np.random.default_rng(cfg["seed"])
    dtype, group, c_in, c_out = cfg["dtype"], cfg["group"], cfg["c_in"], cfg["c_out"]
    op = "ConvTranspose" if cfg["transpose"] else "Conv"
    w_shape = (c_in, c_out // group, *cfg["kernel"]) if cfg["transpose"] else (c_out, c_in // group, *cfg["kernel"])
    inits = [tensor("W", rng.normal(0, 0.5, w_shape), dtype)] + _stats(rng, c_out, dtype, cfg["eps"])
    ins = ["x", "W"]
    if cfg["bias"]:
        inits.append(tensor("B", rng.normal(0, 0.3, c_out), dtype))
        ins.append("B")
    nodes = [helper.make_node(op, ins, ["c"], name="target", group=group, strides=cfg["strides"],
                              dilations=cfg["dilations"], pads=cfg["pads"]),
             bn_node("c", "y", epsilon=cfg["eps"])]
    elem = NP_TO_ONNX[np.dtype(dtype)]
    model = make_model(nodes, [vinfo("x", [2, c_in, *cfg["spatial"]], elem)],
                       [vinfo("y", [2, c_out] + [None] * cfg["ndim"], elem)], inits)
    return model, dtype


@SETTINGS
@given(conv_configs())
def test_conv_and_convtranspose_folds_are_exact(cfg):
    """Any Conv/ConvTranspose (1-3D, groups, strides, dilations, pads, bias) + BN folds exactly."""
    model, dtype = build_conv(cfg)
    result = fold_and_check(model, dtype=dtype)
    assert len(result.plan.folds) == 1


@st.composite
def gemm_configs(draw):
    m, k, n = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 6))
    return dict(m=m, k=k, n=n, trans_a=draw(st.integers(0, 1)), trans_b=draw(st.integers(0, 1)),
                alpha=draw(st.sampled_from([1.0, 0.5, -1.25, 3.0])),
                beta=draw(st.sampled_from([1.0, 0.0, 2.0, -0.5])),
                c_shape=draw(st.sampled_from([None, (), ("n",), (1, "n"), ("m", 1), ("m", "n")])),
                matmul=draw(st.booleans()), add=draw(st.booleans()),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                eps=draw(st.sampled_from([1e-5, 1e-2])), seed=draw(st.integers(0, 2**16)))


def build_gemm(cfg):
    rng = np.random.default_rng(cfg["seed"])
    m, k, n, dtype = cfg["m"], cfg["k"], cfg["n"], cfg["dtype"]
    elem = NP_TO_ONNX[np.dtype(dtype)]
    inits = _stats(rng, n, dtype, cfg["eps"])
    if cfg["matmul"]:
        inits.append(tensor("W", rng.normal(0, 0.5, (k, n)), dtype))
        nodes = [helper.make_node("MatMul", ["a", "W"], ["g"], name="target")]
        bn_in = "g"
        if cfg["add"]:
            inits.append(tensor("b", rng.normal(0, 0.3, (n,)), dtype))
            nodes.append(helper.make_node("Add", ["g", "b"], ["gb"]))
            bn_in = "gb"
        a_shape = [m, k]
    else:
        inits.append(tensor("W", rng.normal(0, 0.5, (n, k) if cfg["trans_b"] else (k, n)), dtype))
        ins = ["a", "W"]
        if cfg["c_shape"] is not None:
            shape = tuple({"m": m, "n": n}.get(d, d) for d in cfg["c_shape"])
            inits.append(tensor("C", rng.normal(0, 0.3, shape), dtype))
            ins.append("C")
        nodes = [helper.make_node("Gemm", ins, ["g"], name="target", transA=cfg["trans_a"],
                                  transB=cfg["trans_b"], alpha=cfg["alpha"], beta=cfg["beta"])]
        bn_in = "g"
        a_shape = [k, m] if cfg["trans_a"] else [m, k]
    nodes.append(bn_node(bn_in, "y", epsilon=cfg["eps"]))
    model = make_model(nodes, [vinfo("a", a_shape, elem)], [vinfo("y", [m, n], elem)], inits)
    return model, dtype


@SETTINGS
@given(gemm_configs())
def test_gemm_and_matmul_folds_are_exact(cfg):
    """Any Gemm (transA/B, alpha, beta, C shape) or rank-2 MatMul (± Add) + BN folds exactly."""
    model, dtype = build_gemm(cfg)
    result = fold_and_check(model, dtype=dtype)
    assert len(result.plan.folds) == 1


# -- a deliberately broken fold must make the properties fail -----------------------------------

BROKEN_CASES = [
    dict(ndim=2, group=1, c_in=3, c_out=4, kernel=[3, 3], strides=[1, 1], dilations=[1, 1],
         pads=[1, 1, 1, 1], spatial=[6, 6], bias=True, transpose=False, dtype=np.float32, eps=1e-3, seed=1),
    dict(ndim=2, group=2, c_in=4, c_out=6, kernel=[2, 2], strides=[2, 2], dilations=[1, 1],
         pads=[0, 0, 0, 0], spatial=[5, 5], bias=False, transpose=True, dtype=np.float32, eps=0.1, seed=2),
]


def _assert_some_case_fails():
    failures = 0
    for cfg in BROKEN_CASES:
        try:
            fold_and_check(build_conv(cfg)[0], dtype=np.float32)
        except AssertionError:
            failures += 1
    assert failures == len(BROKEN_CASES), "a broken fold went unnoticed"


def test_dropping_epsilon_is_caught(monkeypatch):
    """bn_affine without epsilon: the exactness property fails."""
    from bnfold import bnmath

    real = bnmath.bn_affine
    monkeypatch.setattr(bnmath, "bn_affine", lambda s, b, m, v, eps: real(s, b, m, v, 0.0))
    import bnfold.planner as planner

    monkeypatch.setattr(planner.bnmath, "bn_affine", bnmath.bn_affine)
    _assert_some_case_fails()


def test_wrong_axis_is_caught(monkeypatch):
    """Scaling the wrong channels (k reversed, as a transposed-axis bug would) is caught."""
    from bnfold import bnmath

    real = bnmath.out_channel_scale
    monkeypatch.setattr(bnmath, "out_channel_scale",
                        lambda shape, op, k, *a, **kw: real(shape, op, k[::-1].copy(), *a, **kw))
    _assert_some_case_fails()
