"""Apply a :class:`~bnfold.planner.FoldPlan` to a *copy* of a model.

:func:`folded_arrays` computes a target's new weight and bias in float64 (forward fold first, then
the composed backward folds); :func:`rewrite_copy` returns a new ModelProto in which every planned
fold is applied:

* the target gets fresh weight/bias tensors (copy-on-write: a weight shared with other nodes stays
  where it is still used; tensors nobody reads any more are dropped);
* a backward target writes the BN's output name, so graph outputs and downstream names survive;
* a forward target reads the BN's input;
* the BN node (and a constant-bias Add it absorbed) disappears.

Values are cast once from float64 to the weight's dtype. The caller's model is never modified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import bnmath
from .errors import BnfoldError
from .graph import EVALUABLE_OPS, ConstantResolver, GraphIndex, Scope, get_attr
from .modelio import LoadedModel
from .planner import FLOAT_TYPES, FoldDecision, FoldPlan, Target, reads_shape_only

log = logging.getLogger(__name__)


def _backward_affine(folds: list[FoldDecision]) -> bnmath.Affine | None:
    composed = None
    for d in folds:
        if d.direction == "backward":
            composed = d.affine if composed is None else composed.then(d.affine)
    return composed


def _bias_add_const(target: Target, bias_add: int) -> str:
    add = target.scope.nodes[bias_add]
    return add.input[1] if add.input[0] == target.node.output[0] else add.input[0]


def folded_arrays(consts: ConstantResolver, target: Target, folds: list[FoldDecision],
                  extra_backward: bnmath.Affine | None = None, *,
                  weight: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Float64 (weight, bias) of ``target`` after ``folds``.

    The bias is in the form the rewritten node takes: Conv/ConvTranspose bias (C,), Gemm ``C``
    for ``beta = 1``, or the MatMul's following Add constant (N,). With ``weight=False`` only
    the bias is computed (the weight is read only when a forward fold needs it).
    """
    scope, node = target.scope, target.node
    get = lambda name: np.asarray(consts.value(scope, name), dtype=np.float64)  # noqa: E731
    forward = [d for d in folds if d.direction == "forward"]
    backward = [d for d in folds if d.direction == "backward"]
    w = get(node.input[1]) if (weight or forward) else None
    has_bias = len(node.input) > 2 and node.input[2] and node.op_type != "MatMul"
    group = int(get_attr(node, "group", 1))
    trans_b = bool(get_attr(node, "transB", 0))
    alpha = float(get_attr(node, "alpha", 1.0))
    beta = float(get_attr(node, "beta", 1.0))
    b = get(node.input[2]) if has_bias else None

    if forward:
        aff = forward[0].affine
        if forward[0].rule == "forward-conv":
            w, b = bnmath.fold_forward_into_conv(w, b, aff, group)
        else:  # forward-gemm: Y = alpha * (k*A + s) @ op(W) + beta * C
            op_w = w.T if trans_b else w
            shift = alpha * (aff.s @ op_w)
            w = w * (aff.k[None, :] if trans_b else aff.k[:, None])
            b = shift if b is None else beta * b + shift
            beta = 1.0
    aff = extra_backward or _backward_affine(backward)
    if aff is None:
        return w, (b if b is not None else np.zeros(w.shape[0]))
    rule = backward[0].rule if backward else _rule_of(node)
    bias_add = backward[0].bias_add if backward else None
    if bias_add is not None:
        extra = get(_bias_add_const(target, bias_add))
        if rule == "gemm":
            c_add = extra.reshape(extra.shape[-1:]) if extra.ndim > 1 and extra.shape[0] == 1 else extra
            b = c_add if b is None else beta * b + c_add
            beta = 1.0
        else:
            extra = np.broadcast_to(extra.reshape(-1), (aff.k.size,))
            b = extra if b is None else b + extra
    if rule == "gemm":
        b_new = bnmath.fold_gemm_bias(b, aff, beta)
    else:
        b_new = bnmath.fold_bias(b, aff)
    if w is None:
        return None, b_new
    if rule == "conv":
        w_new, _ = bnmath.fold_into_conv(w, None, aff)
    elif rule == "convtranspose":
        w_new, _ = bnmath.fold_into_convtranspose(w, None, aff, group)
    elif rule == "gemm":
        w_new, _ = bnmath.fold_into_gemm(w, None, aff, trans_b=trans_b, beta=1.0)
    else:
        w_new, _ = bnmath.fold_into_matmul(w, None, aff)
    return w_new, b_new


