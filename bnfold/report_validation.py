"""Show a :class:`bnfold.validate.ValidationResult`: rich tables on a terminal, Markdown in files.

The numbers come first (outputs, then folds worst first), then the notes, then the verdict.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bnfold.validate import FoldComparison, ValidationResult

MAX_FOLD_ROWS = 20


def _output_numbers(o) -> list[str]:
    """The cells between an output's name and its verdict, shared by the table and Markdown."""
    return [o.dtype, _num(o.max_abs), _num(o.max_rel), _num(o.mean_abs), _cosine(o.cosine),
            f"{o.mismatches}/{o.total}", _num(o.atol), _num(o.rtol)]


def render_validation(result: ValidationResult, console: Console) -> None:
    """Print the result: outputs table, folds table (at most MAX_FOLD_ROWS rows), notes, verdict."""
    provider = result.provider
    if result.reference_provider != result.provider:
        provider = f"{result.provider} (original on {result.reference_provider})"
    console.print(
        f"Validation on {escape(provider)}: {result.samples} sample(s), seed {result.seed}",
        highlight=False,
    )

    outputs = Table(title="Outputs (candidate against original)", title_justify="left")
    for header in (
        "output",
        "dtype",
        "max abs",
        "max rel",
        "mean abs",
        "cosine",
        "mismatches",
        "atol",
        "rtol",
        "",
    ):
        outputs.add_column(header, justify="left" if header in ("output", "dtype", "") else "right")
    for o in result.outputs:
        outputs.add_row(escape(o.name), *_output_numbers(o), _verdict_cell(o.passed))
    console.print(outputs)

    if result.folds:
        folds = Table(title="Folds, each checked alone (worst first)", title_justify="left")
        for header in (
            "batchnorm",
            "folded into",
            "max abs",
            "max rel",
            "abs / max|ref|",
            "limit",
            "",
            "note",
        ):
            folds.add_column(
                header,
                justify="right"
                if header in ("max abs", "max rel", "abs / max|ref|", "limit")
                else "left",
            )
        for f in result.folds[:MAX_FOLD_ROWS]:
            folds.add_row(
                escape(f.batchnorm),
                escape(f.into),
                _num(f.max_abs),
                _num(f.max_rel),
                _num(f.normalized_error),
                _num(_fold_limit(f)),
                _verdict_cell(f.passed),
                escape(f.note or ""),
            )
        console.print(folds)
        hidden = len(result.folds) - MAX_FOLD_ROWS
        if hidden > 0:
            console.print(f"... {hidden} more fold(s)", highlight=False)

    for note in result.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    if result.passed:
        console.print("[bold green]PASSED[/]: the candidate agrees with the original")
    else:
        console.print(f"[bold red]FAILED[/]: {escape(_failure_summary(result))}")


def validation_markdown(result: ValidationResult) -> str:
    """The result as a Markdown section (every fold listed)."""
    lines = [
        "## Validation",
        "",
        f"- provider: {result.provider}",
        f"- reference provider: {result.reference_provider}",
        f"- samples: {result.samples} (seed {result.seed})",
        f"- verdict: **{'PASSED' if result.passed else 'FAILED'}**",
        "",
        "### Outputs",
        "",
        "| output | dtype | max abs | max rel | mean abs | cosine | mismatches | atol | rtol "
        "| verdict |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for o in result.outputs:
        lines.append("| " + " | ".join([_md(o.name), *_output_numbers(o), _verdict_text(o.passed)]) + " |")
    if result.folds:
        lines += [
            "",
            "### Folds, each checked alone (worst first)",
            "",
            "| batchnorm | folded into | max abs | max rel | abs / max\\|ref\\| | limit "
            "| verdict | note |",
            "|---|---|--:|--:|--:|--:|---|---|",
        ]
        for f in result.folds:
            lines.append(
                "| "
                + " | ".join(
                    [
                        _md(f.batchnorm),
                        _md(f.into),
                        _num(f.max_abs),
                        _num(f.max_rel),
                        _num(f.normalized_error),
                        _num(_fold_limit(f)),
                        _verdict_text(f.passed),
                        _md(f.note or ""),
                    ]
                )
                + " |"
            )
    if result.notes:
        lines += ["", "### Notes", ""]
        lines += [f"- {_md(note)}" for note in result.notes]
    lines.append("")
    return "\n".join(lines)


def _fold_limit(fold: FoldComparison) -> float | None:
    """The largest max abs the fold may have: atol + rtol * max|reference|."""
    if fold.atol is None or fold.rtol is None or fold.reference_max is None:
        return None
    return fold.atol + fold.rtol * fold.reference_max


def _failure_summary(result: ValidationResult) -> str:
    failed_outputs = [o for o in result.outputs if not o.passed]
    failed_folds = [f for f in result.folds if f.passed is False]
    parts = []
    if failed_outputs:
        parts.append(f"{len(failed_outputs)} of {len(result.outputs)} output(s) out of tolerance")
    if failed_folds:
        parts.append(f"{len(failed_folds)} of {len(result.folds)} fold(s) wrong on their own")
    return "; ".join(parts) or "see notes"


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.3g}"


def _cosine(value: float | None) -> str:
    return "-" if value is None else f"{value:.9f}"


def _verdict_cell(passed: bool | None) -> str:
    if passed is None:
        return "[yellow]n/a[/]"
    return "[green]pass[/]" if passed else "[bold red]FAIL[/]"


def _verdict_text(passed: bool | None) -> str:
    if passed is None:
        return "n/a"
    return "pass" if passed else "FAIL"


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
