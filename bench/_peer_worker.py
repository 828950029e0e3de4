"""One benchmark step in its own process (run by bench/peers.py and bench/scale.py).

    python bench/_peer_worker.py fold TOOL IN.onnx OUT.onnx [--external yes|no|auto]
    python bench/_peer_worker.py check ORIGINAL.onnx CANDIDATE.onnx [--trials N] [--seed S]
    python bench/_peer_worker.py count MODEL.onnx
    python bench/_peer_worker.py versions

``fold`` applies one peer tool. Tools: onnxoptimizer, onnxsim, onnxslim,
ort-basic, onnxscript, onnx-load-save. When the input keeps its weights in
external data (or is near the 2 GiB protobuf limit), the output is written with
external data too, in one file ``OUT.onnx.data`` next to it.

``check`` runs the original and the candidate in onnxruntime with all graph
optimizations disabled (at BASIC, ORT folds BN itself) on the same seeded
random inputs and reports BN counts and the worst errors as JSON.

The last stdout line starting with ``@@BENCH@@`` carries a JSON result.
"""
from __future__ import annotations

import json
import os
import sys
import time

MARK = "@@BENCH@@"
TWO_GIB_SAFE = 1_900_000_000


def emit(obj: dict) -> None:
    sys.stdout.flush()
    print(MARK + json.dumps(obj), flush=True)


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def uses_external_data(path: str) -> bool:
    import onnx

    if os.path.getsize(path) > TWO_GIB_SAFE:
        return True
    m = onnx.load(path, load_external_data=False)

    def tensors(g):
        yield from g.initializer
        for node in g.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR:
                    yield a.t
                elif a.type == onnx.AttributeProto.GRAPH:
                    yield from tensors(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        yield from tensors(sg)

    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors(m.graph))


def data_name(out: str) -> str:
    return os.path.basename(out) + ".data"


def fold_onnxoptimizer(inp: str, out: str, ext: bool) -> dict:
    import onnx
    import onnxoptimizer

    passes = ["fuse_bn_into_conv", "eliminate_unused_initializer"]
    avail = set(onnxoptimizer.get_available_passes())
    passes = [p for p in passes if p in avail]
    C = getattr(onnxoptimizer, "C", None)
    if ext and C is not None and hasattr(C, "optimize_from_path"):
        # The >2 GiB route onnxoptimizer.optimize itself falls back to; called
        # directly so the input is not first loaded and re-saved.
        C.optimize_from_path(inp, out, passes, data_name(out))
        return {"passes": passes, "route": "optimize_from_path"}
    m = onnx.load(inp)
    m2 = onnxoptimizer.optimize(m, passes)
    del m
    save_proto(m2, out, ext)
    return {"passes": passes, "route": "optimize"}


def fold_onnxsim(inp: str, out: str, ext: bool) -> dict:
    import inspect

    import onnx
    import onnxsim

    params = inspect.signature(onnxsim.simplify).parameters
    if "output_path" in params:
        _, ok = onnxsim.simplify(inp, output_path=out)
        if not os.path.exists(out):
            raise RuntimeError("onnxsim wrote no output")
    else:
        m2, ok = onnxsim.simplify(onnx.load(inp))
        save_proto(m2, out, ext)
    return {"check_ok": bool(ok)}


def fold_onnxslim(inp: str, out: str, ext: bool) -> dict:
    import onnxslim

    cwd = os.getcwd()
    os.chdir(os.path.dirname(os.path.abspath(out)))  # onnxslim resolves its data file vs cwd
    try:
        onnxslim.slim(os.path.abspath(inp), os.path.abspath(out), save_as_external_data=ext)
    finally:
        os.chdir(cwd)
    if not os.path.exists(out):
        raise RuntimeError("onnxslim wrote no output")
    return {}


def fold_ort_basic(inp: str, out: str, ext: bool) -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = out
    if ext:
        so.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", data_name(out)
        )
        so.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
    ort.InferenceSession(inp, so, providers=["CPUExecutionProvider"])
    if not os.path.exists(out):
        raise RuntimeError("onnxruntime wrote no optimized model")
    return {}


def onnxscript_rules():
    """The BatchNormalization fusion rules of the installed onnxscript."""
    try:  # onnxscript >= 0.4
        from onnxscript.rewriter.rules.common import (
            fuse_batchnorm_into_conv_rule,
            fuse_batchnorm_into_conv_transpose_rule,
            fuse_batchnorm_into_gemm_rule,
        )

        return [
            fuse_batchnorm_into_conv_rule,
            fuse_batchnorm_into_conv_transpose_rule,
            fuse_batchnorm_into_gemm_rule,
        ]
    except ImportError:
        pass
    try:  # older layout
        from onnxscript.rewriter import fuse_batchnorm

        return list(fuse_batchnorm.rules.rules)
    except ImportError as exc:
        raise RuntimeError("no BatchNormalization fusion rules in this onnxscript") from exc


