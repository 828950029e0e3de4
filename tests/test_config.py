"""Configuration of ``bnfold check``: discovery, precedence (command line > file > default),
``--show-config`` sources, strict keys and values, per-path ignores."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bnfold.cli import app
from bnfold.config import (Config, ConfigError, ValidationConfig, find_config, load_config,
                           path_matches, resolve_config)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
CLEAN = SAMPLES / "resnet_small.onnx"
DEFECTS = SAMPLES / "defects.onnx"

runner = CliRunner()


def check(*args):
    return runner.invoke(app, ["check", *map(str, args)])


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def show_config(*args) -> dict[str, tuple[str, str]]:
    """``--show-config`` as {key: (value, source)}."""
    result = check("--show-config", *args)
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.stdout.splitlines()[1:]:
        setting, source = line.rsplit("  # ", 1)
        key, value = setting.split(" = ", 1)
        rows[key] = (value.strip(), source)
    return rows


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)


# -- discovery ---------------------------------------------------------------------------------

def test_pyproject_in_a_parent_is_found(tmp_path, monkeypatch):
    """[tool.bnfold] in ../../pyproject.toml applies in a subfolder."""
    cfg = write(tmp_path / "pyproject.toml", """
        [project]
        name = "demo"
        [tool.bnfold]
        fail-on = "never"
    """)
    (tmp_path / "a" / "b").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a" / "b")
    assert find_config() == cfg
    assert check(DEFECTS).exit_code == 0
    assert show_config()["fail-on"] == ('"never"', str(cfg))


def test_pyproject_without_the_section_is_skipped(tmp_path, monkeypatch):
    """A pyproject.toml without [tool.bnfold] does not stop the walk up."""
    outer = write(tmp_path / "pyproject.toml", '[tool.bnfold]\nrequire-folded = true\n')
    write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "pkg"\n[tool.ruff]\nline-length = 99\n')
    monkeypatch.chdir(tmp_path / "pkg")
    assert find_config() == outer
    assert check(CLEAN).exit_code == 1  # require-folded from the outer file


def test_nearest_file_wins_without_merging(tmp_path, monkeypatch):
    """The nearer config wins whole: keys it does not set keep their defaults."""
    write(tmp_path / "pyproject.toml", '[tool.bnfold]\nfail-on = "never"\nrequire-folded = true\n')
    inner = write(tmp_path / "sub" / "pyproject.toml", '[tool.bnfold]\nignore = ["dead-channel"]\n')
    monkeypatch.chdir(tmp_path / "sub")
    rows = show_config()
    assert rows["fail-on"] == ('"error"', "default")
    assert rows["require-folded"] == ("false", "default")
    assert rows["ignore"] == ('["dead-channel"]', str(inner))


def test_bnfold_toml_beats_pyproject_in_the_same_folder(tmp_path):
    """bnfold.toml (top-level keys) wins over pyproject.toml next to it."""
    write(tmp_path / "pyproject.toml", '[tool.bnfold]\nfail-on = "info"\n')
    cfg = write(tmp_path / "bnfold.toml", 'fail-on = "warning"\n')
    assert find_config(tmp_path) == cfg
    assert show_config()["fail-on"] == ('"warning"', str(cfg))


def test_bnfold_toml_in_a_parent_beats_nothing_nearer(tmp_path, monkeypatch):
    """A bnfold.toml in a parent applies when nothing nearer configures bnfold."""
    cfg = write(tmp_path / "bnfold.toml", 'fail-on = "never"\n')
    write(tmp_path / "x" / "pyproject.toml", '[project]\nname = "x"\n')
    monkeypatch.chdir(tmp_path / "x")
    assert find_config() == cfg


def test_no_config_anywhere_gives_defaults(tmp_path):
    """No file: every value is the default."""
    assert find_config(tmp_path) is None
    rows = show_config()
    assert {source for _, source in rows.values()} == {"default"}
    assert rows["fail-on"][0] == '"error"'
    assert check("--show-config").stdout.splitlines()[0] == "# config file: none"


# -- precedence --------------------------------------------------------------------------------

def test_command_line_beats_config_beats_default(tmp_path):
    """fail-on from the command line, require-folded from the file, ignore by default."""
    cfg = write(tmp_path / "pyproject.toml", '[tool.bnfold]\nfail-on = "never"\nrequire-folded = true\n')
    rows = show_config("--fail-on", "warning")
    assert rows["fail-on"] == ('"warning"', "command line")
    assert rows["require-folded"] == ("true", str(cfg))
    assert rows["ignore"] == ("[]", "default")


def test_precedence_changes_the_verdict(tmp_path):
    """Config fail-on never lets defects pass; --fail-on error on the command line fails it."""
    write(tmp_path / "pyproject.toml", '[tool.bnfold]\nfail-on = "never"\n')
    assert check(DEFECTS).exit_code == 0
    assert check(DEFECTS, "--fail-on", "error").exit_code == 1


def test_no_require_folded_on_the_command_line_beats_the_file(tmp_path):
    """require-folded = true in the file, --no-require-folded on the command line."""
    write(tmp_path / "bnfold.toml", "require-folded = true\n")
    assert check(CLEAN).exit_code == 1
    assert check(CLEAN, "--no-require-folded").exit_code == 0


def test_ignore_on_the_command_line_replaces_the_files(tmp_path):
    """--ignore replaces the config's list (it does not add to it)."""
    cfg = write(tmp_path / "bnfold.toml", 'ignore = ["training-mode", "non-finite", "variance-negative"]\n')
    assert check(DEFECTS).exit_code == 0
    assert show_config()["ignore"][1] == str(cfg)
    rows = show_config("--ignore", "dead-channel")
    assert rows["ignore"] == ('["dead-channel"]', "command line")
    assert check(DEFECTS, "--ignore", "dead-channel").exit_code == 1


