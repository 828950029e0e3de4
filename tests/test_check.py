"""``bnfold check``: verdicts and exit codes, --require-folded, ignores, folders and globs,
every report format, --output, and the Python API."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from builders import bn_node, bn_params, conv_bn_model, make_model, save, vinfo
from onnx import helper
from typer.testing import CliRunner

import bnfold
from bnfold.check import CheckResult, expand_paths
from bnfold.cli import app
from bnfold.report_check import github_escape_data, github_escape_property, junit_report

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
CLEAN = SAMPLES / "resnet_small.onnx"  # 7 foldable BN, no findings
DEFECTS = SAMPLES / "defects.onnx"  # 3 errors, 3 warnings, 2 infos; 5 foldable
DEFECT_CODES = {"non-finite", "variance-negative", "training-mode", "stats-uninitialized",
                "momentum-suspicious", "dead-channel", "variance-tiny", "stats-not-constant"}

LINE = re.compile(r"^(?P<path>[^:]+): (?P<node>[^:]+): (?P<code>[a-z-]+): (?P<message>.+)$")
GITHUB = re.compile(r"^::(?P<level>error|warning|notice) file=(?P<file>[^,:]+),"
                    r"title=(?P<title>[^,:]+)::(?P<message>[^\r\n]*)$")

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_project_config(tmp_path, monkeypatch):
    """Run every test in an empty folder so no pyproject.toml above the repo changes settings."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)


def check(*args):
    return runner.invoke(app, ["check", *map(str, args)])


def relu_bn_model(seed: int = 0):
    """x → Relu → BN → Relu: nothing can absorb the BN (unsupported-producer)."""
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu_in"), bn_node("r", "b"),
             helper.make_node("Relu", ["b"], ["y"], name="relu_out")]
    return make_model(nodes, [vinfo("x", [1, 8, 4, 4])], [vinfo("y", [1, 8, 4, 4])],
                      bn_params(rng, 8))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    warn = conv_bn_model(np.random.default_rng(1), bn_attrs={"momentum": 0.1})
    return {
        "conv_bn": save(conv_bn_model(np.random.default_rng(0)), folder / "conv_bn.onnx"),
        "relu_bn": save(relu_bn_model(), folder / "relu_bn.onnx"),
        "warning": save(warn, folder / "warning.onnx"),
    }


def text_lines(result) -> tuple[list[str], str]:
    lines = result.stdout.splitlines()
    return lines[:-1], lines[-1]


# -- verdicts and exit codes -------------------------------------------------------------------

def test_clean_model_passes():
    """resnet_small: no findings, exit 0, only the summary line."""
    result = check(CLEAN)
    assert result.exit_code == 0, result.output
    problems, summary = text_lines(result)
    assert problems == []
    assert summary.startswith("bnfold check: 1 model, 7 BatchNorm;") and "passed" in summary


def test_errors_fail_by_default():
    """defects.onnx has error findings: exit 1 at the default --fail-on error."""
    assert check(DEFECTS).exit_code == 1


@pytest.mark.parametrize("fail_on,code", [("error", 0), ("warning", 1), ("info", 1), ("never", 0)])
def test_fail_on_threshold(models, fail_on, code):
    """A model whose only finding is a warning fails at --fail-on warning or info."""
    assert check(models["warning"], "--fail-on", fail_on).exit_code == code


def test_fail_on_never_passes_defects():
    """--fail-on never: findings are reported but never fail."""
    result = check(DEFECTS, "--fail-on", "never")
    assert result.exit_code == 0
    assert len(text_lines(result)[0]) == 8


def test_below_threshold_findings_are_reported_but_pass(models):
    """A warning at --fail-on error is printed and the verdict is still passed."""
    result = check(models["warning"])
    assert result.exit_code == 0
    (line,), summary = text_lines(result)
    assert LINE.match(line)["code"] == "momentum-suspicious"
    assert "1 warning" in summary and "passed" in summary


