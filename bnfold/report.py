"""Rendering of inspect and fuse results: rich tables, Markdown and JSON documents.

Only this module and :mod:`bnfold.cli` write to the terminal; library code returns data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .inspection import SCHEMA_VERSION, BatchNormReport, ModelReport

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def dumps(document: dict) -> str:
    """JSON text with NaN/Inf written as null, so every parser reads it."""
    return json.dumps(_json_safe(document), indent=2, allow_nan=False)


def inspect_document(reports: Sequence[ModelReport]) -> dict:
    return {"schema_version": SCHEMA_VERSION, "models": [r.to_dict() for r in reports]}


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}"


def _fold_cell(bn: BatchNormReport) -> Text:
    d = bn.fold
    if d.foldable:
        arrow = "→" if d.direction == "backward" else "←"
        return Text(f"{arrow} {d.target[0]} {d.target[1]}", style="green")
    return Text(d.reason or "-", style="magenta")


def _findings_cell(bn: BatchNormReport) -> Text:
    text = Text()
    for i, f in enumerate(bn.findings):
        if i:
            text.append(", ")
        text.append(f.code, style=SEVERITY_STYLE[f.severity])
    return text if bn.findings else Text("-", style="dim")


def render_inspect(reports: Sequence[ModelReport], console: Console, *, details: bool = True) -> None:
    for report in reports:
        # Names and paths come from the model: pass them as Text so rich never reads them as markup.
        table = Table(title=Text(f"{report.path}  (IR {report.ir_version}, opset {report.opset})"),
                      title_justify="left", show_lines=False)
        for col in ("BatchNorm", "graph", "C", "eps", "mom", "placement", "var min..max",
                    "fold", "findings"):
            table.add_column(col, overflow="fold")
        for bn in report.batchnorms:
            var = bn.stats["var"] if bn.stats else None
            table.add_row(
                Text(bn.name),
                Text("" if bn.graph == "main" else bn.graph),
                str(bn.channels) if bn.channels is not None else "?",
                f"{bn.epsilon:g}",
                f"{bn.momentum:g}" + (" T" if bn.training_mode else ""),
                Text(bn.placement),
                f"{_fmt(var.min)}..{_fmt(var.max)}" if var else "-",
                _fold_cell(bn),
                _findings_cell(bn),
            )
        console.print(table)
        if details:
            for bn in report.batchnorms:
                codes = {f.code for f in bn.findings}
                if not bn.fold.foldable and bn.fold.detail and bn.fold.reason not in codes:
                    console.print(Text(f"  {bn.name}: not folded ({bn.fold.reason}): "
                                       f"{bn.fold.detail}", style="dim"))
                for f in bn.findings:
                    console.print(Text.assemble(f"  {bn.name}: ", (f.code, SEVERITY_STYLE[f.severity]),
                                                f": {f.message}"))
        s = report.summary
        console.print(Text(f"{report.path}: {s['batchnorms']} BatchNorm, {s['foldable']} foldable, "
                           f"{s['errors']} error(s), {s['warnings']} warning(s), {s['infos']} info"))


def inspect_markdown(reports: Sequence[ModelReport]) -> str:
    lines: list[str] = ["## bnfold inspect", ""]
    for report in reports:
        s = report.summary
        lines += [f"### `{report.path}`", "",
                  f"{s['batchnorms']} BatchNorm, {s['foldable']} foldable, {s['errors']} error(s), "
                  f"{s['warnings']} warning(s), {s['infos']} info", ""]
        if report.batchnorms:
            lines += ["| BatchNorm | graph | channels | placement | fold | findings |",
                      "|---|---|---|---|---|---|"]
            for bn in report.batchnorms:
                d = bn.fold
                fold = f"{d.direction} into {d.target[0]} `{_md(d.target[1])}`" if d.foldable else f"no: `{d.reason}`"
                found = ", ".join(f"`{f.code}` ({f.severity})" for f in bn.findings) or "-"
                lines.append(f"| `{_md(bn.name)}` | {_md(bn.graph)} | {bn.channels if bn.channels is not None else '?'} "
                             f"| {_md(bn.placement)} | {fold} | {found} |")
            lines.append("")
            notes = [(bn, f) for bn in report.batchnorms for f in bn.findings if f.severity != "info"]
            if notes:
                lines += ["<details><summary>Findings</summary>", ""]
                lines += [f"- **{f.severity}** `{f.code}` in `{_md(bn.name)}`: {_md(f.message)}" for bn, f in notes]
                lines += ["", "</details>", ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_fuse(result, console: Console) -> None:
    """What was folded into what, what was left and why, then the validation."""
    table = Table(title=Text(f"{result.input} → {result.output or '(nothing written)'}"), title_justify="left")
    for col in ("BatchNorm", "graph", "result", "into / reason", "detail"):
        table.add_column(col, overflow="fold")
    for f in result.folded:
        arrow = "→" if f.direction == "backward" else "←"
        table.add_row(Text(f.batchnorm), Text("" if f.graph == "main" else f.graph),
                      Text("folded", style="green"), Text(f"{arrow} {f.into_op} {f.into_name}"), "")
    for x in result.left:
        status = Text("decomposed", style="yellow") if x.decomposed else Text("left", style="magenta")
        table.add_row(Text(x.batchnorm), Text("" if x.graph == "main" else x.graph), status, x.reason,
                      Text(x.detail or ""))
    console.print(table)
    if result.validation is not None:
        from .report_validation import render_validation

        render_validation(result.validation, console)
    for note in result.notes:
        console.print(Text(f"note: {note}", style="dim"))
    summary = f"{len(result.folded)} folded, {len(result.left)} left"
    if result.output:
        console.print(Text(f"{summary}; wrote {', '.join(result.written)}"))
    else:
        console.print(Text(f"{summary}; validation failed, nothing written", style="bold red"))


def fuse_markdown(result) -> str:
    lines = ["## bnfold fuse", "", f"`{result.input}` → `{result.output or 'nothing written'}`", "",
             "| BatchNorm | result | into / reason |", "|---|---|---|"]
    for f in result.folded:
        lines.append(f"| `{_md(f.batchnorm)}` | folded ({f.direction}) | {f.into_op} `{_md(f.into_name)}` |")
    for x in result.left:
        lines.append(f"| `{_md(x.batchnorm)}` | {'decomposed' if x.decomposed else 'left'} | `{x.reason}`: {_md(x.detail or '')} |")
    if result.validation is not None:
        from .report_validation import validation_markdown

        lines += ["", validation_markdown(result.validation)]
    return "\n".join(lines) + "\n"