def test_show_config_needs_no_models_and_lists_validation(tmp_path):
    """--show-config exits 0 without models and shows the validation table's sources."""
    cfg = write(tmp_path / "pyproject.toml", """
        [tool.bnfold.validation]
        atol = 1e-4
        provider = "cpu"
    """)
    rows = show_config()
    assert rows["validation.atol"] == ("0.0001", str(cfg))
    assert rows["validation.provider"] == ('"cpu"', str(cfg))
    assert rows["validation.rtol"] == ("unset", "default")
    out = check("--show-config").stdout
    assert out.splitlines()[0] == f"# config file: {cfg}"


# -- --config / --no-config --------------------------------------------------------------------

def test_explicit_config_file(tmp_path):
    """--config FILE reads that file (top-level keys) instead of discovering one."""
    write(tmp_path / "pyproject.toml", '[tool.bnfold]\nfail-on = "never"\n')
    gate = write(tmp_path / "ci" / "gate.toml", 'fail-on = "info"\n')
    assert show_config("--config", gate)["fail-on"] == ('"info"', str(gate))


def test_explicit_pyproject_reads_its_section(tmp_path):
    """--config path/to/pyproject.toml reads [tool.bnfold]; without it, exit 2."""
    good = write(tmp_path / "a" / "pyproject.toml", '[tool.bnfold]\nfail-on = "warning"\n')
    bad = write(tmp_path / "b" / "pyproject.toml", '[project]\nname = "b"\n')
    assert show_config("--config", good)["fail-on"] == ('"warning"', str(good))
    result = check("--show-config", "--config", bad)
    assert result.exit_code == 2 and "no [tool.bnfold] section" in result.stderr


def test_no_config_ignores_discovery(tmp_path):
    """--no-config: the discovered file is ignored."""
    write(tmp_path / "pyproject.toml", '[tool.bnfold]\nfail-on = "never"\n')
    assert check(DEFECTS, "--no-config").exit_code == 1
    assert {s for _, s in show_config("--no-config").values()} == {"default"}


def test_no_config_skips_a_broken_file(tmp_path):
    """--no-config does not even read a broken file."""
    write(tmp_path / "bnfold.toml", "this is = = not toml\n")
    assert check(CLEAN, "--no-config").exit_code == 0


def test_config_and_no_config_together_exit_2(tmp_path):
    """--config with --no-config is contradictory: exit 2."""
    gate = write(tmp_path / "gate.toml", "")
    assert check(CLEAN, "--config", gate, "--no-config").exit_code == 2


def test_missing_config_file_exits_2(tmp_path):
    """--config naming a missing file: exit 2, one line."""
    result = check(CLEAN, "--config", tmp_path / "nope.toml")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"bnfold: error: {tmp_path / 'nope.toml'}: no such config file"]


# -- strict keys and values --------------------------------------------------------------------

