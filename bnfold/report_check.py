"""Renderings of a :class:`~bnfold.check.CheckResult`: text lines, JSON, JUnit XML, GitHub
workflow commands and Markdown. Every function returns a string; only the CLI prints.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import tempfile
import xml.etree.ElementTree as ET

from rich.console import Console
from rich.text import Text

from .check import CheckResult, ModelCheck, Problem
from .config import NOT_FOLDED
from .errors import InputError
from .report import SEVERITY_STYLE, dumps

MARKDOWN_MAX_ROWS = 200


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------------------------------
# text


def problem_line(model: ModelCheck, problem: Problem) -> str:
    """``path: node: code: message``."""
    return f"{model.path}: {problem.batchnorm}: {problem.code}: {_one_line(problem.message)}"


def settings_text(result: CheckResult) -> str:
    parts = [f"fail-on {result.fail_on}"]
    if result.require_folded:
        parts.append("require-folded")
    return ", ".join(parts)


def _counts_text(s: dict[str, int]) -> str:
    errors = _plural(s["errors"], "error")
    if s["not_folded"]:
        errors += f" ({s['not_folded']} not-folded)"
    counts = f"{errors}, {_plural(s['warnings'], 'warning')}, {_plural(s['infos'], 'info')}"
    if s["ignored"]:
        counts += f", {s['ignored']} ignored"
    return counts


def summary_line(result: CheckResult) -> str:
    s = result.summary
    counts = _counts_text(s)
    if result.passed:
        verdict = f"passed ({settings_text(result)})"
    else:
        verdict = f"FAILED: {s['failed_models']} of {_plural(s['models'], 'model')} ({settings_text(result)})"
    return (f"bnfold check: {_plural(s['models'], 'model')}, {s['batchnorms']} BatchNorm; "
            f"{counts}; {verdict}")


def text_report(result: CheckResult) -> str:
    lines = [problem_line(m, p) for m, p in result.problems]
    lines.append(summary_line(result))
    return "\n".join(lines) + "\n"


def render_text(result: CheckResult, console: Console) -> None:
    """The text report with the code coloured by severity (plain when not a terminal)."""
    for model, p in result.problems:
        console.print(Text.assemble(f"{model.path}: {p.batchnorm}: ",
                                    (p.code, SEVERITY_STYLE[p.severity]),
                                    f": {_one_line(p.message)}"), soft_wrap=True)
    console.print(Text(summary_line(result), style="green" if result.passed else "bold red"),
                  soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# json


def json_report(result: CheckResult) -> str:
    return dumps(result.to_dict()) + "\n"


# ---------------------------------------------------------------------------------------------
# JUnit XML (Jenkins junit-10.xsd / Ant schema: properties, testcase*, system-out, system-err)


JUNIT_MESSAGE_ITEMS = 10
# Characters XML 1.0 cannot hold at all (ONNX names are arbitrary strings).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(text: str) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def _listing(items: list[str]) -> str:
    head = ", ".join(items[:JUNIT_MESSAGE_ITEMS])
    return head + (f" and {len(items) - JUNIT_MESSAGE_ITEMS} more" if len(items) > JUNIT_MESSAGE_ITEMS else "")


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _failure(parent: ET.Element, message: str, kind: str, lines: list[str]) -> None:
    failure = ET.SubElement(parent, "failure", {"message": _xml(message), "type": kind})
    failure.text = _xml("\n".join(lines))


def _model_suite(suites: ET.Element, index: int, model: ModelCheck, result: CheckResult,
                 timestamp: str, hostname: str) -> tuple[int, int, int]:
    suite = ET.SubElement(suites, "testsuite", {
        "name": _xml(model.path), "tests": "2", "failures": "0", "errors": "0", "skipped": "0",
        "time": _seconds(model.seconds), "timestamp": timestamp, "hostname": hostname,
        "id": str(index), "package": "bnfold",
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("fail-on", result.fail_on),
                        ("require-folded", str(result.require_folded).lower()),
                        ("batchnorms", str(len(model.report.batchnorms))),
                        ("ignored", str(len(model.ignored)))):
        ET.SubElement(props, "property", {"name": name, "value": value})
    failures = skipped = 0

    audit_case = ET.SubElement(suite, "testcase", {"classname": _xml(model.path), "name": "audit",
                                                   "time": _seconds(model.seconds)})
    blocking = model.audit_failures
    if blocking:
        failures += 1
        codes = _listing([f"{p.code} ({p.batchnorm})" for p in blocking])
        _failure(audit_case, f"{_plural(len(blocking), 'finding')} at or above {result.fail_on}: {codes}",
                 "bnfold.audit", [f"{p.severity}: {p.batchnorm}: {p.code}: {_one_line(p.message)}"
                                  for p in blocking])

    fold_case = ET.SubElement(suite, "testcase", {"classname": _xml(model.path), "name": "folding",
                                                  "time": "0.000"})
    if not result.require_folded:
        skipped += 1
        ET.SubElement(fold_case, "skipped", {"message": "not checked (run with --require-folded)"})
    elif model.not_folded:
        failures += 1
        names = _listing([p.batchnorm for p in model.not_folded])
        _failure(fold_case, f"{_plural(len(model.not_folded), 'BatchNorm')} could be folded: {names}",
                 "bnfold.not-folded", [f"{p.batchnorm}: {NOT_FOLDED}: {p.message}"
                                       for p in model.not_folded])

    out = ET.SubElement(suite, "system-out")
    others = [p for p in model.problems if not p.blocking]
    out.text = _xml("\n".join(f"{p.severity}: {p.batchnorm}: {p.code}: {_one_line(p.message)}"
                              for p in others)) or None
    ET.SubElement(suite, "system-err")
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    return 2, failures, skipped


def junit_report(result: CheckResult, *, timestamp: datetime.datetime | None = None,
                 hostname: str | None = None) -> str:
    """One ``testsuite`` per model with the testcases ``audit`` (fails on findings at or above
    ``fail_on``) and ``folding`` (fails on not-folded BN with ``require_folded``, else skipped)."""
    stamp = (timestamp or datetime.datetime.now()).replace(microsecond=0, tzinfo=None).isoformat()
    host = hostname if hostname is not None else (socket.gethostname() or "localhost")
    suites = ET.Element("testsuites", {"name": "bnfold check"})
    tests = failures = 0
    for i, model in enumerate(result.models):
        t, f, _skipped = _model_suite(suites, i, model, result, stamp, host)
        tests, failures = tests + t, failures + f
    suites.set("tests", str(tests))
    suites.set("failures", str(failures))
    suites.set("errors", "0")
    # No "skipped" here: junit-10.xsd (Jenkins xUnit validates against it) does not allow it on
    # <testsuites>; each <testsuite> carries its own count.
    suites.set("time", _seconds(sum(m.seconds for m in result.models)))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


# ---------------------------------------------------------------------------------------------
# GitHub Actions workflow commands

_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def github_escape_data(text: str) -> str:
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_escape_property(text: str) -> str:
    return github_escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_report(result: CheckResult) -> str:
    """``::error file={path},title={code} {bn}::{message}`` per problem (warning, notice)."""
    lines = []
    for model, p in result.problems:
        props = (f"file={github_escape_property(model.path)},"
                 f"title={github_escape_property(f'{p.code} {p.batchnorm}')}")
        lines.append(f"::{_GITHUB_LEVEL[p.severity]} {props}::{github_escape_data(p.message)}")
    return "".join(line + "\n" for line in lines)


# ---------------------------------------------------------------------------------------------
# Markdown


def _md(text) -> str:
    return _one_line(str(text)).replace("|", "\\|")


def markdown_report(result: CheckResult) -> str:
    s = result.summary
    verdict = "✅ passed" if result.passed else "❌ failed"
    lines = [f"## bnfold check: {verdict}", "",
             f"{_plural(s['models'], 'model')}, {s['batchnorms']} BatchNorm; {_counts_text(s)}. "
             f"Settings: {settings_text(result)}.", "",
             "| model | BatchNorm | foldable | errors | warnings | infos | not folded | ignored | result |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for m in result.models:
        count = {sev: sum(1 for p in m.problems if p.severity == sev and p.code != NOT_FOLDED)
                 for sev in ("error", "warning", "info")}
        nf = len(m.not_folded) if result.require_folded else "-"
        lines.append(f"| `{_md(m.path)}` | {len(m.report.batchnorms)} | {m.report.summary['foldable']} "
                     f"| {count['error']} | {count['warning']} | {count['info']} | {nf} "
                     f"| {len(m.ignored)} | {'✅ passed' if m.passed else '❌ failed'} |")
    problems = result.problems
    if problems:
        lines += ["", "### Problems", "",
                  "Bold severities fail the check.", "",
                  "| model | BatchNorm | code | severity | message |", "|---|---|---|---|---|"]
        for m, p in problems[:MARKDOWN_MAX_ROWS]:
            sev = f"**{p.severity}**" if p.blocking else p.severity
            lines.append(f"| `{_md(m.path)}` | `{_md(p.batchnorm)}` | `{p.code}` | {sev} | {_md(p.message)} |")
        if len(problems) > MARKDOWN_MAX_ROWS:
            lines += ["", f"… and {len(problems) - MARKDOWN_MAX_ROWS} more; see the JSON or JUnit report."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# --show-config and --output


def _value_text(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def config_text(config) -> str:
    """The effective configuration, one ``key = value  # source`` line per setting."""
    head = f"# config file: {config.path}" if config.path is not None else "# config file: none"
    rows = [(key, _value_text(value), source) for key, value, source in config.describe()]
    width = max(len(f"{k} = {v}") for k, v, _ in rows)
    lines = [head] + [f"{f'{k} = {v}':<{width}}  # {src}" for k, v, src in rows]
    return "\n".join(lines) + "\n"


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename, so
    readers never see a half-written report."""
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise InputError(f"{path}: is a directory, cannot write the report there")
    folder = os.path.dirname(target)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise InputError(f"{path}: cannot write the report ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise InputError(f"{path}: cannot write the report ({exc.strerror or exc})") from exc
        raise


RENDERERS = {
    "text": text_report,
    "json": json_report,
    "junit": junit_report,
    "github": github_report,
    "markdown": markdown_report,
}


def render(result: CheckResult, format: str) -> str:
    return RENDERERS[format](result)