def fold_onnxscript(inp: str, out: str, ext: bool) -> dict:
    import onnx_ir as ir
    from onnxscript import rewriter

    model = ir.load(inp)
    model = rewriter.rewrite(model, pattern_rewrite_rules=onnxscript_rules())
    if ext:
        ir.save(model, out, external_data=data_name(out))
    else:
        ir.save(model, out)
    return {}


def fold_load_save(inp: str, out: str, ext: bool) -> dict:
    import onnx

    m = onnx.load(inp)
    save_proto(m, out, ext)
    return {}


def save_proto(m, out: str, ext: bool) -> None:
    import onnx

    if not ext and m.ByteSize() > TWO_GIB_SAFE:
        ext = True
    if ext:
        onnx.save(m, out, save_as_external_data=True, all_tensors_to_one_file=True,
                  location=data_name(out))
    else:
        onnx.save(m, out)


FOLDERS = {
    "onnxoptimizer": fold_onnxoptimizer,
    "onnxsim": fold_onnxsim,
    "onnxslim": fold_onnxslim,
    "ort-basic": fold_ort_basic,
    "onnxscript": fold_onnxscript,
    "onnx-load-save": fold_load_save,
}


def cmd_fold(tool: str, inp: str, out: str, external: str = "auto") -> int:
    t0 = time.perf_counter()
    # The caller says whether the input uses external data when it knows, so a
    # large inline model is not parsed an extra time just to find out.
    ext = uses_external_data(inp) if external == "auto" else external == "yes"
    info = FOLDERS[tool](inp, out, ext)
    emit({"tool": tool, "inproc_s": time.perf_counter() - t0, "external": ext, **(info or {})})
    return 0


# --------------------------------------------------------------------------- #
# check
# --------------------------------------------------------------------------- #
def count_ops(model, op_type: str = "BatchNormalization") -> int:
    import onnx

    def in_graph(g) -> int:
        n = 0
        for node in g.node:
            if node.op_type == op_type and node.domain in ("", "ai.onnx"):
                n += 1
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    n += in_graph(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    n += sum(in_graph(sg) for sg in a.graphs)
        return n

    n = in_graph(model.graph)
    for f in model.functions:
        n += sum(1 for node in f.node if node.op_type == op_type)
    return n


def make_inputs(sess, seed: int, trial: int):
    import numpy as np

    rng = np.random.default_rng(seed + trial)
    type_map = {
        "tensor(float)": np.float32, "tensor(double)": np.float64,
        "tensor(float16)": np.float16, "tensor(int64)": np.int64,
        "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
        "tensor(bool)": np.bool_,
    }
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d >= 0 else 1 for d in i.shape]
        dt = type_map.get(i.type)
        if dt is None:
            raise RuntimeError(f"input {i.name}: unsupported type {i.type}")
        if dt is np.bool_:
            # alternate so both branches of an If are exercised over the trials
            feeds[i.name] = np.full(shape, trial % 2 == 0, dtype=np.bool_)
        elif np.issubdtype(dt, np.integer):
            feeds[i.name] = rng.integers(0, 4, size=shape).astype(dt)
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(dt)
    return feeds