# Elements per chunk when a folded weight is computed while it is written.
CHUNK_ELEMENTS = 1 << 20


class FoldOverflowError(BnfoldError):
    """A folded tensor did not fit its dtype although the plan expected it to."""

    def __init__(self, target: str, dtype: np.dtype):
        super().__init__(f"folding into {target!r} overflows {dtype}")
        self.target = target


@dataclass(frozen=True)
class DeferredTensor:
    """A tensor computed only when written: ``chunks()`` yields its values in C order."""

    shape: tuple[int, ...]
    dtype: np.dtype
    chunks: Callable[[], Iterator[np.ndarray]]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def materialize(self) -> np.ndarray:
        parts = [np.asarray(c).reshape(-1) for c in self.chunks()]
        flat = np.concatenate(parts) if parts else np.zeros(0, self.dtype)
        return flat.reshape(self.shape)


def folded_weight_chunks(consts: ConstantResolver, target: Target, folds: list[FoldDecision],
                         dtype: np.dtype) -> Iterator[np.ndarray]:
    """The folded weight in ``dtype``, computed in float64 one block of rows at a time.

    Never holds more than a block in float64; each block is cast once and checked finite.
    """
    if any(d.direction == "forward" for d in folds):
        w64, _ = folded_arrays(consts, target, folds)
        blocks = [w64]
    else:
        node = target.node
        w = consts.value(target.scope, node.input[1])
        rule = next(d.rule for d in folds if d.direction == "backward")
        scale = bnmath.out_channel_scale(w.shape, rule, _backward_affine(folds).k,
                                         int(get_attr(node, "group", 1)), bool(get_attr(node, "transB", 0)))
        scale = np.broadcast_to(scale, (w.shape[0],) + scale.shape[1:])  # a view: one row per W row
        row = max(1, int(np.prod(w.shape[1:], dtype=np.int64)))
        step = max(1, CHUNK_ELEMENTS // row)
        # one pass per block: read, widen to float64 and multiply
        blocks = (np.multiply(w[i:i + step], scale[i:i + step], dtype=np.float64)
                  for i in range(0, w.shape[0], step))
    for out in blocks:
        cast, ok = bnmath.cast_checked(out, dtype)
        if not ok:
            raise FoldOverflowError(target.name, dtype)
        yield cast


def _rule_of(node: onnx.NodeProto) -> str:
    return node.op_type.lower()


@dataclass
class _ScopeEdits:
    drop: set[int] = field(default_factory=set)
    inputs: dict[int, list[str]] = field(default_factory=dict)
    output0: dict[int, str] = field(default_factory=dict)
    attrs: dict[int, dict[str, object]] = field(default_factory=dict)
    before: dict[int, list[onnx.NodeProto]] = field(default_factory=dict)
    after: dict[int, list[onnx.NodeProto]] = field(default_factory=dict)
    new_tensors: list[onnx.TensorProto] = field(default_factory=list)
    deferred: dict[str, DeferredTensor] = field(default_factory=dict)
    # New constants become Constant nodes: functions have no initializers, and in IR < 4 a
    # subgraph's initializers would have to be listed as its inputs.
    constant_nodes: bool = False
    gone_names: set[str] = field(default_factory=set)  # tensors no longer produced


class _Namer:
    def __init__(self, taken: set[str]):
        self.taken = set(taken)

    def __call__(self, base: str) -> str:
        base = base or "t"
        name, i = f"{base}_bnfold", 1
        while name in self.taken:
            i += 1
            name = f"{base}_bnfold{i}"
        self.taken.add(name)
        return name


@dataclass(frozen=True)
class RewriteOptions:
    decompose: bool = False


@dataclass(frozen=True)
class RewriteResult:
    """The rewritten model. Main-graph initializers named in ``deferred`` are headers only
    (name, type, dims): their values are computed when written, or by :meth:`materialize`."""

    model: onnx.ModelProto
    decomposed: tuple[str, ...] = ()
    deferred: dict[str, DeferredTensor] = field(default_factory=dict)

    def materialize(self) -> onnx.ModelProto:
        """Fill every deferred initializer with its values (in place) and return the model."""
        for t in self.model.graph.initializer:
            if t.name in self.deferred:
                t.CopyFrom(numpy_helper.from_array(self.deferred[t.name].materialize(), t.name))
        self.deferred.clear()
        return self.model


def rewrite_copy(loaded: LoadedModel, plan: FoldPlan, options: RewriteOptions | None = None) -> RewriteResult:
    """A new model with ``plan`` applied; ``loaded.proto`` is left untouched."""
    options = options or RewriteOptions()
    copy = onnx.ModelProto()
    copy.CopyFrom(loaded.proto)
    copy_loaded = LoadedModel(proto=copy, path=loaded.path, store=loaded.store)
    index = GraphIndex(copy_loaded)  # typed like the planner's index (CastLike, decompose)
    consts = ConstantResolver(index)
    namer = _Namer(index.all_names())
    scope_by_path = {s.path: s for s in index.scopes}
    edits: dict[int, _ScopeEdits] = {}

    by_target: dict[tuple[str, int], list[FoldDecision]] = {}
    for d in plan.folds:
        by_target.setdefault((d.target.scope.path, d.target.index), []).append(d)

    def edits_for(scope: Scope) -> _ScopeEdits:
        if id(scope) not in edits:
            edits[id(scope)] = _ScopeEdits(
                constant_nodes=scope.is_function or (index.ir_version < 4 and not scope.is_main))
        return edits[id(scope)]

    for (path, t_idx), folds in by_target.items():
        scope = scope_by_path[path]
        target = Target(scope, t_idx, scope.nodes[t_idx])
        folds = [_rebind(d, scope) for d in folds]
        _apply_target(index, consts, target, folds, edits_for(scope), namer)

    decomposed: list[str] = []
    if options.decompose:
        for d in plan.left:
            if d.reason in _DECOMPOSABLE:
                scope = scope_by_path[d.site.scope.path]
                if _decompose(index, consts, scope, d, edits_for(scope), namer):
                    decomposed.append(d.site.name)

    # Innermost scopes first: committing a graph copies its nodes, and a subgraph's proto lives
    # inside one of those nodes, so its edits must be in place before its parent is copied.
    for scope in reversed(index.scopes):
        e = edits.get(id(scope))
        if e is not None:
            _commit(scope, e, list_as_inputs=index.ir_version < 4 and scope.is_main)
    _drop_orphans(copy, index.ir_version)
    _check_batchnorms_removed(loaded.proto, copy, len(plan.folds) + len(decomposed))
    deferred = {}
    for e in edits.values():
        deferred.update(e.deferred)
    return RewriteResult(copy, tuple(decomposed), deferred)


_DECOMPOSABLE = {
    "no-producer", "unsupported-producer", "producer-shared", "producer-graph-output",
    "weight-not-constant", "weight-overridable", "quantized-weight", "axis-mismatch",
    "unsupported-dtype", "fold-overflow",
}


def _rebind(d: FoldDecision, scope: Scope) -> FoldDecision:
    """The same decision pointing at the copy's scope and nodes."""
    from dataclasses import replace

    site = replace(d.site, scope=scope, node=scope.nodes[d.site.index])
    target = Target(scope, d.target.index, scope.nodes[d.target.index])
    return replace(d, site=site, target=target)


def _const(scope: Scope, e: _ScopeEdits, namer: _Namer, base: str, value, anchor: int) -> str:
    """Add a constant holding ``value`` (an array or a DeferredTensor) to ``scope``.

    Main-graph constants become initializers; a deferred one is a header until written.
    Functions get Constant nodes and subgraphs initializers, both with values computed now.
    """
    name = namer(base)
    if isinstance(value, DeferredTensor):
        if scope.is_main:
            header = onnx.TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(value.dtype))
            header.dims.extend(value.shape)
            e.deferred[name] = value
            e.new_tensors.append(header)
            return name
        value = value.materialize()
    tensor = numpy_helper.from_array(np.ascontiguousarray(value), name)
    if e.constant_nodes:
        node = helper.make_node("Constant", [], [name], value=tensor)
        e.before.setdefault(anchor, []).append(node)
    else:
        e.new_tensors.append(tensor)
    return name