@pytest.mark.parametrize("body,key", [
    ("[tool.bnfold]\nfail_on = \"error\"\n", "'fail_on'"),
    ("[tool.bnfold]\nstrict = true\n", "'strict'"),
    ("[tool.bnfold.validation]\natl = 1e-3\n", "'validation.atl'"),
])
def test_unknown_key_exits_2_naming_it(tmp_path, body, key):
    """An unknown key (top level or in validation) is an error naming the key and the file."""
    cfg = write(tmp_path / "pyproject.toml", body)
    result = check(CLEAN)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"bnfold: error: {cfg}") and key in line
    assert "Traceback" not in result.output


def test_unknown_key_suggests_the_spelling(tmp_path):
    """fail_on → did you mean 'fail-on'?"""
    write(tmp_path / "bnfold.toml", 'fail_on = "error"\n')
    assert "did you mean 'fail-on'" in check(CLEAN).stderr


def test_bnfold_toml_with_a_tool_section_is_explained(tmp_path):
    """bnfold.toml takes top-level keys; [tool.bnfold] there is an error that says so."""
    write(tmp_path / "bnfold.toml", '[tool.bnfold]\nfail-on = "error"\n')
    result = check(CLEAN)
    assert result.exit_code == 2 and "top-level keys" in result.stderr


@pytest.mark.parametrize("body,needle", [
    ('fail-on = "foo"', "fail-on must be one of"),
    ("fail-on = 1", "fail-on must be one of"),
    ('require-folded = "yes"', "require-folded must be true or false"),
    ('ignore = "dead-channel"', "must be a list"),
    ('ignore = ["dead-chanel"]', "unknown code 'dead-chanel'"),
    ('per-path-ignores = ["x"]', "per-path-ignores must be a table"),
    ('[per-path-ignores]\n"*.onnx" = ["nope"]', "unknown code 'nope'"),
    ("[validation]\natol = -1", "validation.atol must be a number >= 0"),
    ('[validation]\nrtol = "small"', "validation.rtol must be a number >= 0"),
    ('[validation]\nprovider = "tpu"', "validation.provider must be one of"),
    ("validation = 3", "validation must be a table"),
    ("fail-on = ", "invalid TOML"),
])
def test_invalid_values_exit_2(tmp_path, body, needle):
    """Each invalid value is an exit-2 error with a one-line explanation."""
    write(tmp_path / "bnfold.toml", body + "\n")
    result = check(CLEAN)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert needle in line


def test_load_config_stores_every_key(tmp_path):
    """All keys, validation included, end up in the Config object with their sources."""
    cfg = write(tmp_path / "pyproject.toml", """
        [tool.bnfold]
        fail-on = "warning"
        require-folded = true
        ignore = ["dead-channel", "stats-not-constant"]
        [tool.bnfold.per-path-ignores]
        "models/legacy/**" = ["not-folded"]
        [tool.bnfold.validation]
        atol = 1e-5
        rtol = 0
        provider = "cuda"
    """)
    config = load_config(cfg)
    assert config.fail_on == "warning" and config.require_folded is True
    assert config.ignore == ("dead-channel", "stats-not-constant")
    assert config.per_path_ignores == {"models/legacy/**": ("not-folded",)}
    assert config.validation == ValidationConfig(atol=1e-5, rtol=0.0, provider="cuda")
    assert config.path == cfg and config.root == tmp_path
    assert config.source("validation.rtol") == str(cfg)
    assert config.to_dict()["validation"] == {"atol": 1e-5, "rtol": 0.0, "provider": "cuda"}


def test_resolve_config_defaults(tmp_path):
    """Nothing found, nothing given: Config()."""
    assert resolve_config(start=tmp_path) == Config()
    with pytest.raises(ConfigError):
        Config(fail_on="sometimes")


# -- per-path ignores --------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path) -> Path:
    """proj/models/{main.onnx (resnet_small), legacy/old.onnx (resnet_small), defects.onnx}."""
    for rel, src in (("models/main.onnx", CLEAN), ("models/legacy/old.onnx", CLEAN),
                     ("models/defects.onnx", DEFECTS)):
        (tmp_path / "proj" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, tmp_path / "proj" / rel)
    return tmp_path / "proj"


def _problem_codes(result) -> dict[str, set[str]]:
    codes: dict[str, set[str]] = {}
    for line in result.stdout.splitlines()[:-1]:
        path, _node, code, _msg = line.split(": ", 3)
        codes.setdefault(Path(path).name, set()).add(code)
    return codes


