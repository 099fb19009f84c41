"""`alpagasus --help` lists every stage (one line each, from STAGES), every experiment, the
config groups with their options and three example commands that compose; `--hydra-help`
keeps Hydra's own page."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from alpagasus.help import experiment_names, experiment_summary, experiments_help, stages_help
from alpagasus.main import CONF_DIR
from alpagasus.stages import STAGES
from tests.test_docs import _composed, _jobs, _run_cli, _split

EXPERIMENT_FILES = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
# conf/accelerate holds launch files and conf/hydra Hydra's own groups (--hydra-help).
GROUPS = sorted(p.name for p in Path(CONF_DIR).iterdir()
                if p.is_dir() and p.name not in ("hydra", "__pycache__"))


def _section(text: str, title: str) -> list[str]:
    """The lines of the `== title ... ==` section, up to the next blank-line-then-== section."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {title}"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("== ")),
               len(lines))
    return [line for line in lines[start + 1:end] if line.strip()]


@pytest.fixture(scope="module")
def help_text() -> str:
    out = _run_cli("--help")
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_help_lists_every_stage_once_with_its_line(help_text):
    section = _section(help_text, "Stages")
    names = [line.split()[0] for line in section if not line.startswith("      ")]
    assert names == list(STAGES)  # wrapped continuation lines are indented further
    flat = " ".join(" ".join(section).split())
    for name, spec in STAGES.items():
        assert " ".join(spec.doc.split()) in flat, name
    assert "pipeline (default)" in help_text


def test_help_lists_every_experiment(help_text):
    assert experiment_names() == EXPERIMENT_FILES
    listed = [line.split()[0] for line in _section(help_text, "Experiments")
              if not line.startswith("      ")]
    assert listed == EXPERIMENT_FILES
    assert "Is the filter better than chance at equal size?" in help_text


def test_help_lists_the_config_groups_and_their_options(help_text):
    groups = dict(line.split(": ", 1) for line in _section(help_text, "Config groups")
                  if ": " in line and not line.startswith("("))
    for group in GROUPS:
        options = sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))
        if options:
            assert groups[group].split(", ") == options, group


def test_help_examples_compose(help_text):
    examples = [re.split(r"\s{2,}", line.strip())[0] for line in _section(help_text, "Examples")
                if line.startswith("  alpagasus")]
    assert len(examples) == 3 and all(e.startswith("alpagasus") for e in examples)
    for example in examples:
        multirun, overrides, flags = _split(tuple(shlex.split(example)[1:]))
        assert not flags
        for job in _jobs(multirun, tuple(overrides)):
            assert not isinstance(_composed(job), Exception), example


def test_help_is_ours_and_hydra_help_is_hydras(help_text):
    assert "powered by Hydra" not in help_text
    assert "--hydra-help" in help_text
    out = _run_cli("--hydra-help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Hydra (") and "== Flags ==" in out.stdout
    assert "--multirun" in out.stdout and "hydra/launcher:" in out.stdout


def test_experiment_summary_is_the_first_sentence(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("# @package _global_\n# Does it matter? More text here.\n"
                 "#   alpagasus -m experiment=x\ndefaults: []\n")
    assert experiment_summary(f) == "Does it matter?"
    f.write_text("# @package _global_\n# Long title: " + "word " * 40 + "end.\n")
    assert experiment_summary(f) == "Long title"


def test_the_lists_escape_dollar_signs_for_hydras_template(monkeypatch):
    from alpagasus import help as help_module

    assert "$" not in stages_help() and "$" not in experiments_help()
    monkeypatch.setattr(help_module, "STAGES", {"x": STAGES["rate"].__class__(
        name="x", doc="costs $5", target=lambda ctx: None)})
    assert "costs $$5" in help_module.stages_help()
