"""The README stays true to the code: its test command is CI's, its code tables are complete."""

import re
from pathlib import Path

from bnfold.audit import CHECKS
from bnfold.planner import REASONS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def _table_codes(heading: str) -> set[str]:
    section = README.split(heading, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z0-9-]+)` \|", section, re.M))


def test_quick_start_has_exactly_two_commands():
    """One command runs the main job, one runs the tests."""
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert "bnfold fuse sample_models/" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    """.ci/run executes the README's test command verbatim."""
    assert _quick_start_commands()[1] in (ROOT / ".ci" / "run").read_text()


def test_every_finding_code_is_documented():
    """The finding-code table lists exactly the codes the audit emits."""
    assert _table_codes("## Finding codes") == set(CHECKS)


def test_every_reason_code_is_documented():
    """The reason-code table lists exactly the planner's reasons."""
    assert _table_codes("## Reason codes") == set(REASONS)