def ort_session(path: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def _short(exc: BaseException, limit: int = 90) -> str:
    text = " ".join(str(exc).split())
    # ORT messages start with a long "[ONNXRuntimeError] : 1 : FAIL : " prefix
    for sep in ("FAIL : ", "INVALID_GRAPH : ", "INVALID_ARGUMENT : ", "NOT_IMPLEMENTED : ",
                "RUNTIME_EXCEPTION : "):
        if sep in text:
            text = text.split(sep, 1)[1]
    import re

    text = re.sub(r"Load model from \S+ failed: ?", "", text)
    text = re.sub(r"(/[^\s/]+)+/", "", text)  # drop temp-folder paths
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_check(orig: str, cand: str, trials: int, seed: int) -> int:
    import numpy as np
    import onnx

    res: dict = {"orig": orig, "cand": cand}
    m0 = onnx.load(orig, load_external_data=False)
    res["bn_orig"] = count_ops(m0)
    try:
        m1 = onnx.load(cand, load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        res["invalid"] = "cannot parse: " + _short(exc)
        emit(res)
        return 0
    res["bn_left"] = count_ops(m1)
    res["nodes_orig"] = len(m0.graph.node)
    res["nodes_left"] = len(m1.graph.node)
    try:
        onnx.checker.check_model(cand if os.path.getsize(cand) > TWO_GIB_SAFE else m1)
        res["checker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        res["checker"] = _short(exc)
    del m0, m1

    try:
        s0 = ort_session(orig)
    except Exception as exc:  # noqa: BLE001
        res["orig_error"] = "original does not load in onnxruntime: " + _short(exc)
        emit(res)
        return 0
    try:
        s1 = ort_session(cand)
    except Exception as exc:  # noqa: BLE001
        res["invalid"] = _short(exc)
        emit(res)
        return 0

    names0 = [o.name for o in s0.get_outputs()]
    names1 = [o.name for o in s1.get_outputs()]
    if len(names0) != len(names1):
        res["invalid"] = f"{len(names1)} outputs instead of {len(names0)}"
        emit(res)
        return 0
    inputs0 = {i.name for i in s0.get_inputs()}
    inputs1 = {i.name for i in s1.get_inputs()}
    if not inputs1 <= inputs0:
        res["invalid"] = f"new inputs: {sorted(inputs1 - inputs0)[:3]}"
        emit(res)
        return 0

    worst_abs = 0.0
    worst_rel = 0.0
    notes: list[str] = []
    for trial in range(trials):
        feeds = make_inputs(s0, seed, trial)
        try:
            out0 = s0.run(None, feeds)
        except Exception as exc:  # noqa: BLE001
            res["orig_error"] = "original fails in onnxruntime: " + _short(exc)
            emit(res)
            return 0
        try:
            out1 = s1.run(None, {k: v for k, v in feeds.items() if k in inputs1})
        except Exception as exc:  # noqa: BLE001
            res["invalid"] = "run fails: " + _short(exc)
            emit(res)
            return 0
        for name, a, b in zip(names0, out0, out1):
            a = np.asarray(a)
            b = np.asarray(b)
            if a.shape != b.shape:
                res["invalid"] = f"output {name}: shape {b.shape} != {a.shape}"
                emit(res)
                return 0
            if a.dtype != b.dtype:
                notes.append(f"{name}: dtype {b.dtype} != {a.dtype}")
            if a.size == 0:
                continue
            if not np.issubdtype(a.dtype, np.floating):
                diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                worst_abs = max(worst_abs, diff)
                continue
            a64 = a.astype(np.float64)
            b64 = b.astype(np.float64)
            fin_a = np.isfinite(a64)
            fin_b = np.isfinite(b64)
            if np.any(fin_a != fin_b):
                notes.append(f"{name}: {int(np.sum(fin_a & ~fin_b))} non-finite values")
                worst_abs = worst_rel = float("inf")
                continue
            both = fin_a & fin_b
            if not np.any(both):
                continue
            if np.any(a64[~both] != b64[~both]):
                notes.append(f"{name}: inf/nan mismatch")
                worst_abs = worst_rel = float("inf")
            d = np.abs(a64[both] - b64[both])
            mad = float(d.max())
            scale = float(np.abs(a64[both]).max())
            worst_abs = max(worst_abs, mad)
            worst_rel = max(worst_rel, mad / scale if scale > 0 else (0.0 if mad == 0 else float("inf")))
    res["max_abs"] = worst_abs
    res["max_rel"] = worst_rel
    res["out_dtypes"] = sorted({str(o.type) for o in s0.get_outputs()})
    if notes:
        res["notes"] = sorted(set(notes))[:4]
    emit(res)
    return 0


def cmd_count(path: str) -> int:
    import onnx

    m = onnx.load(path, load_external_data=False)
    emit({"bn": count_ops(m), "nodes": len(m.graph.node),
          "initializers": len(m.graph.initializer)})
    return 0


def cmd_versions() -> int:
    import importlib.metadata as md

    out = {}
    for dist in ("onnx", "onnxruntime", "numpy", "onnxoptimizer", "onnxsim", "onnxslim",
                 "onnxscript", "onnx-ir", "psutil", "rich", "protobuf"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    emit(out)
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd = argv[0]
    if cmd == "fold" and len(argv) in (4, 6) and (len(argv) == 4 or argv[4] == "--external"):
        return cmd_fold(argv[1], argv[2], argv[3], argv[5] if len(argv) == 6 else "auto")
    if cmd == "check" and len(argv) >= 3:
        trials, seed = 2, 0
        rest = argv[3:]
        while rest:
            if rest[0] == "--trials":
                trials = int(rest[1])
            elif rest[0] == "--seed":
                seed = int(rest[1])
            else:
                print(f"unknown option {rest[0]}", file=sys.stderr)
                return 2
            rest = rest[2:]
        return cmd_check(argv[1], argv[2], trials, seed)
    if cmd == "versions":
        return cmd_versions()
    if cmd == "count" and len(argv) == 2:
        return cmd_count(argv[1])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
