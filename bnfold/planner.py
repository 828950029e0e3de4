"""Decide, for every BatchNormalization, whether and where it folds, without changing anything.

The planner walks each scope in node order and returns a :class:`FoldPlan`: one
:class:`FoldDecision` per BN, either a fold (target node, direction, rule) or a stable reason
code with a sentence. ``inspect`` reports the plan; ``fuse`` hands it to :mod:`bnfold.rewrite`.

Rules, tried in order:

* backward into the producer of BN's input: Conv, ConvTranspose, Gemm, MatMul (rank-2 output),
  optionally through an ``Add`` of a per-channel constant (MatMul+Add, Conv+Add bias);
  a BN whose producer is an already folded BN folds into the same target (Conv→BN→BN);
* forward into the single consumer of BN's output: a Conv without padding, or a Gemm with
  ``transA=0``.

Never folded: ``training_mode=1``, ``spatial=0``, non-constant or overridable statistics or
weights, quantized weights, folds whose result overflows the weight's dtype, axis mismatches.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import bnmath
from .errors import InputError
from .graph import AttributeReference, ConstantResolver, ConstInfo, GraphIndex, Scope, get_attr

log = logging.getLogger(__name__)

FLOAT_TYPES = {
    TensorProto.FLOAT: np.dtype(np.float32),
    TensorProto.FLOAT16: np.dtype(np.float16),
    TensorProto.DOUBLE: np.dtype(np.float64),
}
try:  # bfloat16 comes from ml_dtypes, which onnx depends on
    import ml_dtypes

    FLOAT_TYPES[TensorProto.BFLOAT16] = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    pass

# Stable reason codes. Never rename one: users filter on them.
REASONS: dict[str, str] = {
    "training-mode": "training_mode=1: the node normalizes with batch statistics, not its running ones",
    "spatial-mode": "spatial=0 (opset < 9): statistics are per activation, not per channel",
    "extra-outputs": "the node's optional outputs (running statistics) are used downstream",
    "stats-not-constant": "scale, bias, mean or var is a graph input or computed at run time",
    "stats-overridable": "statistics are initializers that are also graph inputs (overridable at run time)",
    "non-finite": "scale, bias, mean or var holds NaN or Inf",
    "variance-negative": "var + epsilon is not positive for some channels",
    "no-producer": "BN reads a graph input (or an outer-scope value) and no consumer can absorb it",
    "unsupported-producer": "the producer is not Conv, ConvTranspose, Gemm or MatMul, and no consumer can absorb it",
    "producer-shared": "the producer's output is also read by another node",
    "producer-graph-output": "the producer's output is also a graph output",
    "weight-not-constant": "the target's weight or bias is a graph input or computed at run time",
    "weight-overridable": "the target's weight is an initializer that is also a graph input (overridable at run time)",
    "quantized-weight": "the target's weight is dequantized at run time (DequantizeLinear)",
    "axis-mismatch": "BN's channel axis is not the target's output-channel axis",
    "unsupported-dtype": "the target's weight is not a floating-point tensor",
    "fold-overflow": "the folded weights or bias would overflow the weight's dtype",
    "attribute-reference": "an attribute of the BN or its target refers to a function attribute, known only per call site (bnfold then tries inlining the function)",
}

# Reasons about the neighbourhood rather than the BN itself: a forward fold may still work.
_NEIGHBOUR_REASONS = {
    "no-producer", "unsupported-producer", "producer-shared", "producer-graph-output",
    "weight-not-constant", "weight-overridable", "quantized-weight", "axis-mismatch",
    "unsupported-dtype", "fold-overflow",
}
BACKWARD_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class BatchNormSite:
    """One BatchNormalization node and its attributes, wherever it lives."""

    scope: Scope = field(repr=False, compare=False)
    index: int
    node: onnx.NodeProto = field(repr=False, compare=False)
    name: str
    graph: str
    x: str
    scale: str
    bias: str
    mean: str
    var: str
    y: str
    epsilon: float
    momentum: float
    training_mode: bool
    spatial: int | None
    opset: int | None
    attribute_refs: tuple[str, ...] = ()  # attributes given by the enclosing function's call site

    @property
    def param_names(self) -> dict[str, str]:
        return {"scale": self.scale, "bias": self.bias, "mean": self.mean, "var": self.var}


@dataclass(frozen=True)
class Target:
    scope: Scope = field(repr=False, compare=False)
    index: int
    node: onnx.NodeProto = field(repr=False, compare=False)

    @property
    def op(self) -> str:
        return self.node.op_type

    @property
    def name(self) -> str:
        return self.scope.label(self.index)


@dataclass(frozen=True)
class FoldDecision:
    """What happens to one BN. ``rule`` and the node indices drive the rewrite."""

    site: BatchNormSite
    foldable: bool
    direction: str | None = None  # "backward" | "forward"
    target: Target | None = None
    rule: str | None = None  # conv | convtranspose | gemm | matmul | forward-conv | forward-gemm
    bias_add: int | None = None  # index of a constant-bias Add between target and BN
    affine: bnmath.Affine | None = field(default=None, repr=False, compare=False)
    reason: str | None = None
    detail: str | None = None
    overflow_channels: tuple[int, ...] = ()
    through: tuple[int, ...] = ()  # no-op nodes between target and BN (Identity, identity Transposes)


@dataclass(frozen=True)
class FoldPlan:
    decisions: tuple[FoldDecision, ...]

    @property
    def folds(self) -> list[FoldDecision]:
        return [d for d in self.decisions if d.foldable]

    @property
    def left(self) -> list[FoldDecision]:
        return [d for d in self.decisions if not d.foldable]


# A float32/float64 weight is read for the overflow check only when the BN's gain is so large
# that a weight below this magnitude could overflow: max|k| * WEIGHT_BOUND >= dtype max.
WEIGHT_BOUND = 1e30


@dataclass(frozen=True)
class PlanOptions:
    """``exact_overflow``: always read target weights to prove a fold fits the dtype. Otherwise
    float32/float64 weights are read only when the gain could overflow a weight below
    ``WEIGHT_BOUND`` (the writer still checks every folded value while writing it)."""

    fold_overridable: bool = False
    forward: bool = True
    exact_overflow: bool = False


class _Refusal(Exception):
    def __init__(self, reason: str, detail: str, channels: tuple[int, ...] = ()):
        super().__init__(detail)
        self.reason, self.detail, self.channels = reason, detail, channels


def batchnorm_sites(index: GraphIndex) -> list[BatchNormSite]:
    sites = []
    for scope, i, node in index.iter_nodes("BatchNormalization"):
        ins = list(node.input) + [""] * (5 - len(node.input))
        opset = scope.opset
        refs = tuple(a.name for a in node.attribute if a.ref_attr_name)
        attr = lambda name, default: default if name in refs else get_attr(node, name, default)  # noqa: E731
        training = bool(attr("training_mode", 0))
        extra_outputs = sum(1 for o in node.output[1:] if o)
        if opset is not None and opset < 14 and extra_outputs:
            # BN-7..13: the running-statistics outputs exist only in training mode ("output
            # case #1" of the spec).
            training = True
        elif opset is not None and opset < 7 and not attr("is_test", 0):
            training = True  # BN-1..6: is_test=0 (the default) means training
        spatial = attr("spatial", None)
        try:
            epsilon = float(attr("epsilon", 1e-5))
            momentum = float(attr("momentum", 0.9))
        except (TypeError, ValueError) as exc:
            raise InputError(f"BatchNormalization {scope.label(i)!r} in {scope.path} has a "
                             f"malformed epsilon or momentum attribute ({exc})") from exc
        sites.append(
            BatchNormSite(
                scope=scope, index=i, node=node, name=scope.label(i), graph=scope.path,
                x=ins[0], scale=ins[1], bias=ins[2], mean=ins[3], var=ins[4], y=node.output[0],
                epsilon=epsilon, momentum=momentum,
                training_mode=training, spatial=None if spatial is None else int(spatial),
                opset=opset, attribute_refs=refs,
            )
        )
    return sites


class Planner:
    def __init__(self, index: GraphIndex, options: PlanOptions | None = None):
        self.index = index
        self.consts = ConstantResolver(index)
        self.options = options or PlanOptions()
        # BN node (scope id, index) -> the decision that folded it backward, for chains
        self._folded_backward: dict[tuple[int, int], FoldDecision] = {}
        # target (scope id, index) -> decisions folded into it so far, in order
        self._target_folds: dict[tuple[int, int], list[FoldDecision]] = {}

    # -- entry point ------------------------------------------------------------------------
    def plan(self) -> FoldPlan:
        decisions = [self._decide(site) for site in batchnorm_sites(self.index)]
        return FoldPlan(tuple(decisions))

    def stats_affine(self, site: BatchNormSite) -> bnmath.Affine:
        v = {k: self.consts.value(site.scope, n) for k, n in site.param_names.items()}
        return bnmath.bn_affine(v["scale"], v["bias"], v["mean"], v["var"], site.epsilon)

    # -- one BN ------------------------------------------------------------------------------
    def _decide(self, site: BatchNormSite) -> FoldDecision:
        try:
            return self._decide_unchecked(site)
        except AttributeReference as ref:
            return FoldDecision(site, False, reason="attribute-reference",
                                detail=f"{ref}; its value is known only at each call site.")

    def _decide_unchecked(self, site: BatchNormSite) -> FoldDecision:
        if site.attribute_refs:
            raise AttributeReference(f"BatchNormalization attribute(s) {', '.join(site.attribute_refs)} "
                                     "refer to function attributes")
        try:
            affine = self._check_batchnorm(site)
        except _Refusal as r:
            return FoldDecision(site, False, reason=r.reason, detail=r.detail)
        try:
            decision = self._backward(site, affine)
        except _Refusal as back:
            if back.reason not in _NEIGHBOUR_REASONS or not self.options.forward:
                return FoldDecision(site, False, reason=back.reason, detail=back.detail,
                                    overflow_channels=back.channels)
            try:
                decision = self._forward(site, affine)
            except _Refusal as fwd:
                # Report the backward reason unless forward got further (found a target).
                if fwd.reason == "fold-overflow" and back.reason != "fold-overflow":
                    primary, detail = fwd, f"{fwd.detail} Backward: {back.detail}"
                else:
                    primary, detail = back, f"{back.detail} Forward: {fwd.detail}"
                return FoldDecision(site, False, reason=primary.reason, detail=detail,
                                    overflow_channels=primary.channels)
        key = (id(decision.target.scope), decision.target.index)
        self._target_folds.setdefault(key, []).append(decision)
        if decision.direction == "backward":
            self._folded_backward[(id(site.scope), site.index)] = decision
        return decision

    def _check_batchnorm(self, site: BatchNormSite) -> bnmath.Affine:
        if site.training_mode:
            raise _Refusal("training-mode", "training_mode=1: BN uses batch statistics at inference; "
                           "folding its running statistics would change the output.")
        if site.spatial == 0:
            raise _Refusal("spatial-mode", "spatial=0: statistics are per activation, not per channel.")
        if any(o for o in site.node.output[1:]):
            raise _Refusal("extra-outputs", "the optional running-statistics outputs are used.")
        for role, name in site.param_names.items():
            info = self.consts.info(site.scope, name)
            if info.source == "missing" or not name:
                raise _Refusal("stats-not-constant", f"{role} input is missing.")
            if not info.constant:
                raise _Refusal("stats-not-constant", f"{role} {_describe_nonconst(info)}.")
            if info.overridable and not self.options.fold_overridable:
                raise _Refusal("stats-overridable", f"{role} {name!r} is an initializer that is "
                               "also a graph input, so callers may override it; pass "
                               "--fold-overridable to bake it in.")
        try:
            affine = self.stats_affine(site)
        except ValueError as exc:
            raise _Refusal("stats-not-constant", f"statistics cannot be evaluated: {exc}.") from exc
        v = {k: self.consts.value(site.scope, n) for k, n in site.param_names.items()}
        bad = sorted(set().union(*(np.flatnonzero(~np.isfinite(np.asarray(a, np.float64).reshape(-1)))
                                   for a in v.values())))
        if bad:
            raise _Refusal("non-finite", f"NaN or Inf in the statistics of channels {_cap(bad)}.")
        var = np.asarray(v["var"], np.float64).reshape(-1)
        neg = np.flatnonzero(var + site.epsilon <= 0)
        if neg.size:
            raise _Refusal("variance-negative", f"var + epsilon <= 0 for channels {_cap(neg)}.")
        return affine

    # -- backward ----------------------------------------------------------------------------
    def _backward(self, site: BatchNormSite, affine: bnmath.Affine) -> FoldDecision:
        scope = site.scope
        x = site.x
        p_idx = scope.producers.get(x)
        if p_idx is None:
            where = "a graph input" if x in scope.input_set else "a value from an enclosing scope" \
                if not scope.defines(x) else "an initializer"
            raise _Refusal("no-producer", f"its input {x!r} is {where}.")
        producer = scope.nodes[p_idx]
        chained = self._folded_backward.get((id(scope), p_idx))
        # (tensor, its producer, Shape readers allowed): checked once the producer is known to
        # be foldable, so that a weightless producer is reported as such, not as shared
        single_use = [(x, producer, True)]
        if chained is not None:  # Conv→BN→BN: fold into the first BN's target
            self._check_single_use(scope, x, producer)
            prior = chained
            composed = self._composed_backward(prior.target, affine)
            self._check_backward_overflow(prior.target, prior.rule, composed, prior.bias_add)
            return FoldDecision(site, True, "backward", prior.target, prior.rule, prior.bias_add, affine)
        through: tuple[int, ...] = ()
        if _is_noop_candidate(producer):
            producer, p_idx, through = self._through_noops(scope, producer, p_idx, single_use)
        bias_add = None
        if producer.op_type == "Add" and producer.domain in ("", "ai.onnx"):
            producer, p_idx, bias_add = self._through_bias_add(scope, producer, p_idx, single_use)
        if producer.op_type not in BACKWARD_OPS or producer.domain not in ("", "ai.onnx"):
            raise _Refusal("unsupported-producer",
                           f"its producer is {producer.op_type} {scope.label(p_idx)!r}, "
                           "which has no weights to absorb the BN.")
        for name, node, shape_ok in single_use:
            self._check_single_use(scope, name, node, shape_readers_ok=shape_ok)
        target = Target(scope, p_idx, producer)
        rule = producer.op_type.lower()
        self._check_target_weights(target, rule)
        self._check_axis(site, target, rule, affine.k.size)
        if bias_add is not None:
            self._check_bias_add(site, target, rule, scope.nodes[bias_add], affine.k.size)
        composed = self._composed_backward(target, affine)
        self._check_backward_overflow(target, rule, composed, bias_add)
        return FoldDecision(site, True, "backward", target, rule, bias_add, affine, through=through)

    def _through_noops(self, scope: Scope, node: onnx.NodeProto, idx: int, single_use: list) -> tuple:
        """``W-op → (Identity | inference Dropout | Transpose)... → BN`` where the chain changes
        nothing (Transposes composing to the identity, as in tf2onnx's NHWC/NCHW pairs; Identity
        nodes, as Paddle exports them): look through it. Returns the node behind the chain, its
        index, and the chain's node indices."""
        chain = []  # nearest the BN first
        perms = []
        while _is_noop_candidate(node):
            if node.op_type == "Transpose":
                perm = get_attr(node, "perm", None)
                if perm is None:
                    rank = self.index.rank(scope, node.input[0])
                    if rank is None:
                        raise _Refusal("unsupported-producer", f"its producer is Transpose "
                                       f"{scope.label(idx)!r} with no perm and an input of unknown rank.")
                    perm = list(range(rank))[::-1]
                perms.append(list(perm))
            elif node.op_type == "Dropout" and not self._dropout_is_identity(scope, node):
                raise _Refusal("unsupported-producer", f"its producer is Dropout {scope.label(idx)!r}, "
                               "which may run in training mode.")
            chain.append(idx)
            inner = node.input[0]
            inner_idx = scope.producers.get(inner)
            if inner_idx is None:
                raise _Refusal("no-producer", f"its input comes through {node.op_type} from "
                               f"{inner!r}, which no node in this graph produces.")
            single_use.append((inner, scope.nodes[inner_idx], not perms))
            node, idx = scope.nodes[inner_idx], inner_idx
        total = None
        for perm in reversed(perms):  # data order: output[j] = input[perm[j]]
            total = perm if total is None else [total[j] for j in perm]
        if total is not None and total != list(range(len(total))):
            raise _Refusal("unsupported-producer", f"its producer is a Transpose chain with "
                           f"permutation {total}, which moves the channel axis.")
        return node, idx, tuple(chain)

    def _dropout_is_identity(self, scope: Scope, node: onnx.NodeProto) -> bool:
        """Dropout is the identity at inference: no mask output used, training_mode off."""
        if len(node.output) > 1 and node.output[1] and scope.consumers.get(node.output[1]):
            return False
        if len(node.input) > 2 and node.input[2]:
            info = self.consts.info(scope, node.input[2])
            return info.constant and not bool(np.asarray(self.consts.value(scope, node.input[2])).any())
        return True

    def _check_single_use(self, scope: Scope, name: str, producer: onnx.NodeProto, *,
                          shape_readers_ok: bool = True) -> None:
        """``name`` feeds only the fold. Shape/Size readers are fine where the tensor has the
        BN output's shape (the rewrite points them there), not inside a Transpose chain."""
        if name in scope.output_set:
            raise _Refusal("producer-graph-output", f"{name!r}, the output of {producer.op_type} "
                           f"{producer.name or ''}, is also a graph output.".replace("  ", " "))
        users = [i for i in scope.consumers.get(name, [])
                 if not (shape_readers_ok and reads_shape_only(scope.nodes[i], name))]
        if len(users) > 1:
            others = [scope.nodes[i].op_type for i in users]
            raise _Refusal("producer-shared", f"{name!r} is read by {len(users)} nodes "
                           f"({', '.join(others)}); folding would change what the others see.")

    def _through_bias_add(self, scope, add: onnx.NodeProto, add_idx: int, single_use: list) -> tuple:
        """``W-op → Add(constant) → BN``: the W-op behind the Add becomes the target."""
        for data_pos in (0, 1):
            data, const = add.input[data_pos], add.input[1 - data_pos]
            info = self.consts.info(scope, const)
            inner_idx = scope.producers.get(data)
            if info.constant and inner_idx is not None:
                inner = scope.nodes[inner_idx]
                if inner.op_type in BACKWARD_OPS and inner.domain in ("", "ai.onnx"):
                    single_use.append((data, inner, True))
                    return inner, inner_idx, add_idx
        raise _Refusal("unsupported-producer",
                       f"its producer is Add {scope.label(add_idx)!r} without a constant bias "
                       "on a Conv, ConvTranspose, Gemm or MatMul output.")

    def _weight_info(self, scope: Scope, name: str, role: str) -> ConstInfo:
        info = self.consts.info(scope, name)
        if info.quantized:
            raise _Refusal("quantized-weight", f"{role} {name!r} is dequantized at run time.")
        if not info.constant:
            raise _Refusal("weight-not-constant", f"{role} {_describe_nonconst(info)}.")
        if info.overridable and not self.options.fold_overridable:
            raise _Refusal("weight-overridable", f"{role} {name!r} is an initializer that is also "
                           "a graph input; pass --fold-overridable to bake it in.")
        return info

    def _check_target_weights(self, target: Target, rule: str) -> None:
        node = target.node
        if len(node.input) < 2 or not node.input[1]:
            raise _Refusal("weight-not-constant", f"{target.op} {target.name!r} has no weight input.")
        w = self._weight_info(target.scope, node.input[1], "weight")
        bias_pos = 2 if rule in ("conv", "convtranspose", "gemm") else None
        if bias_pos is not None and len(node.input) > bias_pos and node.input[bias_pos]:
            self._weight_info(target.scope, node.input[bias_pos], "bias")
        if self._dtype_of(target.scope, node.input[1], w) is None:
            raise _Refusal("unsupported-dtype", f"weight {node.input[1]!r} of {target.op} "
                           f"{target.name!r} is not float16, bfloat16, float32 or float64.")

    def _dtype_of(self, scope, name, info: ConstInfo | None = None) -> np.dtype | None:
        info = info or self.consts.info(scope, name)
        elem = info.elem_type
        if elem is None:
            try:
                return FLOAT_TYPES.get(_np_to_onnx(self.consts.value(scope, name).dtype))
            except ValueError:
                return None
        return FLOAT_TYPES.get(elem)

    def _weight_shape(self, scope: Scope, name: str) -> tuple[int, ...]:
        info = self.consts.info(scope, name)
        if info.shape is not None:
            return info.shape
        return tuple(self.consts.value(scope, name).shape)

    def _check_axis(self, site: BatchNormSite, target: Target, rule: str, channels: int) -> None:
        node, scope = target.node, target.scope
        shape = self._weight_shape(scope, node.input[1])
        group = int(get_attr(node, "group", 1))
        if rule == "conv":
            out = shape[0] if len(shape) >= 3 else None
        elif rule == "convtranspose":
            out = shape[1] * group if len(shape) >= 3 else None
        elif rule == "gemm":
            if len(shape) != 2:
                out = None
            else:
                out = shape[0] if get_attr(node, "transB", 0) else shape[1]
        else:  # matmul: BN's axis 1 must be the last axis of a rank-2 output
            rank_a = self.index.rank(scope, node.input[0])
            rank_x = self.index.rank(scope, site.x)
            rank = rank_x if rank_x is not None else (rank_a if rank_a is not None and len(shape) == 2 else None)
            if len(shape) != 2:
                raise _Refusal("axis-mismatch", f"MatMul weight {node.input[1]!r} has rank "
                               f"{len(shape)}; only a 2-D weight maps BN channels to columns.")
            if rank is None:
                raise _Refusal("axis-mismatch", f"the rank of MatMul {target.name!r}'s output is "
                               "unknown, so BN's axis 1 cannot be shown to be its last axis.")
            if rank != 2:
                raise _Refusal("axis-mismatch", f"MatMul {target.name!r} has a rank-{rank} output: "
                               "BN normalizes axis 1, but the weight scales the last axis.")
            out = shape[1]
        if out != channels:
            raise _Refusal("axis-mismatch", f"{target.op} {target.name!r} has {out} output channels "
                           f"on the BN's axis but the BN has {channels}.")
        self._check_bias_shape(target, rule, channels)

    def _check_bias_shape(self, target: Target, rule: str, channels: int) -> None:
        """A bias that does not fit the op's spec (exporters do produce these) is not folded."""
        node = target.node
        if rule == "matmul" or len(node.input) < 3 or not node.input[2]:
            return
        shape = self._weight_shape(target.scope, node.input[2])
        if rule in ("conv", "convtranspose"):
            ok = shape == (channels,)
        else:  # Gemm's C broadcasts to (M, N)
            ok = len(shape) <= 2 and (not shape or shape[-1] in (1, channels))
        if not ok:
            raise _Refusal("axis-mismatch", f"the bias {node.input[2]!r} of {target.op} "
                           f"{target.name!r} has shape {tuple(shape)}, which does not match its "
                           f"{channels} output channels.")

    def _check_bias_add(self, site, target: Target, rule: str, add: onnx.NodeProto, channels: int) -> None:
        const = add.input[1] if target.node.output[0] == add.input[0] else add.input[0]
        shape = self._weight_shape(target.scope, const)
        self._weight_info(target.scope, const, "bias")
        rank = 2 if rule in ("gemm", "matmul") else len(self._weight_shape(target.scope, target.node.input[1]))
        padded = (1,) * (rank - len(shape)) + tuple(shape)
        if len(padded) != rank or any(d != 1 for i, d in enumerate(padded) if i != 1) \
                or padded[1] not in (1, channels):
            raise _Refusal("axis-mismatch", f"the Add's constant {const!r} of shape {tuple(shape)} "
                           "does not vary along the channel axis alone.")

    def _composed_backward(self, target: Target, affine: bnmath.Affine) -> bnmath.Affine:
        """The BNs already folded into ``target`` followed by ``affine`` (Conv→BN→BN)."""
        composed = affine
        for prior in reversed([d for d in self._target_folds.get((id(target.scope), target.index), [])
                               if d.direction == "backward"]):
            composed = prior.affine.then(composed)
        return composed

    def _check_backward_overflow(self, target: Target, rule: str, aff: bnmath.Affine,
                                 bias_add: int | None) -> None:
        """Refuse a fold whose weight or bias would not fit the weight's dtype.

        The weight check needs only ``max |W|`` per output channel times ``|k|`` (casting is
        monotone), so W is not copied to float64 unless a forward fold already changed it.
        """
        from .rewrite import folded_arrays

        scope, node = target.scope, target.node
        dtype = self._dtype_of(scope, node.input[1])
        group, trans_b = int(get_attr(node, "group", 1)), bool(get_attr(node, "transB", 0))
        prior = self._target_folds.get((id(target.scope), target.index), [])
        pending = prior + [FoldDecision(None, True, "backward", target, rule, bias_add, aff)]  # type: ignore[arg-type]
        if self._has_forward_fold(target):
            w64, b64 = folded_arrays(self.consts, target, pending, extra_backward=aff)
            peak_w = _peak_per_out_channel(w64, rule, group, trans_b, aff.k.size)
        else:
            _, b64 = folded_arrays(self.consts, target, pending, extra_backward=aff, weight=False)
            gain = np.abs(aff.k)
            if self._needs_weight_read(dtype, gain):
                w = self.consts.value(scope, node.input[1])
                peak_w = _peak_per_out_channel(w, rule, group, trans_b, aff.k.size) * gain
            else:
                peak_w = np.zeros(aff.k.size)
        bad_w = np.flatnonzero(bnmath.would_overflow(peak_w, dtype))
        bad_b = np.flatnonzero(bnmath.would_overflow(np.abs(b64).reshape(-1), dtype)) % aff.k.size
        if bad_w.size or bad_b.size:
            chans = tuple(sorted({int(c) for c in bad_w} | {int(c) for c in bad_b}))
            largest = max(float(np.max(peak_w)), float(np.max(np.abs(b64))))
            raise _Refusal("fold-overflow", f"folding into {target.op} {target.name!r} would overflow "
                           f"{dtype.name} in channels {_cap(chans)} (largest folded |value| "
                           f"{largest:.3g} > {bnmath.dtype_max(dtype):.3g}).", chans)

    def _needs_weight_read(self, dtype: np.dtype, gain: np.ndarray) -> bool:
        if self.options.exact_overflow or dtype.itemsize < 4:
            return True
        with np.errstate(over="ignore"):
            return not bool(np.all(gain * WEIGHT_BOUND < bnmath.dtype_max(dtype)))

    def _has_forward_fold(self, target: Target) -> bool:
        return any(d.direction == "forward" for d in self._target_folds.get((id(target.scope), target.index), []))

    # -- forward -----------------------------------------------------------------------------
    def _forward(self, site: BatchNormSite, affine: bnmath.Affine) -> FoldDecision:
        scope = site.scope
        if site.y in scope.output_set:
            raise _Refusal("producer-graph-output", f"its output {site.y!r} is a graph output.")
        users = scope.consumers.get(site.y, [])
        if len(users) != 1:
            raise _Refusal("unsupported-producer", f"its output feeds {len(users)} nodes, not one Conv or Gemm.")
        c_idx = users[0]
        consumer = scope.nodes[c_idx]
        target = Target(scope, c_idx, consumer)
        if consumer.domain not in ("", "ai.onnx") or consumer.op_type not in ("Conv", "Gemm") \
                or list(consumer.input).count(site.y) != 1 or consumer.input[0] != site.y:
            raise _Refusal("unsupported-producer", f"its consumer is {consumer.op_type} "
                           f"{target.name!r}, not a Conv or Gemm reading it as data.")
        if (id(scope), c_idx) in self._target_folds:
            raise _Refusal("unsupported-producer", f"{target.op} {target.name!r} already absorbs another BN.")
        if consumer.op_type == "Conv":
            pads = get_attr(consumer, "pads", None) or []
            auto_pad = get_attr(consumer, "auto_pad", b"NOTSET")
            auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
            if any(int(p) != 0 for p in pads) or auto_pad not in ("NOTSET", "VALID"):
                raise _Refusal("unsupported-producer", f"the following Conv {target.name!r} pads its "
                               "input, so a forward fold would not be exact.")
            rule = "forward-conv"
            self._check_target_weights(target, "conv")
            shape = self._weight_shape(scope, consumer.input[1])
            c_in = shape[1] * int(get_attr(consumer, "group", 1))
        else:
            if get_attr(consumer, "transA", 0):
                raise _Refusal("unsupported-producer", f"the following Gemm {target.name!r} transposes A.")
            rule = "forward-gemm"
            self._check_target_weights(target, "gemm")
            shape = self._weight_shape(scope, consumer.input[1])
            c_in = shape[1] if get_attr(consumer, "transB", 0) else shape[0]
        if c_in != affine.k.size:
            raise _Refusal("axis-mismatch", f"{target.op} {target.name!r} reads {c_in} input "
                           f"channels but the BN has {affine.k.size}.")
        decision = FoldDecision(site, True, "forward", target, rule, None, affine)
        from .rewrite import folded_arrays

        w64, b64 = folded_arrays(self.consts, target, [decision])
        dtype = self._dtype_of(scope, consumer.input[1])
        _, ok_w = bnmath.cast_checked(w64, dtype)
        _, ok_b = bnmath.cast_checked(b64, dtype)
        if not (ok_w and ok_b):
            peaks = _peak_per_in_channel(w64, rule, int(get_attr(consumer, "group", 1)),
                                         bool(get_attr(consumer, "transB", 0)))
            chans = tuple(int(c) for c in np.flatnonzero(bnmath.would_overflow(peaks, dtype)))
            raise _Refusal("fold-overflow", f"folding forward into {target.op} {target.name!r} "
                           f"would overflow {dtype.name}"
                           + (f" in channels {_cap(chans)}." if chans else " in its bias."), chans)
        return decision