def _apply_target(index: GraphIndex, consts: ConstantResolver, target: Target,
                  folds: list[FoldDecision], e: _ScopeEdits, namer: _Namer) -> None:
    scope, node, t = target.scope, target.node, target.index
    w_name = node.input[1]
    w = consts.value(scope, w_name)
    dtype, w_shape = w.dtype, tuple(w.shape)
    del w
    _, b64 = folded_arrays(consts, target, folds, weight=False)
    b_new, ok_b = bnmath.cast_checked(b64, dtype)
    if not ok_b:  # the planner checks this; keep the guarantee local too
        raise FoldOverflowError(target.name, dtype)
    w_new = DeferredTensor(w_shape, np.dtype(dtype),
                           lambda: folded_weight_chunks(consts, target, folds, np.dtype(dtype)))
    inputs = list(node.input)
    inputs[1] = _const(scope, e, namer, w_name, w_new, t)
    op = node.op_type
    forward = [d for d in folds if d.direction == "forward"]
    backward = [d for d in folds if d.direction == "backward"]
    for d in forward:
        inputs[0] = d.site.x
        e.drop.add(d.site.index)
        e.gone_names.add(d.site.y)
    if forward and op == "Gemm":
        e.attrs.setdefault(t, {})["beta"] = 1.0
    bias_base = inputs[2] if len(inputs) > 2 and inputs[2] else f"{w_name}_bias"
    if not backward:
        if op in ("Conv", "Gemm"):
            inputs = inputs[:2] + [_const(scope, e, namer, bias_base, b_new, t)]
        e.inputs[t] = inputs
        return
    final_y = backward[-1].site.y
    # every tensor between the target and the last BN disappears with the nodes that made it
    dropped = [d.site.index for d in backward] + [i for d in backward for i in d.through]
    gone = {node.output[0], *(d.site.y for d in backward[:-1])}
    bias_add = backward[0].bias_add
    if bias_add is not None:
        dropped.append(bias_add)
    gone.update(scope.nodes[i].output[0] for i in dropped if scope.nodes[i].op_type != "BatchNormalization")
    e.drop.update(dropped)
    e.gone_names.update(gone)
    for name in gone:  # Shape/Size readers of a vanished tensor read the same-shaped result
        for i in scope.consumers.get(name, []):
            if reads_shape_only(scope.nodes[i], name):
                e.inputs[i] = [final_y]
    if op == "MatMul":
        mm_out = namer(f"{final_y}_matmul")
        e.output0[t] = mm_out
        b_name = _const(scope, e, namer, f"{w_name}_bias", b_new, t)
        add = helper.make_node("Add", [mm_out, b_name], [final_y],
                               name=namer(f"{node.name or 'MatMul'}_bias"))
        e.after.setdefault(t, []).append(add)
    else:
        inputs = inputs[:2] + [_const(scope, e, namer, bias_base, b_new, t)]
        e.output0[t] = final_y
        if op == "Gemm":
            e.attrs.setdefault(t, {})["beta"] = 1.0
    e.inputs[t] = inputs


