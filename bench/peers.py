#!/usr/bin/env python
"""Fold BatchNormalization with bnfold and five peer tools; compare the results.

    python bench/peers.py [MODELS...] [--no-synthetic] [--json OUT] [--tools a,b]

Models: every ``*.onnx`` under ``sample_models/`` plus, unless
``--no-synthetic``, the synthetic cases of ``bench/_synthetic.py`` (written
to a temporary folder), plus any paths given.

Tools (each run as a separate whole process, with a timeout and a memory cap):

* ``bnfold``        – ``bnfold fuse IN -o OUT --no-validate``
* ``onnxoptimizer`` – ``onnxoptimizer.optimize(m, ["fuse_bn_into_conv", "eliminate_unused_initializer"])``
* ``onnxsim``       – ``onnxsim.simplify(IN, output_path=OUT)`` (defaults)
* ``onnxslim``      – ``onnxslim.slim(IN, OUT)`` (defaults)
* ``ort-basic``     – onnxruntime offline optimizer, ORT_ENABLE_BASIC, CPU
* ``onnxscript``    – ``onnxscript.rewriter.rewrite`` with the three fuse_batchnorm rules, on onnx_ir

For each result: BN nodes left (original → result, subgraphs included), the
worst output error against the original, both run in onnxruntime with
ORT_DISABLE_ALL on the same seeded random inputs (symbolic dims = 1, bool
inputs True then False so both If branches run), and the tool's wall time.

Errors: ``abs`` is the largest |ref - out| over all outputs and trials;
``rel`` is, per output, that largest difference divided by max|ref|, worst
over outputs (so it is relative to the output's range, not element-wise).

Verdicts: ``ok``; ``WRONG`` (error above tolerance: 1e-3 rel for float32
outputs, 1e-2 for float16); ``folded!`` (a BN that had to stay was folded,
though ORT CPU's outputs still match: it computes float16 Mul/Conv in float32,
so folding math left in the graph as nodes does not overflow there); ``skipped`` /
``partial`` (BN that a correct folder removes was left); ``invalid`` (the
written model does not load or run in onnxruntime); ``FAIL`` (the tool
failed, crashed or timed out); ``not installed``.

Peers are optional benchmark dependencies (``pip install -e '.[bench]'``); a
missing one shows as "not installed".
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _benchlib as bl  # noqa: E402

TOOLS = ["bnfold", "onnxoptimizer", "onnxsim", "onnxslim", "ort-basic", "onnxscript"]
TOL_REL = {"float16": 1e-2, "default": 1e-3}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("models", nargs="*", help="extra .onnx models to fold")
    p.add_argument("--no-synthetic", action="store_true", help="skip the generated cases")
    p.add_argument("--no-samples", action="store_true", help="skip sample_models/*.onnx")
    p.add_argument("--json", metavar="OUT", help="write all results as JSON")
    p.add_argument("--tools", default=",".join(TOOLS),
                   help=f"comma-separated subset of {','.join(TOOLS)}")
    p.add_argument("--cases", help="comma-separated subset of the synthetic case names")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per tool run (180)")
    p.add_argument("--mem-limit-gib", type=float, default=8.0,
                   help="kill a tool whose process group RSS passes this (8 GiB)")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter that runs the peer tools and the checks (this one)")
    p.add_argument("--bnfold", help="command that runs bnfold (default: repo .venv's bnfold)")
    p.add_argument("--trials", type=int, default=2, help="random input sets per check (2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", metavar="DIR", help="keep the folded models in DIR")
    p.add_argument("--plain", action="store_true", help="plain-text table even if rich is here")
    return p.parse_args(argv)


def peer_versions(python: str) -> dict:
    r = bl.run_measured(bl.worker_command(python, "versions"), timeout_s=120)
    return bl.parse_worker_json(r.stdout) or {}


def tool_status(tool: str, versions: dict, bnfold_cmd) -> tuple[bool, str]:
    if tool == "bnfold":
        return (bnfold_cmd is not None, "found" if bnfold_cmd else "not installed")
    dist = {"ort-basic": "onnxruntime"}.get(tool, tool)
    v = versions.get(dist)
    if tool == "onnxscript" and v and not versions.get("onnx-ir"):
        return False, "onnx-ir not installed"
    return (v is not None, v or "not installed")


def fold_command(tool: str, inp: Path, out: Path, python: str, bnfold_cmd) -> list[str]:
    if tool == "bnfold":
        return [*bnfold_cmd, "fuse", str(inp), "-o", str(out), "--no-validate"]
    return bl.worker_command(python, "fold", tool, str(inp), str(out))


def judge(expect: str | None, fold: bl.RunResult, check: dict | None, out_exists: bool) -> str:
    if not fold.ok:
        return "FAIL"
    if not out_exists:
        return "FAIL"
    if check is None:
        return "FAIL"
    if "invalid" in check:
        return "invalid"
    bn0, bn1 = check.get("bn_orig", 0), check.get("bn_left", 0)
    if "orig_error" in check:
        return "?"
    dts = check.get("out_dtypes", [])
    tol = TOL_REL["float16"] if any("float16" in d for d in dts) else TOL_REL["default"]
    rel = check.get("max_rel", 0.0)
    if rel is None or math.isnan(rel) or rel > tol:
        return "WRONG"
    if expect == "keep" and bn1 < bn0:
        # Folded a BN that had to stay, yet ORT CPU's outputs match (it runs
        # fp16 Mul/Conv in fp32, hiding an overflow of unbaked folding math).
        return "folded!"
    if expect == "fold" and bn1 > 0:
        return "skipped" if bn1 >= bn0 else "partial"
    return "ok"


def fmt_err(x) -> str:
    if x is None:
        return "?"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.1e}"


def cell_lines(entry: dict) -> list[str]:
    status = entry["status"]
    if status in ("not installed",) or status.startswith("onnx-ir"):
        return ["not installed"]
    fold = entry.get("fold") or {}
    wall = bl.fmt_s(fold.get("wall_s"))
    verdict = entry["verdict"]
    check = entry.get("check") or {}
    if verdict == "FAIL":
        return [f"FAIL: {entry.get('error', '?')}", wall]
    if verdict == "invalid":
        return [f"invalid: {check.get('invalid')}", f"BN left {check.get('bn_left', '?')}", wall]
    bn = f"BN {check.get('bn_orig', '?')}→{check.get('bn_left', '?')}"
    if check.get("nodes_left") is not None:
        bn += f", nodes {check.get('nodes_orig')}→{check.get('nodes_left')}"
    if verdict == "?":
        return [f"{bn}", check.get("orig_error", "")[:60], wall]
    err = f"abs {fmt_err(check.get('max_abs'))} rel {fmt_err(check.get('max_rel'))}"
    lines = [f"{verdict}  {bn}", err, wall]
    if check.get("notes"):
        lines.append("; ".join(check["notes"])[:70])
    if check.get("checker") not in (None, "ok"):
        lines.append("checker: " + str(check["checker"])[:60])
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        print(f"unknown tool(s): {bad}; choose from {TOOLS}", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="bnfold-peers-"))
    keep = Path(args.keep) if args.keep else None
    try:
        models: list[tuple[Path, str, str | None, str]] = []  # path, label, expect, what
        if not args.no_samples:
            for p in sorted((bl.REPO_DIR / "sample_models").glob("**/*.onnx")):
                models.append((p, p.relative_to(bl.REPO_DIR).as_posix(), None, "sample model"))
        for m in args.models:
            models.append((Path(m), m, None, "given"))
        if not args.no_synthetic:
            import _synthetic

            wanted = set(args.cases.split(",")) if args.cases else None
            for path, case in _synthetic.write_cases(work / "synthetic"):
                if wanted is None or case.name in wanted:
                    models.append((path, case.name, case.expect, case.what))
        if not models:
            print("no models: add some to sample_models/, pass paths, or drop --no-synthetic")
            return 2

        bnfold_cmd = bl.bnfold_command(args.bnfold)
        versions = peer_versions(args.python)
        status = {t: tool_status(t, versions, bnfold_cmd) for t in tools}
        info = bl.machine_info()
        print(f"bnfold peers benchmark — {bl.machine_line(info)}")
        print(f"peer interpreter: {args.python}")
        print("bnfold: " + (" ".join(bnfold_cmd) if bnfold_cmd else "not found"))
        print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v))
        missing = [t for t in tools if not status[t][0]]
        if missing:
            print("not installed: " + ", ".join(missing) + "  (pip install -e '.[bench]')")
        print()

        results = []
        mem_kib = int(args.mem_limit_gib * 1024 * 1024)
        for mpath, label, expect, what in models:
            row = {"model": label, "path": str(mpath), "expect": expect, "what": what, "tools": {}}
            for tool in tools:
                entry: dict = {"status": status[tool][1] if not status[tool][0] else "run"}
                row["tools"][tool] = entry
                if not status[tool][0]:
                    entry["verdict"] = "not installed"
                    continue
                outdir = work / "out" / label.replace("/", "_") / tool
                outdir.mkdir(parents=True, exist_ok=True)
                out = outdir / (mpath.stem + ".onnx")
                cmd = fold_command(tool, mpath.resolve(), out, args.python, bnfold_cmd)
                fold = bl.run_measured(cmd, args.timeout, mem_kib)
                entry["fold"] = fold.as_dict()
                check = None
                if fold.ok and out.exists():
                    cr = bl.run_measured(
                        bl.worker_command(args.python, "check", str(mpath.resolve()), str(out),
                                          "--trials", str(args.trials), "--seed", str(args.seed)),
                        args.timeout, mem_kib)
                    check = bl.parse_worker_json(cr.stdout)
                    if check is None:
                        entry["error"] = "check crashed: " + cr.short_error(50)
                    entry["check"] = check
                elif fold.ok:
                    entry["error"] = "exit 0 but no output written"
                else:
                    entry["error"] = fold.short_error(60)
                entry["verdict"] = judge(expect, fold, check, out.exists())
                if keep and out.exists():
                    dest = keep / label.replace("/", "_")
                    dest.mkdir(parents=True, exist_ok=True)
                    for f in outdir.iterdir():
                        shutil.copy2(f, dest / f"{tool}__{f.name}")
                shutil.rmtree(outdir, ignore_errors=True)
                print(f"  {label:<22} {tool:<14} {entry['verdict']:<8} "
                      f"{bl.fmt_s(fold.wall_s):>8}  {' | '.join(cell_lines(entry)[:2])}",
                      flush=True)
            results.append(row)

        # ---- table --------------------------------------------------------
        print()
        headers = ["model", "expect", *[
            f"{t}\n{status[t][1]}" if t != "bnfold" else "bnfold" for t in tools]]
        rows = []
        for row in results:
            cells = [row["model"] + ("\n" + row["what"] if row["what"] else ""),
                     row["expect"] or "-"]
            for tool in tools:
                cells.append("\n".join(cell_lines(row["tools"][tool])))
            rows.append(cells)
        use_rich = not args.plain
        if not use_rich or not _has_rich():
            # plain text: one line per model × tool
            prow = []
            for row in results:
                for tool in tools:
                    e = row["tools"][tool]
                    prow.append([row["model"], row["expect"] or "-", tool,
                                 " | ".join(cell_lines(e))])
            bl.print_table("BatchNormalization folding: bnfold vs peers",
                           ["model", "expect", "tool", "result (BN orig→left | error | wall)"],
                           prow, use_rich=False)
        else:
            bl.print_table("BatchNormalization folding: bnfold vs peers", headers, rows)

        # ---- summary ------------------------------------------------------
        summary = {}
        for tool in tools:
            counts: dict[str, int] = {}
            for row in results:
                v = row["tools"][tool]["verdict"]
                counts[v] = counts.get(v, 0) + 1
            summary[tool] = counts
        print("verdicts per tool: " + "; ".join(
            f"{t}: " + ", ".join(f"{n} {v}" for v, n in sorted(c.items())) for t, c in summary.items()))
        print("nodes: top-level node count, original → result (extra nodes = folding math left "
              "for run time).")
        print("expect: fold = all BN should go; keep = BN must stay (folding changes results); "
              "any = optional, results must not change.")
        print(f"errors: ORT_DISABLE_ALL, {args.trials} seeded input sets; rel = max|diff| / max|ref| "
              f"per output; tolerance {TOL_REL['default']:g} (fp32), {TOL_REL['float16']:g} (fp16).")

        if args.json:
            Path(args.json).write_text(json.dumps({
                "machine": info, "versions": versions,
                "bnfold": bnfold_cmd, "python": args.python,
                "tools": {t: {"available": status[t][0], "info": status[t][1]} for t in tools},
                "results": results, "summary": summary,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }, indent=1, default=str))
            print(f"wrote {args.json}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
        return True
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
