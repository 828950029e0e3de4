"""``bnfold inspect`` on the command line: exit codes, formats, several models, worker processes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from builders import conv_bn_model, save, tensor
from typer.testing import CliRunner

from bnfold.cli import app

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"
CLEAN = SAMPLES / "resnet_small.onnx"
DEFECTS = SAMPLES / "defects.onnx"

runner = CliRunner()


def inspect(*args):
    return runner.invoke(app, ["inspect", *map(str, args)])


@pytest.fixture(scope="module")
def warning_model(tmp_path_factory) -> Path:
    """Only a warning: momentum 0.1 set explicitly."""
    model = conv_bn_model(np.random.default_rng(0), bn_attrs={"momentum": 0.1})
    return save(model, tmp_path_factory.mktemp("warn") / "warning.onnx")


@pytest.fixture(scope="module")
def info_model(tmp_path_factory) -> Path:
    """Only an info: scale[0] = 0 (dead channel)."""
    model = conv_bn_model(np.random.default_rng(0))
    for t in model.graph.initializer:
        if t.name == "bn.scale":
            t.CopyFrom(tensor("bn.scale", [0.0] + [1.0] * 7))
    return save(model, tmp_path_factory.mktemp("info") / "info.onnx")


def json_of(result) -> dict:
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


# -- exit codes --------------------------------------------------------------------------------

@pytest.mark.parametrize("fail_on", ["error", "warning", "info", "never"])
def test_clean_model_exits_0(fail_on):
    """resnet_small has no findings: exit 0 whatever --fail-on says."""
    result = inspect(CLEAN, "--fail-on", fail_on)
    assert result.exit_code == 0, result.output


def test_errors_exit_1_by_default():
    """defects.onnx has error findings: the default --fail-on error exits 1."""
    assert inspect(DEFECTS).exit_code == 1


def test_fail_on_never_exits_0_despite_errors():
    """--fail-on never: exit 0 even with error findings."""
    assert inspect(DEFECTS, "--fail-on", "never").exit_code == 0


@pytest.mark.parametrize("fail_on,code", [("error", 0), ("warning", 1), ("info", 1), ("never", 0)])
def test_warning_only_model(warning_model, fail_on, code):
    """A model whose worst finding is a warning fails only at --fail-on warning or info."""
    assert inspect(warning_model, "--fail-on", fail_on).exit_code == code


@pytest.mark.parametrize("fail_on,code", [("error", 0), ("warning", 0), ("info", 1), ("never", 0)])
def test_info_only_model(info_model, fail_on, code):
    """A model whose worst finding is an info fails only at --fail-on info."""
    assert inspect(info_model, "--fail-on", fail_on).exit_code == code


def test_worst_model_decides_the_exit_code(warning_model):
    """Clean + warning models with --fail-on warning: exit 1."""
    assert inspect(CLEAN, warning_model, "--fail-on", "warning").exit_code == 1


def test_several_models_below_threshold_exit_0(warning_model):
    """Clean + warning models with the default --fail-on error: exit 0."""
    assert inspect(CLEAN, warning_model).exit_code == 0


def test_missing_model_exits_2(tmp_path):
    """A missing model: exit 2, one 'bnfold: error:' line on stderr, nothing on stdout."""
    result = inspect(tmp_path / "nope.onnx")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"bnfold: error: {tmp_path / 'nope.onnx'}: no such file"]
    assert result.stdout == ""


def test_unknown_format_exits_2():
    """--format xml is a usage error: exit 2."""
    result = inspect(CLEAN, "--format", "xml")
    assert result.exit_code == 2
    assert "xml" in result.output


def test_unknown_fail_on_exits_2():
    """--fail-on fatal is a usage error: exit 2."""
    assert inspect(CLEAN, "--fail-on", "fatal").exit_code == 2


def test_zero_jobs_exits_2():
    """-j 0 is below the minimum: exit 2."""
    assert inspect(CLEAN, "-j", "0").exit_code == 2


def test_no_models_exits_2():
    """`bnfold inspect` with no model is a usage error: exit 2."""
    assert inspect().exit_code == 2


# -- formats -----------------------------------------------------------------------------------

def test_json_has_one_entry_per_model_in_order(warning_model):
    """Three models in one call: the JSON lists three models, in argument order."""
    doc = json_of(inspect(CLEAN, DEFECTS, warning_model, "--format", "json", "--fail-on", "never"))
    assert doc["schema_version"] == 1
    assert [m["path"] for m in doc["models"]] == [str(CLEAN), str(DEFECTS), str(warning_model)]
    assert [m["summary"]["batchnorms"] for m in doc["models"]] == [7, 9, 1]
    assert doc["models"][0]["summary"]["foldable"] == 7


def test_json_is_strict_json_with_nan_as_null():
    """defects.onnx has NaN statistics; the JSON still parses strictly (no NaN tokens)."""
    result = inspect(DEFECTS, "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"non-standard {c}"))
    bns = {bn["name"]: bn for bn in doc["models"][0]["batchnorms"]}
    assert bns["bn_nonfinite"]["stats"]["var"]["nonfinite"] == 1


def test_json_and_exit_code_agree():
    """Exit 1 with --format json too, and stdout holds only the JSON document."""
    result = inspect(DEFECTS, "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["models"][0]["summary"]["errors"] == 3


def test_jobs_2_gives_the_same_json_as_jobs_1(warning_model, info_model):
    """-j 2 over four models produces exactly the JSON of -j 1."""
    models = [CLEAN, DEFECTS, warning_model, info_model]
    one = inspect(*models, "--format", "json", "-j", "1")
    two = inspect(*models, "--format", "json", "-j", "2")
    assert one.exit_code == two.exit_code == 1
    assert json.loads(one.stdout) == json.loads(two.stdout)
    assert one.stdout == two.stdout


def test_markdown_contains_a_table(warning_model):
    """--format markdown: a heading per model and a Markdown table row per BN."""
    result = inspect(CLEAN, warning_model, "--format", "markdown")
    assert result.exit_code == 0
    out = result.stdout
    assert "| BatchNorm | graph | channels | placement | fold | findings |" in out
    assert "|---|---|---|---|---|---|" in out
    assert f"### `{CLEAN}`" in out and f"### `{warning_model}`" in out
    assert "| `layer2.0.downsample.1` |" in out
    assert "`momentum-suspicious` (warning)" in out


def test_table_lists_each_bn_and_a_summary():
    """The default table names every BN and ends with the model's summary line."""
    result = inspect(DEFECTS, "--fail-on", "never")
    assert result.exit_code == 0
    for name in ("bn_nonfinite", "bn_training_mode", "bn_dynamic", "bn_clean"):
        assert name in result.stdout
    assert f"{DEFECTS}: 9 BatchNorm, 5 foldable, 3 error(s), 3 warning(s), 2 info" in result.stdout


def test_short_format_option():
    """-f json is --format json."""
    assert json_of(inspect(CLEAN, "-f", "json"))["models"][0]["summary"]["batchnorms"] == 7


def test_names_that_look_like_markup_are_printed_verbatim(tmp_path):
    """Node names such as 'bn[/x]' are shown as written, not parsed as rich markup (no crash)."""
    model = conv_bn_model(np.random.default_rng(0), bn_attrs={"momentum": 0.1})
    model.graph.node[0].name = "conv[bold]|a"
    model.graph.node[1].name = "bn[/x]"
    path = save(model, tmp_path / "markup.onnx")
    table = inspect(path)
    assert table.exit_code == 0, table.output
    assert "bn[/x]" in table.stdout and "conv[bold]|a" in table.stdout
    markdown = inspect(path, "--format", "markdown")
    assert markdown.exit_code == 0
    assert "`bn[/x]`" in markdown.stdout and "`conv[bold]\\|a`" in markdown.stdout