def _decompose(index: GraphIndex, consts: ConstantResolver, scope: Scope, d: FoldDecision,
               e: _ScopeEdits, namer: _Namer) -> bool:
    """Replace one BN by ``Mul(x, k) + s`` with precomputed constants (``--decompose``)."""
    site = d.site
    rank = index.rank(scope, site.x)
    elem = index.elem_type(scope, site.x) or consts.info(scope, site.scale).elem_type
    dtype = FLOAT_TYPES.get(elem) if elem else None
    if rank is None or rank < 2 or dtype is None:
        log.info("cannot decompose %s: rank or dtype of its input is unknown", site.name)
        return False
    v = {k: consts.value(scope, n) for k, n in site.param_names.items()}
    aff = bnmath.bn_affine(v["scale"], v["bias"], v["mean"], v["var"], site.epsilon)
    shape = (-1,) + (1,) * (rank - 2)
    k, ok_k = bnmath.cast_checked(aff.k.reshape(shape), dtype)
    s, ok_s = bnmath.cast_checked(aff.s.reshape(shape), dtype)
    if not (ok_k and ok_s):
        return False
    k_name = _const(scope, e, namer, f"{site.name}_scale", k, site.index)
    s_name = _const(scope, e, namer, f"{site.name}_shift", s, site.index)
    mid = namer(f"{site.y}_scaled")
    mul = helper.make_node("Mul", [site.x, k_name], [mid], name=namer(f"{site.name}_mul"))
    add = helper.make_node("Add", [mid, s_name], [site.y], name=namer(f"{site.name}_add"))
    e.drop.add(site.index)
    e.after.setdefault(site.index, []).extend([mul, add])
    return True