SHAPE_ONLY_OPS = ("Shape", "Size")
NOOP_OPS = ("Identity", "Dropout", "Transpose")


def _is_noop_candidate(node: onnx.NodeProto) -> bool:
    return node.op_type in NOOP_OPS and node.domain in ("", "ai.onnx")


def reads_shape_only(node: onnx.NodeProto, name: str) -> bool:
    """Shape/Size read only the shape, which a fold preserves: such readers never block a fold
    (the rewrite points them at the BN's output)."""
    return node.op_type in SHAPE_ONLY_OPS and node.domain in ("", "ai.onnx") and list(node.input) == [name]


def _peak_per_out_channel(w: np.ndarray, rule: str, group: int, trans_b: bool, channels: int) -> np.ndarray:
    """Largest |W| per output channel, without materialising a float64 copy of W."""
    if rule == "conv":
        return np.abs(w.reshape(w.shape[0], -1)).max(axis=1).astype(np.float64)
    if rule == "convtranspose":
        per_in_out = np.abs(w.reshape(w.shape[0], w.shape[1], -1)).max(axis=2).astype(np.float64)
        c_in, per_group = w.shape[0], w.shape[1]
        peak = np.zeros(channels)
        for g in range(group):
            rows = per_in_out[g * (c_in // group):(g + 1) * (c_in // group)]
            peak[g * per_group:(g + 1) * per_group] = rows.max(axis=0)
        return peak
    if rule == "gemm" and trans_b:
        return np.abs(w).max(axis=1).astype(np.float64)
    return np.abs(w).max(axis=0).astype(np.float64)  # gemm (K, N) and matmul (K, N)


def _peak_per_in_channel(w64: np.ndarray, rule: str, group: int, trans_b: bool) -> np.ndarray:
    """Largest |W'| per BN channel for a forward fold (the target's input channels)."""
    if rule == "forward-gemm":
        return np.abs(w64).max(axis=0 if trans_b else 1)
    c_out, per_group = w64.shape[0], w64.shape[1]
    per = np.abs(w64.reshape(c_out, per_group, -1)).max(axis=2)  # (C_out, C_in/group)
    return per.reshape(group, c_out // group, per_group).max(axis=1).reshape(-1)


def _np_to_onnx(dtype: np.dtype) -> int | None:
    try:
        return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    except (KeyError, TypeError, ValueError):
        return None


def _describe_nonconst(info: ConstInfo) -> str:
    return info.detail.rstrip(".") if info.detail else f"{info.name!r} is not a constant"


def _cap(channels, limit: int = 8) -> str:
    channels = [int(c) for c in channels]
    shown = ", ".join(str(c) for c in channels[:limit])
    return shown + (f" and {len(channels) - limit} more" if len(channels) > limit else "")


def plan_model(index: GraphIndex, options: PlanOptions | None = None) -> FoldPlan:
    """The fold plan for every BN in ``index``."""
    return Planner(index, options).plan()