def test_missing_model_exits_2_with_one_line():
    """A path that does not exist: exit 2, one 'bnfold: error:' line, nothing on stdout."""
    result = check("nope.onnx")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["bnfold: error: nope.onnx: no such file or directory"]
    assert result.stdout == ""


def test_corrupt_model_exits_2(tmp_path):
    """A file that is not a model: exit 2, no traceback."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not protobuf \xff\xff\xff")
    result = check(bad)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stderr.startswith("bnfold: error: ")


def test_no_models_exits_2():
    """`bnfold check` without models (and without --show-config) is a usage error."""
    result = check()
    assert result.exit_code == 2
    assert "no models given" in result.stderr


def test_bad_input_on_a_real_stderr(tmp_path):
    """Through a real process: exit 2, exactly one stderr line, no traceback."""
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "check", "missing.onnx"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["bnfold: error: missing.onnx: no such file or directory"]
    assert proc.stdout == ""


# -- --require-folded --------------------------------------------------------------------------

def test_require_folded_fails_on_conv_bn(models):
    """Conv+BN left unfolded: --require-folded reports not-folded, naming the Conv, and exits 1."""
    assert check(models["conv_bn"]).exit_code == 0
    result = check(models["conv_bn"], "--require-folded")
    assert result.exit_code == 1
    (line,), summary = text_lines(result)
    m = LINE.match(line)
    assert (m["path"], m["node"], m["code"]) == (str(models["conv_bn"]), "bn", "not-folded")
    assert "into Conv 'conv'" in m["message"]
    assert "FAILED" in summary and "require-folded" in summary


def test_require_folded_passes_without_foldable_bn(models):
    """Relu→BN→Relu cannot fold: --require-folded has nothing to complain about."""
    result = check(models["relu_bn"], "--require-folded")
    assert result.exit_code == 0, result.output
    assert text_lines(result)[0] == []


def test_require_folded_ignores_fail_on_never():
    """not-folded fails even with --fail-on never: it is a separate check."""
    result = check(CLEAN, "--require-folded", "--fail-on", "never")
    assert result.exit_code == 1
    assert len(text_lines(result)[0]) == 7


def test_no_require_folded_overrides():
    """--no-require-folded turns the check off again."""
    assert check(CLEAN, "--require-folded", "--no-require-folded").exit_code == 0


# -- ignores -----------------------------------------------------------------------------------

def test_ignore_drops_problems_and_counts_them():
    """Ignoring the three error codes makes defects.onnx pass; the summary counts them."""
    result = check(DEFECTS, "--ignore", "non-finite,variance-negative", "--ignore", "training-mode")
    assert result.exit_code == 0, result.output
    problems, summary = text_lines(result)
    assert {LINE.match(line)["code"] for line in problems} == DEFECT_CODES - {
        "non-finite", "variance-negative", "training-mode"}
    assert "3 ignored" in summary


def test_ignore_not_folded():
    """--ignore not-folded switches off what --require-folded would report."""
    result = check(CLEAN, "--require-folded", "--ignore", "not-folded")
    assert result.exit_code == 0
    assert "7 ignored" in text_lines(result)[1]


def test_ignore_unknown_code_exits_2():
    """A typo in --ignore is an error that suggests the right code."""
    result = check(CLEAN, "--ignore", "dead_channel")
    assert result.exit_code == 2
    assert "'dead_channel'" in result.stderr and "dead-channel" in result.stderr


# -- folders and globs -------------------------------------------------------------------------

@pytest.fixture
def tree(tmp_path, models) -> Path:
    """root/{b.onnx, a/x.onnx, a/deeper/y.onnx, .hidden/z.onnx, notes.txt}."""
    root = tmp_path / "root"
    for rel, src in (("b.onnx", models["conv_bn"]), ("a/x.onnx", models["relu_bn"]),
                     ("a/deeper/y.onnx", models["warning"]), (".hidden/z.onnx", DEFECTS)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
    (root / "notes.txt").write_text("not a model")
    return root


def paths_in_json(result) -> list[str]:
    assert result.exit_code in (0, 1), result.output
    return [m["path"] for m in json.loads(result.stdout)["models"]]


def test_folder_recurses_sorted_and_skips_hidden(tree):
    """A folder: every *.onnx below it, sorted, hidden folders and other files skipped."""
    expected = [str(tree / "a/deeper/y.onnx"), str(tree / "a/x.onnx"), str(tree / "b.onnx")]
    assert paths_in_json(check(tree, "-f", "json")) == expected


def test_glob_is_expanded(tree):
    """An unexpanded glob (as a shell without globbing passes it) is expanded by bnfold."""
    assert paths_in_json(check(f"{tree}/*.onnx", "-f", "json")) == [str(tree / "b.onnx")]
    assert paths_in_json(check(f"{tree}/**/*.onnx", "-f", "json")) == [
        str(tree / "a/deeper/y.onnx"), str(tree / "a/x.onnx"), str(tree / "b.onnx")]


def test_relative_glob_from_working_directory(tree, monkeypatch):
    """Globs are relative to the working directory and reported as given."""
    monkeypatch.chdir(tree)
    assert paths_in_json(check("a/*.onnx", "-f", "json")) == ["a/x.onnx"]


def test_duplicates_are_checked_once(tree):
    """A file named directly and again through its folder is checked once."""
    assert paths_in_json(check(tree / "b.onnx", tree, "-f", "json")) == [
        str(tree / "b.onnx"), str(tree / "a/deeper/y.onnx"), str(tree / "a/x.onnx")]


def test_glob_without_matches_exits_2(tree):
    """A glob that matches nothing: exit 2 naming the pattern."""
    result = check(f"{tree}/*.nothing")
    assert result.exit_code == 2
    assert "no files match" in result.stderr


def test_folder_without_models_exits_2(tmp_path):
    """An empty folder is a mistake in a CI gate: exit 2."""
    (tmp_path / "empty").mkdir()
    result = check(tmp_path / "empty")
    assert result.exit_code == 2
    assert "no .onnx files" in result.stderr


def test_jobs_2_matches_jobs_1(tree):
    """-j 2 gives the same JSON as -j 1."""
    one, two = check(tree, CLEAN, DEFECTS, "-f", "json"), check(tree, CLEAN, DEFECTS, "-f", "json", "-j", "2")
    assert one.exit_code == two.exit_code == 1
    assert json.loads(one.stdout) == json.loads(two.stdout)


# -- formats -----------------------------------------------------------------------------------

def test_text_lines_have_path_node_code_message():
    """Every problem line is `path: node: code: message`; the last line is the summary."""
    result = check(DEFECTS)
    problems, summary = text_lines(result)
    matches = [LINE.match(line) for line in problems]
    assert all(matches), problems
    assert {m["path"] for m in matches} == {str(DEFECTS)}
    assert {m["code"] for m in matches} == DEFECT_CODES
    by_code = {m["code"]: m["node"] for m in matches}
    assert by_code["training-mode"] == "bn_training_mode"
    assert by_code["stats-not-constant"] == "bn_dynamic"
    assert summary == ("bnfold check: 1 model, 9 BatchNorm; 3 errors, 3 warnings, 2 infos; "
                       "FAILED: 1 of 1 model (fail-on error)")


def test_json_has_the_inspect_schema_plus_verdict():
    """JSON: schema_version, passed, fail_on, require_folded; per model passed and problems."""
    result = check(CLEAN, DEFECTS, "-f", "json", "--require-folded")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1
    assert (doc["passed"], doc["fail_on"], doc["require_folded"]) == (False, "error", True)
    clean, defects = doc["models"]
    assert clean["summary"]["batchnorms"] == 7 and len(clean["batchnorms"]) == 7  # inspect schema
    assert clean["passed"] is False
    assert {p["code"] for p in clean["problems"]} == {"not-folded"}
    for p in defects["problems"]:
        assert {"batchnorm", "code", "severity", "message"} <= set(p)
    assert {p["code"] for p in defects["problems"]} == DEFECT_CODES | {"not-folded"}
    assert doc["summary"]["not_folded"] == 7 + 5


def test_json_passing_run():
    """A clean run: passed true at every level, no problems."""
    doc = json.loads(check(CLEAN, "-f", "json").stdout)
    assert doc["passed"] is True and doc["models"][0]["passed"] is True
    assert doc["models"][0]["problems"] == []


def _attrs(element: ET.Element, *names: str) -> None:
    missing = [n for n in names if n not in element.attrib]
    assert not missing, f"<{element.tag}> lacks {missing}"


def test_junit_has_the_required_elements_and_counts(models):
    """JUnit: testsuites > testsuite per model (audit + folding cases) with consistent counts."""
    result = check(CLEAN, DEFECTS, models["conv_bn"], "-f", "junit", "--require-folded")
    assert result.exit_code == 1
    root = ET.fromstring(result.stdout)
    assert root.tag == "testsuites"
    _attrs(root, "name", "tests", "failures", "errors", "time")
    assert "skipped" not in root.attrib  # junit-10.xsd does not allow it on <testsuites>
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [str(CLEAN), str(DEFECTS), str(models["conv_bn"])]
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        _attrs(suite, "name", "tests", "failures", "errors", "skipped", "time", "timestamp",
               "hostname", "id", "package")
        assert [child.tag for child in suite] == ["properties", "testcase", "testcase",
                                                  "system-out", "system-err"]
        cases = suite.findall("testcase")
        assert [c.get("name") for c in cases] == ["audit", "folding"]
        for case in cases:
            _attrs(case, "classname", "name", "time")
            assert case.get("classname") == suite.get("name")
            float(case.get("time"))
        failures = suite.findall("testcase/failure")
        for failure in failures:
            _attrs(failure, "message", "type")
            assert failure.text
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == len(failures)
        assert int(suite.get("skipped")) == len(suite.findall("testcase/skipped"))
        assert suite.get("errors") == "0"
        for key in total:
            total[key] += int(suite.get(key))
    assert {k: int(root.get(k)) for k in ("tests", "failures", "errors")} == {
        k: total[k] for k in ("tests", "failures", "errors")}
    assert total == {"tests": 6, "failures": 4, "errors": 0, "skipped": 0}
    float(root.get("time"))
    clean, defects, _ = suites
    assert clean.find("testcase[@name='audit']/failure") is None
    assert "7 BatchNorms could be folded" in clean.find("testcase[@name='folding']/failure").get("message")
    audit = defects.find("testcase[@name='audit']/failure")
    for code in ("non-finite", "variance-negative", "training-mode"):
        assert code in audit.get("message") and code in audit.text
    assert "variance-tiny" in defects.find("system-out").text  # a warning: reported, not failing


def test_junit_skips_folding_without_require_folded():
    """Without --require-folded the folding case is skipped, not passed."""
    root = ET.fromstring(check(CLEAN, "-f", "junit").stdout)
    suite = root.find("testsuite")
    assert suite.get("skipped") == "1" and suite.get("failures") == "0" and root.get("failures") == "0"
    skipped = root.find("testsuite/testcase[@name='folding']/skipped")
    assert skipped is not None and skipped.get("message")


def test_github_lines_are_workflow_commands():
    """--format github: one workflow command per problem, levels by severity, then the summary."""
    result = check(DEFECTS, "-f", "github")
    assert result.exit_code == 1
    *commands, summary = result.stdout.splitlines()
    matches = [GITHUB.match(line) for line in commands]
    assert all(matches), commands
    levels = {m["title"].split(" ")[0]: m["level"] for m in matches}
    assert levels["non-finite"] == "error"
    assert levels["momentum-suspicious"] == "warning"
    assert levels["dead-channel"] == "notice"
    assert {m["file"] for m in matches} == {str(DEFECTS)}
    assert "bn_training_mode" in {m["title"].split(" ")[1] for m in matches}
    assert summary.startswith("bnfold check:")


def test_github_escaping():
    """Data escapes % CR LF; properties also : and ,."""
    assert github_escape_data("50%\r\nx: a,b") == "50%25%0D%0Ax: a,b"
    assert github_escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_github_escapes_names_end_to_end(tmp_path):
    """A BN named 'blk:1,bn%' and a path with a comma come out escaped and still parse."""
    model = conv_bn_model(np.random.default_rng(0))
    model.graph.node[1].name = "blk:1,bn%"
    path = save(model, tmp_path / "a,b.onnx")
    result = check(path, "-f", "github", "--require-folded")
    (command, _summary) = result.stdout.splitlines()
    m = GITHUB.match(command)
    assert m, command
    assert m["file"] == str(path).replace(",", "%2C")
    assert m["title"] == "not-folded blk%3A1%2Cbn%25"


def test_markdown_has_a_summary_table():
    """--format markdown: heading with the verdict, a per-model table and a problems table."""
    result = check(CLEAN, DEFECTS, "-f", "markdown")
    assert result.exit_code == 1
    out = result.stdout
    assert out.startswith("## bnfold check: ❌ failed")
    assert "| model | BatchNorm | foldable | errors | warnings | infos | not folded | ignored | result |" in out
    assert "|---|---:|---:|---:|---:|---:|---:|---:|---|" in out
    assert f"| `{CLEAN}` | 7 | 7 | 0 | 0 | 0 | - | 0 | ✅ passed |" in out
    assert f"| `{DEFECTS}` | 9 | 5 | 3 | 3 | 2 | - | 0 | ❌ failed |" in out
    assert "| `bn_training_mode` | `training-mode` | **error** |" in out


def test_markdown_passing():
    """A passing run says so in the heading and has no problems table."""
    out = check(CLEAN, "-f", "markdown").stdout
    assert out.startswith("## bnfold check: ✅ passed") and "### Problems" not in out


# -- --output ----------------------------------------------------------------------------------

def test_output_writes_the_report_and_prints_the_text(tmp_path):
    """--output: the JUnit report lands in the file; stdout still gets the text report."""
    out = tmp_path / "reports" / "bnfold-junit.xml"
    result = check(DEFECTS, "-f", "junit", "--output", out)
    assert result.exit_code == 1
    assert ET.parse(out).getroot().tag == "testsuites"
    problems, summary = text_lines(result)
    assert len(problems) == 8 and all(LINE.match(line) for line in problems)
    assert summary.startswith("bnfold check: 1 model")
    assert sorted(p.name for p in out.parent.iterdir()) == ["bnfold-junit.xml"]  # no temp left


def test_output_replaces_an_existing_file(tmp_path):
    """An existing report is replaced whole."""
    out = tmp_path / "report.json"
    out.write_text("old " * 10000)
    assert check(CLEAN, "-f", "json", "-o", out).exit_code == 0
    assert json.loads(out.read_text())["passed"] is True


def test_output_to_a_folder_exits_2(tmp_path):
    """--output naming a folder: exit 2, nothing written."""
    result = check(CLEAN, "-f", "json", "-o", tmp_path)
    assert result.exit_code == 2
    assert "is a directory" in result.stderr


# -- Python API --------------------------------------------------------------------------------

def test_api_returns_a_frozen_result(models):
    """bnfold.check: CheckResult with per-model path, report, problems, passed."""
    result = bnfold.check([CLEAN, models["conv_bn"]], require_folded=True)
    assert isinstance(result, CheckResult)
    assert result.passed is False
    clean, conv = result.models
    assert clean.path == str(CLEAN) and clean.report.summary["foldable"] == 7
    assert [p.code for p in conv.problems] == ["not-folded"] and not conv.passed
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.fail_on = "never"
    assert result.to_dict()["passed"] is False


def test_api_defaults_pass_a_clean_model():
    """With defaults (fail_on='error', no require_folded) resnet_small passes."""
    assert bnfold.check(CLEAN).passed


def test_api_raises_input_error_on_bad_paths(tmp_path):
    """A missing path raises bnfold.InputError, as a pytest suite would see it."""
    with pytest.raises(bnfold.InputError, match="no such file"):
        bnfold.check([tmp_path / "missing.onnx"])


def test_api_rejects_bad_settings():
    """An unknown fail_on or ignore code raises InputError."""
    with pytest.raises(bnfold.InputError, match="fail-on"):
        bnfold.check(CLEAN, fail_on="fatal")
    with pytest.raises(bnfold.InputError, match="unknown code"):
        bnfold.check(CLEAN, ignore=["nope"])


def test_api_per_path_ignores_relative_to_cwd(tree, monkeypatch):
    """per_path_ignores given to the API: globs relative to the working directory."""
    monkeypatch.chdir(tree)
    result = bnfold.check(".", require_folded=True, per_path_ignores={"a/**": ["not-folded"]})
    by_path = {m.path: m for m in result.models}
    assert [p.code for p in by_path["b.onnx"].problems] == ["not-folded"]
    assert [p.code for p in by_path[os.path.join("a", "deeper", "y.onnx")].ignored] == ["not-folded"]


def test_api_config_file_and_overrides(tmp_path):
    """config= a file: its values apply; keyword arguments override them."""
    cfg = tmp_path / "gate.toml"
    cfg.write_text('fail-on = "never"\nrequire-folded = false\n')
    assert bnfold.check(DEFECTS, config=cfg).passed
    assert not bnfold.check(DEFECTS, config=cfg, fail_on="error").passed


def test_expand_paths_keeps_given_files(tmp_path):
    """A file named explicitly is kept even without the .onnx suffix."""
    model = save(conv_bn_model(np.random.default_rng(0)), tmp_path / "model.bin")
    assert expand_paths([model]) == [model]


def test_junit_report_is_deterministic_given_time_and_host():
    """junit_report takes the timestamp and hostname, so the XML can be compared byte for byte."""
    import datetime

    result = bnfold.check(CLEAN)
    stamp = datetime.datetime(2024, 1, 2, 3, 4, 5)
    xml = junit_report(result, timestamp=stamp, hostname="ci")
    suite = ET.fromstring(xml).find("testsuite")
    assert (suite.get("timestamp"), suite.get("hostname")) == ("2024-01-02T03:04:05", "ci")


@pytest.mark.parametrize("ci,expect_bar", [(None, True), ("true", False), ("1", False), ("false", True)])
def test_progress_bar_only_on_a_terminal_outside_ci(monkeypatch, ci, expect_bar):
    """A progress bar goes to a terminal's stderr, never when CI is set."""
    import io

    from rich.console import Console

    import bnfold.cli as cli

    seen = {}
    real = sys.modules["bnfold.check"].check

    def spy(*args, progress=None, **kwargs):
        seen["progress"] = progress
        return real(*args, progress=None, **kwargs)

    monkeypatch.setattr(sys.modules["bnfold.check"], "check", spy)
    monkeypatch.setattr(cli, "stderr", Console(file=io.StringIO(), force_terminal=True))
    if ci is not None:
        monkeypatch.setenv("CI", ci)
    assert check(CLEAN).exit_code == 0
    assert (seen["progress"] is cli.stderr) is expect_bar
    monkeypatch.setattr(cli, "stderr", Console(file=io.StringIO(), force_terminal=False))
    monkeypatch.delenv("CI", raising=False)
    check(CLEAN)
    assert seen["progress"] is None


def test_junit_survives_control_characters_and_lists_many(tmp_path):
    """A BN name with a control character still gives well-formed XML; long lists are cut at 10."""
    model = conv_bn_model(np.random.default_rng(0))
    model.graph.node[1].name = "bn\x01odd"
    path = save(model, tmp_path / "odd.onnx")
    root = ET.fromstring(check(path, "-f", "junit", "--require-folded").stdout)
    failure = root.find("testsuite/testcase[@name='folding']/failure")
    assert "bn\ufffdodd" in failure.get("message")
    from bnfold.report_check import _listing

    assert _listing([f"bn{i}" for i in range(12)]) == ", ".join(f"bn{i}" for i in range(10)) + " and 2 more"