def _commit(scope: Scope, e: _ScopeEdits, *, list_as_inputs: bool = False) -> None:
    """Rebuild the scope's node list with the edits; IR < 4 lists initializers as inputs too."""
    new_nodes: list[onnx.NodeProto] = []
    for i, node in enumerate(scope.nodes):
        new_nodes.extend(e.before.get(i, []))
        if i not in e.drop:
            n = onnx.NodeProto()
            n.CopyFrom(node)
            if i in e.inputs:
                del n.input[:]
                n.input.extend(e.inputs[i])
            if i in e.output0:
                n.output[0] = e.output0[i]
            for key, value in e.attrs.get(i, {}).items():
                for attr in list(n.attribute):
                    if attr.name == key:
                        n.attribute.remove(attr)
                n.attribute.append(helper.make_attribute(key, value))
            new_nodes.append(n)
        new_nodes.extend(e.after.get(i, []))
    container = scope.graph if scope.graph is not None else scope.function
    del container.node[:]
    container.node.extend(new_nodes)
    if scope.graph is not None:
        scope.graph.initializer.extend(e.new_tensors)
        if list_as_inputs:
            scope.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                                     for t in e.new_tensors)
    elif e.new_tensors:  # pragma: no cover - functions get Constant nodes instead
        raise AssertionError("functions cannot hold initializers")
    value_info = getattr(container, "value_info", None)  # FunctionProto has it from IR 10
    if value_info is not None:
        for vi in [vi for vi in value_info if vi.name in e.gone_names]:
            value_info.remove(vi)


def _count_batchnorms(model: onnx.ModelProto) -> int:
    from .modelio import _node_lists

    return sum(1 for nodes in _node_lists(model) for n in nodes if n.op_type == "BatchNormalization")


def _check_batchnorms_removed(original: onnx.ModelProto, rewritten: onnx.ModelProto, removed: int) -> None:
    """The written model must hold exactly the BNs the report says were left."""
    before, after = _count_batchnorms(original), _count_batchnorms(rewritten)
    if after != before - removed:
        raise AssertionError(f"rewrite removed {before - after} BatchNormalization nodes but the plan "
                             f"folded or decomposed {removed}")


def _drop_orphans(model: onnx.ModelProto, ir_version: int) -> None:
    """Remove initializers and constant-only nodes that nothing reads any more.

    Runs to a fixed point per scope; only side-effect-free nodes (Constant and the ops the
    constant resolver evaluates) are removed. In IR < 4 an initializer is also listed as a graph
    input; its input entry goes with it.
    """
    changed = True
    while changed:
        changed = False
        index = GraphIndex.of_proto(model)
        used_anywhere: set[str] = set()
        for scope in index.scopes:
            used_anywhere.update(scope.consumers)
            used_anywhere.update(scope.outputs)
        for scope in index.scopes:
            container = scope.graph if scope.graph is not None else scope.function
            dead = [n for n in container.node
                    if (n.op_type == "Constant" or n.op_type in EVALUABLE_OPS) and n.domain in ("", "ai.onnx")
                    and all(o not in used_anywhere for o in n.output if o)
                    and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute)
                    and _all_inputs_constant(scope, n)]
            for n in dead:
                container.node.remove(n)
                changed = True
            if scope.graph is not None:
                # IR >= 4: an initializer that is also a graph input is part of the model's
                # signature; it stays even when --fold-overridable baked its value in.
                keep = set(scope.inputs) if (ir_version >= 4 and scope.is_main) else set()
                orphans = [t for t in scope.graph.initializer if t.name not in used_anywhere and t.name not in keep]
                orphan_names = {t.name for t in orphans}
                for t in orphans:
                    scope.graph.initializer.remove(t)
                    changed = True
                if orphan_names and ir_version < 4 and scope.is_main:
                    for vi in [vi for vi in scope.graph.input if vi.name in orphan_names]:
                        scope.graph.input.remove(vi)


def _all_inputs_constant(scope: Scope, node: onnx.NodeProto) -> bool:
    """True when every input of ``node`` is a constant (so removing it if unused is safe).
    CastLike's second input counts only for its type."""
    for pos, name in enumerate(node.input):
        if not name or (node.op_type == "CastLike" and pos == 1):
            continue
        s: Scope | None = scope
        while s is not None:
            if name in s.producers:
                p = s.producer(name)
                if p.op_type != "Constant" and not (p.op_type in EVALUABLE_OPS and _all_inputs_constant(s, p)):
                    return False
                break
            if name in s.initializers:
                break
            if name in s.input_set:
                return False
            s = s.parent
        if s is None:
            return False
    return True