def test_per_path_ignores_are_relative_to_the_config_file(project, monkeypatch):
    """Globs in the file are relative to its folder, even when run from a subfolder."""
    write(project / "pyproject.toml", """
        [tool.bnfold]
        require-folded = true
        [tool.bnfold.per-path-ignores]
        "models/legacy/**" = ["not-folded"]
        "defects.onnx" = ["training-mode", "non-finite", "variance-negative", "not-folded"]
    """)
    monkeypatch.chdir(project / "models")
    result = check(".")
    codes = _problem_codes(result)
    assert "old.onnx" not in codes  # legacy folder: not-folded ignored
    assert codes["main.onnx"] == {"not-folded"}
    assert not codes["defects.onnx"] & {"training-mode", "non-finite", "variance-negative", "not-folded"}
    assert "variance-tiny" in codes["defects.onnx"]
    assert result.exit_code == 1  # main.onnx still fails
    summary = result.stdout.splitlines()[-1]
    assert "ignored" in summary


def test_per_path_folder_pattern_covers_its_contents(project):
    """A pattern naming a folder covers every model below it."""
    write(project / "bnfold.toml", 'require-folded = true\n[per-path-ignores]\n"models" = ["not-folded"]\n')
    result = check(project / "models" / "main.onnx", "--config", project / "bnfold.toml")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("pattern,rel,expected", [
    ("models/legacy/**", "models/legacy/old.onnx", True),
    ("models/legacy/**", "models/legacy/a/b/old.onnx", True),
    ("models/legacy/**", "models/main.onnx", False),
    ("models/*.onnx", "models/main.onnx", True),
    ("models/*.onnx", "models/legacy/old.onnx", False),
    ("models/**/*.onnx", "models/main.onnx", True),
    ("models/**/*.onnx", "models/legacy/old.onnx", True),
    ("models", "models/legacy/old.onnx", True),
    ("models/", "models/main.onnx", True),
    ("./models/main.onnx", "models/main.onnx", True),
    ("*_fp16.onnx", "deep/down/net_fp16.onnx", True),
    ("*_fp16.onnx", "deep/down/net.onnx", False),
    ("legacy", "models/legacy/old.onnx", True),
    ("legacy/", "models/legacy/old.onnx", True),
    ("old.onnx/", "models/legacy/old.onnx", False),
    ("legacy", "models/main.onnx", False),
    ("net?.onnx", "a/net1.onnx", True),
    ("net[0-9].onnx", "a/netx.onnx", False),
    ("net[!0-9].onnx", "a/netx.onnx", True),
    ("other/*.onnx", "models/main.onnx", False),
])
def test_path_matches(tmp_path, pattern, rel, expected):
    """Glob semantics: / anchors to the root, ** spans folders, bare names match anywhere."""
    assert path_matches(pattern, tmp_path / rel, tmp_path) is expected


def test_path_outside_the_root_matches_only_bare_names(tmp_path):
    """A model outside the config's folder: anchored patterns cannot match it."""
    root = tmp_path / "proj"
    assert not path_matches("models/*.onnx", tmp_path / "elsewhere" / "models" / "m.onnx", root)
    assert path_matches("m.onnx", tmp_path / "elsewhere" / "m.onnx", root)


def test_validation_table_sets_fuse_and_validate_defaults(tmp_path, monkeypatch):
    """[tool.bnfold] validation.atol/rtol become validate's tolerances; flags override them."""
    import json
    import shutil

    from typer.testing import CliRunner

    from bnfold.cli import app

    samples = Path(__file__).resolve().parent.parent / "sample_models"
    shutil.copy(samples / "mlp_bn1d.onnx", tmp_path / "m.onnx")
    (tmp_path / "bnfold.toml").write_text("[validation]\natol = 0.25\nrtol = 0.125\nprovider = \"cpu\"\n")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["validate", "m.onnx", "m.onnx", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["outputs"][0]["atol"], doc["outputs"][0]["rtol"], doc["provider"]) == (0.25, 0.125, "cpu")
    result = runner.invoke(app, ["validate", "m.onnx", "m.onnx", "--format", "json", "--atol", "0.5"])
    assert json.loads(result.stdout)["outputs"][0]["atol"] == 0.5
