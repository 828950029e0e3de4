#!/usr/bin/env python
"""Scale benchmark: bnfold against peers on ~1 GiB and ~3 GiB Conv+BN+Relu stacks.

    python bench/scale.py [--models 1,2] [--tools ...] [--repeat 3] [--quick] [--huge]
                          [--json OUT] [--cache-dir bench/.models]

Models (float32, input 1x1024x4x4, blocks of Conv(1024→1024, 3x3, pad 1,
no bias) + BatchNormalization + Relu, weights from a seeded RNG):

* 1 – 28 blocks, ~1.0 GiB, one self-contained .onnx file;
* 2 – 85 blocks, ~3.0 GiB, weights in one external data file;
* 3 – 142 blocks, ~5.0 GiB, external data (only with ``--huge``).

``--quick`` swaps in 256-channel variants of the same models (~64 MiB for 28
blocks) for smoke tests. Models are generated once, with no more than one
block's weights in memory, and cached in ``--cache-dir`` (delete the folder
to regenerate).

Every tool runs as a separate whole process; each is measured ``--repeat``
times (round-robin across tools) and the median wall time and median peak RSS
are reported. Peak RSS comes from ``/usr/bin/time -v`` (or a getrusage
wrapper). The page cache is warmed once per model, and outputs are deleted and
``sync``-ed after every run, outside the timed window.

Tools: bnfold-fuse (``bnfold fuse --no-validate``), bnfold-inspect
(``bnfold inspect --format json``), load-save (onnx.load + onnx.save, no
folding), ort-basic (onnxruntime offline optimizer, ORT_ENABLE_BASIC),
onnxscript (fuse_batchnorm rules on onnx_ir), onnxslim, onnxoptimizer
(fuse_bn_into_conv), onnxsim. See bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _benchlib as bl  # noqa: E402

TOOLS = ["bnfold-fuse", "bnfold-inspect", "load-save", "ort-basic", "onnxscript",
         "onnxslim", "onnxoptimizer", "onnxsim"]
WORKER_TOOL = {"load-save": "onnx-load-save", "ort-basic": "ort-basic",
               "onnxscript": "onnxscript", "onnxslim": "onnxslim",
               "onnxoptimizer": "onnxoptimizer", "onnxsim": "onnxsim"}
MIB = 1024 * 1024
GIB = 1024 * MIB
ALIGN = 4096


@dataclass(frozen=True)
class Spec:
    key: str
    blocks: int
    channels: int
    external: bool
    spatial: int = 4
    seed: int = 0

    @property
    def stem(self) -> str:
        kind = "ext" if self.external else "inline"
        return f"scale{self.key}_{self.blocks}x{self.channels}_{kind}_s{self.seed}"

    @property
    def approx_bytes(self) -> int:
        return self.blocks * (self.channels * self.channels * 9 + 4 * self.channels) * 4


def spec_for(key: str, quick: bool) -> Spec:
    blocks = {"1": 28, "2": 85, "3": 142}[key]
    if quick:
        # 256 channels: 16x less weight per block; model 1 ~63 MiB, model 2 ~191 MiB
        # (model 2 stays at 85 blocks so its many-tensor shape is kept)
        return Spec(f"{key}q", blocks, 256, external=key != "1")
    return Spec(key, blocks, 1024, external=key != "1")


# --------------------------------------------------------------------------- #
# Model generation (streamed: one block of weights in memory at a time)
# --------------------------------------------------------------------------- #
def _block_arrays(spec: Spec, i: int):
    import numpy as np

    c = spec.channels
    rng = np.random.default_rng([spec.seed, i])
    w = rng.standard_normal((c, c, 3, 3), dtype=np.float32)
    w *= np.float32(np.sqrt(2.0 / (c * 9)))
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.normal(0.0, 0.1, c).astype(np.float32)
    mean = rng.normal(0.0, 0.1, c).astype(np.float32)
    var = rng.uniform(0.5, 1.5, c).astype(np.float32)
    return [(f"conv{i}.weight", w), (f"bn{i}.weight", gamma), (f"bn{i}.bias", beta),
            (f"bn{i}.running_mean", mean), (f"bn{i}.running_var", var)]


def _graph_skeleton(spec: Spec):
    from onnx import TensorProto, helper

    c, s = spec.channels, spec.spatial
    nodes = []
    x = "input"
    for i in range(spec.blocks):
        nodes.append(helper.make_node("Conv", [x, f"conv{i}.weight"], [f"conv{i}_out"],
                                      name=f"conv{i}", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node(
            "BatchNormalization",
            [f"conv{i}_out", f"bn{i}.weight", f"bn{i}.bias", f"bn{i}.running_mean",
             f"bn{i}.running_var"],
            [f"bn{i}_out"], name=f"bn{i}", epsilon=1e-5))
        y = "output" if i == spec.blocks - 1 else f"relu{i}_out"
        nodes.append(helper.make_node("Relu", [f"bn{i}_out"], [y], name=f"relu{i}"))
        x = y
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, c, s, s])]
    outputs = [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, c, s, s])]
    return nodes, inputs, outputs


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _tensor_meta(name: str, arr):
    from onnx import TensorProto

    t = TensorProto(name=name, data_type=TensorProto.FLOAT)
    t.dims.extend(arr.shape)
    return t


def write_inline(spec: Spec, path: Path) -> None:
    """Write a self-contained model, byte-identical to onnx.save's output.

    Protobuf serializes fields in field-number order, so the ModelProto is
    written as: model fields < 7, the graph (fields 1-2, then each initializer
    (field 5) as it is generated, then fields 11-12), then model fields > 7.
    The graph's length is known up front from the tensor shapes.
    """
    from onnx import GraphProto, ModelProto, helper

    nodes, inputs, outputs = _graph_skeleton(spec)
    g_head = GraphProto(name=f"scale{spec.key}")
    g_head.node.extend(nodes)
    g_tail = GraphProto()
    g_tail.input.extend(inputs)
    g_tail.output.extend(outputs)

    # tensor sizes without generating data
    c = spec.channels
    shapes = [(c, c, 3, 3), (c,), (c,), (c,), (c,)]
    names = lambda i: [f"conv{i}.weight", f"bn{i}.weight", f"bn{i}.bias",  # noqa: E731
                       f"bn{i}.running_mean", f"bn{i}.running_var"]

    class _Shape:
        def __init__(self, shape):
            self.shape = shape

    def entry_len(name, shape) -> int:
        meta = _tensor_meta(name, _Shape(shape)).SerializeToString()
        nbytes = 4 * math.prod(shape)
        tlen = len(meta) + 1 + len(_varint(nbytes)) + nbytes  # + raw_data (field 9)
        return 1 + len(_varint(tlen)) + tlen  # initializer (field 5)

    init_len = sum(entry_len(n, s) for i in range(spec.blocks) for n, s in zip(names(i), shapes))
    head = g_head.SerializeToString()
    tail = g_tail.SerializeToString()
    graph_len = len(head) + init_len + len(tail)

    m_head = ModelProto(ir_version=8, producer_name="bnfold-bench", producer_version="1")
    m_tail = ModelProto()
    m_tail.opset_import.extend([helper.make_opsetid("", 17)])

    tmp = path.with_suffix(".onnx.partial")
    written = 0
    with open(tmp, "wb") as f:
        f.write(m_head.SerializeToString())
        f.write(b"\x3a" + _varint(graph_len))  # field 7, wire type 2
        f.write(head)
        for i in range(spec.blocks):
            for name, arr in _block_arrays(spec, i):
                meta = _tensor_meta(name, arr).SerializeToString()
                raw = arr.tobytes()
                tbytes_len = len(meta) + 1 + len(_varint(len(raw))) + len(raw)
                f.write(b"\x2a" + _varint(tbytes_len))  # field 5
                f.write(meta)
                f.write(b"\x4a" + _varint(len(raw)))  # field 9 raw_data
                f.write(raw)
                written += 1 + len(_varint(tbytes_len)) + tbytes_len
        f.write(tail)
        f.write(m_tail.SerializeToString())
    if written != init_len:
        tmp.unlink()
        raise RuntimeError(f"size mismatch writing {path}: {written} != {init_len}")
    os.replace(tmp, path)


def write_external(spec: Spec, path: Path) -> None:
    """Write the graph with every tensor in one external data file ``<name>.data``."""
    from onnx import ModelProto, TensorProto, helper

    nodes, inputs, outputs = _graph_skeleton(spec)
    data_name = path.name + ".data"
    data_path = path.parent / data_name
    tmp_data = path.parent / (data_name + ".partial")
    inits = []
    with open(tmp_data, "wb") as f:
        for i in range(spec.blocks):
            for name, arr in _block_arrays(spec, i):
                off = f.tell()
                if off % ALIGN:
                    f.write(b"\0" * (ALIGN - off % ALIGN))
                    off = f.tell()
                raw = arr.tobytes()
                f.write(raw)
                t = _tensor_meta(name, arr)
                t.data_location = TensorProto.EXTERNAL
                for k, v in (("location", data_name), ("offset", str(off)),
                             ("length", str(len(raw)))):
                    e = t.external_data.add()
                    e.key, e.value = k, v
                inits.append(t)
    graph = helper.make_graph(nodes, f"scale{spec.key}", inputs, outputs, initializer=inits)
    model = ModelProto(ir_version=8, producer_name="bnfold-bench", producer_version="1")
    model.graph.CopyFrom(graph)
    model.opset_import.extend([helper.make_opsetid("", 17)])
    os.replace(tmp_data, data_path)
    tmp = path.with_suffix(".onnx.partial")
    tmp.write_bytes(model.SerializeToString())
    os.replace(tmp, path)


def model_files(spec: Spec, cache: Path) -> list[Path]:
    p = cache / f"{spec.stem}.onnx"
    return [p, cache / (p.name + ".data")] if spec.external else [p]


def ensure_model(spec: Spec, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    files = model_files(spec, cache)
    if all(f.exists() for f in files):
        return files[0]
    print(f"generating model {spec.key}: {spec.blocks} blocks x {spec.channels} ch, "
          f"~{spec.approx_bytes / GIB:.2f} GiB, "
          f"{'external data' if spec.external else 'single file'} -> {files[0]}", flush=True)
    t0 = time.perf_counter()
    (write_external if spec.external else write_inline)(spec, files[0])
    print(f"  done in {time.perf_counter() - t0:.1f} s "
          f"({sum(f.stat().st_size for f in files) / GIB:.2f} GiB)", flush=True)
    return files[0]


def warm_cache(files: list[Path]) -> None:
    buf = bytearray(8 * MIB)
    for f in files:
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass


# --------------------------------------------------------------------------- #
# Running
# --------------------------------------------------------------------------- #
def tool_command(tool: str, spec: Spec, inp: Path, out: Path, python: str, bnfold_cmd):
    if tool == "bnfold-fuse":
        return [*bnfold_cmd, "fuse", str(inp), "-o", str(out), "--no-validate"]
    if tool == "bnfold-inspect":
        return [*bnfold_cmd, "inspect", str(inp), "--format", "json"]
    return bl.worker_command(python, "fold", WORKER_TOOL[tool], str(inp), str(out),
                             "--external", "yes" if spec.external else "no")


def tool_available(tool: str, versions: dict, bnfold_cmd) -> tuple[bool, str]:
    if tool.startswith("bnfold"):
        return bnfold_cmd is not None, ("found" if bnfold_cmd else "not installed")
    dist = {"load-save": "onnx", "ort-basic": "onnxruntime"}.get(tool, tool)
    v = versions.get(dist)
    if tool == "onnxscript" and v and not versions.get("onnx-ir"):
        return False, "onnx-ir not installed"
    return v is not None, v or "not installed"


def count_bn(python: str, out: Path, timeout: float) -> dict | None:
    r = bl.run_measured(bl.worker_command(python, "count", str(out)), timeout)
    return bl.parse_worker_json(r.stdout)


def median_or_none(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--models", default="1,2", help="comma-separated: 1, 2, 3 (default 1,2)")
    p.add_argument("--huge", action="store_true", help="also run model 3 (~5 GiB)")
    p.add_argument("--quick", action="store_true", help="256-channel variants (~64 MiB)")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"subset of {','.join(TOOLS)}")
    p.add_argument("--repeat", type=int, default=3, help="runs per tool (median), default 3")
    p.add_argument("--cache-dir", default=str(bl.BENCH_DIR / ".models"))
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per run (600)")
    p.add_argument("--mem-limit-gib", type=float, default=16.0,
                   help="kill a run whose process-group RSS passes this (16 GiB; onnxoptimizer needs ~15 on model 2)")
    p.add_argument("--python", default=sys.executable, help="interpreter for the peer tools")
    p.add_argument("--bnfold", help="command that runs bnfold (default: repo .venv's bnfold)")
    p.add_argument("--no-verify", action="store_true",
                   help="don't count the BN nodes left in each tool's first output")
    p.add_argument("--generate-only", action="store_true", help="make the models and stop")
    p.add_argument("--json", metavar="OUT", help="write all measurements as JSON")
    p.add_argument("--plain", action="store_true", help="plain-text tables")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    keys = [k.strip() for k in args.models.split(",") if k.strip()]
    if args.huge and "3" not in keys:
        keys.append("3")
    if any(k not in ("1", "2", "3") for k in keys):
        print("--models takes 1, 2 and/or 3", file=sys.stderr)
        return 2
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if any(t not in TOOLS for t in tools):
        print(f"unknown tool in {tools}; choose from {TOOLS}", file=sys.stderr)
        return 2
    cache = Path(args.cache_dir)
    specs = [spec_for(k, args.quick) for k in keys]
    paths = {s.key: ensure_model(s, cache) for s in specs}
    if args.generate_only:
        return 0

    info = bl.machine_info()
    bnfold_cmd = bl.bnfold_command(args.bnfold)
    vr = bl.run_measured(bl.worker_command(args.python, "versions"), 120)
    versions = bl.parse_worker_json(vr.stdout) or {}
    avail = {t: tool_available(t, versions, bnfold_cmd) for t in tools}
    print(f"bnfold scale benchmark — {bl.machine_line(info)}")
    print(f"peak RSS via {bl.rss_method()}; median of {args.repeat} runs; "
          f"peer interpreter {args.python}")
    print("bnfold: " + (" ".join(bnfold_cmd) if bnfold_cmd else "not found"))
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
    print()

    mem_kib = int(args.mem_limit_gib * GIB / 1024)
    report = {"machine": info, "versions": versions, "bnfold": bnfold_cmd,
              "repeat": args.repeat, "rss_method": bl.rss_method(), "models": []}
    out_root = cache / "_out"
    for spec in specs:
        mpath = paths[spec.key]
        files = model_files(spec, cache)
        size = sum(f.stat().st_size for f in files)
        print(f"== model {spec.key}: {spec.blocks} x (Conv {spec.channels}->{spec.channels} 3x3"
              f" + BN + Relu), {bl.fmt_bytes(size)}, "
              f"{'external data' if spec.external else 'single file'}", flush=True)
        warm_cache(files)
        runs: dict[str, list[bl.RunResult]] = {t: [] for t in tools}
        verify: dict[str, dict | None] = {}
        for rep in range(args.repeat):
            for tool in tools:
                if not avail[tool][0]:
                    continue
                if runs[tool] and not runs[tool][-1].ok:
                    continue  # failed once: don't burn time repeating it
                out_root.mkdir(parents=True, exist_ok=True)
                outdir = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=out_root))
                out = outdir / "folded.onnx"
                cmd = tool_command(tool, spec, mpath, out, args.python, bnfold_cmd)
                r = bl.run_measured(cmd, args.timeout, mem_kib)
                if r.ok and tool != "bnfold-inspect" and not out.exists():
                    r.error = "exit 0 but no output written"
                    r.rc = -999
                r.extra["out_bytes"] = sum(f.stat().st_size for f in outdir.iterdir()) \
                    if outdir.exists() else 0
                runs[tool].append(r)
                if rep == 0 and r.ok and not args.no_verify and tool != "bnfold-inspect":
                    verify[tool] = count_bn(args.python, out, args.timeout)
                shutil.rmtree(outdir, ignore_errors=True)
                os.sync()
                status = "ok" if r.ok else r.short_error(80)
                left = ""
                if tool in verify and verify[tool]:
                    left = (f" BN left {verify[tool].get('bn')}"
                            f" ({verify[tool].get('nodes')} nodes of {3 * spec.blocks})")
                print(f"  run {rep + 1}/{args.repeat} {tool:<15} {bl.fmt_s(r.wall_s):>8} "
                      f"{bl.fmt_kib(r.peak_rss_kib):>9}  {status}{left}", flush=True)

        # ---- summarise ------------------------------------------------------
        summary = {}
        for tool in tools:
            rs = runs[tool]
            good = [r for r in rs if r.ok]
            summary[tool] = {
                "available": avail[tool][0], "info": avail[tool][1],
                "ok": bool(rs) and len(good) == len(rs),
                "error": None if (not rs or rs[-1].ok) else rs[-1].short_error(90),
                "wall_s": median_or_none([r.wall_s for r in good]),
                "wall_min_s": min((r.wall_s for r in good), default=None),
                "wall_max_s": max((r.wall_s for r in good), default=None),
                "peak_rss_kib": median_or_none([r.peak_rss_kib for r in good]),
                "bn_left": (verify.get(tool) or {}).get("bn"),
                "nodes_left": (verify.get(tool) or {}).get("nodes"),
                "out_bytes": (good[0].extra.get("out_bytes") if good else None),
                "runs": [r.as_dict() for r in rs],
            }
        bn_wall = summary.get("bnfold-fuse", {}).get("wall_s")
        rows = []
        for tool in tools:
            s = summary[tool]
            if not s["available"]:
                rows.append([tool, "not installed", "", "", "", "", ""])
                continue
            if s["wall_s"] is None:
                rows.append([tool, "FAIL", "", "", "", "", s["error"] or "?"])
                continue
            rss = s["peak_rss_kib"]
            rows.append([
                tool,
                f"{bl.fmt_s(s['wall_s'])}" + (f" ({s['wall_min_s']:.1f}–{s['wall_max_s']:.1f})"
                                              if args.repeat > 1 else ""),
                bl.fmt_kib(rss),
                f"{rss * 1024 / size:.2f}" if rss else "?",
                f"{bn_wall / s['wall_s']:.2f}" if bn_wall and s["wall_s"] else "",
                "" if s["bn_left"] is None else f"{s['bn_left']} ({s['nodes_left']} nodes)",
                "" if s["ok"] else (s["error"] or ""),
            ])
        bl.print_table(
            f"model {spec.key} ({bl.fmt_bytes(size)}, {spec.blocks} BN): median of {args.repeat}",
            ["tool", "wall", "peak RSS", "RSS/size", "bnfold-fuse wall / tool wall",
             "BN left (nodes)", "note"],
            rows, use_rich=not args.plain)

        ratios = targets(spec, summary, size)
        for line in ratios["lines"]:
            print("  " + line)
        print(flush=True)
        report["models"].append({"key": spec.key, "path": str(mpath), "bytes": size,
                                 "blocks": spec.blocks, "channels": spec.channels,
                                 "external": spec.external, "tools": summary,
                                 "ratios": ratios["values"]})
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
        print(f"wrote {args.json}")
    shutil.rmtree(out_root, ignore_errors=True)
    return 0


def targets(spec: Spec, summary: dict, size: int) -> dict:
    """The ratios the project's targets are stated in (targets for models 1 and 2)."""
    def g(tool, key):
        return (summary.get(tool) or {}).get(key)

    fuse_w, fuse_r = g("bnfold-fuse", "wall_s"), g("bnfold-fuse", "peak_rss_kib")
    ins_w, ins_r = g("bnfold-inspect", "wall_s"), g("bnfold-inspect", "peak_rss_kib")
    ort_w, osc_w = g("ort-basic", "wall_s"), g("onnxscript", "wall_s")
    base = spec.key[0]  # "1q" -> "1"
    vals, lines = {}, []

    def add(name, value, target, fmt, cmp):
        vals[name] = value
        if value is None:
            lines.append(f"{name}: n/a" + (f"   (target {target})" if target else ""))
            return
        met = "" if target is None else ("  MET" if cmp(value) else "  MISSED")
        lines.append(f"{name}: {fmt(value)}" + (f"   (target {target}){met}" if target else ""))

    r2 = lambda v: f"{v:.2f}"  # noqa: E731
    add("bnfold-fuse wall / ort-basic wall",
        fuse_w / ort_w if fuse_w and ort_w else None,
        "<= 0.8" if base == "1" else None, r2, lambda v: v <= 0.8)
    add("bnfold-fuse peak RSS / model size",
        fuse_r * 1024 / size if fuse_r else None,
        "<= 1.3" if base == "1" else None, r2, lambda v: v <= 1.3)
    add("bnfold-fuse wall / onnxscript wall",
        fuse_w / osc_w if fuse_w and osc_w else None,
        "<= 1.0" if base == "2" else None, r2, lambda v: v <= 1.0)
    add("bnfold-fuse peak RSS (MiB)", fuse_r / 1024 if fuse_r else None,
        "<= 512" if base == "2" else None, lambda v: f"{v:.0f}", lambda v: v <= 512)
    add("bnfold-inspect wall (s)", ins_w, "< 2" if base == "2" else None, r2, lambda v: v < 2)
    add("bnfold-inspect peak RSS (MiB)", ins_r / 1024 if ins_r else None,
        "< 300" if base == "2" else None, lambda v: f"{v:.0f}", lambda v: v < 300)
    if spec.key.endswith("q"):
        lines.append("(quick variant: the targets are stated for the full-size models)")
    return {"values": vals, "lines": lines}


if __name__ == "__main__":
    sys.exit(main())
